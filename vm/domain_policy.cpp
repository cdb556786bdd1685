// The checks of an incoming domain (vm/domain_policy.hpp), and why each exists. Elements are
// matched by name wherever they appear (outside <metadata>), not only where libvirt looks for
// them: being stricter than libvirt's parser is safe, being looser is not. Attributes are matched
// by local name whatever their namespace prefix (libvirt's xmlGetProp ignores namespaces too).
// Sources: libvirt's domain format (https://libvirt.org/formatdomain.html) as of libvirt 9/10.
//
// Refused unless an option allows it:
//   - any element in the qemu: namespace (commandline, capabilities, override, deprecation, ...):
//     arbitrary QEMU arguments and device properties. hymig's own -incoming/-qmp are added by this
//     side after the check and stripped by the source before sending, so an incoming one is
//     always foreign.                                                         --allow-qemu-args
//   - <emulator> other than one this libvirt's capabilities name (or the operator allows): the
//     program libvirt runs.                                                   --allow-emulator
//   - host devices: <hostdev>, <redirdev>, <interface type='hostdev'>, <disk type='nvme'> (a PCI
//     NVMe controller), <smartcard mode='host'> (the host's card reader), <input type='passthrough'
//     |'evdev'> (host input devices), <tpm> backend type='passthrough' (the host's TPM).
//                                                                             --allow-hostdev
//   - network disks: type='network' on <disk>, <backingStore>, <dataStore>, <mirror>, <nvram>, or
//     a <source protocol=...> in a disk: this host would connect to storage of the peer's choice,
//     with any libvirt secret the definition names.                          --allow-network-disks
//   - storage pool volumes (<source pool=...>) outside the allowed pools.   --allow-pool
//   - every host path libvirt or QEMU would open, create or hand the guest, outside the allowed
//     paths (normalized, compared component by component; relative paths and '..' refused always):
//     disk and filesystem sources (file, dev, dir, name, socket), backing chains, data stores,
//     mirrors, persistent-reservation sockets, storage configs (<config file>); chardevs (serial,
//     parallel, console, channel, smartcard passthrough, redirdev, rng egd) of type file, dev,
//     pipe, unix (pty paths are libvirt's own and ignored), and every chardev <log file>;
//     <os> loader, nvram (and its template and source), kernel, initrd, dtb, shim, ACPI tables;
//     <sysinfo> fw_cfg entry files; <memory> nvdimm/virtio-pmem backing paths; <pstore> path;
//     <lease> target path; <shmem> (its memory is /dev/shm/NAME; a doorbell's server socket);
//     <rng> random backend other than /dev/random and /dev/urandom; smartcard certificates and
//     NSS database; interface vhost-user sockets, vDPA devices, tap/vhost device overrides and
//     passt log files; graphics sockets, D-Bus socket paths, render nodes and SDL xauth files;
//     audio files and OSS devices; TPM external sockets and device paths; and as a safety net
//     any other attribute named file, dir, path, socket, template, logFile, xauth, rendernode or
//     runtimeDir, or an absolute dev, evdev, tap or vhost, outside <target> elements (guest-side
//     names).
//                                                                             --allow-path
// Refused whatever the options say (no option allows them: they run programs or change how
// libvirt confines QEMU, which only this host's operator may decide — define such a domain here
// by hand):
//   - <interface> <script>/<downscript>: programs run on the host when the tap comes up/down;
//   - <filesystem> <binary path=...>: the virtiofsd program libvirt would run;
//   - <bootloader>: a host program (Xen's pygrub) run to boot the guest;
//   - a domain <seclabel> that is static, of type 'none' for a real security model, or sets a
//     <baselabel>: QEMU would run unconfined or under a label (user:group) of the peer's choice.
//     Dynamic labels are accepted (libvirt ignores their <label> when it starts a domain and makes
//     its own);
//   - a host path that is relative or has a '..' component (nothing can be allowed about it).
// Accepted as this host's own: the virtio channel sockets libvirt generates under
// /var/lib/libvirt/qemu/channel/target (libvirt drops those paths and makes new ones).
// Not checked (no host file opened on the peer's say-so, or this host's own configuration):
// host network attachments (bridges, networks, macvtap NICs, listening TCP chardevs and VNC/SPICE
// ports, D-Bus addresses other than unix:path=, PulseAudio servers), <resource><partition> (a
// cgroup), <blkiotune> device paths (I/O weights only), libvirt secrets named by encrypted disks
// or network disks' <auth>, <watchdog action='dump'>/<on_crash> dumps (to qemu.conf's
// auto_dump_path), <os><smbios mode='host'> (the host's SMBIOS strings shown to the guest).
// Symbolic links inside allowed directories are the operator's: paths are compared as written.
#include "vm/domain_policy.hpp"

