#include "udp/udp_socket_options.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <algorithm>

namespace hymig {

std::size_t max_udp_payload(int family) { return family == AF_INET6 ? kMaxUdpPayloadV6 : kMaxUdpPayloadV4; }

void enlarge_socket_buffers(int fd, int bytes) {
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0)
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

bool probe_udp_gso(int fd) {
  int zero = 0;
  return ::setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
}

bool enable_udp_gro(int fd) {
  int one = 1;
  return ::setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
}

std::size_t path_max_udp_payload(int fd, int family) {
  int mtu = 0;
  socklen_t len = sizeof mtu;
  const bool v6 = family == AF_INET6;
  const int rc = v6 ? ::getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &len)
                    : ::getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &len);
  const int headers = v6 ? 40 + 8 : 20 + 8;
  if (rc != 0 || mtu <= headers) return 0;
  return std::min<std::size_t>(std::size_t(mtu - headers), max_udp_payload(family));
}

}  // namespace hymig
