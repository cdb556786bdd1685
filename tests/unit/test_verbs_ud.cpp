// UdDatagramChannel: endpoint text everywhere; on a Soft-RoCE lab guest, two channels in one
// process (rxe0 at HYMIG_LAB_IP_A, rxe1 at HYMIG_LAB_IP_B) exchanging datagrams checked byte for byte.
#include <gtest/gtest.h>

#include <poll.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "tests/unit/test_verbs_lab.hpp"
#include "verbs/ud_datagram_channel.hpp"
#include "verbs/ud_endpoint.hpp"

namespace hymig::verbs {
namespace {

using namespace std::chrono_literals;
using test::lab_ip_a;
using test::lab_ip_b;

// ---- endpoint text (no device needed) ------------------------------------------------------

TEST(VerbsUdEndpoint, FormatParseRoundTrip) {
  UdEndpoint e;
  e.gid = *ip_to_gid("10.9.0.1");
  e.qpn = 17;
  e.qkey = 0x5a3c19e2;
  e.mtu = 1024;
  const std::string text = format_ud_endpoint(e);
  EXPECT_EQ(text, "::ffff:10.9.0.1/17/0x5a3c19e2/1024");
  const UdEndpoint back = parse_ud_endpoint(text);
  EXPECT_EQ(back.gid, e.gid);
  EXPECT_EQ(back.qpn, 17u);
  EXPECT_EQ(back.qkey, 0x5a3c19e2u);
  EXPECT_EQ(back.mtu, 1024u);

  const UdEndpoint v6 = parse_ud_endpoint("fd00::2/16777215/0x1/4096");
  EXPECT_EQ(v6.gid[0], 0xfd);
  EXPECT_EQ(v6.qpn, 0xFFFFFFu);
  EXPECT_EQ(v6.qkey, 1u);
  EXPECT_EQ(v6.mtu, 4096u);
  EXPECT_EQ(parse_ud_endpoint("0000:0000:0000:0000:0000:ffff:0a09:0001/2/0xFFFFFFFF/256").gid, e.gid);
}

TEST(VerbsUdEndpoint, MalformedIsProtocolError) {
  const char* bad[] = {
      "",
      "::ffff:10.9.0.1/17/0x1",                 // 3 fields
      "::ffff:10.9.0.1/17/0x1/1024/9",          // 5 fields
      "10.9.0.1.5/17/0x1/1024",                 // GID not IPv6 text
      "::/17/0x1/1024",                         // all-zero GID
      "::ffff:10.9.0.1//0x1/1024",              // empty QPN
      "::ffff:10.9.0.1/1/0x1/1024",             // QP1 is special
      "::ffff:10.9.0.1/16777216/0x1/1024",      // > 24 bits
      "::ffff:10.9.0.1/-5/0x1/1024",
      "::ffff:10.9.0.1/17/12/1024",             // QKEY without 0x
      "::ffff:10.9.0.1/17/0x/1024",
      "::ffff:10.9.0.1/17/0x123456789/1024",    // 9 hex digits
      "::ffff:10.9.0.1/17/0xzz/1024",
      "::ffff:10.9.0.1/17/0x1/1500",            // not an IB MTU
      "::ffff:10.9.0.1/17/0x1/",
      "10.9.0.1:4791",                          // a UDP endpoint
  };
  for (const char* text : bad) {
    try {
      parse_ud_endpoint(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::protocol) << text;
      EXPECT_NE(std::string(e.what()).find("GID/QPN/QKEY/MTU"), std::string::npos) << e.what();
    }
  }
}

TEST(VerbsUdChannel, OpenWithoutDeviceNamesTheFix) {
  const std::string ip = lab_ip_a();
  if (find_roce_gid(ip)) GTEST_SKIP() << "this host has a RoCE GID for " << ip;
  try {
    UdDatagramChannel::open(ip, 1024);
    FAIL() << "open succeeded without an RDMA port";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
    EXPECT_NE(std::string(e.what()).find("no RDMA device has a RoCE v2 GID for " + ip), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rdma link add"), std::string::npos) << e.what();
  }
}

TEST(VerbsUdChannel, OpenRejectsNonNumericAddress) {
  try {
    UdDatagramChannel::open("roce-node7", 1024);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage) << e.what();
  }
}

// ---- on a device ---------------------------------------------------------------------------

// Datagram i = a 4-byte sequence number (the "engine header", copied by the channel) followed by
// bytes of a random "image" at a known offset, sometimes split over several parts, sometimes taken
// from unregistered memory: whatever path a part takes, the receiver sees exactly those bytes.
struct Stream {
  std::vector<std::byte> image;       // registered with the sender
  std::vector<std::byte> unregistered;
  std::vector<std::uint32_t> seq;
  std::vector<std::size_t> size;      // payload bytes after the header
  std::vector<std::size_t> offset;    // into image (or unregistered, for i % 5 == 1)
  std::vector<std::vector<ConstBuffer>> parts;
  std::vector<OutDatagram> out;

