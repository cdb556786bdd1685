// The socket options a bulk UDP stream needs, each probed or set once when the socket is made.
#pragma once

#include <cstddef>

namespace hymig {

// Largest UDP payload per family: 65535 minus the IPv4 (20) or, for IPv6, only the UDP (8) header.
constexpr std::size_t kMaxUdpPayloadV4 = 65507;
constexpr std::size_t kMaxUdpPayloadV6 = 65527;

std::size_t max_udp_payload(int family);

// Asks for `bytes` of send and receive buffer: the *FORCE variants (root, ignore net.core.*mem_max)
// first, then the plain ones (clamped by the kernel). Failures are not errors: the stream still
// works with smaller buffers, only losing more under bursts.
void enlarge_socket_buffers(int fd, int bytes);

// True if the kernel segments UDP_SEGMENT sends (Linux >= 4.18). Leaves the socket's default
// segment size at 0, so a sendmsg without the cmsg is an ordinary datagram.
bool probe_udp_gso(int fd);

// Asks the kernel to hand over coalesced datagrams with a UDP_GRO cmsg (Linux >= 5.0).
bool enable_udp_gro(int fd);

// The largest UDP payload the route of a connected socket carries without fragmentation:
// IP_MTU / IPV6_MTU minus the IP and UDP headers, capped by max_udp_payload(). 0 if unknown.
std::size_t path_max_udp_payload(int fd, int family);

}  // namespace hymig
