// The reliable, ordered message channel: hello/notify/ready, reports, and the final delta.
// Backends: tcp/ (TCP), verbs/ (RC queue pairs), the in-memory fake (testing/) for engine tests.
//
// A message is a type byte and a body (a small encoded struct, see protocol/wire.hpp), optionally
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

#include "core/buffer.hpp"
#include "security/aead.hpp"

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

// Where a destination's target image lies for one-sided writes by its peer (RDMA: address, rkey).
struct RemoteImage {
  std::uint64_t address = 0;
  std::uint32_t key = 0;
  std::uint64_t bytes = 0;
};

// Optional capability of a raw reliable channel whose transport can write into the peer's memory
// (RDMA RC): bytes of a registered local region go straight into the peer's exposed region, with no
// receive, copy or slot on the far side. Writes travel in order with the channel's messages:
// whatever was written before a send() is in place when the peer receives that message. These
// writes carry no protection of their own; the engine never sees them: it uses the sealed
// ImageWriter that SealedChannel builds on top.
class RemoteWriter {
 public:
  virtual ~RemoteWriter() = default;

  // Destination: registers `region` once for writes by this channel's peer and returns what the
  // peer must be told. Throws Error{io} when it cannot (e.g. RLIMIT_MEMLOCK too low).
  virtual RemoteImage expose_target(std::span<std::byte> region) = 0;

  // Source: registers `region` once as the source of writes (never per write). Throws Error{io}.
  virtual void register_source(std::span<const std::byte> region) = 0;
  // Source: where the writes go (the peer's expose_target()).
  virtual void set_remote_target(const RemoteImage& remote) = 0;

  // Source: copies region[local_offset, +bytes) to remote[remote_offset, +bytes). Queued and posted
  // in batches (writes contiguous on both sides may be merged); never waits for the peer except for
  // room in its bounded window. Errors (peer gone, queue pair in error) throw here, in
  // flush_writes() or in the next call of the channel, like a failed send(). Error{protocol} for a
  // range outside the remote window.
  virtual void write_remote(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes) = 0;
  // Posts what is queued (send() does this too before its message).
  virtual void flush_writes() = 0;
  // Posts what is queued and waits until every write so far has completed (its local bytes may be
  // reused).
  virtual void wait_writes() = 0;
  virtual std::uint64_t bytes_written() const = 0;
};

// The engine's one-sided image writes, sealed with the session's keys (SealedChannel over a channel
// that has a RemoteWriter): each page goes encrypted from the source image, through a registered
// staging buffer, straight into its place in the destination's image; its AES-GCM tag travels in
// the `written` message that names it, and the destination decrypts the page in place and checks
// the tag before recording it.
class ImageWriter {
 public:
  virtual ~ImageWriter() = default;

  // Destination: registers the target image for the peer's writes (once); what the peer must be told.
  virtual RemoteImage expose_target(std::span<std::byte> image) = 0;
  // Destination: the page at [offset, +bytes) was written (sealed) by the peer: decrypts it in place.
  // False when it is not authentic (the page then holds garbage and the session must end).
  virtual bool open_written(std::uint64_t offset, std::size_t bytes, std::span<const std::byte, kAeadTagBytes> tag) = 0;

  // Source: the image pages are sealed from (once; outside the blackout, registers the staging).
  virtual void register_source(std::span<const std::byte> image) = 0;
  virtual void set_remote_target(const RemoteImage& remote) = 0;
  // Source: seals image[offset, +bytes) and writes it to the same offset of the peer's image; the
  // tag goes to the peer in the message that names the page, after this write.
  virtual AeadTag write_sealed(std::uint64_t offset, std::size_t bytes) = 0;
  virtual void flush_writes() = 0;
  virtual std::uint64_t bytes_written() const = 0;
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

  // Raw one-sided writes, where the transport has them (RC); nullptr otherwise (TCP, the fake).
  virtual RemoteWriter* remote_writer() { return nullptr; }
  // Sealed one-sided writes of image pages (SealedChannel over a channel with remote_writer());
  // nullptr otherwise: the final delta then travels as pages messages.
  virtual ImageWriter* image_writer() { return nullptr; }
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
