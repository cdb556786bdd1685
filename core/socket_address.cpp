#include "core/socket_address.hpp"
#include <netdb.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>

#include "core/error.hpp"

namespace hymig {

namespace {

[[noreturn]] void bad_host_port(std::string_view text) {
  throw Error(ErrorKind::usage, "expected HOST:PORT (or [IPV6]:PORT), got '" + std::string(text) + "'");
}

bool is_port(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + unsigned(c - '0');
  }
  return value <= 65535;
}

std::string_view strip_brackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) rewritten as the IPv4 address it carries.
SocketAddress unmap_v4(const SocketAddress& address) {
  if (address.family() != AF_INET6) return address;
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address.get());
  if (!IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) return address;
  SocketAddress v4;
  auto* out = reinterpret_cast<sockaddr_in*>(v4.get());
  out->sin_family = AF_INET;
  out->sin_port = v6->sin6_port;
  std::memcpy(&out->sin_addr, &v6->sin6_addr.s6_addr[12], 4);
  v4.length = sizeof(sockaddr_in);
  return v4;
}

std::vector<SocketAddress> resolve(const std::string& host, const std::string& port, int socktype,
                                   bool passive, std::string_view shown, int extra_flags = 0) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICSERV | extra_flags | (passive ? AI_PASSIVE : 0);
  addrinfo* raw = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &raw);
  if (rc != 0) {
    const std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
    // A temporary resolver failure is worth retrying; anything else is a wrong name.
    const ErrorKind kind = rc == EAI_AGAIN || rc == EAI_SYSTEM || rc == EAI_MEMORY ? ErrorKind::io : ErrorKind::usage;
    throw Error(kind, "cannot resolve '" + std::string(shown) + "': " + why + " — check the host name or use a numeric address");
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(raw, &::freeaddrinfo);
  std::vector<SocketAddress> out;
  for (const addrinfo* ai = raw; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    SocketAddress address;
    std::memcpy(&address.storage, ai->ai_addr, ai->ai_addrlen);
    address.length = ai->ai_addrlen;
    out.push_back(address);
  }
  if (out.empty()) throw Error(ErrorKind::usage, "cannot resolve '" + std::string(shown) + "': no usable address");
  return out;
}

}  // namespace

HostPort split_host_port(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') bad_host_port(text);
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.find(':');
    // More than one colon without brackets is a bare IPv6 address: ambiguous with the port.
    if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) bad_host_port(text);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || !is_port(port)) bad_host_port(text);
  return HostPort{std::string(host), std::string(port)};
}

std::vector<SocketAddress> resolve_host_port(std::string_view host_port, int socktype, bool passive) {
  const HostPort parts = split_host_port(host_port);
  return resolve(parts.host, parts.port, socktype, passive, host_port);
}

std::vector<SocketAddress> resolve_numeric_host_port(std::string_view host_port, int socktype) {
  try {
    const HostPort parts = split_host_port(host_port);
    return resolve(parts.host, parts.port, socktype, false, host_port, AI_NUMERICHOST);
  } catch (const Error& e) {
    throw Error(ErrorKind::protocol, std::string("the peer's endpoint is not a numeric HOST:PORT: ") + e.what());
  }
}

std::vector<SocketAddress> resolve_host(std::string_view host, std::uint16_t port, int socktype, bool passive) {
  const std::string_view bare = strip_brackets(host);
  if (bare.empty()) throw Error(ErrorKind::usage, "expected a host address, got an empty string");
  return resolve(std::string(bare), std::to_string(port), socktype, passive, host);
}

std::string numeric_host(const SocketAddress& address) {
  const SocketAddress plain = unmap_v4(address);
  char host[NI_MAXHOST];
  const int rc = ::getnameinfo(plain.get(), plain.length, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
  if (rc != 0) return "<unprintable address: " + std::string(::gai_strerror(rc)) + ">";
  return host;
}

std::uint16_t address_port(const SocketAddress& address) {
  if (address.family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(address.get())->sin_port);
  if (address.family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(address.get())->sin6_port);
  return 0;
}

std::string format_address(const SocketAddress& address) {
  const SocketAddress plain = unmap_v4(address);
  const std::string host = numeric_host(plain);
  const std::string port = std::to_string(address_port(plain));
  return plain.family() == AF_INET6 ? "[" + host + "]:" + port : host + ":" + port;
}

SocketAddress local_address_of(int fd) {
  SocketAddress address;
  address.length = sizeof address.storage;
  if (::getsockname(fd, address.get(), &address.length) != 0) throw_errno("getsockname");
  return address;
}

SocketAddress peer_address_of(int fd) {
  SocketAddress address;
  address.length = sizeof address.storage;
  if (::getpeername(fd, address.get(), &address.length) != 0) throw_errno("getpeername");
  return address;
}

}  // namespace hymig
