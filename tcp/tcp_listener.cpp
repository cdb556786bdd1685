#include "tcp/tcp_listener.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"
#include "core/fd_wait.hpp"
#include "core/socket_address.hpp"

namespace hymig {

TcpListener TcpListener::listen(std::string_view host_port, int backlog) {
  const std::vector<SocketAddress> addresses = resolve_host_port(host_port, SOCK_STREAM, true);
  std::string failures;
  int last_err = 0;
  for (const SocketAddress& address : addresses) {
    UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    int err = 0;
    if (!fd) {
      err = errno;
    } else {
      int one = 1;  // a restarted server must not wait for the old connections' TIME_WAIT
      (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(fd.get(), address.get(), address.length) != 0 || ::listen(fd.get(), backlog) != 0) err = errno;
    }
    if (err == 0) {
      const SocketAddress bound = local_address_of(fd.get());
      return TcpListener(std::move(fd), format_address(bound), address_port(bound));
    }
    last_err = err;
    if (!failures.empty()) failures += "; ";
    failures += format_address(address) + ": " + std::strerror(err);
  }
  const std::string hint = last_err == EADDRINUSE     ? " — is another `hymig serve` using that port? pick another one"
                           : last_err == EADDRNOTAVAIL ? " — that address is not on this host; use one of its own or 0.0.0.0"
                           : last_err == EACCES        ? " — ports below 1024 need root"
                                                       : "";
  throw Error(ErrorKind::io, "cannot listen on " + std::string(host_port) + " (" + failures + ")" + hint);
}

std::unique_ptr<TcpReliableChannel> TcpListener::accept(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (conn) return TcpReliableChannel::adopt(std::move(conn));
    const int err = errno;
    // A client that gave up between SYN and accept is not our failure: keep waiting.
    if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      if (!wait_fd(fd_.get(), POLLIN, deadline - std::chrono::steady_clock::now())) return nullptr;
      continue;
    }
    const std::string hint = err == EMFILE || err == ENFILE ? " — too many open files; raise `ulimit -n`" : "";
    throw_errno("accept on " + local_address_ + hint, err);
  }
}

}  // namespace hymig
