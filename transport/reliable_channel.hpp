// The reliable, ordered message channel: hello/notify/ready, reports, and the final delta.
// Backends: udp/ (TCP), verbs/ (RC queue pairs), the in-memory fake for engine tests.
//
// A message is a type byte and a body (a small encoded struct, see transport/wire.hpp), optionally
// followed by a raw payload (page contents) that the sender gathers straight from the image and the
// receiver scatters straight into the target image: no staging copy on either side.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "transport/buffer.hpp"

namespace hymig {

struct Message {
  std::uint8_t type = 0;
  std::span<const std::byte> body;  // valid until the next receive()
  std::uint64_t payload_bytes = 0;  // raw bytes that follow; read them with receive_payload()
};

struct ReliableStats {
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_received = 0;
};

class ReliableChannel {
 public:
  virtual ~ReliableChannel() = default;

  // Name for reports: "tcp", "rc", "fake".
  virtual std::string transport_name() const = 0;

  // Frames larger than these are a protocol error on receipt (checked before any allocation).
  virtual void set_limits(std::size_t max_body, std::uint64_t max_payload) = 0;

  // How long send/receive_payload may make no progress before throwing Error{timeout}.
  virtual void set_io_timeout(std::chrono::milliseconds timeout) = 0;

  virtual void send(std::uint8_t type, std::span<const std::byte> body) = 0;

  // Like send(), then the concatenation of `payload` as raw bytes (zero-copy from the image).
  virtual void send_with_payload(std::uint8_t type, std::span<const std::byte> body,
                                 std::span<const ConstBuffer> payload) = 0;

  // Wait up to `timeout` for the next message; std::nullopt on timeout. Throws Error{peer_vanished}
  // when the peer closed the connection, Error{protocol} on a malformed frame.
  virtual std::optional<Message> receive(std::chrono::milliseconds timeout) = 0;

  // After receive() returned a message with payload_bytes > 0, and before the next receive():
  // read the payload, scattering it over `dst` (sizes must add up to payload_bytes).
  virtual void receive_payload(std::span<const MutableBuffer> dst) = 0;

  // Skip an announced payload the receiver does not want (e.g. after a validation failure).
  virtual void discard_payload() = 0;

  // Readable when receive() has something.
  virtual int poll_fd() const = 0;

  // Numeric addresses of the two ends, so a datagram channel can bind beside it ("127.0.0.1", "::1").
  virtual std::string local_host() const = 0;
  virtual std::string peer_host() const = 0;

  virtual ReliableStats stats() const = 0;
};

// The destination's half of moving a session onto another reliable transport (RDMA RC): a listener
// whose endpoint travels in `ready`, then the one connection the source makes to it.
class ReliableAcceptor {
 public:
  virtual ~ReliableAcceptor() = default;
  virtual std::string endpoint() const = 0;
  // Error{timeout} when the source does not connect within `timeout`.
  virtual std::unique_ptr<ReliableChannel> accept(std::chrono::milliseconds timeout) = 0;
};

}  // namespace hymig
