// The text a UD channel hands its peer (DatagramChannel::local_endpoint) and parses back:
//
//     GID/QPN/QKEY/MTU      e.g.  ::ffff:10.9.0.1/17/0x5a3c19e2/1024
//
//   GID   the port's RoCE v2 GID as IPv6 text (an IPv4 address in its IPv4-mapped form); 32 hex
//         digits, optionally grouped by ':' every 4 as sysfs prints them, are accepted too
//   QPN   queue pair number, decimal, 2..16777215 (0 and 1 are the special QPs)
//   QKEY  queue key, "0x" and 1..8 hex digits
//   MTU   the port's active MTU in bytes: 256, 512, 1024, 2048 or 4096
//
// The text comes from the network (inside the peer's ready/notify message), so parsing checks
// every field and throws Error{protocol} naming the first one that is wrong.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace hymig::verbs {

struct UdEndpoint {
  std::array<std::uint8_t, 16> gid{};
  std::uint32_t qpn = 0;
  std::uint32_t qkey = 0;
  unsigned mtu = 0;
};

std::string format_ud_endpoint(const UdEndpoint& endpoint);
UdEndpoint parse_ud_endpoint(std::string_view text);

}  // namespace hymig::verbs