  bool from_unregistered(std::size_t i) const { return i % 5 == 1; }
  const std::byte* source(std::size_t i) const {
    return (from_unregistered(i) ? unregistered.data() : image.data()) + offset[i];
  }

  Stream(std::size_t count, std::size_t max_datagram, std::uint32_t seed) {
    std::mt19937 rng(seed);
    const std::size_t max_payload = max_datagram - 4;
    seq.resize(count);
    size.resize(count);
    offset.resize(count);
    parts.resize(count);
    out.resize(count);
    std::size_t total = 0;
    for (std::size_t i = 0; i < count; ++i) {
      // Mostly full datagrams (the engine's common case), some short, a few 1-byte.
      const unsigned r = rng() % 10;
      size[i] = r < 6 ? max_payload : r < 9 ? 1 + rng() % max_payload : 1;
      offset[i] = total;
      total += size[i] + 64;  // gaps, so split parts are not adjacent
    }
    image.resize(total);
    unregistered.resize(total);
    for (auto& b : image) b = std::byte(rng());
    for (auto& b : unregistered) b = std::byte(rng());
    for (std::size_t i = 0; i < count; ++i) {
      seq[i] = std::uint32_t(i);
      parts[i].push_back({reinterpret_cast<const std::byte*>(&seq[i]), 4});
      const std::byte* src = source(i);
      if (i % 5 == 3 && size[i] >= 3) {
        // Three parts of the image: [0,a) [a,b) adjacent (merged into one SGE), then [b,size).
        const std::size_t a = size[i] / 3, b = 2 * size[i] / 3;
        parts[i].push_back({src, a});
        parts[i].push_back({src + a, b - a});
        parts[i].push_back({src + b, size[i] - b});
      } else {
        parts[i].push_back({src, size[i]});
      }
      out[i] = OutDatagram{std::span<const ConstBuffer>(parts[i]), 4 + size[i]};
    }
  }

