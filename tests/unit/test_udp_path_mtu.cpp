// UdpDatagramChannel when the path MTU shrinks under a stream: a router on the way answers a
// datagram with ICMP "fragmentation needed" (IPv6: "packet too big"), the kernel lowers the route's
// path MTU and fails the socket's next send with EMSGSIZE. The session's datagram size is fixed, so
// the channel must go on (the kernel fragments at the source from then on), not end the migration.
//
// Real sockets and a real ICMP message: each test runs on a thread of its own in a private network
// namespace (unshare(CLONE_NEWNET): needs root or CAP_SYS_ADMIN; skipped, with the reason, without),
// where it injects the router's ICMP answer with a raw socket on loopback. Nothing outside that
// namespace sees the lowered MTU. The integration row loss_patterns.sh mtu_shrink does the same
// with a routed middle namespace whose link really shrinks.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/udp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "core/unique_fd.hpp"
#include "udp/udp_datagram_channel.hpp"
#include "udp/udp_socket_options.hpp"

namespace hymig {
namespace {

using namespace std::chrono_literals;

// Runs `body` on a thread that entered a new network namespace with loopback up; returns why it
// could not ("" when it ran).
std::string in_private_netns(const std::function<void()>& body) {
  std::string why;
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      why = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (needs root or CAP_SYS_ADMIN)";
      return;
    }
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    if (!fd || ::ioctl(fd.get(), SIOCGIFFLAGS, &ifr) != 0) {
      why = std::string("SIOCGIFFLAGS lo: ") + std::strerror(errno);
      return;
    }
    ifr.ifr_flags |= IFF_UP;
    if (::ioctl(fd.get(), SIOCSIFFLAGS, &ifr) != 0) {
      why = std::string("SIOCSIFFLAGS lo up: ") + std::strerror(errno);
      return;
    }
    body();
  });
  t.join();
  return why;
}

std::uint16_t checksum(const unsigned char* p, std::size_t n) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += std::uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += std::uint32_t(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return std::uint16_t(~sum);
}

std::uint16_t port_of(const std::string& endpoint) {
  return static_cast<std::uint16_t>(std::stoul(endpoint.substr(endpoint.rfind(':') + 1)));
}

// What a router between tx and rx sends tx when a datagram of `datagram_bytes` does not fit its
// next hop of `mtu`: the ICMP error quoting the datagram's IP header and first 8 bytes.
void inject_too_big(const UdpDatagramChannel& tx, const UdpDatagramChannel& rx, std::size_t datagram_bytes, int mtu,
                    bool v6) {
  const std::uint16_t sport = port_of(tx.local_endpoint()), dport = port_of(rx.local_endpoint());
  std::vector<unsigned char> msg;
  if (!v6) {
    std::array<unsigned char, 8 + 20 + 8> m{};
    m[0] = ICMP_DEST_UNREACH;
    m[1] = ICMP_FRAG_NEEDED;
    m[6] = std::uint8_t(mtu >> 8);
    m[7] = std::uint8_t(mtu);
    unsigned char* ip = m.data() + 8;
    const std::size_t total = 20 + 8 + datagram_bytes;
    ip[0] = 0x45;
    ip[2] = std::uint8_t(total >> 8);
    ip[3] = std::uint8_t(total);
    ip[6] = 0x40;  // DF
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    const in_addr_t lo = htonl(INADDR_LOOPBACK);
    std::memcpy(ip + 12, &lo, 4);
    std::memcpy(ip + 16, &lo, 4);
    const std::uint16_t ipsum = checksum(ip, 20);
    ip[10] = std::uint8_t(ipsum >> 8);
    ip[11] = std::uint8_t(ipsum);
    unsigned char* udp = ip + 20;
    udp[0] = std::uint8_t(sport >> 8);
    udp[1] = std::uint8_t(sport);
    udp[2] = std::uint8_t(dport >> 8);
    udp[3] = std::uint8_t(dport);
    udp[4] = std::uint8_t((8 + datagram_bytes) >> 8);
    udp[5] = std::uint8_t(8 + datagram_bytes);
    const std::uint16_t sum = checksum(m.data(), m.size());
    m[2] = std::uint8_t(sum >> 8);
    m[3] = std::uint8_t(sum);
    msg.assign(m.begin(), m.end());
    UniqueFd raw(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP));
    ASSERT_TRUE(raw) << "raw ICMP socket: " << std::strerror(errno);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = lo;
    ASSERT_EQ(::sendto(raw.get(), msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              ssize_t(msg.size()))
        << std::strerror(errno);
  } else {
    std::array<unsigned char, 8 + 40 + 8> m{};
    m[0] = ICMP6_PACKET_TOO_BIG;
    m[4] = std::uint8_t(mtu >> 24);
    m[5] = std::uint8_t(mtu >> 16);
    m[6] = std::uint8_t(mtu >> 8);
    m[7] = std::uint8_t(mtu);
    unsigned char* ip = m.data() + 8;
    const std::size_t payload = 8 + datagram_bytes;
    ip[0] = 0x60;
    ip[4] = std::uint8_t(payload >> 8);
    ip[5] = std::uint8_t(payload);
    ip[6] = IPPROTO_UDP;
    ip[7] = 64;
    ip[23] = 1;  // ::1
    ip[39] = 1;  // ::1
    unsigned char* udp = ip + 40;
    udp[0] = std::uint8_t(sport >> 8);
    udp[1] = std::uint8_t(sport);
    udp[2] = std::uint8_t(dport >> 8);
    udp[3] = std::uint8_t(dport);
    udp[4] = std::uint8_t(payload >> 8);
    udp[5] = std::uint8_t(payload);
    msg.assign(m.begin(), m.end());
    // The kernel fills in an ICMPv6 raw socket's checksum.
    UniqueFd raw(::socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6));
    ASSERT_TRUE(raw) << "raw ICMPv6 socket: " << std::strerror(errno);
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_addr = in6addr_loopback;
    ASSERT_EQ(::sendto(raw.get(), msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              ssize_t(msg.size()))
        << std::strerror(errno);
  }
}

