// libvirt through its C API: a connection and one domain on it (RAII over virConnectPtr and
// virDomainPtr), with the few operations hymig needs. Every failure throws Error with libvirt's
// own message; libvirt's habit of printing errors to stderr is switched off.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

// libvirt's handle types, without its headers in ours.
struct _virConnect;
struct _virDomain;

namespace hymig::vm {

class LibvirtConnection {
 public:
  // Opens `uri` read-write ("" = libvirt's default, e.g. qemu:///system or $LIBVIRT_DEFAULT_URI).
  // Error{usage} naming the URI and libvirt's reason when it cannot.
  static LibvirtConnection open(const std::string& uri);

  _virConnect* get() const { return conn_.get(); }
  const std::string& uri() const { return uri_; }  // as asked for, or the one libvirt picked
  // The names of the domains that run (or are paused) now, sorted.
  std::vector<std::string> active_domain_names() const;

 private:
  std::shared_ptr<_virConnect> conn_;
  std::string uri_;
  friend class LibvirtDomain;
};

class LibvirtDomain {
 public:
  // The domain called `name`, or std::nullopt when the connection has none.
  static std::optional<LibvirtDomain> find(const LibvirtConnection& c, const std::string& name);
  static std::optional<LibvirtDomain> find_uuid(const LibvirtConnection& c, const std::string& uuid);
  // Starts a transient domain from `xml`; paused when `paused` (virDomainCreateXML).
  static LibvirtDomain create(const LibvirtConnection& c, const std::string& xml, bool paused);
  // Makes `xml` the persistent definition of its domain (running or not; virDomainDefineXML).
  static LibvirtDomain define(const LibvirtConnection& c, const std::string& xml);

  std::string name() const;
  std::string uuid() const;
  bool active() const;
  bool persistent() const;
  // The guest's memory as libvirt reports it (virDomainGetInfo's current memory), in bytes.
  std::uint64_t memory_bytes() const;
  // virDomainGetState as a word: "running", "paused", "shut off", "crashed", ...
  std::string state() const;
  // The domain XML: `migratable` leaves out what only this host knows; `inactive` gives the
  // persistent definition instead of the running one.
  std::string xml(bool migratable, bool inactive = false) const;

  void suspend();
  void resume();
  void destroy();   // kills the QEMU (virDomainDestroy); a domain that is not running is left alone
  void undefine();  // removes the persistent definition (and managed save, snapshot metadata)

  // libvirt's own live migration, peer to peer: to the libvirt at `dest_uri`, the stream going to
  // `migrate_uri` ("" = libvirt's choice); persistent there and undefined here when it was
  // persistent here. Returns libvirt's completed-job figures (field: number or text).
  nlohmann::json migrate_native(const std::string& dest_uri, const std::string& migrate_uri);

  _virDomain* get() const { return dom_.get(); }
  const std::string& connection_uri() const { return uri_; }

 private:
  LibvirtDomain(std::shared_ptr<_virConnect> conn, _virDomain* dom, std::string uri);
  std::shared_ptr<_virConnect> conn_;  // keeps the connection open while the domain lives
  std::shared_ptr<_virDomain> dom_;
  std::string uri_;
};

}  // namespace hymig::vm
