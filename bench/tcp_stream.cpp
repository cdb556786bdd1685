// hymig-tcpstream: the raw-TCP baseline hymig is compared against. One connection moves one
// in-memory buffer: an 8-byte little-endian length, then the bytes. Each side prints one JSON line.
//
//   hymig-tcpstream --listen HOST:PORT                 receiver: accepts one connection
//   hymig-tcpstream --connect HOST:PORT --bytes SIZE   sender
#include <netdb.h>
#include <netinet/in.h>
#include <sys/mman.h>
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

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "bench/stream_buffer.hpp"
#include "bench/stream_tool.hpp"
#include "transport/error.hpp"
#include "transport/unique_fd.hpp"

namespace hymig {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxIo = std::size_t{1} << 30;  // Linux moves at most ~2 GiB per call anyway
constexpr auto kConnectPatience = std::chrono::seconds(5);

// ---- arguments ----

struct Endpoint {
  std::string host;
  std::string port;
};

Endpoint parse_endpoint(const std::string& s, const char* flag) {
  auto bad = [&] {
    return Error(ErrorKind::usage,
                 std::string(flag) + " wants HOST:PORT (or [V6ADDR]:PORT), got '" + s + "'");
  };
  Endpoint e;
  std::size_t colon;
  if (!s.empty() && s.front() == '[') {
    std::size_t close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') throw bad();
    e.host = s.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = s.rfind(':');
    if (colon == std::string::npos) throw bad();
    e.host = s.substr(0, colon);
  }
  e.port = s.substr(colon + 1);
  if (e.host.empty() || e.port.empty() || e.port.find_first_not_of("0123456789") != std::string::npos) throw bad();
  return e;
}

// ---- sockets ----

struct AddrinfoFree {
  void operator()(addrinfo* p) const { ::freeaddrinfo(p); }
};

std::unique_ptr<addrinfo, AddrinfoFree> resolve(const Endpoint& e, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(e.host.c_str(), e.port.c_str(), &hints, &res);
  if (rc != 0)
    throw Error(ErrorKind::usage, "cannot resolve " + e.host + ":" + e.port + ": " + gai_strerror(rc));
  return std::unique_ptr<addrinfo, AddrinfoFree>(res);
}

std::string describe(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST], port[NI_MAXSERV];
  if (::getnameinfo(sa, len, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return "?";
  return sa->sa_family == AF_INET6 ? "[" + std::string(host) + "]:" + port : std::string(host) + ":" + port;
}

UniqueFd listen_on(const Endpoint& e) {
  auto addrs = resolve(e, true);
  const addrinfo* a = addrs.get();
  UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
  if (!fd) throw_errno("socket() for --listen " + e.host + ":" + e.port);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // rerun right after a previous run
  if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0)
    throw_errno("bind " + e.host + ":" + e.port + " (is the port in use or the address not local?)");
  if (::listen(fd.get(), 1) != 0) throw_errno("listen on " + e.host + ":" + e.port);
  return fd;
}

// The listener may still be starting: retry refused connections until the patience runs out.
UniqueFd connect_to(const Endpoint& e) {
  const auto deadline = Clock::now() + kConnectPatience;
  int last_err = 0;
  std::string last_addr = e.host + ":" + e.port;
  for (;;) {
    auto addrs = resolve(e, false);
    for (const addrinfo* a = addrs.get(); a; a = a->ai_next) {
      UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
      if (!fd) throw_errno("socket() for --connect " + last_addr);
      if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) return fd;
      last_err = errno;
      last_addr = describe(a->ai_addr, a->ai_addrlen);
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

void recv_all(int fd, std::uint8_t* p, std::size_t n, const char* what) {
  const std::size_t total = n;
  while (n > 0) {
    ssize_t r = ::recv(fd, p, std::min(n, kMaxIo), 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(std::string("recv of the ") + what + " from the sender");
    }
    if (r == 0)
      throw Error(ErrorKind::peer_vanished, std::string("the sender closed after ") + std::to_string(total - n) +
                                                " of " + std::to_string(total) + " bytes of the " + what);
    p += r;
    n -= static_cast<std::size_t>(r);
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

// ---- the two roles ----

int run_receiver(const Endpoint& where, std::uint64_t expect) {
  // With --bytes the buffer is populated before listening, outside the measured window.
  Mapping early = expect ? bench::populated_buffer(expect) : Mapping();
  UniqueFd listener = listen_on(where);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  // Scripts wait for this line (and learn the port when PORT was 0).
  std::cerr << "hymig-tcpstream: listening on " << describe(reinterpret_cast<sockaddr*>(&bound), len) << std::endl;

  UniqueFd conn;
  for (;;) {
    conn.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (conn) break;
    if (errno != EINTR && errno != ECONNABORTED) throw_errno("accept on the listening socket");
  }
  listener.reset();
  const auto start = Clock::now();

  std::uint8_t header[8];
  recv_all(conn.get(), header, sizeof header, "length header");
  std::uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = (size << 8) | header[i];
  if (size == 0 || size > (std::uint64_t{1} << 46))
    throw Error(ErrorKind::protocol, "the sender announced " + std::to_string(size) +
                                         " bytes; expected 1 byte to 64 TiB (is it a hymig-tcpstream sender?)");
  if (expect && size != expect)
    throw Error(ErrorKind::protocol, "the sender announced " + std::to_string(size) + " bytes; --bytes said " +
                                         std::to_string(expect));
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

int run_sender(const Endpoint& where, std::uint64_t size, double max_seconds) {
  Mapping buffer = bench::populated_buffer(size);
  bench::fill_incompressible(buffer.span());  // before the clock starts
  auto* data = reinterpret_cast<std::uint8_t*>(buffer.data());

  const auto start = Clock::now();
  UniqueFd conn = connect_to(where);
  std::uint8_t header[8];
  for (int i = 0; i < 8; ++i) header[i] = static_cast<std::uint8_t>(size >> (8 * i));
  send_all(conn.get(), header, sizeof header);
  // With a cap, send in slices and stop when it runs out: on a collapsed link the peer's rate is
  // the figure, and waiting for every byte would only make the benchmark slow.
  std::uint64_t sent = 0;
  constexpr std::uint64_t kSlice = 16 << 20;
  while (sent < size) {
    if (max_seconds > 0 && std::chrono::duration<double>(Clock::now() - start).count() > max_seconds) break;
    const std::uint64_t n = max_seconds > 0 ? std::min(kSlice, size - sent) : size - sent;
    send_all(conn.get(), data + sent, n);
    sent += n;
  }
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
  if (args->listen) return run_receiver(parse_endpoint(args->where, "--listen"), args->bytes);
  return run_sender(parse_endpoint(args->where, "--connect"), args->bytes, args->max_seconds);
}

}  // namespace
}  // namespace hymig

int main(int argc, char** argv) {
  return hymig::bench::stream_tool_main("hymig-tcpstream", [&] { return hymig::run(argc, argv); });
}
