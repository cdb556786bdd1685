// What the network links of this host (in this network namespace) look like, and which link a
// peer is reached through. Feeds the capability probe; no traffic is ever sent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hymig {

struct LinkInfo {
  std::string name;
  unsigned mtu = 0;
  std::optional<std::uint64_t> speed_mbps;  // nullopt when the driver does not say (virtual links)
  bool up = false;                          // administratively up and operationally up/unknown
  bool loopback = false;
  std::vector<std::string> addresses;  // numeric, IPv6 link-local ones with a %scope suffix
};

// Every interface of the current network namespace, sorted by name. Throws Error{io}.
std::vector<LinkInfo> probe_links();

struct PathInfo {
  std::string local_address;  // the source address the kernel picks for the peer
  std::string interface;      // empty when no interface holds local_address
  unsigned mtu = 0;           // path MTU from the route (IP_MTU / IPV6_MTU)
  std::optional<std::uint64_t> speed_mbps;
  bool loopback = false;
};

// The route to peer_host (a name, an IPv4 address or an IPv6 address, brackets allowed).
// Throws Error{usage} when the name does not resolve, Error{io} when there is no route.
PathInfo probe_path(const std::string& peer_host);

}  // namespace hymig
