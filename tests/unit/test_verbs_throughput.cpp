// Throughput of the verbs channels, for the record: each test moves a few MiB, checks every byte
// (the verdict) and prints "VERBS-MEASURE <what> <MB/s>" (information only: under QEMU TCG and on a
// shared host the figure says little by itself; compare rows of one run).
#include <gtest/gtest.h>

#include <algorithm>
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

// The final delta both ways over one RC connection, for the same pages (2048 of a 16 MiB image,
// chosen at random: scattered, with short runs): SEND (the engine's pages messages: a header of 256
// page indices and their 1 MiB payload gathered from the image, scattered into the target on
// arrival) and RDMA WRITE (each page written to its place in the target's registered image, then a
// message naming the 256 pages). Alternating, 3 runs each; prints every run and the medians
// ("VERBS-MEASURE rc final-delta ..."). The verdict is the bytes: each target equals the source on
// those pages and is untouched elsewhere. Under netem (tests/lab/guest/verbs_unit.sh FILTER loss5)
// this is the lossy comparison.
TEST(VerbsThroughput, RcFinalDeltaSendVersusWrite) {
  HYMIG_REQUIRE_ROCE_LAB();
  auto listener = RcListener::open(lab_ip_b());
  auto accepted = std::async(std::launch::async, [&] { return listener->accept(60s); });
  auto client = connect_rc(lab_ip_a(), listener->endpoint(), 60s);
  auto server = accepted.get();
  for (ReliableChannel* c : {client.get(), server.get()}) c->set_io_timeout(60s);
  constexpr std::size_t kPage = 4096, kPages = 4096, kDelta = 2048, kBatch = 256;
  server->set_limits(1 << 20, kBatch * kPage);
  const auto image = random_bytes(kPages * kPage, 8);
  std::vector<std::uint64_t> delta(kPages);
  for (std::size_t i = 0; i < kPages; ++i) delta[i] = i;
  std::shuffle(delta.begin(), delta.end(), std::mt19937_64(9));
  delta.resize(kDelta);
  std::sort(delta.begin(), delta.end());
  std::vector<std::byte> expected(image.size());
  for (auto pg : delta) std::memcpy(expected.data() + pg * kPage, image.data() + pg * kPage, kPage);

  RemoteWriter* out = client->remote_writer();
  ASSERT_NE(out, nullptr);
  out->register_source(image);
  std::vector<std::byte> target(image.size());
  const RemoteImage window = server->remote_writer()->expose_target(target);  // once, reused
  out->set_remote_target(window);

  auto run = [&](bool by_write) {
    std::fill(target.begin(), target.end(), std::byte{0});
    const auto t0 = Clock::now();
    auto sender = std::async(std::launch::async, [&] {
      std::vector<ConstBuffer> parts;
      for (std::size_t b = 0; b < kDelta; b += kBatch) {
        const std::span<const std::uint64_t> batch(delta.data() + b, std::min(kBatch, kDelta - b));
        const auto header = std::as_bytes(batch);
        if (by_write) {
          for (auto pg : batch) out->write_remote(pg * kPage, pg * kPage, kPage);
          client->send(2, header);
        } else {
          parts.clear();
          for (auto pg : batch) parts.push_back({image.data() + pg * kPage, kPage});
          client->send_with_payload(1, header, parts);
        }
      }
    });
    std::vector<MutableBuffer> dst;
    for (std::size_t b = 0; b < kDelta; b += kBatch) {
      auto m = server->receive(60s);
      if (!m) throw std::runtime_error("no message within 60 s");
      const std::size_t n = m->body.size() / 8;
      if (by_write) {
        EXPECT_EQ(m->type, 2);
        EXPECT_EQ(m->payload_bytes, 0u);
      } else {
        EXPECT_EQ(m->type, 1);
        dst.clear();
        for (std::size_t i = 0; i < n; ++i) {
          std::uint64_t pg = 0;
          std::memcpy(&pg, m->body.data() + i * 8, 8);
          dst.push_back({target.data() + pg * kPage, kPage});
        }
        server->receive_payload(dst);
      }
    }
    const auto took = Clock::now() - t0;
    sender.get();
    EXPECT_TRUE(target == expected) << (by_write ? "write" : "send") << ": target differs";
    return mb_per_s(kDelta * kPage, took);
  };
  std::vector<double> send_mbs, write_mbs;
  for (int i = 0; i < 3; ++i) {
    send_mbs.push_back(run(false));
    write_mbs.push_back(run(true));
    std::cout << "VERBS-MEASURE rc final-delta run " << i << ": send " << send_mbs.back() << " MB/s, write "
              << write_mbs.back() << " MB/s\n";
  }
  std::sort(send_mbs.begin(), send_mbs.end());
  std::sort(write_mbs.begin(), write_mbs.end());
  std::cout << "VERBS-MEASURE rc final-delta " << kDelta << " scattered pages of " << kPages << " ("
            << static_cast<RcReliableChannel&>(*client).send_bytes() << "-byte SENDs/WRITEs), median of 3: send "
            << send_mbs[1] << " MB/s, write " << write_mbs[1] << " MB/s\n";
}

