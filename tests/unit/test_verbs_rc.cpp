// RC reliable channel: wire format everywhere; on a Soft-RoCE lab guest, a listener on
// HYMIG_LAB_IP_B and a connection from HYMIG_LAB_IP_A in one process, every byte compared.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <future>
#include <iostream>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "tests/unit/test_verbs_lab.hpp"
#include "verbs/rc_connect.hpp"
#include "verbs/rc_listener.hpp"
#include "verbs/rc_reliable_channel.hpp"
#include "verbs/rc_wire.hpp"

namespace hymig::verbs {
namespace {

using namespace std::chrono_literals;
using test::lab_ip_a;
using test::lab_ip_b;

template <typename F>
ErrorKind kind_of(F&& f, std::string* what = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (what) *what = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "no Error thrown";
  return ErrorKind::usage;
}

// ---- wire format (no device needed) --------------------------------------------------------

TEST(VerbsRcWire, FrameHeaderRoundTrip) {
  const auto b = encode_rc_frame_header({7, 1234, 5'000'000'000ull});
  FrameLimits limits;
  limits.max_payload = 8'000'000'000ull;
  const RcFrameHeader h = decode_rc_frame_header(b, limits);
  EXPECT_EQ(h.type, 7);
  EXPECT_EQ(h.body_len, 1234u);
  EXPECT_EQ(h.payload_len, 5'000'000'000ull);
  EXPECT_EQ(std::memcmp(b.data(), "HYMR", 4), 0);
}

TEST(VerbsRcWire, FrameHeaderErrorsAreProtocol) {
  FrameLimits limits;
  limits.max_body = 100;
  limits.max_payload = 1000;
  const auto good = encode_rc_frame_header({1, 100, 1000});
  EXPECT_NO_THROW(decode_rc_frame_header(good, limits));
  auto corrupt = [&](std::size_t at, std::byte v) {
    auto b = good;
    b[at] = v;
    return b;
  };
  const std::array<std::byte, kRcFrameHeaderBytes> cases[] = {
      corrupt(0, std::byte{'X'}),  // magic
      corrupt(4, std::byte{2}),    // version
      corrupt(6, std::byte{1}),    // flags
      corrupt(12, std::byte{1}),   // reserved
      encode_rc_frame_header({1, 101, 0}),
      encode_rc_frame_header({1, 0, 1001}),
  };
  for (const auto& b : cases) EXPECT_EQ(kind_of([&] { decode_rc_frame_header(b, limits); }), ErrorKind::protocol);
  std::string what;
  EXPECT_EQ(kind_of([&] { decode_rc_frame_header(std::span<const std::byte>(good).first(23), limits); }, &what),
            ErrorKind::protocol);
  EXPECT_NE(what.find("shorter"), std::string::npos) << what;
  EXPECT_EQ(kind_of([&] { decode_rc_frame_header(encode_rc_frame_header({1, 101, 0}), limits); }, &what), ErrorKind::protocol);
  EXPECT_NE(what.find("exceeds limit 100"), std::string::npos) << what;
}

TEST(VerbsRcWire, ConnectInfoRoundTripAndValidation) {
  RcConnectInfo info{32, 65536, 0x1234, 0x7f0012340000ull};
  auto b = encode_rc_connect(info);
  std::vector<std::byte> padded(b.begin(), b.end());
  padded.resize(56);  // rdma_cm hands private data padded to the transport's size
  const RcConnectInfo back = decode_rc_connect(padded);
  EXPECT_EQ(back.recv_slots, 32);
  EXPECT_EQ(back.slot_bytes, 65536u);
  EXPECT_EQ(back.credit_rkey, 0x1234u);
  EXPECT_EQ(back.credit_addr, 0x7f0012340000ull);

  EXPECT_EQ(kind_of([&] { decode_rc_connect(std::span<const std::byte>(b).first(31)); }), ErrorKind::protocol);
  EXPECT_EQ(kind_of([&] { decode_rc_connect(std::vector<std::byte>(56)); }), ErrorKind::protocol);  // not hymig
  EXPECT_EQ(kind_of([&] { decode_rc_connect(encode_rc_connect({0, 65536, 1, 1})); }), ErrorKind::protocol);
  EXPECT_EQ(kind_of([&] { decode_rc_connect(encode_rc_connect({32, 100, 1, 1})); }), ErrorKind::protocol);
  EXPECT_EQ(kind_of([&] { decode_rc_connect(encode_rc_connect({32, 65536, 1, 0})); }), ErrorKind::protocol);
  auto v2 = b;
  v2[4] = std::byte{2};
  std::string what;
  EXPECT_EQ(kind_of([&] { decode_rc_connect(v2); }, &what), ErrorKind::protocol);
  EXPECT_NE(what.find("version"), std::string::npos) << what;
}

TEST(VerbsRcChannel, NoDeviceGivesClearErrors) {
  if (find_roce_gid(lab_ip_a())) GTEST_SKIP() << "this host has a RoCE GID for " << lab_ip_a();
  std::string what;
  EXPECT_EQ(kind_of([&] { RcListener::open(lab_ip_b()); }, &what), ErrorKind::io);
  EXPECT_NE(what.find("RDMA"), std::string::npos) << what;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(kind_of([&] { connect_rc(lab_ip_a(), lab_ip_b() + ":7471", 5s); }, &what), ErrorKind::io);
  EXPECT_NE(what.find("RDMA"), std::string::npos) << what;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(VerbsRcChannel, BadAddressesAreUsageErrors) {
  EXPECT_EQ(kind_of([&] { connect_rc(lab_ip_a(), "no-port-here", 1s); }), ErrorKind::usage);
  EXPECT_EQ(kind_of([&] { connect_rc(lab_ip_a(), "[::1]:7471", 1s); }), ErrorKind::usage);  // family mismatch
}

// ---- on a device ---------------------------------------------------------------------------

struct RcPair {
  std::unique_ptr<RcListener> listener;
  std::unique_ptr<ReliableChannel> client;  // at lab_ip_a
  std::unique_ptr<ReliableChannel> server;  // at lab_ip_b
};

RcPair make_pair(const RcOptions& options = {}) {
  RcPair p;
  p.listener = RcListener::open(lab_ip_b(), 0, options);
  auto accepted = std::async(std::launch::async, [&] { return p.listener->accept(60s); });
  p.client = connect_rc(lab_ip_a(), p.listener->endpoint(), 60s, options);
  p.server = accepted.get();
  for (ReliableChannel* c : {p.client.get(), p.server.get()}) c->set_io_timeout(60s);
  return p;
}

std::vector<std::byte> random_bytes(std::size_t n, std::uint32_t seed) {
  std::vector<std::byte> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = std::byte(rng());
  return v;
}

std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span<const char>(s)); }

TEST(VerbsRcChannel, ConnectsAndNamesBothEnds) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  EXPECT_EQ(p.client->transport_name(), "rc");
  EXPECT_EQ(p.client->local_host(), lab_ip_a());
  EXPECT_EQ(p.client->peer_host(), lab_ip_b());
  EXPECT_EQ(p.server->local_host(), lab_ip_b());
  EXPECT_EQ(p.server->peer_host(), lab_ip_a());
  EXPECT_EQ(p.listener->endpoint(), lab_ip_b() + ":" + std::to_string(p.listener->port()));
}

TEST(VerbsRcChannel, MessagesWithBodyAndScatteredPayload) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  p.server->set_limits(1 << 20, 8 << 20);
  const auto image = random_bytes(3 << 20, 1);  // 3 MiB: many SENDs of 64 KiB
  const std::string body = "pages 0..767";
  // Gathered from odd pieces on the sender ...
  std::vector<ConstBuffer> parts;
  for (std::size_t off = 0, k = 1; off < image.size(); ++k) {
    const std::size_t n = std::min(image.size() - off, 4096 * k + 17);
    parts.push_back({image.data() + off, n});
    off += n;
  }
  // 3 MiB is more than the receiver's 32 slots: the sender waits for credit while we read.
  auto sender = std::async(std::launch::async, [&] {
    p.client->send(1, bytes_of("hello"));
    p.client->send_with_payload(2, bytes_of(body), parts);
    p.client->send(3, {});
  });

  auto m = p.server->receive(30s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 1);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->body.data()), m->body.size()), "hello");
  EXPECT_EQ(m->payload_bytes, 0u);

  m = p.server->receive(30s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 2);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->body.data()), m->body.size()), body);
  ASSERT_EQ(m->payload_bytes, image.size());
  // ... and scattered over other odd pieces on the receiver.
  std::vector<std::byte> got(image.size());
  std::vector<MutableBuffer> dst;
  for (std::size_t off = 0, k = 3; off < got.size(); k = k * 7 % 31 + 1) {
    const std::size_t n = std::min(got.size() - off, 1000 * k + 3);
    dst.push_back({got.data() + off, n});
    off += n;
  }
  EXPECT_THROW(p.server->receive(0ms), std::logic_error);  // payload still pending
  p.server->receive_payload(dst);
  EXPECT_TRUE(got == image) << "payload differs";

  m = p.server->receive(30s);
  sender.get();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 3);
  EXPECT_TRUE(m->body.empty());
  EXPECT_FALSE(p.server->receive(0ms));
  EXPECT_EQ(p.server->stats().messages_received, 3u);
  EXPECT_EQ(p.client->stats().messages_sent, 3u);
  EXPECT_EQ(p.client->stats().bytes_sent, p.server->stats().bytes_received);
}