#include <libxml/tree.h>

#include <algorithm>

#include "core/error.hpp"
#include "vm/domain_xml.hpp"

namespace hymig::vm {
namespace {

constexpr std::size_t kMaxCapabilitiesXmlBytes = 16 * 1024 * 1024;
constexpr const char* kLibvirtChannelDir = "/var/lib/libvirt/qemu/channel/target";

const xmlChar* X(const char* s) { return reinterpret_cast<const xmlChar*>(s); }
const char* C(const xmlChar* s) { return reinterpret_cast<const char*>(s); }

std::string name_of(const xmlNode* n) { return C(n->name); }
bool named(const xmlNode* n, const char* name) { return n && n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, X(name)); }
bool in_qemu_ns(const xmlNode* n) { return n->ns && n->ns->href && xmlStrEqual(n->ns->href, X(kQemuXmlNamespace)); }

// The first attribute of that local name, any namespace (as libvirt's xmlGetProp reads it).
std::optional<std::string> attr(const xmlNode* n, const char* name) {
  for (const xmlAttr* a = n->properties; a; a = a->next) {
    if (!xmlStrEqual(a->name, X(name))) continue;
    xmlChar* v = xmlNodeListGetString(n->doc, a->children, 1);
    std::string s = v ? C(v) : "";
    xmlFree(v);
    return s;
  }
  return std::nullopt;
}

std::string text(const xmlNode* n) {
  xmlChar* v = xmlNodeGetContent(n);
  std::string s = v ? C(v) : "";
  xmlFree(v);
  return s;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

const xmlNode* child(const xmlNode* n, const char* name) {
  for (const xmlNode* c = n->children; c; c = c->next)
    if (named(c, name)) return c;
  return nullptr;
}

struct Allow {
  const char* key;  // the serve option and config key
  const char* arg;  // its argument in the message, "" for a switch
};
constexpr Allow kAllowPath{"allow-path", " DIR"};
constexpr Allow kAllowPool{"allow-pool", " NAME"};
constexpr Allow kAllowEmulator{"allow-emulator", " PATH"};
constexpr Allow kAllowHostdev{"allow-hostdev", ""};
constexpr Allow kAllowQemuArgs{"allow-qemu-args", ""};
constexpr Allow kAllowNetworkDisks{"allow-network-disks", ""};

[[noreturn]] void refuse(const std::string& what, const std::string& why, const Allow* allow) {
  std::string m = "domain refused: " + what + " " + why;
  if (allow)
    m += "; this host allows it with `hymig serve --" + std::string(allow->key) + allow->arg + "` (config key " + allow->key + ")";
  else
    m += "; no option allows that from a peer (define such a domain on this host by hand)";
  throw Error(ErrorKind::refused, m);
}

std::string list_or_none(const std::vector<std::string>& v) {
  if (v.empty()) return "none";
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

class Checker {
 public:
  Checker(const DomainPolicy& p, const std::vector<std::string>& libvirt_emulators) : p_(p) {
    for (const auto* list : {&libvirt_emulators, &p.allowed_emulators})
      for (const auto& e : *list)
        if (auto n = normalize_absolute_path(e); n && std::find(emulators_.begin(), emulators_.end(), *n) == emulators_.end())
          emulators_.push_back(*n);
  }

  void run(const xmlNode* root) {
    for (const xmlNode* c = root->children; c; c = c->next) {
      if (c->type != XML_ELEMENT_NODE) continue;
      if (named(c, "metadata") && !c->ns) {
        qemu_only(c);  // anyone's private data: only a qemu: element would be looked at by libvirt
        continue;
      }
      visit(c, Ctx{root, c, nullptr});
    }
  }

 private:
  struct Ctx {
    const xmlNode* root;
    const xmlNode* section;  // the child of <domain> we are in
    const xmlNode* device;   // the child of <devices> we are in, if any
  };

  void qemu_only(const xmlNode* n) {
    for (const xmlNode* c = n->children; c; c = c->next) {
      if (c->type != XML_ELEMENT_NODE) continue;
      if (in_qemu_ns(c) && !p_.allow_qemu_args) refuse_qemu(c);
      qemu_only(c);
    }
  }

  [[noreturn]] void refuse_qemu(const xmlNode* n) {
    refuse("<qemu:" + name_of(n) + ">", "gives QEMU arguments or settings of the peer's choice", &kAllowQemuArgs);
  }

  // "<disk> source /dev/sda", "<interface> backend tap /dev/net/tun", "<os> kernel /boot/vmlinuz".
  std::string describe(const Ctx& ctx, const xmlNode* n, const std::string& attribute, const std::string& value) const {
    const xmlNode* top = ctx.device ? ctx.device : ctx.section;
    std::vector<std::string> chain;
    for (const xmlNode* a = n; a && a != top; a = a->parent) chain.push_back(name_of(a));
    std::string s = "<" + name_of(top) + ">";
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) s += " " + *it;
    const bool plain = named(n, "source") && (attribute == "file" || attribute == "dev" || attribute == "dir" || attribute == "path");
    if (!attribute.empty() && !plain) s += " " + attribute;
    return s + " " + value;
  }

  void require_path(const std::string& what, const std::string& value) const {
    const auto norm = normalize_absolute_path(value);
    if (!norm) refuse(what, "is not an absolute path without '..'", nullptr);
    for (const auto& dir : p_.allowed_paths)
      if (path_is_within(*norm, dir)) return;
    refuse(what, "is outside the paths this host allows (" + list_or_none(p_.allowed_paths) + ")", &kAllowPath);
  }

  void require_hostdev(const std::string& what) const {
    if (!p_.allow_hostdev) refuse(what, "hands a host device to the guest", &kAllowHostdev);
  }

  void require_network(const std::string& what) const {
    if (!p_.allow_network_disks)
      refuse(what, "is a network disk: this host would connect to storage the peer names", &kAllowNetworkDisks);
  }

  static bool is_chardev_holder(const xmlNode* n) {
    for (const char* k : {"serial", "parallel", "console", "channel", "smartcard", "redirdev", "backend"})
      if (named(n, k)) return true;
    return false;
  }

  void visit(const xmlNode* n, const Ctx& ctx) {
    if (in_qemu_ns(n)) {
      if (!p_.allow_qemu_args) refuse_qemu(n);
      return;  // allowed: its content is QEMU's business
    }
    const std::string name = name_of(n);
    const auto type = attr(n, "type");
    const xmlNode* parent = n->parent;
    const std::string dev = ctx.device ? name_of(ctx.device) : "";

    // Programs run on the host.
    if ((name == "script" || name == "downscript") && attr(n, "path"))
      refuse("<" + (ctx.device ? dev : name) + "> " + name + " " + *attr(n, "path"), "runs a program on this host", nullptr);
    if (name == "binary" && attr(n, "path"))
      refuse(describe(ctx, n, "path", *attr(n, "path")),
             "is a program (virtiofsd) libvirt would run on this host; leave path out for libvirt's own", nullptr);
    if (name == "bootloader" && parent == ctx.root && !blank(text(n)))
      refuse("<bootloader>" + text(n), "runs a program on this host", nullptr);

    // QEMU's confinement.
    if (name == "seclabel" && parent == ctx.root) check_seclabel(n);

    // Host devices.
    if (name == "hostdev" || name == "redirdev") require_hostdev("<" + name + ">");
    if (name == "interface" && type == "hostdev") require_hostdev("<interface type='hostdev'>");
    if (name == "disk" && type == "nvme") require_hostdev("<disk type='nvme'>");
    if (name == "smartcard" && attr(n, "mode") == "host") require_hostdev("<smartcard mode='host'>");
    if (name == "input" && (type == "passthrough" || type == "evdev")) require_hostdev("<input type='" + *type + "'>");
    if (name == "backend" && named(parent, "tpm") && type == "passthrough") require_hostdev("<tpm> backend type='passthrough'");

    // Network storage.
    if (type == "network" && (name == "disk" || name == "backingStore" || name == "dataStore" || name == "mirror" || name == "nvram")) {
      const xmlNode* top = ctx.device ? ctx.device : ctx.section;
      require_network(n == top ? "<" + name + " type='network'>" : "<" + name_of(top) + "> " + name + " type='network'");
    }
    if (name == "source" && (dev == "disk" || named(ctx.section, "os")))
      if (const auto proto = attr(n, "protocol"))
        require_network("<" + (dev.empty() ? std::string("os") : dev) + "> source protocol '" + *proto + "'");

    // Storage pools.
    if (name == "source")
      if (const auto pool = attr(n, "pool"))
        if (std::find(p_.allowed_pools.begin(), p_.allowed_pools.end(), *pool) == p_.allowed_pools.end())
          refuse(describe(ctx, n, "pool", "'" + *pool + "'"),
                 "is not a storage pool this host allows (" + list_or_none(p_.allowed_pools) + ")", &kAllowPool);

    // The emulator.
    if (name == "emulator") check_emulator(text(n));

    // Paths given as element text.
    if (named(ctx.section, "os")) {
      static const char* const kOsFiles[] = {"loader", "nvram", "kernel", "initrd", "dtb", "shim"};
      for (const char* k : kOsFiles)
        if (name == k && parent == ctx.section && !blank(text(n))) require_path("<os> " + name + " " + text(n), text(n));
      if (name == "table" && named(parent, "acpi")) require_path("<os> acpi table " + text(n), text(n));
    }
    if (dev == "memory" && name == "path" && named(parent, "source")) require_path("<memory> source path " + text(n), text(n));
    if (dev == "pstore" && name == "path") require_path("<pstore> path " + text(n), text(n));
    if (dev == "smartcard" && (name == "certificate" || name == "database")) require_path("<smartcard> " + name + " " + text(n), text(n));
    if (dev == "lease" && name == "target" && attr(n, "path")) require_path("<lease> target " + *attr(n, "path"), *attr(n, "path"));
    if (name == "backend" && named(parent, "rng") && attr(n, "model") == "random") {
      const std::string src = blank(text(n)) ? "/dev/urandom" : text(n);
      const auto norm = normalize_absolute_path(src);
      if (!norm || (*norm != "/dev/urandom" && *norm != "/dev/random")) require_path("<rng> backend " + src, src);
    }
    if (name == "graphics" && type == "dbus")
      if (const auto address = attr(n, "address"); address && address->find("path=") != std::string::npos) {
        const std::size_t at = address->find("path=") + 5;
        const std::size_t end = address->find(',', at);
        const std::string p = address->substr(at, end == std::string::npos ? std::string::npos : end - at);
        require_path("<graphics type='dbus'> address " + *address, p);
      }
    if (name == "shmem" && n == ctx.device && !child(n, "server"))
      if (const auto shm = attr(n, "name"); shm && !shm->empty())
        require_path("<shmem name='" + *shm + "'> (its memory, /dev/shm/" + *shm + ")", "/dev/shm/" + *shm);

    // Paths given as attributes (the safety net covers the rest of the format). <target> names
    // what the guest sees, never a host path (a <lease>'s target is handled above).
    if (name != "target") check_path_attributes(n, ctx, dev);

    for (const xmlNode* c = n->children; c; c = c->next) {
      if (c->type != XML_ELEMENT_NODE) continue;
      Ctx sub = ctx;
      if (named(n, "devices") && n == ctx.section) sub.device = c;
      visit(c, sub);
    }
  }

  void check_path_attributes(const xmlNode* n, const Ctx& ctx, const std::string& dev) {
    static const char* const kAlwaysPaths[] = {"file", "dir", "path", "socket", "template", "logFile", "xauth", "rendernode", "runtimeDir"};
    static const char* const kAbsolutePaths[] = {"dev", "evdev", "tap", "vhost"};
    const bool is_source = named(n, "source");
    for (const xmlAttr* a = n->properties; a; a = a->next) {
      const std::string an = C(a->name);
      bool always = std::find_if(std::begin(kAlwaysPaths), std::end(kAlwaysPaths), [&](const char* k) { return an == k; }) !=
                    std::end(kAlwaysPaths);
      const bool absolute = std::find_if(std::begin(kAbsolutePaths), std::end(kAbsolutePaths), [&](const char* k) { return an == k; }) !=
                            std::end(kAbsolutePaths);
      // A disk's or filesystem's source device, and a filesystem template's name, are paths even
      // when relative (QEMU would open them relative to its working directory).
      if (is_source && (dev == "disk" || dev == "filesystem") && an == "dev") always = true;
      if (is_source && dev == "filesystem" && an == "name") always = true;
      if (!always && !absolute) continue;
      xmlChar* raw = xmlNodeListGetString(n->doc, a->children, 1);
      const std::string v = raw ? C(raw) : "";
      xmlFree(raw);
      if (v.empty()) continue;
      if (!always && v[0] != '/') continue;  // a NIC name (<source dev='eth0'>), an ALSA device, ...
      if (is_source && an == "path" && is_chardev_holder(n->parent)) {
        const auto t = attr(n->parent, "type");
        // A pty's path is the one libvirt allocated at the source; a new pty is made here.
        if (!t || *t == "pty") continue;
        // A virtio channel's socket libvirt generated under its channel directory: libvirt drops
        // that path on definition and generates its own.
        if (named(n->parent, "channel") && *t == "unix" && path_is_within(v, kLibvirtChannelDir)) {
          const xmlNode* target = child(n->parent, "target");
          if (target && attr(target, "type") == "virtio") continue;
        }
      }
      require_path(describe(ctx, n, an, v), v);
    }
  }

  void check_emulator(const std::string& value) const {
    const auto norm = normalize_absolute_path(value);
    if (!norm) refuse("<emulator>" + value, "is not an absolute path without '..'", nullptr);
    if (std::find(emulators_.begin(), emulators_.end(), *norm) != emulators_.end()) return;
    refuse("<emulator>" + value, "is not an emulator this host's libvirt uses by default (" + list_or_none(emulators_) + ")",
           &kAllowEmulator);
  }

  void check_seclabel(const xmlNode* n) const {
    const std::string type = attr(n, "type").value_or("");
    const std::string model = attr(n, "model").value_or("");
    if (model == "none") return;  // the no-op driver, as libvirt writes it where no other runs
    std::string what = "<seclabel";
    if (!type.empty()) what += " type='" + type + "'";
    if (!model.empty()) what += " model='" + model + "'";
    what += ">";
    const char* why = "sets the security label (or the user) QEMU runs under, or lifts its confinement";
    if (type == "static" || type == "none") refuse(what, why, nullptr);
    if (type.empty() && child(n, "label")) refuse(what, why, nullptr);  // a label without a type is static
    if (child(n, "baselabel")) refuse(what + " baselabel", why, nullptr);
  }

  const DomainPolicy& p_;
  std::vector<std::string> emulators_;
};

std::optional<std::vector<std::string_view>> components(std::string_view path) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < path.size()) {
    const std::size_t j = std::min(path.find('/', i), path.size());
    const std::string_view c = path.substr(i, j - i);
    if (c == "..") return std::nullopt;
    if (!c.empty() && c != ".") out.push_back(c);
    i = j + 1;
  }
  return out;
}

}  // namespace

