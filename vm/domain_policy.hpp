// What a libvirt domain arriving from a peer may ask of this host (`hymig serve --libvirt`).
//
// An authenticated peer is trusted to migrate a guest here, not to run anything it likes on this
// node. Its domain XML is therefore checked before libvirt sees it, and refused by default when it
// would have this host's libvirt or QEMU run a program, take a host device, or open a host path
// the operator did not allow: foreign QEMU arguments (any element in the qemu: namespace), an
// emulator other than this libvirt's default, host devices, network disks, and every disk,
// filesystem, chardev, firmware, kernel and other file outside the allowed paths or storage
// pools. Each refusal is Error{refused} naming the element and the serve option (= config key)
// that would allow it. vm/domain_policy.cpp lists what is checked and why.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hymig::vm {

class XmlDocument;

struct DomainPolicy {
  // Host paths (directories, or single files or devices) under which an incoming domain may use
  // files: --allow-path. None by default; an operator typically allows /var/lib/libvirt/images.
  std::vector<std::string> allowed_paths;
  // Storage pools whose volumes an incoming domain may use (<source pool=...>): --allow-pool.
  std::vector<std::string> allowed_pools;
  // Emulators besides this host's libvirt defaults (always allowed): --allow-emulator.
  std::vector<std::string> allowed_emulators;
  bool allow_hostdev = false;        // <hostdev>, <redirdev> and other host devices: --allow-hostdev
  bool allow_qemu_args = false;      // qemu: namespace elements (<qemu:commandline>, ...): --allow-qemu-args
  bool allow_network_disks = false;  // disks on network storage (type='network'): --allow-network-disks
};

// Error{usage}, naming the option, when an allowed path or emulator is not an absolute path
// without '..', or a pool name is empty.
void validate_domain_policy(const DomainPolicy& policy);

// The emulators libvirt's capabilities XML (virConnectGetCapabilities) names for its guests
// (guest/arch/emulator and guest/arch/domain/emulator): the ones it would use by default.
std::vector<std::string> libvirt_default_emulators(const std::string& capabilities_xml);

// Checks a domain (parsed with parse_domain_xml) against `policy`; `libvirt_emulators` are this
// host's defaults (libvirt_default_emulators). Throws Error{refused} at the first thing refused.
void check_domain_policy(const XmlDocument& domain, const DomainPolicy& policy,
                         const std::vector<std::string>& libvirt_emulators);
// The same on XML text: Error{protocol} when it is no well-formed domain XML.
void check_domain_policy(const std::string& domain_xml, const DomainPolicy& policy,
                         const std::vector<std::string>& libvirt_emulators);

// "/a//b/./c/" -> "/a/b/c": an absolute path with "." and empty components dropped; nullopt when
// `path` is relative or has a ".." component (refused rather than resolved: links are not seen).
std::optional<std::string> normalize_absolute_path(std::string_view path);

// True when `path` is `dir` or lies below it, compared component by component on the normalized
// paths (so /var/lib/images2 is not under /var/lib/images); false when either is not absolute
// or has "..".
bool path_is_within(std::string_view path, std::string_view dir);

}  // namespace hymig::vm
