// TcpReliableChannel, TcpListener and connect_tcp over real sockets on loopback.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "tcp/tcp_connect.hpp"
#include "tcp/tcp_frame.hpp"
#include "tcp/tcp_listener.hpp"

namespace hymig {
namespace {

using namespace std::chrono_literals;

// Runs the sending side on its own thread; joins on destruction (also when an ASSERT returns early)
// and turns an exception there into a test failure instead of std::terminate.
class Background {
 public:
  explicit Background(std::function<void()> f)
      : thread_([this, f = std::move(f)] {
          try {
            f();
          } catch (const std::exception& e) {
            error_ = e.what();
          }
        }) {}
  ~Background() { join(); }
  void join() {
    if (!thread_.joinable()) return;
    thread_.join();
    EXPECT_EQ(error_, "") << "sender thread failed";
  }

 private:
  std::string error_;
  std::thread thread_;
};

std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }
std::string text_of(std::span<const std::byte> b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

struct Connected {
  std::unique_ptr<TcpReliableChannel> client;
  std::unique_ptr<TcpReliableChannel> server;
};

Connected connect_pair() {
  TcpListener listener = TcpListener::listen("127.0.0.1:0");
  Connected c;
  c.client = connect_tcp(listener.local_address(), 2s);
  c.server = listener.accept(2s);
  if (!c.server) throw std::runtime_error("accept timed out");
  return c;
}

// A plain socket connected to a channel's server side, to write arbitrary bytes.
struct RawClient {
  UniqueFd fd;
  std::unique_ptr<TcpReliableChannel> server;

  RawClient() {
    TcpListener listener = TcpListener::listen("127.0.0.1:0");
    const SocketAddress address = resolve_host_port(listener.local_address(), SOCK_STREAM, false).front();
    fd = UniqueFd(::socket(AF_INET, SOCK_STREAM, 0));
    if (::connect(fd.get(), address.get(), address.length) != 0) throw std::runtime_error("raw connect failed");
    server = listener.accept(2s);
  }
  void write(const void* data, std::size_t n) {
    ASSERT_EQ(::send(fd.get(), data, n, MSG_NOSIGNAL), ssize_t(n));
  }
};

void expect_error(const std::function<void()>& f, ErrorKind kind, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(int(e.kind()), int(kind)) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TcpChannel, AddressesAndName) {
  auto c = connect_pair();
  EXPECT_EQ(c.client->transport_name(), "tcp");
  EXPECT_EQ(c.client->local_host(), "127.0.0.1");
  EXPECT_EQ(c.client->peer_host(), "127.0.0.1");
  EXPECT_EQ(c.client->peer_address(), c.server->local_address());
  EXPECT_EQ(c.server->peer_address(), c.client->local_address());
}

TEST(TcpChannel, BodiesRoundTripInOrder) {
  auto c = connect_pair();
  std::mt19937 rng(7);
  std::vector<std::string> bodies = {"", "hello", std::string(1 << 20, 'x')};  // empty and exactly max_body
  for (int i = 0; i < 100; ++i) {
    std::string b(rng() % 3000, '\0');
    for (char& ch : b) ch = char(rng());
    bodies.push_back(b);
  }
  Background sender([&] {
    for (std::size_t i = 0; i < bodies.size(); ++i) c.client->send(std::uint8_t(i), bytes_of(bodies[i]));
  });
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    auto m = c.server->receive(5s);
    ASSERT_TRUE(m.has_value()) << "message " << i;
    EXPECT_EQ(m->type, std::uint8_t(i));
    EXPECT_EQ(m->payload_bytes, 0u);
    ASSERT_EQ(text_of(m->body), bodies[i]) << "message " << i;
  }
  sender.join();
  EXPECT_EQ(c.client->stats().messages_sent, bodies.size());
  EXPECT_EQ(c.server->stats().messages_received, bodies.size());
  EXPECT_EQ(c.client->stats().bytes_sent, c.server->stats().bytes_received);
}

TEST(TcpChannel, LargeScatteredPayloadRoundTrips) {
  auto c = connect_pair();
  const std::size_t total = 8u << 20;
  std::vector<std::byte> image(total);
  std::mt19937 rng(3);
  for (auto& b : image) b = std::byte(rng());
  // Sender gathers from many pieces (4 KiB pages and odd sizes); receiver scatters into others.
  std::vector<ConstBuffer> out;
  for (std::size_t off = 0; off < total;) {
    const std::size_t n = std::min<std::size_t>(total - off, out.size() % 3 == 0 ? 4096 : 1 + rng() % 20000);
    out.push_back(ConstBuffer{image.data() + off, n});
    off += n;
  }
  ASSERT_GT(out.size(), 1024u);  // more pieces than one sendmsg takes
  const std::string body = "page batch";
  Background sender([&] {
    c.client->send_with_payload(42, bytes_of(body), out);
    c.client->send(43, {});
  });

  auto m = c.server->receive(5s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 42);
  EXPECT_EQ(text_of(m->body), body);
  ASSERT_EQ(m->payload_bytes, total);
  std::vector<std::byte> target(total, std::byte{0});
  std::vector<MutableBuffer> dst;
  for (std::size_t off = 0; off < total;) {
    const std::size_t n = std::min<std::size_t>(total - off, 1 + rng() % 300000);
    dst.push_back(MutableBuffer{target.data() + off, n});
    off += n;
  }
  c.server->receive_payload(dst);
  EXPECT_TRUE(std::equal(image.begin(), image.end(), target.begin()));
  auto next = c.server->receive(5s);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->type, 43);
  sender.join();
}

