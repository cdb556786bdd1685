#include "vm/libvirt_domain.hpp"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "core/error.hpp"

namespace hymig::vm {
namespace {

// libvirt prints every error to stderr unless told otherwise; hymig reports them itself.
void quiet_libvirt() {
  static std::once_flag once;
  std::call_once(once, [] { virSetErrorFunc(nullptr, [](void*, virErrorPtr) {}); });
}

std::string last_error() {
  const char* m = virGetLastErrorMessage();
  return m ? m : "unknown libvirt error";
}

[[noreturn]] void fail(ErrorKind kind, const std::string& what) { throw Error(kind, what + ": " + last_error()); }

}  // namespace

LibvirtConnection LibvirtConnection::open(const std::string& uri) {
  quiet_libvirt();
  virConnectPtr c = virConnectOpen(uri.empty() ? nullptr : uri.c_str());
  if (!c)
    fail(ErrorKind::usage, "cannot connect to libvirt at " + (uri.empty() ? std::string("its default URI") : "'" + uri + "'") +
                               " (is libvirtd running? pass --connect URI)");
  LibvirtConnection out;
  out.conn_ = std::shared_ptr<_virConnect>(c, [](virConnectPtr p) { virConnectClose(p); });
  out.uri_ = uri;
  if (out.uri_.empty()) {
    if (char* u = virConnectGetURI(c)) {
      out.uri_ = u;
      free(u);
    }
  }
  return out;
}

std::vector<std::string> LibvirtConnection::active_domain_names() const {
  virDomainPtr* doms = nullptr;
  const int n = virConnectListAllDomains(conn_.get(), &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) fail(ErrorKind::io, "cannot list the domains at " + uri_);
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    if (const char* name = virDomainGetName(doms[i])) names.emplace_back(name);
    virDomainFree(doms[i]);
  }
  free(doms);
  std::sort(names.begin(), names.end());
  return names;
}

LibvirtDomain::LibvirtDomain(std::shared_ptr<_virConnect> conn, _virDomain* dom, std::string uri)
    : conn_(std::move(conn)), dom_(dom, [](virDomainPtr d) { virDomainFree(d); }), uri_(std::move(uri)) {}

std::optional<LibvirtDomain> LibvirtDomain::find(const LibvirtConnection& c, const std::string& name) {
  virDomainPtr d = virDomainLookupByName(c.get(), name.c_str());
  if (!d) {
    if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN) return std::nullopt;
    fail(ErrorKind::io, "cannot look up domain '" + name + "' at " + c.uri());
  }
  return LibvirtDomain(c.conn_, d, c.uri());
}

std::optional<LibvirtDomain> LibvirtDomain::find_uuid(const LibvirtConnection& c, const std::string& uuid) {
  virDomainPtr d = virDomainLookupByUUIDString(c.get(), uuid.c_str());
  if (!d) {
    if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN) return std::nullopt;
    fail(ErrorKind::io, "cannot look up the domain with UUID " + uuid + " at " + c.uri());
  }
  return LibvirtDomain(c.conn_, d, c.uri());
}

LibvirtDomain LibvirtDomain::create(const LibvirtConnection& c, const std::string& xml, bool paused) {
  virDomainPtr d = virDomainCreateXML(c.get(), xml.c_str(), paused ? VIR_DOMAIN_START_PAUSED : 0);
  if (!d) fail(ErrorKind::io, "libvirt at " + c.uri() + " cannot start the domain");
  return LibvirtDomain(c.conn_, d, c.uri());
}

LibvirtDomain LibvirtDomain::define(const LibvirtConnection& c, const std::string& xml) {
  virDomainPtr d = virDomainDefineXML(c.get(), xml.c_str());
  if (!d) fail(ErrorKind::io, "libvirt at " + c.uri() + " cannot define the domain");
  return LibvirtDomain(c.conn_, d, c.uri());
}

std::string LibvirtDomain::name() const {
  const char* n = virDomainGetName(dom_.get());
  return n ? n : "";
}

std::string LibvirtDomain::uuid() const {
  char buf[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(dom_.get(), buf) != 0) fail(ErrorKind::io, "cannot read the UUID of domain '" + name() + "'");
  return buf;
}

bool LibvirtDomain::active() const {
  const int r = virDomainIsActive(dom_.get());
  if (r < 0) fail(ErrorKind::io, "cannot tell whether domain '" + name() + "' runs");
  return r == 1;
}

bool LibvirtDomain::persistent() const {
  const int r = virDomainIsPersistent(dom_.get());
  if (r < 0) fail(ErrorKind::io, "cannot tell whether domain '" + name() + "' is persistent");
  return r == 1;
}

