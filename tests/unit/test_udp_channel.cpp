// UdpDatagramChannel over real sockets on loopback: two channels in one process.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "core/unique_fd.hpp"
#include "udp/udp_datagram_channel.hpp"

namespace hymig {
namespace {

using namespace std::chrono_literals;

// Datagram i is a 4-byte sequence number followed by a body whose bytes depend on (i, offset), so a
// datagram mixed up with another, shortened, shifted or duplicated fails the check.
struct TestStream {
  std::vector<std::size_t> sizes;              // total bytes per datagram (>= 4)
  std::vector<std::uint32_t> seq;              // header part storage
  std::vector<std::vector<std::byte>> bodies;  // payload part storage (the "image")
  std::vector<std::array<ConstBuffer, 2>> parts;
  std::vector<OutDatagram> out;

  static std::byte pattern(std::uint32_t i, std::size_t offset) {
    return std::byte((i * 131u + offset * 7u + (offset >> 8)) & 0xFF);
  }

  explicit TestStream(std::vector<std::size_t> s) : sizes(std::move(s)) {
    const std::size_t n = sizes.size();
    seq.resize(n);
    bodies.resize(n);
    parts.resize(n);
    out.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      seq[i] = std::uint32_t(i);
      bodies[i].resize(sizes[i] - 4);
      for (std::size_t k = 0; k < bodies[i].size(); ++k) bodies[i][k] = pattern(std::uint32_t(i), k);
      parts[i][0] = ConstBuffer{reinterpret_cast<const std::byte*>(&seq[i]), 4};
      parts[i][1] = ConstBuffer{bodies[i].data(), bodies[i].size()};
      out[i] = OutDatagram{std::span<const ConstBuffer>(parts[i]), sizes[i]};
    }
  }