TEST(VerbsRcChannel, BodyLargerThanASlotAndDiscardedPayload) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  p.server->set_limits(1 << 20, 1 << 20);
  const auto big_body = random_bytes(200 * 1024, 2);
  const auto payload = random_bytes(100 * 1024, 3);
  ConstBuffer part{payload.data(), payload.size()};
  p.client->send_with_payload(4, big_body, std::span<const ConstBuffer>(&part, 1));
  p.client->send_with_payload(5, bytes_of("keep"), std::span<const ConstBuffer>(&part, 1));

  auto m = p.server->receive(30s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 4);
  ASSERT_EQ(m->body.size(), big_body.size());
  EXPECT_EQ(std::memcmp(m->body.data(), big_body.data(), big_body.size()), 0);
  p.server->discard_payload();

  m = p.server->receive(30s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 5);
  std::vector<std::byte> got(payload.size());
  MutableBuffer d{got.data(), got.size()};
  p.server->receive_payload(std::span<const MutableBuffer>(&d, 1));
  EXPECT_TRUE(got == payload);
}

TEST(VerbsRcChannel, SlowReaderMakesTheSenderWaitNotOverrun) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcOptions small;
  small.recv_slots = 8;
  small.slot_bytes = 16 * 1024;
  RcPair p = make_pair(small);
  p.server->set_limits(1 << 20, 1 << 20);
  const auto image = random_bytes(2 << 20, 4);
  constexpr std::size_t kPiece = 48 * 1024;  // 3 SENDs per message
  auto sender = std::async(std::launch::async, [&] {
    for (std::size_t off = 0; off < image.size(); off += kPiece) {
      ConstBuffer part{image.data() + off, std::min(kPiece, image.size() - off)};
      p.client->send_with_payload(9, {}, std::span<const ConstBuffer>(&part, 1));
    }
  });
  std::this_thread::sleep_for(2s);  // the sender fills our 8 slots and must wait for credit
  std::vector<std::byte> got(image.size());
  for (std::size_t off = 0; off < got.size(); off += kPiece) {
    auto m = p.server->receive(60s);
    ASSERT_TRUE(m);
    ASSERT_EQ(m->payload_bytes, std::min(kPiece, got.size() - off));
    MutableBuffer d{got.data() + off, std::size_t(m->payload_bytes)};
    p.server->receive_payload(std::span<const MutableBuffer>(&d, 1));
    if (off % (8 * kPiece) == 0) std::this_thread::sleep_for(50ms);  // stay slow
  }
  sender.get();  // rethrows a sender failure (an RNR error would mean credits failed)
  EXPECT_TRUE(got == image);
  EXPECT_GT(static_cast<RcReliableChannel&>(*p.client).credit_waits(), 0u);
}