TEST(TcpChannel, PayloadMustBeReadOrDiscarded) {
  auto c = connect_pair();
  std::vector<std::byte> payload(100000, std::byte{0x5A});
  const ConstBuffer part{payload.data(), payload.size()};
  c.client->send_with_payload(1, {}, std::span(&part, 1));
  c.client->send(2, bytes_of("after"));

  auto m = c.server->receive(2s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload_bytes, payload.size());
  EXPECT_THROW(c.server->receive(0ms), std::logic_error);
  std::vector<std::byte> small(10);
  const MutableBuffer wrong{small.data(), small.size()};
  EXPECT_THROW(c.server->receive_payload(std::span(&wrong, 1)), std::logic_error);
  c.server->discard_payload();
  auto after = c.server->receive(2s);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->type, 2);
  EXPECT_EQ(text_of(after->body), "after");
}

TEST(TcpChannel, ReceiveTimesOutWithNullopt) {
  auto c = connect_pair();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.server->receive(50ms).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 49ms);
  EXPECT_FALSE(c.server->receive(0ms).has_value());
  c.client->send(9, bytes_of("late"));  // the channel still works after a timeout
  auto m = c.server->receive(2s);
  ASSERT_TRUE(m);
  EXPECT_EQ(text_of(m->body), "late");
}

TEST(TcpChannel, PeerCloseIsPeerVanished) {
  auto c = connect_pair();
  const std::string where = c.server->peer_address();
  c.client.reset();
  expect_error([&] { c.server->receive(2s); }, ErrorKind::peer_vanished, "peer " + where + " closed the connection");
}

TEST(TcpChannel, PeerCloseMidFrameIsPeerVanished) {
  RawClient raw;
  const auto header = encode_frame_header(FrameHeader{1, 100, 0});
  raw.write(header.data(), header.size());
  raw.write("abc", 3);
  raw.fd.reset();
  expect_error([&] { raw.server->receive(2s); }, ErrorKind::peer_vanished, "middle of a frame body");
}

TEST(TcpChannel, SendToClosedPeerIsPeerVanished) {
  auto c = connect_pair();
  c.server.reset();
  std::vector<std::byte> chunk(1 << 16);
  expect_error(
      [&] {
        for (int i = 0; i < 1000; ++i) {
          c.client->send(1, chunk);
          std::this_thread::sleep_for(1ms);
        }
      },
      ErrorKind::peer_vanished, c.client->peer_address());
}

TEST(TcpChannel, BadMagicIsProtocolErrorAndSticks) {
  RawClient raw;
  raw.write("GET / HTTP/1.1\r\n\r\n", 18);
  expect_error([&] { raw.server->receive(2s); }, ErrorKind::protocol, "bad frame magic");
  expect_error([&] { raw.server->receive(0ms); }, ErrorKind::protocol, "unusable after an earlier error");
}

