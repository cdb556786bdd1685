// The destination's listening TCP socket: `hymig serve --listen HOST:PORT` waits here for sources.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/unique_fd.hpp"
#include "tcp/tcp_reliable_channel.hpp"

namespace hymig {

class TcpListener {
 public:
  // Binds and listens on "HOST:PORT" ("[::]:7000", "0.0.0.0:0", "localhost:0"; port 0 picks one).
  // Throws Error{usage} for malformed text or an unknown host, Error{io} naming the address when
  // no resolved address can be bound.
  static TcpListener listen(std::string_view host_port, int backlog = 16);

  TcpListener(TcpListener&&) noexcept = default;
  TcpListener& operator=(TcpListener&&) noexcept = default;

  // The next connection, or nullptr if none arrives within `timeout`.
  std::unique_ptr<TcpReliableChannel> accept(std::chrono::milliseconds timeout);

  // "HOST:PORT" actually bound (with the port the kernel chose for port 0).
  std::string local_address() const { return local_address_; }
  std::uint16_t port() const { return port_; }

  // Readable when accept() would return a connection.
  int poll_fd() const { return fd_.get(); }

 private:
  TcpListener(UniqueFd fd, std::string local_address, std::uint16_t port)
      : fd_(std::move(fd)), local_address_(std::move(local_address)), port_(port) {}

  UniqueFd fd_;
  std::string local_address_;
  std::uint16_t port_ = 0;
};

}  // namespace hymig