TEST(VerbsRcChannel, BothSendingWithoutReadingDoesNotDeadlock) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcOptions small;
  small.recv_slots = 8;
  RcPair p = make_pair(small);
  constexpr int kMessages = 100;  // far more than either side's 8 slots
  auto talk = [](ReliableChannel& ch, std::uint8_t type) {
    for (int i = 0; i < kMessages; ++i) {
      const std::uint32_t v = std::uint32_t(i);
      ch.send(type, std::as_bytes(std::span<const std::uint32_t>(&v, 1)));
    }
    for (int i = 0; i < kMessages; ++i) {
      auto m = ch.receive(60s);
      if (!m) throw std::runtime_error("message " + std::to_string(i) + " never came");
      std::uint32_t v = 0;
      if (m->body.size() != 4) throw std::runtime_error("bad body size");
      std::memcpy(&v, m->body.data(), 4);
      if (v != std::uint32_t(i)) throw std::runtime_error("message " + std::to_string(i) + " out of order: " + std::to_string(v));
    }
  };
  auto a = std::async(std::launch::async, [&] { talk(*p.client, 1); });
  auto b = std::async(std::launch::async, [&] { talk(*p.server, 2); });
  EXPECT_NO_THROW(a.get());
  EXPECT_NO_THROW(b.get());
}

