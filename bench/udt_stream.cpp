// hymig-udtstream: UDT (Debian's libudt), the classic UDP-based bulk transfer protocol, as a peer
// hymig is compared against. Same shape as hymig-tcpstream: one connection moves one in-memory
// buffer (an 8-byte little-endian length, then the bytes); each side prints one JSON line.
//
//   hymig-udtstream --listen HOST:PORT                 receiver: accepts one connection
//   hymig-udtstream --connect HOST:PORT --bytes SIZE   sender
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <thread>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <udt/udt.h>

#include "bench/stream_buffer.hpp"
#include "bench/stream_tool.hpp"
#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "core/units.hpp"

namespace hymig::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kChunk = 64 << 20;                      // UDT's send/recv take an int length
constexpr int kIoTimeoutMs = 30000;                    // a vanished peer fails the run, never hangs it
constexpr auto kConnectPatience = std::chrono::seconds(5);

[[noreturn]] void throw_udt(const std::string& what) {
  throw Error(ErrorKind::io, what + ": " + UDT::getlasterror_desc());
}

// UDT's own threads and sockets live between startup() and cleanup().
struct UdtLibrary {
  UdtLibrary() { UDT::startup(); }
  ~UdtLibrary() { UDT::cleanup(); }
};

class UdtSocket {
 public:
  struct Adopt {};
  UdtSocket(Adopt, UDTSOCKET s) : s_(s) {}
  explicit UdtSocket(int family) : s_(UDT::socket(family, SOCK_STREAM, 0)) {
    if (s_ == UDT::INVALID_SOCK) throw_udt("UDT socket()");
    const int timeout = kIoTimeoutMs;
    UDT::setsockopt(s_, 0, UDT_SNDTIMEO, &timeout, sizeof timeout);
    UDT::setsockopt(s_, 0, UDT_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~UdtSocket() {
    if (s_ != UDT::INVALID_SOCK) UDT::close(s_);
  }
  UdtSocket(const UdtSocket&) = delete;
  UdtSocket& operator=(const UdtSocket&) = delete;
  UDTSOCKET get() const { return s_; }

 private:
  UDTSOCKET s_;
};

void send_all(UDTSOCKET s, const std::byte* p, std::uint64_t n) {
  while (n > 0) {
    const int w = UDT::send(s, reinterpret_cast<const char*>(p), static_cast<int>(std::min<std::uint64_t>(n, kChunk)), 0);
    if (w == UDT::ERROR) throw_udt("UDT send to the receiver");
    p += w;
    n -= static_cast<std::uint64_t>(w);
  }
}

// Reads up to n bytes; returns how many arrived before the connection ended (a capped sender).
std::uint64_t recv_until_close(UDTSOCKET s, std::byte* p, std::uint64_t n) {
  std::uint64_t got = 0;
  while (got < n) {
    const int r = UDT::recv(s, reinterpret_cast<char*>(p + got), static_cast<int>(std::min<std::uint64_t>(n - got, kChunk)), 0);
    if (r == UDT::ERROR) break;
    got += static_cast<std::uint64_t>(r);
  }
  return got;
}

void recv_all(UDTSOCKET s, std::byte* p, std::uint64_t n, const char* what) {
  const std::uint64_t got = recv_until_close(s, p, n);
  if (got != n)
    throw_udt(std::string("UDT recv of the ") + what + " after " + std::to_string(got) + " of " + std::to_string(n) +
              " bytes");
}

int run_receiver(const std::string& where, std::uint64_t expect) {
  // With --bytes the buffer is populated before listening, outside the measured window.
  Mapping early = expect ? populated_buffer(expect) : Mapping();
  const SocketAddress addr = resolve_host_port(where, SOCK_DGRAM, true).front();
  UdtSocket listener(addr.family());
  if (UDT::bind(listener.get(), addr.get(), static_cast<int>(addr.length)) == UDT::ERROR)
    throw_udt("UDT bind " + where + " (is the port in use or the address not local?)");
  if (UDT::listen(listener.get(), 1) == UDT::ERROR) throw_udt("UDT listen on " + where);
  SocketAddress bound;
  int len = sizeof bound.storage;
  UDT::getsockname(listener.get(), bound.get(), &len);
  bound.length = static_cast<socklen_t>(len);
  // Scripts and hymig-bench wait for this line (and learn the port when PORT was 0).
  std::cerr << "hymig-udtstream: listening on " << format_address(bound) << std::endl;

  SocketAddress peer;
  int plen = sizeof peer.storage;
  UdtSocket conn(UdtSocket::Adopt{}, UDT::accept(listener.get(), peer.get(), &plen));
  if (conn.get() == UDT::INVALID_SOCK) throw_udt("UDT accept");
  const auto start = Clock::now();
  mark_cpu_start();
  LengthHeader header;
  recv_all(conn.get(), header.data(), header.size(), "length header");
  const std::uint64_t size = decode_length_header(header, expect, "hymig-udtstream");
  Mapping buffer = expect ? std::move(early) : populated_buffer(size);
  const std::uint64_t got = recv_until_close(conn.get(), buffer.data(), size);
  const auto elapsed = Clock::now() - start;
  if (got != size) {
    // A sender capped by --max-seconds (or one that died): report what arrived, marked incomplete.
    print_stream_report("receiver", got, elapsed, false);
    std::cerr << "hymig-udtstream: the connection ended after " << got << " of " << size << " bytes: "
              << UDT::getlasterror_desc() << "\n";
    return 1;
  }
  // The acknowledgement ends the sender's clock: UDT has no half-close to wait for.
  const std::byte ack{1};
  send_all(conn.get(), &ack, 1);
  print_stream_report("receiver", size, elapsed, true);
  return 0;
}

int run_sender(const std::string& where, std::uint64_t size, double max_seconds) {
  Mapping buffer = populated_buffer(size);
  fill_incompressible(buffer.span());  // before the clock starts
  const SocketAddress addr = resolve_host_port(where, SOCK_DGRAM, false).front();

  const auto start = Clock::now();
  mark_cpu_start();
  // The receiver may still be starting: UDT gives up on one connect after a few seconds.
  std::unique_ptr<UdtSocket> conn;
  for (;;) {
    conn = std::make_unique<UdtSocket>(addr.family());
    if (UDT::connect(conn->get(), addr.get(), static_cast<int>(addr.length)) != UDT::ERROR) break;
    if (Clock::now() - start > kConnectPatience)
      throw_udt("UDT connect to " + where + " (is `hymig-udtstream --listen` running there?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const LengthHeader header = encode_length_header(size);
  send_all(conn->get(), header.data(), header.size());
  // Small slices: under loss UDT moves a few MB/s, and the cap is checked between slices.
  const std::uint64_t sent = send_capped(size, max_seconds, 4 << 20, start, [&](std::uint64_t at, std::uint64_t n) {
    send_all(conn->get(), buffer.data() + at, n);
  });
  if (sent != size) {
    // Closing without linger: the receiver reports the bytes that really arrived.
    const linger no_linger{0, 0};
    UDT::setsockopt(conn->get(), 0, UDT_LINGER, &no_linger, sizeof no_linger);
    print_stream_report("sender", sent, Clock::now() - start, false);
    return 0;
  }
  std::byte ack{};
  recv_all(conn->get(), &ack, 1, "acknowledgement");
  print_stream_report("sender", size, Clock::now() - start, true);
  return 0;
}

int run(int argc, char** argv) {
  const auto args = parse_stream_args(
      argc, argv, "hymig-udtstream",
      "hymig-udtstream: UDT peer; moves one in-memory buffer over one UDT connection.\n"
      "The sender's time runs from connect until the receiver acknowledges every byte. A peer silent\n"
      "for 30 s fails the run");
  if (!args) return 0;
  UdtLibrary udt;
  if (args->listen) return run_receiver(args->where, args->bytes);
  return run_sender(args->where, args->bytes, args->max_seconds);
}

}  // namespace
}  // namespace hymig::bench

int main(int argc, char** argv) {
  return hymig::bench::stream_tool_main("hymig-udtstream", [&] { return hymig::bench::run(argc, argv); });
}
