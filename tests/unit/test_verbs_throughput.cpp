// Throughput of the verbs channels, for the record: each test moves a few MiB, checks every byte
// (the verdict) and prints "VERBS-MEASURE <what> <MB/s>" (information only: under QEMU TCG and on a
// shared host the figure says little by itself; compare rows of one run).
#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "tests/unit/test_verbs_lab.hpp"
#include "verbs/rc_connect.hpp"
#include "verbs/rc_listener.hpp"
#include "verbs/ud_datagram_channel.hpp"

namespace hymig::verbs {
namespace {

using namespace std::chrono_literals;
using test::lab_ip_a;
using test::lab_ip_b;
using Clock = std::chrono::steady_clock;

double mb_per_s(std::uint64_t bytes, Clock::duration d) {
  return double(bytes) / 1e6 / std::chrono::duration<double>(d).count();
}

std::vector<std::byte> random_bytes(std::size_t n, std::uint32_t seed) {
  std::vector<std::byte> v(n);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    const std::uint64_t x = rng();
    std::memcpy(v.data() + i, &x, 8);
  }
  return v;
}

// The engine's shape: 4 KiB pages, each datagram a small header plus (a chunk of) a page gathered
// from the registered image. The receiver (same thread) keeps at most half its buffers in flight.
void ud_stream(std::size_t mtu) {
  const auto port = find_roce_port(lab_ip_a());
  if (port->active_mtu < mtu) GTEST_SKIP() << "port MTU is " << port->active_mtu;
  auto tx = UdDatagramChannel::open(lab_ip_a(), mtu);
  auto rx = UdDatagramChannel::open(lab_ip_b(), mtu);
  tx->connect(rx->local_endpoint());
  rx->connect(tx->local_endpoint());
  const auto image = random_bytes(4 << 20, 5);
  tx->register_memory(std::span<std::byte>(const_cast<std::byte*>(image.data()), image.size()));
  constexpr std::size_t kHeader = 16;
  const std::size_t chunk = mtu - kHeader;
  const std::size_t count = (image.size() + chunk - 1) / chunk;
  std::vector<std::array<std::uint64_t, 2>> headers(count);
  std::vector<std::array<ConstBuffer, 2>> parts(count);
  std::vector<OutDatagram> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t off = i * chunk, len = std::min(chunk, image.size() - off);
    headers[i] = {off, len};
    parts[i] = {ConstBuffer{reinterpret_cast<const std::byte*>(headers[i].data()), kHeader}, ConstBuffer{image.data() + off, len}};
    out[i] = OutDatagram{parts[i], kHeader + len};
  }
  std::vector<std::byte> target(image.size());
  std::vector<char> seen(count, 0);
  std::size_t sent = 0, received = 0;
  std::array<InDatagram, 64> in;
  const std::size_t window = rx->receive_buffers() / 2;
  const auto t0 = Clock::now();
  auto last = t0;
  while (received < count && Clock::now() - last < 30s) {
    if (sent < count && sent - received < window)
      sent += tx->send_batch(std::span<const OutDatagram>(out).subspan(sent, std::min(window - (sent - received), count - sent)));
    const std::size_t n = rx->receive_batch(in, sent > received ? 10ms : 0ms);
    for (std::size_t k = 0; k < n; ++k) {
      std::uint64_t h[2];
      std::memcpy(h, in[k].bytes.data(), kHeader);
      ASSERT_EQ(in[k].bytes.size(), kHeader + h[1]);
      std::memcpy(target.data() + h[0], in[k].bytes.data() + kHeader, h[1]);
      seen[h[0] / chunk] = 1;
    }
    received += n;
    if (n) last = Clock::now();
  }
  const auto took = Clock::now() - t0;
  EXPECT_EQ(received, count);
  EXPECT_TRUE(target == image);
  std::cout << "VERBS-MEASURE ud mtu=" << mtu << " " << image.size() << " bytes in " << count << " datagrams: "
            << mb_per_s(image.size(), took) << " MB/s\n";
}

TEST(VerbsThroughput, UdStreamMtu1024) {
  HYMIG_REQUIRE_ROCE_LAB();
  ud_stream(1024);
}

TEST(VerbsThroughput, UdStreamMtu4096) {
  HYMIG_REQUIRE_ROCE_LAB();
  ud_stream(4096);
}

// The final delta's shape: messages of 256 pages (1 MiB payload) read straight into a target image.
TEST(VerbsThroughput, RcPayloadMessages) {
  HYMIG_REQUIRE_ROCE_LAB();
  auto listener = RcListener::open(lab_ip_b());
  auto accepted = std::async(std::launch::async, [&] { return listener->accept(60s); });
  auto client = connect_rc(lab_ip_a(), listener->endpoint(), 60s);
  auto server = accepted.get();
  server->set_limits(1 << 20, 8 << 20);
  const auto image = random_bytes(8 << 20, 6);
  constexpr std::size_t kMessage = 1 << 20;
  std::vector<std::byte> target(image.size());
  const auto t0 = Clock::now();
  auto sender = std::async(std::launch::async, [&] {
    for (std::size_t off = 0; off < image.size(); off += kMessage) {
      ConstBuffer part{image.data() + off, kMessage};
      const std::uint64_t at = off;
      client->send_with_payload(1, std::as_bytes(std::span<const std::uint64_t>(&at, 1)), std::span<const ConstBuffer>(&part, 1));
    }
  });
  for (std::size_t i = 0; i < image.size() / kMessage; ++i) {
    auto m = server->receive(60s);
    ASSERT_TRUE(m);
    std::uint64_t at = 0;
    std::memcpy(&at, m->body.data(), 8);
    MutableBuffer d{target.data() + at, std::size_t(m->payload_bytes)};
    server->receive_payload(std::span<const MutableBuffer>(&d, 1));
  }
  const auto took = Clock::now() - t0;
  sender.get();
  EXPECT_TRUE(target == image);
  std::cout << "VERBS-MEASURE rc send " << image.size() << " bytes in 1 MiB messages ("
            << static_cast<RcReliableChannel&>(*client).send_bytes() << "-byte SENDs): "
            << mb_per_s(image.size(), took) << " MB/s, sender waited for credit "
            << static_cast<RcReliableChannel&>(*client).credit_waits() << " times\n";
}

}  // namespace
}  // namespace hymig::verbs