TEST(VerbsRcChannel, LimitsAreCheckedBeforeAnything) {
  HYMIG_REQUIRE_ROCE_LAB();
  {
    RcPair p = make_pair();
    p.server->set_limits(100, 1000);
    p.client->send(1, std::vector<std::byte>(101));
    std::string what;
    EXPECT_EQ(kind_of([&] { p.server->receive(30s); }, &what), ErrorKind::protocol);
    EXPECT_NE(what.find("exceeds limit 100"), std::string::npos) << what;
    EXPECT_EQ(kind_of([&] { p.server->receive(0ms); }, &what), ErrorKind::protocol);  // stays broken
    EXPECT_NE(what.find("unusable"), std::string::npos) << what;
  }
  {
    RcPair p = make_pair();
    p.server->set_limits(100, 1000);
    std::vector<std::byte> payload(1001);
    ConstBuffer part{payload.data(), payload.size()};
    p.client->send_with_payload(1, {}, std::span<const ConstBuffer>(&part, 1));
    EXPECT_EQ(kind_of([&] { p.server->receive(30s); }), ErrorKind::protocol);
  }
}

TEST(VerbsRcChannel, PeerThatClosesIsPeerVanished) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  p.client->send(7, bytes_of("last words"));
  p.client.reset();  // rdma_disconnect + teardown
  // What was sent before the close still arrives, then the close is reported.
  auto m = p.server->receive(30s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 7);
  const auto t0 = std::chrono::steady_clock::now();
  std::string what;
  EXPECT_EQ(kind_of([&] { p.server->receive(60s); }, &what), ErrorKind::peer_vanished);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s) << "the disconnect was not noticed promptly";
  EXPECT_NE(what.find("disconnected"), std::string::npos) << what;
  EXPECT_EQ(kind_of([&] { p.server->send(1, {}); }), ErrorKind::peer_vanished);
}

// The peer side of KilledPeerIsPeerVanished, run in a fresh process (a forked child may not use
// the verbs contexts it inherited): connect, send, die without any teardown.
TEST(VerbsRcChannel, KilledPeerHelper) {
  const char* endpoint = std::getenv("HYMIG_TEST_RC_DIE_AFTER_SEND_TO");
  if (!endpoint) GTEST_SKIP() << "helper process for KilledPeerIsPeerVanished only";
  auto c = connect_rc(lab_ip_a(), endpoint, 60s);
  c->send(7, bytes_of("about to die"));
  std::this_thread::sleep_for(500ms);  // let the SEND be acknowledged
  ::kill(::getpid(), SIGKILL);  // no destructor, no rdma_disconnect: the kernel tears it down
}

TEST(VerbsRcChannel, KilledPeerIsPeerVanished) {
  HYMIG_REQUIRE_ROCE_LAB();
  auto listener = RcListener::open(lab_ip_b());
  const std::string endpoint = listener->endpoint();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::setenv("HYMIG_TEST_RC_DIE_AFTER_SEND_TO", endpoint.c_str(), 1);
    ::execl("/proc/self/exe", "hymig_unit_tests", "--gtest_filter=VerbsRcChannel.KilledPeerHelper", nullptr);
    ::_exit(127);
  }
  auto server = listener->accept(60s);
  server->set_io_timeout(60s);
  auto m = server->receive(30s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 7);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;
  const auto t0 = std::chrono::steady_clock::now();
  std::string what;
  EXPECT_EQ(kind_of([&] { server->receive(60s); }, &what), ErrorKind::peer_vanished) << what;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s) << what;
  std::cout << "killed peer: " << what << "\n";
}

