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

// "4G", "512M", "1024" -> bytes; suffixes are binary (K = 1024).
std::uint64_t parse_size(const std::string& s) {
  auto bad = [&] {
    return Error(ErrorKind::usage, "--bytes wants a positive size such as 4G, 512M, 64K or 1000, got '" + s + "'");
  };
  std::size_t used = 0;
  std::uint64_t n = 0;
  try {
    if (s.empty() || s.front() == '-') throw bad();
    n = std::stoull(s, &used);
  } catch (const std::logic_error&) {
    throw bad();
  }
  unsigned shift = 0;
  std::string suffix = s.substr(used);
  if (suffix == "K" || suffix == "k") shift = 10;
  else if (suffix == "M" || suffix == "m") shift = 20;
  else if (suffix == "G" || suffix == "g") shift = 30;
  else if (!suffix.empty()) throw bad();
  if (n == 0 || n > (UINT64_MAX >> shift)) throw bad();
  return n << shift;
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

void report(const char* role, std::uint64_t bytes, Clock::duration elapsed, std::optional<Clock::duration> prefault,
            bool complete) {
  const double seconds = std::chrono::duration<double>(elapsed).count();
  nlohmann::json j = {{"role", role},
                      {"bytes", bytes},
                      {"complete", complete},
                      {"seconds", seconds},
                      {"gbps", seconds > 0 ? static_cast<double>(bytes) * 8 / seconds / 1e9 : 0.0}};
  if (prefault) j["prefault_seconds"] = std::chrono::duration<double>(*prefault).count();
  std::cout << j.dump() << std::endl;
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
  report("receiver", got, Clock::now() - start, prefault, got == size);
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
  report("sender", sent, Clock::now() - start, std::nullopt, sent == size);
  return 0;
}

int run(int argc, char** argv) {
  namespace po = boost::program_options;
  po::options_description opts(
      "hymig-tcpstream: raw-TCP baseline; moves one in-memory buffer over one TCP connection\n\n"
      "  hymig-tcpstream --listen HOST:PORT                 receive once, then exit\n"
      "  hymig-tcpstream --connect HOST:PORT --bytes SIZE   send SIZE bytes (K/M/G = 2^10/2^20/2^30)\n\n"
      "Each side prints {\"role\",\"bytes\",\"complete\",\"seconds\",\"gbps\"} as one JSON line; the sender's time runs\n"
      "from connect until the receiver closes, the receiver's from accept until it holds every byte.\n"
      "The receiver also prints prefault_seconds: the part of its time spent populating its buffer\n"
      "(after learning the size), before any data is read. Options");
  std::string listen, connect, bytes;
  opts.add_options()                                                               //
      ("help,h", "print this help")                                                //
      ("listen", po::value(&listen), "receiver: HOST:PORT to listen on (PORT 0 picks one)")  //
      ("connect", po::value(&connect), "sender: HOST:PORT of the receiver (retried for 5 s)")  //
      ("bytes", po::value(&bytes), "sender: how much to send, e.g. 4G; receiver (optional): populate that much memory before listening")  //
      ("max-seconds", po::value<double>()->default_value(0), "sender: stop after this long and report what was moved (0: no cap)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorKind::usage, std::string(e.what()) + " (see --help)");
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  const bool l = vm.count("listen"), c = vm.count("connect");
  if (l == c) throw Error(ErrorKind::usage, "give exactly one of --listen or --connect (see --help)");
  if (l) {
    const std::uint64_t expect = vm.count("bytes") ? parse_size(bytes) : 0;
    return run_receiver(parse_endpoint(listen, "--listen"), expect);
  }
  if (!vm.count("bytes")) throw Error(ErrorKind::usage, "--connect needs --bytes SIZE, e.g. --bytes 4G");
  const std::uint64_t size = parse_size(bytes);
  const double cap = vm["max-seconds"].as<double>();
  if (cap < 0) throw Error(ErrorKind::usage, "--max-seconds must be 0 (no cap) or positive");
  return run_sender(parse_endpoint(connect, "--connect"), size, cap);
}

}  // namespace
}  // namespace hymig

int main(int argc, char** argv) {
  try {
    return hymig::run(argc, argv);
  } catch (const hymig::Error& e) {
    std::cerr << "hymig-tcpstream: " << e.what() << "\n";
    return e.kind() == hymig::ErrorKind::usage ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << "hymig-tcpstream: " << e.what() << "\n";
    return 1;
  }
}
