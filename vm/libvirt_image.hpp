// A libvirt domain's RAM as an engine image: the source end (`hymig migrate --domain NAME`) and
// the destination end (`hymig serve --libvirt`), both on the QEMU images of qemu_images.hpp.
//
// The sequence is the "assisted handoff": the destination's libvirt starts a paused transient copy
// of the domain from the source's migratable XML, with -incoming defer and an extra QMP socket
// for hymig; hymig moves the RAM while the guest runs at the source; libvirt suspends the source;
// the final delta and the digest; the source QEMU migrates only its device state (x-ignore-shared)
// into hymig's channel; the destination loads it, is made persistent if the source was, and is
// resumed through libvirt; then the source domain is destroyed and undefined. Until the
// destination resumed, any failure destroys the copy and the guest runs on at the source.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "images/image.hpp"
#include "protocol/wire.hpp"
#include "vm/domain_policy.hpp"

namespace hymig::vm {

// A domain hymig cannot migrate this way (RAM not in a shared file, a device QEMU will not
// migrate): `hymig migrate --fallback native` hands it to libvirt's own migration instead.
class NotMigratableByHymig : public Error {
 public:
  explicit NotMigratableByHymig(const std::string& what) : Error(ErrorKind::usage, what) {}
};

// The running domain `name` at libvirt `uri` ("" = libvirt's default).
std::unique_ptr<SourceImage> open_libvirt_source_image(const std::string& name, const std::string& uri);

// libvirt's own live migration of `name` (the fallback): returns its completed-job figures.
nlohmann::json migrate_domain_natively(const std::string& name, const std::string& uri, const std::string& dest_uri,
                                       const std::string& migrate_uri);

// libvirt's memory_backing_dir by default (qemu.conf): where the RAM files of its domains live.
inline constexpr const char* kLibvirtMemoryBackingDir = "/var/lib/libvirt/qemu/ram";

// Where a destination's libvirt domains are started, and what they may ask of this host.
struct LibvirtTargetOptions {
  std::string uri;          // libvirt at the destination ("" = default)
  std::string runtime_dir;  // where hymig's QMP sockets of incoming domains go
  // What an incoming definition may use (vm/domain_policy.hpp); this libvirt's default emulators
  // are allowed besides.
  DomainPolicy policy = {};
  // The directories a copy's RAM file may be in (libvirt's memory_backing_dir, and its hugetlbfs
  // mounts for domains on huge pages): hymig fills only a regular file below one of them.
  std::vector<std::string> memory_backing_dirs = {kLibvirtMemoryBackingDir};
};

// Asks libvirt at `uri` for its capabilities once, so that it computes them now: libvirt builds
// them on the first request (8 s on a freshly started daemon here), which would otherwise stand in
// the first incoming migration's setup. Throws Error like the connection does.
void prefetch_libvirt_capabilities(const std::string& uri);

// The destination of a domain whose definition came in notify (vm_definition). The definition
// (both its XML and its persistent XML) is parsed with libxml2 and must name the domain it says
// (Error{protocol} otherwise), then is checked against opts.policy (Error{refused} naming what is
// not allowed and the option that would allow it) before libvirt is asked to start anything.
std::unique_ptr<TargetImage> open_libvirt_target(const LibvirtTargetOptions& opts, const Notify& n);

}  // namespace hymig::vm