std::optional<std::string> normalize_absolute_path(std::string_view path) {
  const auto c = components(path);
  if (!c) return std::nullopt;
  std::string out;
  for (const auto& part : *c) {
    out += '/';
    out += part;
  }
  return out.empty() ? "/" : out;
}

bool path_is_within(std::string_view path, std::string_view dir) {
  const auto p = components(path), d = components(dir);
  if (!p || !d || d->size() > p->size()) return false;
  return std::equal(d->begin(), d->end(), p->begin());
}

void validate_domain_policy(const DomainPolicy& policy) {
  for (const auto& p : policy.allowed_paths)
    if (!normalize_absolute_path(p))
      throw Error(ErrorKind::usage, "--allow-path '" + p + "': give an absolute path without '..'");
  for (const auto& e : policy.allowed_emulators)
    if (!normalize_absolute_path(e))
      throw Error(ErrorKind::usage, "--allow-emulator '" + e + "': give the emulator's absolute path");
  for (const auto& pool : policy.allowed_pools)
    if (pool.empty()) throw Error(ErrorKind::usage, "--allow-pool: give a storage pool's name");
}

std::vector<std::string> libvirt_default_emulators(const std::string& capabilities_xml) {
  const XmlDocument doc = XmlDocument::parse(capabilities_xml, "libvirt's capabilities XML", kMaxCapabilitiesXmlBytes);
  std::vector<std::string> out;
  // guest/arch/emulator and guest/arch/domain/emulator.
  auto collect = [&](auto&& self, const xmlNode* n, bool in_guest) -> void {
    for (const xmlNode* c = n->children; c; c = c->next) {
      if (c->type != XML_ELEMENT_NODE) continue;
      if (in_guest && named(c, "emulator")) {
        const std::string e = text(c);
        if (!blank(e) && std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
        continue;
      }
      self(self, c, in_guest || named(c, "guest"));
    }
  };
  collect(collect, doc.root(), false);
  return out;
}

void check_domain_policy(const XmlDocument& domain, const DomainPolicy& policy, const std::vector<std::string>& libvirt_emulators) {
  const xmlNode* root = domain.root();
  if (!named(root, "domain") || root->ns) throw Error(ErrorKind::protocol, "the domain XML's root is not <domain>");
  Checker(policy, libvirt_emulators).run(root);
}

void check_domain_policy(const std::string& domain_xml, const DomainPolicy& policy,
                         const std::vector<std::string>& libvirt_emulators) {
  check_domain_policy(parse_domain_xml(domain_xml), policy, libvirt_emulators);
}

}  // namespace hymig::vm
