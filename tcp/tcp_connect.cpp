#include "tcp/tcp_connect.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "core/error.hpp"
#include "core/fd_wait.hpp"
#include "core/socket_address.hpp"

namespace hymig {

namespace {

// The local address of `family` to bind before connecting, if the caller asked for one.
std::optional<SocketAddress> bind_address_for(const std::vector<SocketAddress>& binds, int family) {
  for (const SocketAddress& b : binds)
    if (b.family() == family) return b;
  return std::nullopt;
}

}  // namespace

std::unique_ptr<TcpReliableChannel> connect_tcp(const std::string& host_port, std::chrono::milliseconds timeout,
                                                const std::string& bind_host) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::vector<SocketAddress> addresses = resolve_host_port(host_port, SOCK_STREAM, false);
  std::vector<SocketAddress> binds;
  if (!bind_host.empty()) binds = resolve_host(bind_host, 0, SOCK_STREAM, true);
  std::string failures;
  int last_err = 0;
  bool family_matched = bind_host.empty();
  for (const SocketAddress& address : addresses) {
    const auto bind_to = bind_address_for(binds, address.family());
    if (!bind_host.empty() && !bind_to) continue;
    family_matched = true;
    int err = 0;
    UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!fd) {
      err = errno;
    } else if (bind_to && ::bind(fd.get(), bind_to->get(), bind_to->length) != 0) {
      const int e = errno;
      throw Error(ErrorKind::usage, "cannot bind to " + bind_host + ": " + std::strerror(e) +
                                        " — --bind must be an address of this host");
    } else if (::connect(fd.get(), address.get(), address.length) != 0) {
      err = errno;
      if (err == EINPROGRESS || err == EINTR) {
        if (!wait_fd(fd.get(), POLLOUT, deadline - std::chrono::steady_clock::now())) {
          err = ETIMEDOUT;
        } else {
          socklen_t len = sizeof err;
          if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        }
      }
    }
    if (err == 0) return TcpReliableChannel::adopt(std::move(fd));
    last_err = err;
    const std::string why = err == ETIMEDOUT ? "no answer within " + std::to_string(timeout.count()) + " ms"
                                             : std::string(std::strerror(err));
    if (!failures.empty()) failures += "; ";
    failures += addresses.size() > 1 ? format_address(address) + ": " + why : why;
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  if (!family_matched)
    throw Error(ErrorKind::usage, "--bind " + bind_host + " and " + host_port + " share no address family");
  const std::string what = "cannot connect to " + host_port + ": " + failures;
  if (last_err == ECONNREFUSED)
    throw Error(ErrorKind::peer_vanished, what + " — is `hymig serve` running there?");
  if (last_err == ETIMEDOUT)
    throw Error(ErrorKind::timeout, what + " — host down, wrong address, or a firewall dropping the connection?");
  throw Error(ErrorKind::io, what + " — check the address and the route to it");
}

}  // namespace hymig