TEST(VerbsRcChannel, PollFdWakesForMessagesAndDisconnects) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  EXPECT_FALSE(p.server->receive(0ms));
  pollfd pfd{p.server->poll_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);
  p.client->send(1, bytes_of("a"));
  p.client->send(2, bytes_of("b"));
  ASSERT_EQ(::poll(&pfd, 1, 30000), 1);
  auto m = p.server->receive(0ms);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 1);
  // The second message may already be polled off the CQ: poll_fd must still say so.
  ASSERT_EQ(::poll(&pfd, 1, 30000), 1);
  m = p.server->receive(0ms);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 2);
  EXPECT_FALSE(p.server->receive(0ms));
  EXPECT_EQ(::poll(&pfd, 1, 0), 0) << "poll_fd() readable with nothing to receive";
  p.client.reset();
  ASSERT_EQ(::poll(&pfd, 1, 30000), 1) << "a disconnect did not wake poll_fd()";
  EXPECT_EQ(kind_of([&] { p.server->receive(0ms); }), ErrorKind::peer_vanished);
}

// The completion event that woke poll_fd() must not keep it readable once its message is taken:
// an event loop that then receives with no wait would find nothing (and spin).
TEST(VerbsRcChannel, PollFdIsQuietOnceTheMessageIsTaken) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  pollfd pfd{p.server->poll_fd(), POLLIN, 0};
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(p.server->receive(0ms));  // nothing yet: the receive CQ is armed
    p.client->send(std::uint8_t(i), bytes_of("x"));
    ASSERT_EQ(::poll(&pfd, 1, 30000), 1);
    auto m = p.server->receive(0ms);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->type, i);
    EXPECT_EQ(::poll(&pfd, 1, 0), 0) << "poll_fd() still readable after message " << i << " was taken";
  }
}

TEST(VerbsRcChannel, QueuePairInErrorFailsClearlyNotHangs) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  auto& server = static_cast<RcReliableChannel&>(*p.server);
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  ASSERT_EQ(ibv_modify_qp(server.queue_pair(), &a, IBV_QP_STATE), 0);
  const auto t0 = std::chrono::steady_clock::now();
  std::string what;
  EXPECT_EQ(kind_of([&] { p.server->receive(60s); }, &what), ErrorKind::peer_vanished);
  EXPECT_NE(what.find("error state"), std::string::npos) << what;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);

  // The other end: its sends are never acknowledged; it must fail within its io timeout, not hang
  // (rdma_rxe retries forever at retry_count 7: the channel's own watchdog reports it; hardware
  // gives up after 7 retries first).
  p.client->set_io_timeout(5s);
  const auto t1 = std::chrono::steady_clock::now();
  const ErrorKind k = kind_of([&] {
    for (int i = 0; i < 10000; ++i) {
      p.client->send(1, std::vector<std::byte>(1000));
      std::this_thread::sleep_for(10ms);
    }
  }, &what);
  EXPECT_EQ(k, ErrorKind::peer_vanished) << what;
  EXPECT_NE(what.find("acknowledg"), std::string::npos) << what;
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 15s) << what;
  std::cout << "client side: " << what << "\n";
}

// The same silence seen while waiting to receive: nothing arrives, our last messages stay
// unacknowledged; receive() must say so within the io timeout instead of waiting out its own
// (longer) timeout or returning "nothing yet" forever.
TEST(VerbsRcChannel, UnacknowledgedSendsEndAWaitingReceive) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  auto& server = static_cast<RcReliableChannel&>(*p.server);
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  ASSERT_EQ(ibv_modify_qp(server.queue_pair(), &a, IBV_QP_STATE), 0);
  p.client->set_io_timeout(3s);
  p.client->send(1, bytes_of("are you there?"));
  const auto t0 = std::chrono::steady_clock::now();
  std::string what;
  EXPECT_EQ(kind_of([&] {
    for (int i = 0; i < 60; ++i) p.client->receive(1s);  // polls in short waits, like the engine
  }, &what), ErrorKind::peer_vanished);
  EXPECT_NE(what.find("acknowledg"), std::string::npos) << what;
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GT(took, 2s) << "reported before the io timeout: " << what;
  EXPECT_LT(took, 10s) << what;
}

