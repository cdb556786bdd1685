#include "vm/libvirt_image.hpp"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <regex>

#include <nlohmann/json.hpp>

#include "core/log.hpp"
#include "vm/domain_policy.hpp"
#include "vm/domain_xml.hpp"
#include "vm/libvirt_domain.hpp"
#include "vm/libvirt_monitor.hpp"
#include "vm/qemu_images.hpp"
#include "vm/qemu_vm.hpp"

namespace hymig::vm {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kMonitorTimeout{10000};  // the destination QEMU opening hymig's QMP socket

const char* const kSharedMemoryFix =
    "<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking> in its XML (virsh edit NAME, then "
    "restart it), or pass --fallback native to use libvirt's own migration";

// ---- the source --------------------------------------------------------------------------------

class LibvirtSourceControl final : public SourceGuestControl {
 public:
  LibvirtSourceControl(LibvirtDomain dom, std::string definition, bool persistent)
      : dom_(std::move(dom)), definition_(std::move(definition)), persistent_(persistent) {}

  // Through libvirt, so it knows the domain's state at every step.
  void pause(QemuVm&) override { dom_.suspend(); }
  void cont(QemuVm&) override {
    if (dom_.state() != "running") dom_.resume();  // a pause that failed may have left it running
  }

  // The guest runs at the destination: gone from here, its definition too (it lives there now).
  void end(QemuVm&) override {
    dom_.destroy();
    if (!persistent_) return;
    try {
      dom_.undefine();
    } catch (const std::exception& e) {
      logger().warn("the guest runs at the destination and is stopped here, but its definition stays here ({}): "
                    "virsh undefine {} before anyone starts it",
                    e.what(), dom_.name());
    }
  }

  std::string definition() const override { return definition_; }

 private:
  LibvirtDomain dom_;
  std::string definition_;
  bool persistent_;
};

// ---- the destination ---------------------------------------------------------------------------

class LibvirtTargetControl final : public TargetGuestControl {
 public:
  LibvirtTargetControl(LibvirtConnection conn, LibvirtDomain dom, std::string persistent_xml, std::string prior_xml,
                       std::string socket)
      : conn_(std::move(conn)), dom_(std::move(dom)), persistent_xml_(std::move(persistent_xml)),
        prior_xml_(std::move(prior_xml)), socket_(std::move(socket)) {}

  // Persistent (as the source was) before the source may commit: a failed definition, or a libvirt
  // that no longer answers, leaves a paused copy that destroy() removes while the guest runs on at
  // the source.
  void prepare(QemuVm&) override {
    if (persistent_xml_.empty()) {
      if (dom_.state() != "paused") throw Error(ErrorKind::io, "libvirt does not see the copy paused (" + dom_.state() + ")");
      return;
    }
    defined_ = true;
    LibvirtDomain::define(conn_, persistent_xml_);
  }

  void resume(QemuVm&) override { dom_.resume(); }

  bool destroy(QemuVm& vm) noexcept override {
    bool gone = true;
    try {
      dom_.destroy();
    } catch (const std::exception& e) {
      // libvirt is gone or stuck (its daemon killed): end the QEMU through hymig's own handle on
      // it, so no paused copy is left behind.
      logger().warn("{}; killing the copy's QEMU directly", e.what());
      gone = vm.kill();
    }
    if (defined_) {
      // Undo the definition: back to what was defined here before, or nothing.
      try {
        if (!prior_xml_.empty()) LibvirtDomain::define(conn_, prior_xml_);
        else if (dom_.persistent()) dom_.undefine();
      } catch (const std::exception& e) {
        logger().warn("the failed copy's definition stays on this host ({}); the guest is not running here: "
                      "`virsh undefine {}` before anyone starts it",
                      e.what(), dom_.name());
      }
    }
    ::unlink(socket_.c_str());
    return gone;
  }

