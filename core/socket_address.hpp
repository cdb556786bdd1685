// Text <-> socket address: "HOST:PORT", "[v6addr]:PORT", "localhost:0" in; "HOST:PORT" out.
// Every error names the text it could not use, so the CLI can print it as is.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hymig {

// One resolved address, owned by value (sockaddr_storage fits every family).
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

struct HostPort {
  std::string host;  // without brackets: "10.0.0.2", "::1", "node7"
  std::string port;  // decimal digits, 0..65535
};

// Splits "HOST:PORT" or "[V6]:PORT". Throws Error{usage} ("expected HOST:PORT, got 'x'").
HostPort split_host_port(std::string_view text);

// Resolves "HOST:PORT" (names or numeric) for `socktype` (SOCK_STREAM / SOCK_DGRAM), in
// getaddrinfo's preferred order. `passive` asks for addresses to bind. Never empty: throws
// Error{usage} for malformed text or an unknown host, Error{io} for a temporary resolver failure.
std::vector<SocketAddress> resolve_host_port(std::string_view host_port, int socktype, bool passive);

// For text from a peer: a numeric address only (no name service is asked). Throws Error{protocol}
// naming the text when it is not "NUMERIC-HOST:PORT".
std::vector<SocketAddress> resolve_numeric_host_port(std::string_view host_port, int socktype);

// Same, with the host alone (bracketed or not) and an explicit port.
std::vector<SocketAddress> resolve_host(std::string_view host, std::uint16_t port, int socktype,
                                        bool passive);

// "10.0.0.2:7000" or "[fe80::1%eth0]:7000". IPv4-mapped IPv6 addresses print as plain IPv4, so a
// dual-stack listener hands the peer an address its own family can use.
std::string format_address(const SocketAddress& address);

// Numeric host without port or brackets: "10.0.0.2", "::1" (IPv4-mapped printed as IPv4).
std::string numeric_host(const SocketAddress& address);

// Port in host byte order (0 for families without ports).
std::uint16_t address_port(const SocketAddress& address);

// getsockname / getpeername. Throw Error{io} naming the call.
SocketAddress local_address_of(int fd);
SocketAddress peer_address_of(int fd);

}  // namespace hymig
