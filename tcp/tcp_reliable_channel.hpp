// ReliableChannel over a connected TCP socket. Each message is one frame (tcp/tcp_frame.hpp):
// the sender gathers header, body and payload in one sendmsg(); the receiver reads the header and
// body into a small buffer of its own and the payload straight into the caller's buffers (readv).
//
// A frame that fails half-way (timeout, malformed header, peer gone) leaves the byte stream out of
// step, so after any such error every later call throws again, naming the first error. A stall of
// the io timeout fails a frame, and each frame (and each payload) must also complete by a deadline
// set at its start (the io timeout, plus time for its bytes at 64 KiB/s), however the bytes trickle.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/unique_fd.hpp"
#include "tcp/tcp_frame.hpp"
#include "transport/failure_latch.hpp"
#include "transport/reliable_channel.hpp"

namespace hymig {

class TcpReliableChannel final : public ReliableChannel {
 public:
  static constexpr std::chrono::milliseconds kDefaultIoTimeout{10'000};

  // Takes over a connected TCP socket (from TcpListener::accept or connect_tcp): makes it
  // non-blocking, sets TCP_NODELAY and TCP_USER_TIMEOUT (= the io timeout, so a cut link surfaces
  // as an error instead of a send queue that never drains).
  static std::unique_ptr<TcpReliableChannel> adopt(UniqueFd connected);

  std::string transport_name() const override { return "tcp"; }
  void set_limits(std::size_t max_body, std::uint64_t max_payload) override;
  void set_io_timeout(std::chrono::milliseconds timeout) override;

  // Throw Error{usage} if the body or the payload exceeds 4 GiB - 1 (the frame's u32 fields),
  // Error{timeout} when the peer accepts no data for the io timeout, Error{peer_vanished} on
  // EPIPE/ECONNRESET.
  void send(std::uint8_t type, std::span<const std::byte> body) override;
  void send_with_payload(std::uint8_t type, std::span<const std::byte> body,
                         std::span<const ConstBuffer> payload) override;

  // std::nullopt if no frame *starts* to arrive within `timeout`; once it has started, finishing
  // header and body is bounded by the io timeout per stall. Calling it while an announced payload
  // has not been read or discarded is a caller bug: std::logic_error (nothing is read).
  std::optional<Message> receive(std::chrono::milliseconds timeout) override;

  // `dst` sizes must add up to the pending payload exactly (std::logic_error otherwise, nothing read).
  void receive_payload(std::span<const MutableBuffer> dst) override;
  void discard_payload() override;

  int poll_fd() const override { return fd_.get(); }
  // The socket, for the TLS handshake that authenticates the connection before any frame.
  int socket_fd() const { return fd_.get(); }
  std::string local_host() const override { return local_host_; }
  std::string peer_host() const override { return peer_host_; }
  ReliableStats stats() const override { return stats_; }

  // Beyond the interface: "HOST:PORT" of each end (for messages and logs), the pending payload.
  std::string local_address() const { return local_address_; }
  std::string peer_address() const { return peer_address_; }

 private:
  explicit TcpReliableChannel(UniqueFd fd);

  void send_frame(std::uint8_t type, std::span<const std::byte> body, std::span<const ConstBuffer> payload);
  void write_all(iovec* iov, std::size_t count, std::uint64_t total);
  void read_all(iovec* iov, std::size_t count, std::uint64_t total, const char* what);
  void read_exact(std::byte* dst, std::size_t n, const char* what);
  std::optional<Message> receive_frame(std::chrono::milliseconds timeout);

  std::chrono::steady_clock::time_point frame_deadline(std::uint64_t bytes) const;

  UniqueFd fd_;
  std::string local_host_, peer_host_, local_address_, peer_address_;
  FrameLimits limits_;
  std::chrono::milliseconds io_timeout_ = kDefaultIoTimeout;
  // A frame once begun (sent, or its first byte received) and a payload once begun must finish by
  // a deadline (frame_deadline): a peer that dribbles a byte at a time gains nothing.
  std::chrono::steady_clock::time_point deadline_{};

  std::vector<iovec> iov_;             // gather/scatter list, grows to the largest payload list seen
  std::vector<std::byte> body_;        // grows up to limits_.max_body, never beyond
  std::vector<std::byte> discard_;     // scratch for discard_payload(), made on first use
  std::uint64_t payload_pending_ = 0;

  FailureLatch latch_;  // the error that left the stream out of step
  ReliableStats stats_;
};

}  // namespace hymig