// A SEND is a few path-MTU packets (see rc_reliable_channel.hpp, "Loss"), not 64 KiB.
TEST(VerbsRcChannel, SendsAreAFewPacketsOfThePortMtu) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  const auto port = find_roce_port(lab_ip_a());
  ASSERT_TRUE(port);
  EXPECT_EQ(static_cast<RcReliableChannel&>(*p.client).send_bytes(), std::size_t(kSendPackets) * port->active_mtu);
  RcOptions fixed;
  fixed.slot_bytes = 16 * 1024;
  RcPair q = make_pair(fixed);
  EXPECT_EQ(static_cast<RcReliableChannel&>(*q.client).send_bytes(), 16u * 1024);
}

TEST(VerbsRcChannel, ConnectWithoutListenerIsRefused) {
  HYMIG_REQUIRE_ROCE_LAB();
  std::uint16_t port = 0;
  {
    auto l = RcListener::open(lab_ip_b());
    port = l->port();
  }
  std::string what;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(kind_of([&] { connect_rc(lab_ip_a(), lab_ip_b() + ":" + std::to_string(port), 30s); }, &what),
            ErrorKind::peer_vanished);
  EXPECT_NE(what.find("hymig serve"), std::string::npos) << what;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
}

TEST(VerbsRcChannel, AcceptTimesOut) {
  HYMIG_REQUIRE_ROCE_LAB();
  auto l = RcListener::open(lab_ip_b());
  EXPECT_EQ(kind_of([&] { l->accept(200ms); }), ErrorKind::timeout);
  pollfd pfd{l->poll_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);
}

// ---- one-sided writes (RemoteWriter) --------------------------------------------------

// The final delta's path: the server exposes its target, the client registers its source once and
// WRITEs scattered pages (single pages, a contiguous run that is merged, a range larger than one
// WRITE, an odd-sized tail) to the same offsets, and a few from other local offsets (as the sealed
// layer does from its staging buffer); a SEND after them tells the server they are there. Every
// byte compared, and bytes the client did not write stay untouched.
TEST(VerbsRcChannel, WritesPagesIntoTheRegisteredRemoteImage) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  constexpr std::size_t kPage = 4096, kPages = 512;
  const auto source = random_bytes(kPages * kPage, 21);
  std::vector<std::byte> target(source.size(), std::byte{0xEE});
  RemoteWriter* out = p.client->remote_writer();
  RemoteWriter* in = p.server->remote_writer();
  ASSERT_NE(out, nullptr);
  ASSERT_NE(in, nullptr);
  const RemoteImage window = in->expose_target(target);
  EXPECT_EQ(window.bytes, target.size());
  out->register_source(source);
  out->set_remote_target(window);

  std::vector<bool> written(kPages, false);
  std::uint64_t bytes = 0;
  auto write_pages = [&](std::size_t first, std::size_t n) {
    out->write_remote(first * kPage, first * kPage, n * kPage);
    for (std::size_t i = first; i < first + n; ++i) written[i] = true;
    bytes += n * kPage;
  };
  for (std::size_t i = 0; i < 200; i += 3) write_pages(i, 1);  // scattered
  for (std::size_t i = 300; i < 340; ++i) write_pages(i, 1);   // contiguous: merged up to one SEND's size
  write_pages(400, 37);                                        // one call, many WRITEs
  out->write_remote(kPages * kPage - 100, kPages * kPage - 100, 100);                // a tail that is not a page
  bytes += 100;
  // From elsewhere in the source: pages 450..459 get the bytes of pages 0..9.
  for (std::size_t i = 0; i < 10; ++i) out->write_remote(i * kPage, (450 + i) * kPage, kPage);
  bytes += 10 * kPage;
  out->wait_writes();
  p.client->send(7, bytes_of("written"));
  auto m = p.server->receive(60s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 7);
  EXPECT_EQ(out->bytes_written(), bytes);
  for (std::size_t i = 0; i < kPages; ++i) {
    const std::size_t n = i + 1 == kPages ? kPage - 100 : kPage;  // the last page's tail is checked below
    if (i >= 450 && i < 460) {
      ASSERT_EQ(0, std::memcmp(target.data() + i * kPage, source.data() + (i - 450) * kPage, n)) << "page " << i;
    } else if (written[i]) {
      ASSERT_EQ(0, std::memcmp(target.data() + i * kPage, source.data() + i * kPage, n)) << "page " << i;
    } else {
      for (std::size_t k = 0; k < n; ++k) ASSERT_EQ(target[i * kPage + k], std::byte{0xEE}) << "page " << i << " was not written";
    }
  }
  EXPECT_EQ(0, std::memcmp(target.data() + target.size() - 100, source.data() + source.size() - 100, 100));
  // The channel goes on carrying messages both ways after the writes.
  p.server->send(8, bytes_of("ok"));
  m = p.client->receive(60s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 8);
}

