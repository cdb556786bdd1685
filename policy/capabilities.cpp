#include "policy/capabilities.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <thread>

#include "core/error.hpp"
#include "core/unique_fd.hpp"
#include "policy/link_probe.hpp"
#ifdef HYMIG_HAVE_VERBS
#include "verbs/device_discovery.hpp"
#endif

namespace hymig {
namespace {

constexpr unsigned kMinMtu = 68;  // IPv4 minimum
constexpr unsigned kMaxMtu = 65536;
constexpr unsigned kMaxVersion = 1000;
constexpr std::uint64_t kMaxSpeedMbps = 100'000'000;  // 100 Tbit/s: anything above is garbage
constexpr std::uint64_t kMaxCores = 65536;
constexpr std::size_t kMaxHostBytes = 255;

bool socket_works(int family, int type) {
  UniqueFd fd(::socket(family, type | SOCK_CLOEXEC, 0));
  return static_cast<bool>(fd);
}

// Kernels before 4.18 / 5.0 reject these options with ENOPROTOOPT.
bool udp_option_works(int option, int value) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  return ::setsockopt(fd.get(), SOL_UDP, option, &value, sizeof value) == 0;
}

#ifdef HYMIG_HAVE_VERBS
// Software RDMA devices (rdma_rxe, siw) hang off no bus: sysfs puts them under /devices/virtual/.
bool is_software_device(const std::string& device) {
  std::error_code ec;
  const auto real = std::filesystem::canonical("/sys/class/infiniband/" + device, ec);
  return !ec && real.string().find("/devices/virtual/") != std::string::npos;
}
#endif

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return {};
  return buf;
}

// ---- validation helpers: each names the field and says what was expected ----

[[noreturn]] void bad_field(const std::string& field, const std::string& expected, const nlohmann::json& got) {
  std::string shown = got.dump();
  if (shown.size() > 64) shown = shown.substr(0, 64) + "...";
  throw Error(ErrorKind::protocol, "peer capabilities: field '" + field + "' must be " + expected + ", got " +
                                       shown + "; is the peer running a compatible hymig?");
}

const nlohmann::json& field(const nlohmann::json& j, const std::string& name) {
  auto it = j.find(name);
  if (it == j.end())
    throw Error(ErrorKind::protocol,
                "peer capabilities: field '" + name + "' is missing; is the peer running a compatible hymig?");
  return *it;
}

bool get_bool(const nlohmann::json& j, const std::string& name) {
  const auto& v = field(j, name);
  if (!v.is_boolean()) bad_field(name, "true or false", v);
  return v.get<bool>();
}

// Accepts signed and unsigned JSON integers (a json built in C++ from an int is signed).
std::uint64_t get_uint(const nlohmann::json& v, const std::string& name, std::uint64_t lo, std::uint64_t hi) {
  const std::string expected = "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
  if (!v.is_number_integer()) bad_field(name, expected, v);
  if (v.is_number_unsigned()) {
    auto u = v.get<std::uint64_t>();
    if (u < lo || u > hi) bad_field(name, expected, v);
    return u;
  }
  auto s = v.get<std::int64_t>();
  if (s < 0 || static_cast<std::uint64_t>(s) < lo || static_cast<std::uint64_t>(s) > hi) bad_field(name, expected, v);
  return static_cast<std::uint64_t>(s);
}

}  // namespace