 private:
  LibvirtConnection conn_;
  LibvirtDomain dom_;
  std::string persistent_xml_, prior_xml_, socket_;
  bool defined_ = false;
};

struct Definition {
  std::string name, uuid, xml, persistent_xml;  // persistent_xml: "" for a transient domain
  std::optional<XmlDocument> doc, persistent_doc;  // both parsed (libxml2), as libvirt will read them
};

// A UUID as libvirt compares them: its hex digits, in lower case.
std::string uuid_digits(const std::string& u) {
  std::string out;
  for (char c : u)
    if (c != '-') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// `xml` parsed, and naming the domain the definition names: a copy started or defined from it is
// the domain checked against this host's (by UUID and name) and nothing else.
XmlDocument parse_definition_xml(const std::string& xml, const Definition& d, const std::string& what) {
  XmlDocument doc = parse_domain_xml(xml, "notify: vm_definition's " + what);
  const DomainIdentity id = domain_identity(doc);
  if (id.name != d.name)
    throw Error(ErrorKind::protocol, "notify: vm_definition's " + what + " defines domain '" + id.name + "', not '" + d.name + "'");
  if (uuid_digits(id.uuid) != uuid_digits(d.uuid))
    throw Error(ErrorKind::protocol, "notify: vm_definition's " + what + " has UUID '" + id.uuid + "', not " + d.uuid);
  return doc;
}

// The emulators this host's libvirt uses by default (its capabilities), always allowed.
std::vector<std::string> libvirt_emulators(const LibvirtConnection& conn) {
  char* caps = virConnectGetCapabilities(conn.get());
  if (!caps) {
    const char* m = virGetLastErrorMessage();
    throw Error(ErrorKind::io, std::string("cannot read libvirt's capabilities at ") + conn.uri() + ": " + (m ? m : "unknown error"));
  }
  const std::string text(caps);
  free(caps);
  return libvirt_default_emulators(text);
}

// The definition's XMLs against what this host allows; a refusal of the persistent one says so.
void check_definition_policy(const Definition& d, const DomainPolicy& policy, const std::vector<std::string>& emulators) {
  check_domain_policy(*d.doc, policy, emulators);
  if (!d.persistent_doc) return;
  try {
    check_domain_policy(*d.persistent_doc, policy, emulators);
  } catch (const Error& e) {
    throw Error(e.kind(), std::string("in its persistent definition: ") + e.what());
  }
}

Definition parse_definition(const std::string& text) {
  Definition d;
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.value("hypervisor", std::string()) != "libvirt") throw Error(ErrorKind::protocol, "not a libvirt domain");
    d.name = j.at("name").get<std::string>();
    d.uuid = j.at("uuid").get<std::string>();
    d.xml = j.at("xml").get<std::string>();
    if (j.at("persistent").get<bool>()) d.persistent_xml = j.at("persistent_xml").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::protocol, std::string("notify: malformed vm_definition: ") + e.what());
  }
  static const std::regex uuid_re("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
  if (!std::regex_match(d.uuid, uuid_re)) throw Error(ErrorKind::protocol, "notify: vm_definition's uuid is not a UUID");
  if (d.name.empty() || d.name.size() > 200) throw Error(ErrorKind::protocol, "notify: vm_definition's name is empty or too long");
  d.doc = parse_definition_xml(d.xml, d, "xml");
  if (!d.persistent_xml.empty()) d.persistent_doc = parse_definition_xml(d.persistent_xml, d, "persistent_xml");
  return d;
}

// Destroys a domain this process started unless disarmed: a copy that failed its checks.
struct StartedDomainGuard {
  LibvirtDomain* dom;
  std::string socket;
  ~StartedDomainGuard() {
    if (!dom) return;
    try {
      dom->destroy();
    } catch (const std::exception& e) {
      logger().warn("{}", e.what());
    }
    ::unlink(socket.c_str());
  }
};

}  // namespace