  // Sequence number of a received datagram after checking every byte; -1 (and a test failure) if wrong.
  long check(std::span<const std::byte> d) const {
    if (d.size() < 4) {
      ADD_FAILURE() << "datagram of " << d.size() << " bytes";
      return -1;
    }
    std::uint32_t i = 0;
    std::memcpy(&i, d.data(), 4);
    if (i >= seq.size()) {
      ADD_FAILURE() << "unknown sequence number " << i;
      return -1;
    }
    if (d.size() != 4 + size[i]) {
      ADD_FAILURE() << "datagram " << i << " has " << d.size() << " bytes, sent " << 4 + size[i];
      return -1;
    }
    if (std::memcmp(d.data() + 4, source(i), size[i]) != 0) {
      ADD_FAILURE() << "datagram " << i << " payload differs";
      return -1;
    }
    return long(i);
  }
};

struct Pair {
  std::unique_ptr<UdDatagramChannel> tx, rx;
};

Pair make_pair(std::size_t max_datagram, UdChannelOptions rx_options = {}) {
  Pair p;
  p.tx = UdDatagramChannel::open(lab_ip_a(), max_datagram);
  rx_options.max_datagram = max_datagram;
  p.rx = UdDatagramChannel::open(lab_ip_b(), rx_options);
  p.tx->connect(p.rx->local_endpoint());
  p.rx->connect(p.tx->local_endpoint());
  return p;
}

// Sends the whole stream, never more than `window` datagrams ahead of what has arrived (the
// receiver is in the same thread), and checks every arrival. Returns arrivals per sequence number.
std::vector<int> exchange(Pair& p, Stream& s, std::size_t window, std::chrono::seconds patience) {
  std::vector<int> seen(s.out.size(), 0);
  std::size_t sent = 0, received = 0;
  std::array<InDatagram, 64> in;
  auto last_progress = std::chrono::steady_clock::now();
  while (received < s.out.size()) {
    if (sent < s.out.size() && sent - received < window) {
      const std::size_t room = std::min(window - (sent - received), s.out.size() - sent);
      sent += p.tx->send_batch(std::span<const OutDatagram>(s.out).subspan(sent, std::min<std::size_t>(room, 256)));
    }
    const std::size_t n = p.rx->receive_batch(in, sent > received ? 20ms : 0ms);
    for (std::size_t k = 0; k < n; ++k) {
      const long i = s.check(in[k].bytes);
      if (i >= 0) ++seen[std::size_t(i)];
    }
    received += n;
    if (n > 0) last_progress = std::chrono::steady_clock::now();
    if (std::chrono::steady_clock::now() - last_progress > patience) {
      ADD_FAILURE() << "no datagram for " << patience.count() << " s: sent " << sent << ", received " << received;
      break;
    }
  }
  return seen;
}

void round_trip(std::size_t mtu, std::size_t count) {
  const auto port = find_roce_port(lab_ip_a());
  if (port->active_mtu < mtu) GTEST_SKIP() << "port MTU is " << port->active_mtu << " (set the veth MTU to 9000 for 4096)";
  Pair p = make_pair(mtu);
  ASSERT_EQ(p.tx->max_datagram(), mtu);
  ASSERT_EQ(p.rx->max_datagram(), mtu);
  EXPECT_EQ(p.tx->transport_name(), "ud");
  Stream s(count, mtu, 7);
  p.tx->register_memory(std::span<std::byte>(s.image));
  const std::vector<int> seen = exchange(p, s, p.rx->receive_buffers() / 2, 60s);
  std::size_t missing = 0, duplicated = 0;
  for (int c : seen) {
    missing += c == 0;
    duplicated += c > 1;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
  EXPECT_EQ(p.tx->registration_error(), "");
  const UdStats u = p.tx->ud_stats();
  EXPECT_GT(u.parts_gathered, 0u);  // image parts went zero-copy
  EXPECT_GT(u.parts_copied, count);  // every header, and the unregistered parts
  EXPECT_EQ(p.tx->stats().datagrams_sent, count);
  EXPECT_EQ(p.rx->stats().datagrams_received, count);
  EXPECT_EQ(p.rx->ud_stats().foreign_dropped, 0u);
  EXPECT_EQ(p.rx->ud_stats().receive_errors, 0u);
}

TEST(VerbsUdChannel, RoundTripMtu1024) {
  HYMIG_REQUIRE_ROCE_LAB();
  round_trip(1024, 3000);  // ~3 MiB
}

TEST(VerbsUdChannel, RoundTripMtu4096) {
  HYMIG_REQUIRE_ROCE_LAB();
  round_trip(4096, 800);  // ~3 MiB
}

TEST(VerbsUdChannel, MaxDatagramIsCappedByThePortMtu) {
  HYMIG_REQUIRE_ROCE_LAB();
  const unsigned mtu = find_roce_port(lab_ip_a())->active_mtu;
  auto ch = UdDatagramChannel::open(lab_ip_a(), 65536);
  EXPECT_EQ(ch->max_datagram(), mtu);
  auto whole = UdDatagramChannel::open(lab_ip_a(), 0);
  EXPECT_EQ(whole->max_datagram(), mtu);
  const UdEndpoint e = parse_ud_endpoint(ch->local_endpoint());
  EXPECT_EQ(e.mtu, mtu);
  EXPECT_EQ(e.gid, *ip_to_gid(lab_ip_a()));
  EXPECT_NE(e.qpn, parse_ud_endpoint(whole->local_endpoint()).qpn);
}

TEST(VerbsUdChannel, OverrunIsCountedNotFatal) {
  HYMIG_REQUIRE_ROCE_LAB();
  UdChannelOptions small;
  small.receive_buffers = 32;
  Pair p = make_pair(1024, small);
  ASSERT_EQ(p.rx->receive_buffers(), 32u);
  Stream s(400, 1024, 11);
  p.tx->register_memory(std::span<std::byte>(s.image));
  std::size_t sent = 0;
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (sent < s.out.size() && std::chrono::steady_clock::now() < until) {
    const std::size_t n = p.tx->send_batch(std::span<const OutDatagram>(s.out).subspan(sent));
    sent += n;
    if (n == 0) std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(sent, s.out.size());
  std::this_thread::sleep_for(3s);  // let the device deliver (or drop) everything; the verdict is the count

  std::array<InDatagram, 64> in;
  std::size_t got = 0;
  std::vector<int> seen(s.out.size(), 0);
  for (;;) {
    const std::size_t n = p.rx->receive_batch(in, 500ms);
    if (n == 0) break;
    for (std::size_t k = 0; k < n; ++k) {
      const long i = s.check(in[k].bytes);
      if (i >= 0) {
        EXPECT_EQ(++seen[std::size_t(i)], 1) << "datagram " << i << " twice";
      }
    }
    got += n;
  }
  EXPECT_GE(got, 1u);
  EXPECT_LT(got, s.out.size());
  EXPECT_GE(p.rx->ud_stats().receive_queue_ran_dry, 1u);

  // Still usable afterwards: a window the receive queue can hold arrives completely.
  Stream again(20, 1024, 12);
  p.tx->register_memory(std::span<std::byte>(again.image));
  const std::vector<int> seen2 = exchange(p, again, 16, 60s);
  EXPECT_EQ(std::count(seen2.begin(), seen2.end(), 1), 20);
}

TEST(VerbsUdChannel, DatagramsFromOthersAreDropped) {
  HYMIG_REQUIRE_ROCE_LAB();
  Pair p = make_pair(1024);
  auto stranger = UdDatagramChannel::open(lab_ip_a(), 1024);
  stranger->connect(p.rx->local_endpoint());
  Stream s(10, 1024, 13);
  std::size_t sent = 0;
  while (sent < s.out.size()) sent += stranger->send_batch(std::span<const OutDatagram>(s.out).subspan(sent));
  std::array<InDatagram, 64> in;
  std::size_t got = 0;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (p.rx->ud_stats().foreign_dropped < 10 && std::chrono::steady_clock::now() < until)
    got += p.rx->receive_batch(in, 100ms);
  EXPECT_EQ(got, 0u);
  EXPECT_EQ(p.rx->ud_stats().foreign_dropped, 10u);
}

TEST(VerbsUdChannel, PollFdFollowsArrivals) {
  HYMIG_REQUIRE_ROCE_LAB();
  Pair p = make_pair(1024);
  std::array<InDatagram, 4> in;
  EXPECT_EQ(p.rx->receive_batch(in, 0ms), 0u);  // empty: arms the CQ
  pollfd pfd{p.rx->poll_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);

  Stream s(10, 1024, 14);
  std::size_t sent = 0;
  while (sent < s.out.size()) sent += p.tx->send_batch(std::span<const OutDatagram>(s.out).subspan(sent));
  ASSERT_EQ(::poll(&pfd, 1, 30000), 1) << "poll_fd() never turned readable";
  // Take them 4 at a time: while some are left, poll_fd() must stay readable.
  std::size_t got = 0;
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (got < 10 && std::chrono::steady_clock::now() < until) {
    if (::poll(&pfd, 1, 5000) != 1) break;
    got += p.rx->receive_batch(in, 0ms);
  }
  EXPECT_EQ(got, 10u);
  EXPECT_EQ(p.rx->receive_batch(in, 0ms), 0u);
  EXPECT_EQ(::poll(&pfd, 1, 0), 0) << "poll_fd() readable with nothing to receive";
}

TEST(VerbsUdChannel, MalformedPeerEndpointIsProtocolError) {
  HYMIG_REQUIRE_ROCE_LAB();
  auto ch = UdDatagramChannel::open(lab_ip_a(), 1024);
  try {
    ch->connect("10.9.0.2:7000");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::protocol) << e.what();
  }
  EXPECT_THROW(ch->send_batch(std::span<const OutDatagram>()), std::logic_error);  // still not connected
}

TEST(VerbsUdChannel, OversizedDatagramIsRejected) {
  HYMIG_REQUIRE_ROCE_LAB();
  Pair p = make_pair(1024);
  std::vector<std::byte> big(1025);
  ConstBuffer part{big.data(), big.size()};
  OutDatagram d{std::span<const ConstBuffer>(&part, 1), big.size()};
  try {
    p.tx->send_batch(std::span<const OutDatagram>(&d, 1));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage) << e.what();
  }
}

TEST(VerbsUdChannel, QueuePairInErrorFailsClearly) {
  HYMIG_REQUIRE_ROCE_LAB();
  Pair p = make_pair(1024);
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  ASSERT_EQ(ibv_modify_qp(p.rx->queue_pair(), &a, IBV_QP_STATE), 0);
  std::array<InDatagram, 8> in;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    for (int i = 0; i < 100; ++i) p.rx->receive_batch(in, 100ms);
    FAIL() << "receive_batch kept returning on a QP in the error state";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
    EXPECT_NE(std::string(e.what()).find("error state"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
}

}  // namespace
}  // namespace hymig::verbs