TEST(TcpChannel, OversizedFramesAreRejectedBeforeReading) {
  {
    RawClient raw;
    const auto header = encode_frame_header(FrameHeader{1, 9999999, 0});
    raw.write(header.data(), header.size());
    expect_error([&] { raw.server->receive(2s); }, ErrorKind::protocol, "frame body 9999999 bytes exceeds limit 1048576");
  }
  {
    RawClient raw;
    raw.server->set_limits(64, 1000);
    const auto header = encode_frame_header(FrameHeader{1, 0, 0xFFFFFFFF});
    raw.write(header.data(), header.size());
    expect_error([&] { raw.server->receive(2s); }, ErrorKind::protocol, "frame payload 4294967295 bytes exceeds limit 1000");
  }
}

TEST(TcpChannel, StalledFrameTimesOut) {
  RawClient raw;
  raw.server->set_io_timeout(100ms);
  const auto header = encode_frame_header(FrameHeader{1, 10, 0});
  raw.write(header.data(), 5);  // half a header, then silence
  expect_error([&] { raw.server->receive(1s); }, ErrorKind::timeout, "sent nothing for 100 ms");
}

// A peer that trickles a frame a byte at a time, each gap shorter than the io timeout, gains
// nothing: the frame must finish by its deadline (the io timeout plus 64 KiB/s of its length).
TEST(TcpChannel, DribbledFrameFailsAtItsDeadline) {
  RawClient raw;
  raw.server->set_io_timeout(300ms);
  const auto header = encode_frame_header(FrameHeader{1, 100, 0});
  std::thread dribbler([&] {
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (::send(raw.fd.get(), header.data() + i, 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(100ms);  // 16 bytes would take 1.6 s
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  expect_error([&] { raw.server->receive(2s); }, ErrorKind::timeout, "in time");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms);
  ::shutdown(raw.fd.get(), SHUT_RDWR);
  dribbler.join();
}

TEST(TcpChannel, StalledReceiverTimesOutTheSender) {
  auto c = connect_pair();
  c.client->set_io_timeout(200ms);
  std::vector<std::byte> chunk(1 << 20);
  expect_error(
      [&] {
        for (int i = 0; i < 10000; ++i) c.client->send(1, chunk);  // nobody reads
      },
      ErrorKind::timeout, "200 ms");  // ours, or the kernel's TCP_USER_TIMEOUT: whichever is first
}

TEST(TcpListener, AcceptTimesOutWithNull) {
  TcpListener listener = TcpListener::listen("127.0.0.1:0");
  EXPECT_NE(listener.port(), 0);
  EXPECT_EQ(listener.local_address(), "127.0.0.1:" + std::to_string(listener.port()));
  EXPECT_EQ(listener.accept(20ms), nullptr);
}

TEST(TcpListener, PortInUseNamesTheAddress) {
  TcpListener first = TcpListener::listen("127.0.0.1:0");
  expect_error([&] { TcpListener::listen(first.local_address()); }, ErrorKind::io,
               "cannot listen on " + first.local_address());
}

TEST(TcpListener, Ipv6) {
  std::unique_ptr<TcpReliableChannel> client, server;
  try {
    TcpListener listener = TcpListener::listen("[::1]:0");
    client = connect_tcp(listener.local_address(), 2s);
    server = listener.accept(2s);
  } catch (const Error& e) {
    GTEST_SKIP() << "no IPv6 loopback: " << e.what();
  }
  ASSERT_TRUE(server);
  EXPECT_EQ(server->local_host(), "::1");
  client->send(5, bytes_of("v6"));
  auto m = server->receive(2s);
  ASSERT_TRUE(m);
  EXPECT_EQ(text_of(m->body), "v6");
}

TEST(TcpConnect, ClosedPortIsAClearError) {
  std::string address;
  {
    TcpListener gone = TcpListener::listen("127.0.0.1:0");
    address = gone.local_address();
  }
  expect_error([&] { connect_tcp(address, 2s); }, ErrorKind::peer_vanished,
               "cannot connect to " + address + ": Connection refused — is `hymig serve` running there?");
}

TEST(TcpConnect, MalformedAddressIsUsage) {
  expect_error([&] { connect_tcp("10.0.0.2", 1s); }, ErrorKind::usage, "expected HOST:PORT");
}

}  // namespace
}  // namespace hymig