// Waits (at most 2 s) until the kernel processed the ICMP error: the route's path MTU is lower.
bool path_lowered_to(const UdpDatagramChannel& tx, int family, std::size_t payload) {
  const auto until = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < until) {
    if (path_max_udp_payload(tx.socket_fd(), family) == payload) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

struct Datagrams {
  std::vector<std::vector<std::byte>> bytes;
  std::vector<std::array<ConstBuffer, 1>> parts;
  std::vector<OutDatagram> out;
  Datagrams(std::size_t count, std::size_t size, std::uint8_t salt) : bytes(count), parts(count), out(count) {
    for (std::size_t i = 0; i < count; ++i) {
      bytes[i].resize(size);
      for (std::size_t k = 0; k < size; ++k) bytes[i][k] = std::byte((i * 131 + k * 7 + (k >> 8) + salt) & 0xff);
      parts[i][0] = ConstBuffer{bytes[i].data(), size};
      out[i] = OutDatagram{std::span<const ConstBuffer>(parts[i]), size};
    }
  }
};

// Sends all of `d` (send_batch may take fewer at once) and checks that each arrives whole, once.
void send_and_expect_arrival(UdpDatagramChannel& tx, UdpDatagramChannel& rx, const Datagrams& d) {
  std::span<const OutDatagram> left(d.out);
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!left.empty() && std::chrono::steady_clock::now() < until) {
    const std::size_t n = tx.send_batch(left);
    left = left.subspan(n);
    if (n == 0) std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(left.empty()) << left.size() << " datagrams not accepted within 5 s";
  std::vector<int> seen(d.out.size(), 0);
  std::vector<InDatagram> in(64);
  std::size_t got = 0;
  while (got < d.out.size()) {
    const std::size_t n = rx.receive_batch(in, 1s);
    ASSERT_GT(n, 0u) << "only " << got << " of " << d.out.size() << " datagrams arrived";
    for (std::size_t i = 0; i < n; ++i) {
      bool matched = false;
      for (std::size_t k = 0; k < d.out.size() && !matched; ++k)
        if (in[i].bytes.size() == d.bytes[k].size() &&
            std::memcmp(in[i].bytes.data(), d.bytes[k].data(), d.bytes[k].size()) == 0) {
          ++seen[k];
          matched = true;
        }
      EXPECT_TRUE(matched) << "a datagram of " << in[i].bytes.size() << " bytes arrived that was not sent";
    }
    got += n;
  }
  for (std::size_t k = 0; k < seen.size(); ++k) EXPECT_EQ(seen[k], 1) << "datagram " << k;
}

void shrink_under_the_stream(bool v6) {
  const std::string host = v6 ? "::1" : "127.0.0.1";
  const int family = v6 ? AF_INET6 : AF_INET;
  const std::size_t size = 8000;  // a 9000-byte jumbo path's datagram
  const int mtu = v6 ? 1280 : 1500;
  const std::size_t narrowed = std::size_t(mtu) - (v6 ? 48 : 28);
  UdpChannelOptions o;
  o.max_datagram = size;
  auto tx = UdpDatagramChannel::open(host, o);
  auto rx = UdpDatagramChannel::open(host, o);
  tx->connect(rx->local_endpoint());
  rx->connect(tx->local_endpoint());
  ASSERT_EQ(tx->max_datagram(), size);

  send_and_expect_arrival(*tx, *rx, Datagrams(1, size, 1));  // the path carries them whole
  EXPECT_EQ(tx->path_shrinks(), 0u);

  inject_too_big(*tx, *rx, size, mtu, v6);
  ASSERT_TRUE(path_lowered_to(*tx, family, narrowed)) << "the kernel did not take the ICMP error";

  // The socket holds EMSGSIZE for the next send: the channel sends again, in fragments.
  try {
    send_and_expect_arrival(*tx, *rx, Datagrams(1, size, 2));
  } catch (const Error& e) {
    FAIL() << "send_batch failed after the path shrank: " << e.what();
  }
  EXPECT_EQ(tx->path_shrinks(), 1u);
  EXPECT_EQ(tx->narrowed_path(), narrowed);
  EXPECT_EQ(tx->max_datagram(), size) << "the session's datagram size stays";

  // A run GSO would coalesce (equal sizes) cannot be segmented above the path: it goes one by one.
  send_and_expect_arrival(*tx, *rx, Datagrams(16, size, 3));
  // Datagrams that fit the narrower path still go whole (and may go in GSO runs).
  send_and_expect_arrival(*tx, *rx, Datagrams(16, narrowed, 4));
  EXPECT_EQ(tx->path_shrinks(), 1u);
}

TEST(UdpPathMtu, ShrinkMidStreamIpv4GoesOnInFragments) {
  const std::string why = in_private_netns([] { shrink_under_the_stream(false); });
  if (!why.empty()) GTEST_SKIP() << why;
}

TEST(UdpPathMtu, ShrinkMidStreamIpv6GoesOnInFragments) {
  const std::string why = in_private_netns([] { shrink_under_the_stream(true); });
  if (!why.empty()) GTEST_SKIP() << why;
}

// A socket that refuses every datagram above the path (IP_PMTUDISC_DO, set from outside hymig)
// cannot go on by fragments: send_batch must fail with the path named, after a few tries, not
// spin.
TEST(UdpPathMtu, SocketThatNeverFragmentsFailsNamingThePath) {
  const std::string why = in_private_netns([] {
    UdpChannelOptions o;
    o.max_datagram = 8000;
    auto tx = UdpDatagramChannel::open("127.0.0.1", o);
    auto rx = UdpDatagramChannel::open("127.0.0.1", o);
    tx->connect(rx->local_endpoint());
    rx->connect(tx->local_endpoint());
    const int mode = IP_PMTUDISC_DO;
    ASSERT_EQ(::setsockopt(tx->socket_fd(), IPPROTO_IP, IP_MTU_DISCOVER, &mode, sizeof mode), 0);
    inject_too_big(*tx, *rx, 8000, 1500, false);
    ASSERT_TRUE(path_lowered_to(*tx, AF_INET, 1472));
    Datagrams d(1, 8000, 5);
    try {
      tx->send_batch(d.out);
      FAIL() << "a datagram larger than the path went out of a socket that may not fragment";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("too large for the path"), std::string::npos) << e.what();
    }
  });
  if (!why.empty()) GTEST_SKIP() << why;
}

}  // namespace
}  // namespace hymig
