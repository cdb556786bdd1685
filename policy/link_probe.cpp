#include "policy/link_probe.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include "core/error.hpp"
#include "core/unique_fd.hpp"

namespace hymig {
namespace {

std::optional<std::string> read_sysfs(const std::string& name, const char* attr) {
  std::ifstream in("/sys/class/net/" + name + "/" + attr);
  std::string value;
  if (!in || !std::getline(in, value)) return std::nullopt;
  return value;
}

std::optional<std::int64_t> parse_int(const std::string& s) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// /sys shows the network namespace it was mounted in, which need not be ours (unshare -n without
// remounting /sys): trust it only when the ifindex matches what our namespace says.
bool sysfs_is_ours(const std::string& name) {
  auto idx = read_sysfs(name, "ifindex");
  if (!idx) return false;
  auto v = parse_int(*idx);
  return v && *v == static_cast<std::int64_t>(if_nametoindex(name.c_str()));
}

std::optional<std::uint64_t> link_speed(const std::string& name) {
  if (!sysfs_is_ours(name)) return std::nullopt;
  // Virtual links have no speed file, or one that fails to read (EINVAL), or -1.
  auto s = read_sysfs(name, "speed");
  if (!s) return std::nullopt;
  auto v = parse_int(*s);
  if (!v || *v <= 0) return std::nullopt;
  return static_cast<std::uint64_t>(*v);
}

// The ioctl answers for our namespace, unlike a possibly foreign /sys.
unsigned link_mtu(int sock, const std::string& name) {
  ifreq req{};
  std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(sock, SIOCGIFMTU, &req) == 0) return static_cast<unsigned>(req.ifr_mtu);
  throw_errno("probe_links: SIOCGIFMTU on interface " + name);
}

std::string numeric_address(const sockaddr* sa) {
  const socklen_t len = sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  char host[NI_MAXHOST];
  int rc = ::getnameinfo(sa, len, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
  if (rc != 0) throw Error(ErrorKind::io, std::string("cannot format a socket address: ") + gai_strerror(rc));
  return host;
}

struct IfaddrsFree {
  void operator()(ifaddrs* p) const { ::freeifaddrs(p); }
};

}  // namespace

std::vector<LinkInfo> probe_links() {
  ifaddrs* raw = nullptr;
  if (::getifaddrs(&raw) != 0) throw_errno("probe_links: getifaddrs");
  std::unique_ptr<ifaddrs, IfaddrsFree> list(raw);

  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("probe_links: socket(AF_INET, SOCK_DGRAM) for interface ioctls");

  std::map<std::string, LinkInfo> links;  // sorted by name, one entry per interface
  for (ifaddrs* a = list.get(); a != nullptr; a = a->ifa_next) {
    auto [it, fresh] = links.try_emplace(a->ifa_name);
    LinkInfo& link = it->second;
    if (fresh) {
      link.name = a->ifa_name;
      link.mtu = link_mtu(sock.get(), link.name);
      link.speed_mbps = link_speed(link.name);
      // IFF_RUNNING is the kernel's "operstate is up or unknown" (lo reports unknown).
      link.up = (a->ifa_flags & IFF_UP) && (a->ifa_flags & IFF_RUNNING);
      link.loopback = a->ifa_flags & IFF_LOOPBACK;
    }
    if (a->ifa_addr && (a->ifa_addr->sa_family == AF_INET || a->ifa_addr->sa_family == AF_INET6))
      link.addresses.push_back(numeric_address(a->ifa_addr));
  }

  std::vector<LinkInfo> out;
  out.reserve(links.size());
  for (auto& [name, link] : links) out.push_back(std::move(link));
  return out;
}

PathInfo probe_path(const std::string& peer_host) {
  std::string host = peer_host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) throw Error(ErrorKind::usage, "probe_path: the peer host is empty; give a name or an address");

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  // Any port will do: connect() on a UDP socket only looks the route up.
  int rc = ::getaddrinfo(host.c_str(), "9", &hints, &res);
  if (rc != 0) {
    ErrorKind kind = (rc == EAI_NONAME) ? ErrorKind::usage : ErrorKind::io;
    throw Error(kind, "probe_path: cannot resolve peer host '" + host + "': " + gai_strerror(rc) +
                          "; check the name or give a numeric address");
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addrs(res, &::freeaddrinfo);

  const int family = res->ai_family;
  const std::string peer_address = numeric_address(res->ai_addr);
  UniqueFd sock(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("probe_path: socket(SOCK_DGRAM) for " + peer_address);
  if (::connect(sock.get(), res->ai_addr, res->ai_addrlen) != 0)
    throw_errno("probe_path: no route to peer " + peer_address + " (check `ip route get " + peer_address + "`)");

  PathInfo path;
  int mtu = 0;
  socklen_t len = sizeof mtu;
  const bool v6 = family == AF_INET6;
  if (::getsockopt(sock.get(), v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MTU : IP_MTU, &mtu, &len) != 0)
    throw_errno("probe_path: reading the path MTU to " + peer_address);
  path.mtu = static_cast<unsigned>(mtu);

  sockaddr_storage local{};
  len = sizeof local;
  if (::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&local), &len) != 0)
    throw_errno("probe_path: getsockname after connecting to " + peer_address);
  path.local_address = numeric_address(reinterpret_cast<sockaddr*>(&local));

  // A peer address that is one of ours is routed over loopback, whatever link holds the address.
  const bool to_self = path.local_address == peer_address;
  for (const LinkInfo& link : probe_links()) {
    const bool holds = std::find(link.addresses.begin(), link.addresses.end(), path.local_address) !=
                       link.addresses.end();
    if (to_self ? (link.loopback && link.up) : holds) {
      path.interface = link.name;
      path.speed_mbps = link.speed_mbps;
      path.loopback = link.loopback;
      break;
    }
  }
  if (path.interface.empty()) {
    // Not on any interface (e.g. a NAT'd or anycast source): judge by the address alone.
    path.loopback = to_self || (family == AF_INET
                                    ? (ntohl(reinterpret_cast<sockaddr_in*>(&local)->sin_addr.s_addr) >> 24) == 127
                                    : IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr));
  }
  return path;
}

}  // namespace hymig