  // Returns the sequence number after checking every byte, or throws.
  std::uint32_t check(std::span<const std::byte> d) const {
    if (d.size() < 4) throw std::runtime_error("datagram shorter than its header: " + std::to_string(d.size()));
    std::uint32_t i = 0;
    std::memcpy(&i, d.data(), 4);
    if (i >= sizes.size()) throw std::runtime_error("unknown sequence number " + std::to_string(i));
    if (d.size() != sizes[i])
      throw std::runtime_error("datagram " + std::to_string(i) + " has " + std::to_string(d.size()) + " bytes, sent " +
                               std::to_string(sizes[i]));
    for (std::size_t k = 4; k < d.size(); ++k)
      if (d[k] != pattern(i, k - 4)) throw std::runtime_error("datagram " + std::to_string(i) + " byte " + std::to_string(k) + " differs");
    return i;
  }
};

struct Pair {
  std::unique_ptr<UdpDatagramChannel> tx;
  std::unique_ptr<UdpDatagramChannel> rx;
};

Pair make_pair(const std::string& host = "127.0.0.1", UdpChannelOptions rx_options = {},
               UdpChannelOptions tx_options = {}) {
  Pair p;
  p.tx = UdpDatagramChannel::open(host, tx_options);
  p.rx = UdpDatagramChannel::open(host, rx_options);
  p.tx->connect(p.rx->local_endpoint());
  p.rx->connect(p.tx->local_endpoint());
  return p;
}

// Sends the whole stream in slices small enough for the receive buffer, draining the receiver after
// each slice, and returns how many times each sequence number arrived.
std::vector<int> transfer(Pair& p, const TestStream& stream, std::size_t slice_bytes = 1 << 20,
                          std::size_t out_size = 256) {
  std::vector<int> seen(stream.sizes.size(), 0);
  std::vector<InDatagram> in(out_size);
  std::size_t next = 0;
  while (next < stream.out.size()) {
    std::size_t end = next;
    std::size_t bytes = 0;
    while (end < stream.out.size() && bytes < slice_bytes) bytes += stream.out[end++].bytes;
    std::span<const OutDatagram> slice(stream.out.data() + next, end - next);
    while (!slice.empty()) {
      const std::size_t n = p.tx->send_batch(slice);
      slice = slice.subspan(n);
      if (n == 0) std::this_thread::sleep_for(1ms);
    }
    next = end;
    // Drain: stop after a quiet 50 ms.
    for (;;) {
      const std::size_t n = p.rx->receive_batch(in, 50ms);
      if (n == 0) break;
      for (std::size_t i = 0; i < n; ++i) ++seen[stream.check(in[i].bytes)];
    }
  }
  return seen;
}

void expect_each_once(const std::vector<int>& seen) {
  std::size_t missing = 0, duplicated = 0;
  for (int c : seen) {
    missing += c == 0;
    duplicated += c > 1;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
}

TEST(UdpChannel, EndpointsAndMaxDatagramOnLoopback) {
  auto p = make_pair();
  EXPECT_EQ(p.tx->transport_name(), "udp");
  EXPECT_TRUE(p.tx->local_endpoint().starts_with("127.0.0.1:"));
  EXPECT_NE(p.tx->local_endpoint(), "127.0.0.1:0");
  EXPECT_EQ(p.tx->peer_endpoint(), p.rx->local_endpoint());
  EXPECT_EQ(p.tx->max_datagram(), 65507u);  // loopback MTU 65536, capped by the IPv4 UDP limit

  UdpChannelOptions small;
  small.max_datagram = 1400;
  auto a = UdpDatagramChannel::open("127.0.0.1", small);
  EXPECT_EQ(a->max_datagram(), 1400u);
  a->connect(p.rx->local_endpoint());
  EXPECT_EQ(a->max_datagram(), 1400u);
}

TEST(UdpChannel, Ipv6Loopback) {
  std::unique_ptr<UdpDatagramChannel> a, b;
  try {
    a = UdpDatagramChannel::open("::1");
    b = UdpDatagramChannel::open("[::1]");
  } catch (const Error& e) {
    GTEST_SKIP() << "no IPv6 loopback: " << e.what();
  }
  EXPECT_TRUE(a->local_endpoint().starts_with("[::1]:")) << a->local_endpoint();
  a->connect(b->local_endpoint());
  b->connect(a->local_endpoint());
  EXPECT_EQ(a->max_datagram(), 65536u - 40 - 8);
  Pair p{std::move(a), std::move(b)};
  TestStream stream({4, 100, 65488, 1000, 1000, 1000});
  expect_each_once(transfer(p, stream));
}

TEST(UdpChannel, MixedSizesArriveIntact) {
  std::mt19937 rng(42);
  std::vector<std::size_t> sizes;
  // Random sizes, runs of equal sizes (GSO candidates), runs closed by a shorter one, and extremes.
  for (int i = 0; i < 400; ++i) sizes.push_back(4 + rng() % 9000);
  for (int r = 0; r < 20; ++r) {
    const std::size_t size = 4 + rng() % 4000;
    const int len = 1 + int(rng() % 80);
    for (int k = 0; k < len; ++k) sizes.push_back(size);
    sizes.push_back(4 + rng() % size);
  }
  for (int i = 0; i < 20; ++i) sizes.push_back(i % 2 ? 65507 : 4);
  std::shuffle(sizes.begin(), sizes.begin() + 400, rng);
  TestStream stream(sizes);
  auto p = make_pair();
  expect_each_once(transfer(p, stream));
  const DatagramStats tx = p.tx->stats(), rx = p.rx->stats();
  EXPECT_EQ(tx.datagrams_sent, sizes.size());
  EXPECT_EQ(rx.datagrams_received, sizes.size());
  EXPECT_EQ(tx.bytes_sent, rx.bytes_received);
}

// 64 equal datagrams and a shorter last one form one GSO send; they must come back as 65
// datagrams of the right sizes whether the receiver takes GRO buffers or not.
void check_gso_run(bool gro, std::size_t out_size) {
  UdpChannelOptions rx_options;
  rx_options.gro = gro;
  auto p = make_pair("127.0.0.1", rx_options);
  ASSERT_TRUE(p.tx->gso_enabled()) << "kernel without UDP_SEGMENT (needs Linux >= 4.18)";
  EXPECT_EQ(p.rx->gro_enabled(), gro);
  std::vector<std::size_t> sizes(64, 1000);
  sizes.push_back(300);
  for (int i = 0; i < 30; ++i) sizes.push_back(1472);
  TestStream stream(sizes);
  ASSERT_EQ(p.tx->send_batch(stream.out), sizes.size());

  std::vector<int> seen(sizes.size(), 0);
  std::vector<InDatagram> in(out_size);
  std::size_t total = 0;
  while (total < sizes.size()) {
    const std::size_t n = p.rx->receive_batch(in, 500ms);
    ASSERT_GT(n, 0u) << "after " << total << " datagrams";
    ASSERT_LE(n, in.size());
    for (std::size_t i = 0; i < n; ++i) ++seen[stream.check(in[i].bytes)];
    total += n;
    if (total < sizes.size() && gro) {
      // Datagrams kept from a coalesced buffer must make poll_fd() readable.
      pollfd pfd{p.rx->poll_fd(), POLLIN, 0};
      EXPECT_EQ(::poll(&pfd, 1, 200), 1);
    }
    if (gro && out_size < 65 && total == n) {
      // The two GSO sends arrived as two GRO buffers, both taken by the first call: the kernel
      // queue is empty and everything left is kept in user space.
      pollfd sock{p.rx->socket_fd(), POLLIN, 0};
      EXPECT_EQ(::poll(&sock, 1, 0), 0) << "kernel did not coalesce (GRO) or the ring did not take both buffers";
    }
  }
  expect_each_once(seen);
  EXPECT_EQ(p.rx->receive_batch(in, 0us), 0u);
  pollfd pfd{p.rx->poll_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0) << "poll_fd readable with nothing left";
}

TEST(UdpChannel, GsoRunSplitWithGro) { check_gso_run(true, 256); }
TEST(UdpChannel, GsoRunSplitWithoutGro) { check_gso_run(false, 256); }
TEST(UdpChannel, GroBufferLargerThanOutKeepsTheRest) { check_gso_run(true, 7); }

TEST(UdpChannel, WithoutGsoSameBytes) {
  UdpChannelOptions no_gso;
  no_gso.gso = false;
  auto p = make_pair("127.0.0.1", {}, no_gso);
  EXPECT_FALSE(p.tx->gso_enabled());
  TestStream stream(std::vector<std::size_t>(500, 1472));
  expect_each_once(transfer(p, stream));
}

// The send buffer follows the pace: about a millisecond of it (what TCP's small queues keep), at
// least two GSO messages; small changes leave it alone. Root may exceed wmem_max; others are capped.
TEST(UdpChannel, SendBufferFollowsThePace) {
  auto ch = UdpDatagramChannel::open("127.0.0.1");
  const auto sndbuf = [&] {
    int v = 0;
    socklen_t len = sizeof v;
    EXPECT_EQ(::getsockopt(ch->socket_fd(), SOL_SOCKET, SO_SNDBUF, &v, &len), 0);
    return v;
  };
  ch->pace(125e6);  // 1 Gbit/s: 1 ms is 125 KB, under the floor
  EXPECT_EQ(sndbuf(), 2 * 64 * 1024);
  ch->pace(130e6);  // within a quarter: no change asked for
  EXPECT_EQ(sndbuf(), 2 * 64 * 1024);
  if (::geteuid() != 0) GTEST_SKIP() << "beyond net.core.wmem_max needs root (SO_SNDBUFFORCE)";
  ch->pace(1.25e9);  // 10 Gbit/s: 1.25 MB
  EXPECT_EQ(sndbuf(), 2 * 625'000);
}

TEST(UdpChannel, DropsDatagramsFromOthersAfterConnect) {
  auto p = make_pair();
  // A stranger's socket sends to the receiver's endpoint.
  const SocketAddress rx_address = resolve_host_port(p.rx->local_endpoint(), SOCK_DGRAM, false).front();
  UniqueFd stranger(::socket(AF_INET, SOCK_DGRAM, 0));
  ASSERT_TRUE(stranger);
  const char junk[] = "not from the peer";
  ASSERT_EQ(::sendto(stranger.get(), junk, sizeof junk, 0, rx_address.get(), rx_address.length), ssize_t(sizeof junk));

  std::vector<InDatagram> in(16);
  EXPECT_EQ(p.rx->receive_batch(in, 100ms), 0u);

  TestStream stream({64});
  ASSERT_EQ(p.tx->send_batch(stream.out), 1u);
  ASSERT_EQ(p.rx->receive_batch(in, 1s), 1u);
  EXPECT_EQ(stream.check(in[0].bytes), 0u);
}

TEST(UdpChannel, ReceiveTimesOut) {
  auto p = make_pair();
  std::vector<InDatagram> in(4);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(p.rx->receive_batch(in, 30ms), 0u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 29ms);
}

TEST(UdpChannel, VanishedPeerIsReported) {
  auto tx = UdpDatagramChannel::open("127.0.0.1");
  std::string gone;
  {
    auto rx = UdpDatagramChannel::open("127.0.0.1");
    gone = rx->local_endpoint();
  }
  tx->connect(gone);
  TestStream stream({100});
  try {
    for (int i = 0; i < 50; ++i) {
      tx->send_batch(stream.out);
      std::this_thread::sleep_for(2ms);
    }
    FAIL() << "no error after sending to a closed port";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::peer_vanished);
    EXPECT_NE(std::string(e.what()).find(gone), std::string::npos) << e.what();
  }
}

TEST(UdpChannel, MisuseAndBadInput) {
  auto a = UdpDatagramChannel::open("127.0.0.1");
  TestStream stream({10});
  EXPECT_THROW(a->send_batch(stream.out), std::logic_error);
  try {
    a->connect("nonsense");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::protocol);  // an endpoint comes from the peer
    EXPECT_NE(std::string(e.what()).find("'nonsense'"), std::string::npos) << e.what();
  }
  try {
    UdpDatagramChannel::open("192.0.2.1");  // TEST-NET: not an address of this host
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
    EXPECT_NE(std::string(e.what()).find("192.0.2.1"), std::string::npos) << e.what();
  }
  std::vector<InDatagram> none;
  EXPECT_EQ(a->receive_batch(none, 10ms), 0u);
}

}  // namespace
}  // namespace hymig