std::unique_ptr<SourceImage> open_libvirt_source_image(const std::string& name, const std::string& uri) {
  const LibvirtConnection conn = LibvirtConnection::open(uri);
  auto dom = LibvirtDomain::find(conn, name);
  if (!dom) throw Error(ErrorKind::usage, "no domain '" + name + "' at " + conn.uri() + " (virsh -c " + conn.uri() + " list --all)");
  const std::string where = "domain '" + name + "'";
  if (!dom->active())
    throw Error(ErrorKind::usage, where + " is not running ('" + dom->state() + "'): hymig migrates a running guest; start it (virsh start " +
                                      name + "), or move a stopped domain's definition (virsh dumpxml / virsh define)");
  if (const std::string st = dom->state(); st != "running")
    throw Error(ErrorKind::usage, where + " is '" + st + "', not running" + (st == "paused" ? ": virsh resume it first" : ""));
  const std::string live = dom->xml(true);
  if (!has_shared_file_memory(live))
    throw NotMigratableByHymig(where + " keeps its RAM in anonymous memory; hymig moves RAM that lives in a shared file: put " +
                               kSharedMemoryFix);

  QemuVm vm = QemuVm::over(std::make_unique<LibvirtMonitor>(*dom));
  if (const auto why = vm.migration_blockers(); !why.empty()) {
    std::string all;
    for (const auto& w : why) all += (all.empty() ? "" : "; ") + w;
    throw NotMigratableByHymig("QEMU refuses to migrate " + where + ": " + all +
                               " (remove the device that blocks it; --fallback native hands it to libvirt's own migration, "
                               "which QEMU may refuse as well)");
  }
  try {
    vm.ram_backend();
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::usage) throw;
    throw NotMigratableByHymig(std::string(e.what()) + " (for a libvirt domain: " + kSharedMemoryFix + ")");
  }

  const bool persistent = dom->persistent();
  nlohmann::json def = {{"hypervisor", "libvirt"},
                        {"name", dom->name()},
                        {"uuid", dom->uuid()},
                        {"xml", strip_hymig_qemu_args(live)},
                        {"persistent", persistent}};
  if (persistent) def["persistent_xml"] = strip_hymig_qemu_args(dom->xml(true, true));
  auto control = std::make_unique<LibvirtSourceControl>(*dom, def.dump(), persistent);
  return make_qemu_source_image(std::move(vm), std::move(control), vm_image_name(name, std::string()));
}

nlohmann::json migrate_domain_natively(const std::string& name, const std::string& uri, const std::string& dest_uri,
                                       const std::string& migrate_uri) {
  const LibvirtConnection conn = LibvirtConnection::open(uri);
  auto dom = LibvirtDomain::find(conn, name);
  if (!dom) throw Error(ErrorKind::usage, "no domain '" + name + "' at " + conn.uri());
  return dom->migrate_native(dest_uri, migrate_uri);
}

void prefetch_libvirt_capabilities(const std::string& uri) { (void)libvirt_emulators(LibvirtConnection::open(uri)); }

std::unique_ptr<TargetImage> open_libvirt_target(const LibvirtTargetOptions& opts, const Notify& n) {
  const Definition d = parse_definition(n.vm_definition);
  const LibvirtConnection conn = LibvirtConnection::open(opts.uri);
  // What the peer asks of this host, checked before libvirt is asked to start or define anything.
  check_definition_policy(d, opts.policy, libvirt_emulators(conn));
  std::string prior_xml;
  if (auto same = LibvirtDomain::find_uuid(conn, d.uuid)) {
    if (same->active())
      throw Error(ErrorKind::refused, "domain '" + same->name() + "' (UUID " + d.uuid + ") already runs on this host");
    if (same->name() != d.name)
      throw Error(ErrorKind::refused, "this host defines UUID " + d.uuid + " as domain '" + same->name() + "', not '" + d.name + "'");
    if (same->persistent()) prior_xml = same->xml(false, true);
  } else if (auto other = LibvirtDomain::find(conn, d.name)) {
    throw Error(ErrorKind::refused, "this host has another domain called '" + d.name + "' (UUID " + other->uuid() + ")");
  }

  std::error_code ec;
  std::filesystem::create_directories(opts.runtime_dir, ec);
  if (ec) throw Error(ErrorKind::io, "cannot create the runtime directory '" + opts.runtime_dir + "': " + ec.message());
  ::chmod(opts.runtime_dir.c_str(), 0700);
  const std::string socket = opts.runtime_dir + "/" + hymig_qmp_socket_name(d.uuid);
  ::unlink(socket.c_str());
  const std::string xml = add_qemu_args(d.xml, {"-incoming", "defer", "-qmp", "unix:" + socket + ",server=on,wait=off"});

  LibvirtDomain dom = LibvirtDomain::create(conn, xml, true);
  StartedDomainGuard guard{&dom, socket};
  QemuVm vm = QemuVm::attach(socket, kMonitorTimeout);
  auto control = std::make_unique<LibvirtTargetControl>(conn, dom, d.persistent_xml, prior_xml, socket);
  const RamFileRule ram{opts.memory_backing_dirs,
                        "hymig serve --memory-backing-dir DIR names libvirt's memory_backing_dir (qemu.conf), and any "
                        "hugetlbfs mount its domains' huge pages live in"};
  auto image = make_qemu_target_image(std::move(vm), n, std::move(control), ram);
  guard.dom = nullptr;  // the image owns the copy now
  return image;
}

}  // namespace hymig::vm