std::uint64_t LibvirtDomain::memory_bytes() const {
  virDomainInfo info{};
  if (virDomainGetInfo(dom_.get(), &info) != 0) fail(ErrorKind::io, "cannot read the memory size of domain '" + name() + "'");
  return std::uint64_t(info.memory) * 1024;
}

std::string LibvirtDomain::state() const {
  int st = 0, reason = 0;
  if (virDomainGetState(dom_.get(), &st, &reason, 0) != 0) fail(ErrorKind::io, "cannot read the state of domain '" + name() + "'");
  switch (st) {
    case VIR_DOMAIN_RUNNING: return "running";
    case VIR_DOMAIN_BLOCKED: return "blocked";
    case VIR_DOMAIN_PAUSED: return "paused";
    case VIR_DOMAIN_SHUTDOWN: return "shutting down";
    case VIR_DOMAIN_SHUTOFF: return "shut off";
    case VIR_DOMAIN_CRASHED: return "crashed";
    case VIR_DOMAIN_PMSUSPENDED: return "pmsuspended";
    default: return "no state";
  }
}

std::string LibvirtDomain::xml(bool migratable, bool inactive) const {
  unsigned flags = VIR_DOMAIN_XML_SECURE;
  if (migratable) flags |= VIR_DOMAIN_XML_MIGRATABLE;
  if (inactive) flags |= VIR_DOMAIN_XML_INACTIVE;
  char* x = virDomainGetXMLDesc(dom_.get(), flags);
  if (!x) fail(ErrorKind::io, "cannot read the XML of domain '" + name() + "'");
  std::string s(x);
  free(x);
  return s;
}

void LibvirtDomain::suspend() {
  if (virDomainSuspend(dom_.get()) != 0) fail(ErrorKind::io, "cannot suspend domain '" + name() + "'");
}

void LibvirtDomain::resume() {
  if (virDomainResume(dom_.get()) != 0) fail(ErrorKind::io, "cannot resume domain '" + name() + "'");
}

void LibvirtDomain::destroy() {
  if (virDomainDestroy(dom_.get()) == 0) return;
  if (virGetLastErrorCode() == VIR_ERR_OPERATION_INVALID && !active()) return;  // not running: nothing to end
  fail(ErrorKind::io, "cannot destroy domain '" + name() + "'");
}

void LibvirtDomain::undefine() {
  const unsigned flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                         VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | VIR_DOMAIN_UNDEFINE_KEEP_NVRAM;
  if (virDomainUndefineFlags(dom_.get(), flags) != 0) fail(ErrorKind::io, "cannot undefine domain '" + name() + "'");
}

nlohmann::json LibvirtDomain::migrate_native(const std::string& dest_uri, const std::string& migrate_uri) {
  virTypedParameterPtr params = nullptr;
  int n = 0, max = 0;
  if (!migrate_uri.empty() && virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_URI, migrate_uri.c_str()) != 0)
    fail(ErrorKind::io, "cannot build the migration parameters");
  unsigned flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER;
  if (persistent()) flags |= VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
  const int r = virDomainMigrateToURI3(dom_.get(), dest_uri.c_str(), params, n, flags);
  virTypedParamsFree(params, n);
  if (r != 0) fail(ErrorKind::io, "libvirt's own migration of domain '" + name() + "' to " + dest_uri + " failed");
  // The completed job's figures (the source keeps them after the domain left).
  nlohmann::json out = nlohmann::json::object();
  int type = 0, np = 0;
  virTypedParameterPtr stats = nullptr;
  if (virDomainGetJobStats(dom_.get(), &type, &stats, &np, VIR_DOMAIN_JOB_STATS_COMPLETED) == 0) {
    for (int i = 0; i < np; ++i) {
      const auto& p = stats[i];
      auto& v = out[p.field];
      switch (p.type) {
        case VIR_TYPED_PARAM_ULLONG: v = p.value.ul; break;
        case VIR_TYPED_PARAM_LLONG: v = p.value.l; break;
        case VIR_TYPED_PARAM_UINT: v = p.value.ui; break;
        case VIR_TYPED_PARAM_INT: v = p.value.i; break;
        case VIR_TYPED_PARAM_DOUBLE: v = p.value.d; break;
        case VIR_TYPED_PARAM_BOOLEAN: v = p.value.b != 0; break;
        case VIR_TYPED_PARAM_STRING: v = p.value.s ? p.value.s : ""; break;
        default: v = nullptr;
      }
    }
    virTypedParamsFree(stats, np);
  }
  return out;
}

}  // namespace hymig::vm