// WRITEs in flight: the window the final delta's writes use (RcOptions::write_window; default the
// send slots, 8), against 16 and 32, for the same 2048 scattered pages; median of 3 each, bytes
// checked. Information for choosing the default (docs/protocol.md, "Final delta").
TEST(VerbsThroughput, RcWriteWindow) {
  HYMIG_REQUIRE_ROCE_LAB();
  constexpr std::size_t kPage = 4096, kPages = 4096, kDelta = 2048, kBatch = 256;
  const auto image = random_bytes(kPages * kPage, 10);
  std::vector<std::uint64_t> delta(kPages);
  for (std::size_t i = 0; i < kPages; ++i) delta[i] = i;
  std::shuffle(delta.begin(), delta.end(), std::mt19937_64(11));
  delta.resize(kDelta);
  std::sort(delta.begin(), delta.end());
  std::vector<std::byte> target(image.size());
  for (unsigned window : {8u, 16u, 32u}) {
    RcOptions opt;
    opt.write_window = window;
    auto listener = RcListener::open(lab_ip_b(), 0, opt);
    auto accepted = std::async(std::launch::async, [&] { return listener->accept(60s); });
    auto client = connect_rc(lab_ip_a(), listener->endpoint(), 60s, opt);
    auto server = accepted.get();
    RemoteWriter* out = client->remote_writer();
    out->register_source(image);
    out->set_remote_target(server->remote_writer()->expose_target(target));
    std::vector<double> mbs;
    for (int rep = 0; rep < 3; ++rep) {
      std::fill(target.begin(), target.end(), std::byte{0});
      const auto t0 = Clock::now();
      for (std::size_t b = 0; b < kDelta; b += kBatch) {
        const std::span<const std::uint64_t> batch(delta.data() + b, std::min(kBatch, kDelta - b));
        for (auto pg : batch) out->write_remote(pg * kPage, pg * kPage, kPage);
        client->send(2, std::as_bytes(batch));
      }
      for (std::size_t b = 0; b < kDelta; b += kBatch) ASSERT_TRUE(server->receive(60s));
      mbs.push_back(mb_per_s(kDelta * kPage, Clock::now() - t0));
      for (auto pg : delta) ASSERT_EQ(0, std::memcmp(target.data() + pg * kPage, image.data() + pg * kPage, kPage));
    }
    std::sort(mbs.begin(), mbs.end());
    std::cout << "VERBS-MEASURE rc write window " << window << ": " << mbs[0] << " / " << mbs[1] << " / " << mbs[2]
              << " MB/s (min / median / max of 3)\n";
  }
}

}  // namespace
}  // namespace hymig::verbs
