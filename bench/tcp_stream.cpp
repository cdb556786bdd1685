// hymig-tcpstream: the raw-TCP baseline hymig is compared against. One connection moves one
// in-memory buffer: an 8-byte little-endian length, then the bytes. Each side prints one JSON line.
//
//   hymig-tcpstream --listen HOST:PORT                 receiver: accepts one connection
//   hymig-tcpstream --connect HOST:PORT --bytes SIZE   sender
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>


#include "bench/stream_buffer.hpp"
#include "bench/stream_tool.hpp"
#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "core/unique_fd.hpp"

namespace hymig {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxIo = std::size_t{1} << 30;  // Linux moves at most ~2 GiB per call anyway
constexpr auto kConnectPatience = std::chrono::seconds(5);

// ---- sockets ----

UniqueFd listen_on(const std::string& where) {
  const SocketAddress a = resolve_host_port(where, SOCK_STREAM, true).front();
  UniqueFd fd(::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket() for --listen " + where);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // rerun right after a previous run
  if (::bind(fd.get(), a.get(), a.length) != 0)
    throw_errno("bind " + where + " (is the port in use or the address not local?)");
  if (::listen(fd.get(), 1) != 0) throw_errno("listen on " + where);
  return fd;
}

// The listener may still be starting: retry refused connections until the patience runs out.
UniqueFd connect_to(const std::string& where) {
  const auto deadline = Clock::now() + kConnectPatience;
  int last_err = 0;
  std::string last_addr = where;
  for (;;) {
    for (const SocketAddress& a : resolve_host_port(where, SOCK_STREAM, false)) {
      UniqueFd fd(::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd) throw_errno("socket() for --connect " + where);
      if (::connect(fd.get(), a.get(), a.length) == 0) return fd;
      last_err = errno;
      last_addr = format_address(a);
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw_errno("connect to " + last_addr + " for 5 s (is `hymig-tcpstream --listen` running there?)", last_err);
}

void send_all(int fd, const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, std::min(n, kMaxIo), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_errno("send to the receiver");
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Reads up to n bytes; returns how many arrived before the sender closed.
std::uint64_t recv_until_close(int fd, std::uint8_t* p, std::uint64_t n) {
  std::uint64_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, p + got, std::min<std::uint64_t>(n - got, kMaxIo), 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno("recv of the data from the sender");
    }
    if (r == 0) break;
    got += static_cast<std::uint64_t>(r);
  }
  return got;
}

void recv_all(int fd, std::uint8_t* p, std::uint64_t n, const char* what) {
  const std::uint64_t got = recv_until_close(fd, p, n);
  if (got != n)
    throw Error(ErrorKind::peer_vanished, "the sender closed after " + std::to_string(got) + " of " +
                                              std::to_string(n) + " bytes of the " + what);
}

// ---- the two roles ----

int run_receiver(const std::string& where, std::uint64_t expect) {
  // With --bytes the buffer is populated before listening, outside the measured window.
  Mapping early = expect ? bench::populated_buffer(expect) : Mapping();
  UniqueFd listener = listen_on(where);
  // Scripts wait for this line (and learn the port when PORT was 0).
  std::cerr << "hymig-tcpstream: listening on " << format_address(local_address_of(listener.get())) << std::endl;

  UniqueFd conn;
  for (;;) {
    conn.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (conn) break;
    if (errno != EINTR && errno != ECONNABORTED) throw_errno("accept on the listening socket");
  }
  listener.reset();
  const auto start = Clock::now();
  bench::mark_cpu_start();

  bench::LengthHeader header;
  recv_all(conn.get(), reinterpret_cast<std::uint8_t*>(header.data()), header.size(), "length header");
  const std::uint64_t size = bench::decode_length_header(header, expect, "hymig-tcpstream");
  const auto before_alloc = Clock::now();
  Mapping buffer = expect ? std::move(early) : bench::populated_buffer(size);
  const auto prefault = Clock::now() - before_alloc;  // inside the window: reported apart
  auto* data = reinterpret_cast<std::uint8_t*>(buffer.data());
  // A sender capped by --max-seconds closes early: report what arrived, marked incomplete.
  const std::uint64_t got = recv_until_close(conn.get(), data, size);
  conn.reset();  // the close is what the sender waits for
  bench::print_stream_report("receiver", got, Clock::now() - start, got == size, prefault);
  if (got != size) {
    std::cerr << "hymig-tcpstream: the sender closed after " << got << " of " << size << " bytes\n";
    return 1;
  }
  return 0;
}

int run_sender(const std::string& where, std::uint64_t size, double max_seconds) {
  Mapping buffer = bench::populated_buffer(size);
  bench::fill_incompressible(buffer.span());  // before the clock starts
  auto* data = reinterpret_cast<std::uint8_t*>(buffer.data());

  const auto start = Clock::now();
  bench::mark_cpu_start();
  UniqueFd conn = connect_to(where);
  const bench::LengthHeader header = bench::encode_length_header(size);
  send_all(conn.get(), reinterpret_cast<const std::uint8_t*>(header.data()), header.size());
  const std::uint64_t sent = bench::send_capped(size, max_seconds, 16 << 20, start, [&](std::uint64_t at, std::uint64_t n) {
    send_all(conn.get(), data + at, n);
  });
  if (::shutdown(conn.get(), SHUT_WR) != 0) throw_errno("shutdown(SHUT_WR) after sending");

  // The receiver closes once it holds every byte; that close ends the measurement.
  char dummy;
  for (;;) {
    ssize_t r = ::recv(conn.get(), &dummy, 1, 0);
    if (r == 0) break;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw_errno("waiting for the receiver to close");
    throw Error(ErrorKind::protocol, "the receiver sent data; expected it to only close");
  }
  bench::print_stream_report("sender", sent, Clock::now() - start, sent == size);
  return 0;
}

int run(int argc, char** argv) {
  const auto args = bench::parse_stream_args(
      argc, argv, "hymig-tcpstream",
      "hymig-tcpstream: raw-TCP baseline; moves one in-memory buffer over one TCP connection.\n"
      "The sender's time runs from connect until the receiver closes, the receiver's from accept until\n"
      "it holds every byte; without --bytes the receiver also reports prefault_seconds, the part of its\n"
      "time spent populating its buffer after learning the size");
  if (!args) return 0;
  if (args->listen) return run_receiver(args->where, args->bytes);
  return run_sender(args->where, args->bytes, args->max_seconds);
}

}  // namespace
}  // namespace hymig

int main(int argc, char** argv) {
  return hymig::bench::stream_tool_main("hymig-tcpstream", [&] { return hymig::run(argc, argv); });
}