TEST(VerbsRcChannel, WriteRangesAreChecked) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  const auto source = random_bytes(64 * 1024, 22);
  std::vector<std::byte> small(32 * 1024);
  RemoteWriter* out = p.client->remote_writer();
  EXPECT_THROW(out->write_remote(0, 0, 4096), std::logic_error);  // nothing registered yet
  out->register_source(source);
  out->set_remote_target(p.server->remote_writer()->expose_target(small));
  EXPECT_EQ(kind_of([&] { out->write_remote(0, 30 * 1024, 4096); }), ErrorKind::protocol);  // beyond the window
  EXPECT_EQ(kind_of([&] { out->write_remote(60 * 1024, 0, 8192); }), ErrorKind::usage);     // beyond the source
}

// A key the peer never handed out: the responder refuses the WRITE; the writer fails with a clear
// error, and the channel reports it again on every later call instead of hanging.
TEST(VerbsRcChannel, WriteWithABadKeyIsRefusedClearly) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  p.client->set_io_timeout(10s);
  const auto source = random_bytes(64 * 1024, 23);
  std::vector<std::byte> target(source.size());
  RemoteWriter* out = p.client->remote_writer();
  RemoteImage window = p.server->remote_writer()->expose_target(target);
  window.key ^= 0x5a5a00;
  out->register_source(source);
  out->set_remote_target(window);
  std::string what;
  const ErrorKind k = kind_of([&] {
    for (int i = 0; i < 16; ++i) out->write_remote(std::size_t(i) * 4096, std::size_t(i) * 4096, 4096);
    p.client->send(1, bytes_of("done"));
    for (int i = 0; i < 100; ++i) p.client->receive(200ms);  // completions are reaped while waiting
  }, &what);
  EXPECT_TRUE(k == ErrorKind::protocol || k == ErrorKind::peer_vanished) << what;
  EXPECT_NE(what.find("RC"), std::string::npos) << what;
  std::cout << "bad key: " << what << "\n";
  EXPECT_THROW(p.client->send(2, bytes_of("again")), Error);
}

// The writer's queue pair in the error state mid-delta: the writes fail with a clear error (the
// engine then resumes the source and the destination discards), never a hang.
TEST(VerbsRcChannel, WritesOnAQueuePairInErrorFailClearly) {
  HYMIG_REQUIRE_ROCE_LAB();
  RcPair p = make_pair();
  p.client->set_io_timeout(5s);
  const auto source = random_bytes(256 * 1024, 24);
  std::vector<std::byte> target(source.size());
  RemoteWriter* out = p.client->remote_writer();
  out->register_source(source);
  out->set_remote_target(p.server->remote_writer()->expose_target(target));
  for (int i = 0; i < 8; ++i) out->write_remote(std::size_t(i) * 4096, std::size_t(i) * 4096, 4096);
  out->flush_writes();
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  ASSERT_EQ(ibv_modify_qp(static_cast<RcReliableChannel&>(*p.client).queue_pair(), &a, IBV_QP_STATE), 0);
  std::string what;
  const auto t0 = std::chrono::steady_clock::now();
  const ErrorKind k = kind_of([&] {
    for (int i = 8; i < 64; ++i) out->write_remote(std::size_t(i) * 4096, std::size_t(i) * 4096, 4096);
    out->flush_writes();
    p.client->send(1, bytes_of("done"));
    for (int i = 0; i < 100; ++i) p.client->receive(200ms);
  }, &what);
  EXPECT_TRUE(k == ErrorKind::peer_vanished || k == ErrorKind::io) << what;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s) << what;
  std::cout << "queue pair in error: " << what << "\n";
}

}  // namespace
}  // namespace hymig::verbs