Capabilities probe_capabilities(const std::optional<std::string>& peer_host,
                                const std::optional<std::string>& local_host) {
  Capabilities caps;
  caps.protocol_version = kProtocolVersion;
  caps.udp = socket_works(AF_INET, SOCK_DGRAM) || socket_works(AF_INET6, SOCK_DGRAM);
  caps.tcp = socket_works(AF_INET, SOCK_STREAM) || socket_works(AF_INET6, SOCK_STREAM);
  caps.udp_gso = caps.udp && udp_option_works(UDP_SEGMENT, 1400);
  caps.udp_gro = caps.udp && udp_option_works(UDP_GRO, 1);
  caps.host = host_name();
  caps.cores = std::max(1u, std::thread::hardware_concurrency());
  caps.zstd = true;

  std::optional<std::string> rdma_address = local_host;
  if (peer_host) {
    PathInfo path = probe_path(*peer_host);
    caps.path_mtu = path.mtu;
    caps.link_speed_mbps = path.speed_mbps;
    if (!rdma_address) rdma_address = path.local_address;
  } else {
    std::vector<LinkInfo> links = probe_links();
    const LinkInfo* best = nullptr;
    for (const LinkInfo& l : links)
      if (l.up && !l.loopback && (!best || l.mtu > best->mtu)) best = &l;
    if (!best)
      for (const LinkInfo& l : links)
        if (l.loopback) best = &l;
    if (!best)
      throw Error(ErrorKind::io, "probe_capabilities: this network namespace has no usable link, not even "
                                 "loopback; bring one up (ip link set lo up)");
    caps.path_mtu = best->mtu;
    caps.link_speed_mbps = best->speed_mbps;
  }
  caps.path_mtu = std::clamp(caps.path_mtu, kMinMtu, kMaxMtu);
  // RoCE v2 is reached by IP address: the port whose GID is the address this side talks from.
  // A build without rdma-core (HYMIG_WITH_VERBS=OFF) has no RDMA ports.
  bool rdma = false;
#ifdef HYMIG_HAVE_VERBS
  if (rdma_address) {
    if (auto port = verbs::find_roce_port(*rdma_address)) {
      rdma = true;
      caps.rdma_software = is_software_device(port->device);
    }
  } else {
    for (const auto& port : verbs::list_ports()) {
      if (!port.active || port.roce_v2_ipv4.empty()) continue;
      if (!rdma) caps.rdma_software = is_software_device(port.device);
      rdma = true;
    }
  }
#endif
  caps.rdma_ud = rdma;
  caps.rdma_rc = rdma;
  return caps;
}

nlohmann::json to_json(const Capabilities& caps) {
  return {
      {"protocol_version", caps.protocol_version},
      {"udp", caps.udp},
      {"udp_gso", caps.udp_gso},
      {"udp_gro", caps.udp_gro},
      {"tcp", caps.tcp},
      {"rdma_ud", caps.rdma_ud},
      {"rdma_rc", caps.rdma_rc},
      {"rdma_software", caps.rdma_software},
      {"path_mtu", caps.path_mtu},
      {"link_speed_mbps", caps.link_speed_mbps ? nlohmann::json(*caps.link_speed_mbps) : nlohmann::json(nullptr)},
      {"cores", caps.cores ? nlohmann::json(caps.cores) : nlohmann::json(nullptr)},
      {"zstd", caps.zstd},
      {"host", caps.host},
  };
}

Capabilities capabilities_from_json(const nlohmann::json& j) {
  if (!j.is_object())
    throw Error(ErrorKind::protocol, "peer capabilities: expected a JSON object, got " + std::string(j.type_name()) +
                                         "; is the peer running a compatible hymig?");
  Capabilities caps;
  caps.protocol_version =
      static_cast<unsigned>(get_uint(field(j, "protocol_version"), "protocol_version", 1, kMaxVersion));
  caps.udp = get_bool(j, "udp");
  caps.udp_gso = get_bool(j, "udp_gso");
  caps.udp_gro = get_bool(j, "udp_gro");
  caps.tcp = get_bool(j, "tcp");
  caps.rdma_ud = get_bool(j, "rdma_ud");
  caps.rdma_rc = get_bool(j, "rdma_rc");
  // Absent from peers older than the field: hardware.
  if (j.contains("rdma_software")) caps.rdma_software = get_bool(j, "rdma_software");
  caps.path_mtu = static_cast<unsigned>(get_uint(field(j, "path_mtu"), "path_mtu", kMinMtu, kMaxMtu));

  // Absent and null both mean "unknown", as on virtual links.
  if (auto it = j.find("link_speed_mbps"); it != j.end() && !it->is_null())
    caps.link_speed_mbps = get_uint(*it, "link_speed_mbps", 1, kMaxSpeedMbps);

  if (auto it = j.find("cores"); it != j.end() && !it->is_null())
    caps.cores = static_cast<unsigned>(get_uint(*it, "cores", 1, kMaxCores));
  if (j.contains("zstd")) caps.zstd = get_bool(j, "zstd");

  const auto& host = field(j, "host");
  if (!host.is_string() || host.get_ref<const std::string&>().size() > kMaxHostBytes)
    bad_field("host", "a string of at most " + std::to_string(kMaxHostBytes) + " bytes", host);
  caps.host = host.get<std::string>();
  return caps;
}

}  // namespace hymig
