// Every message of a session after the handshake travels sealed: a ReliableChannel that encrypts
// and authenticates each message with AES-GCM (security/aead.hpp) under the session's keys for
// this channel and direction, over any raw reliable channel (TCP, RDMA RC, the test fake).
//
// A message becomes one raw frame of type kSealedFrame: body = E(type ‖ body) ‖ tag, whose
// associated data is the payload's length; payload (if any) = E(payload) ‖ tag. Records are
// numbered by an implicit counter per direction (body 2n, payload 2n+1), so a frame replayed,
// dropped, reordered or moved from another session or channel fails to open. The type travels
// encrypted. A message is handed out only once its body opened; its payload is decrypted in place
// in the caller's buffers (the image's pages) and the call fails if its tag does not verify: the
// engine records pages as received only after that returns. A failure breaks the channel for good
// in its direction (every later receive, or send, throws naming the first error): after a message
// that did not authenticate, the engine can still send its abort (the raw channel latches its own
// failures for both directions).
//
// Over a raw channel with one-sided writes (RDMA RC), it is also the engine's ImageWriter: a page
// is sealed (its own record of the "write" keys, numbered by the order of writes, associated data
// its offset and length) into one half of a registered staging buffer and written from there
// to its place in the peer's image; the destination opens it in place with the tag from `written`.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "core/error.hpp"
#include "security/aead.hpp"
#include "transport/failure_latch.hpp"
#include "transport/reliable_channel.hpp"

namespace hymig {

inline constexpr std::uint8_t kSealedFrame = 0xA5;

class SealedChannel final : public ReliableChannel, public ImageWriter {
 public:
  // `raw` carries the frames; `send_key` protects what this side sends, `receive_key` what the peer
  // sends (the peer's send key). `peer` names the peer in errors ("the source").
  SealedChannel(std::unique_ptr<ReliableChannel> raw, const TrafficKey& send_key, const TrafficKey& receive_key,
                std::string peer);
  // The keys of sealed image writes (the source's "write" traffic key, on both ends).
  void set_write_key(const TrafficKey& key) { write_key_ = key; }

  // A staging half: room for the largest page (2 MiB) and a 256-page batch of 4 KiB pages.
  static constexpr std::size_t kStagingHalf = 2 << 20;

  std::string transport_name() const override { return raw_->transport_name(); }
  void set_limits(std::size_t max_body, std::uint64_t max_payload) override;
  void set_io_timeout(std::chrono::milliseconds timeout) override { raw_->set_io_timeout(timeout); }
  void send(std::uint8_t type, std::span<const std::byte> body) override;
  void send_with_payload(std::uint8_t type, std::span<const std::byte> body, std::span<const ConstBuffer> payload) override;
  std::optional<Message> receive(std::chrono::milliseconds timeout) override;
  void receive_payload(std::span<const MutableBuffer> dst) override;
  void discard_payload() override;
  int poll_fd() const override { return raw_->poll_fd(); }
  std::string local_host() const override { return raw_->local_host(); }
  std::string peer_host() const override { return raw_->peer_host(); }
  ReliableStats stats() const override { return raw_->stats(); }

  ReliableChannel& raw() { return *raw_; }

  ImageWriter* image_writer() override { return raw_->remote_writer() ? this : nullptr; }
  RemoteImage expose_target(std::span<std::byte> image) override;
  bool open_written(std::uint64_t offset, std::size_t bytes, std::span<const std::byte, kAeadTagBytes> tag) override;
  void register_source(std::span<const std::byte> image) override;
  void set_remote_target(const RemoteImage& remote) override;
  AeadTag write_sealed(std::uint64_t offset, std::size_t bytes) override;
  void flush_writes() override;
  std::uint64_t bytes_written() const override { return written_bytes_; }

 private:
  std::unique_ptr<ReliableChannel> raw_;
  AeadCipher seal_;
  AeadCipher open_;
  std::string peer_;
  std::uint64_t sent_ = 0, received_ = 0;  // messages, per direction
  std::uint64_t payload_pending_ = 0;      // plaintext bytes of the payload announced by the last receive()

  std::vector<std::byte> out_body_;    // type ‖ body ‖ tag, sealed
  std::vector<std::byte> out_payload_; // payload ‖ tag, sealed (grows to the largest payload sent)
  std::vector<std::byte> in_body_;     // opened body of the last message
  std::vector<MutableBuffer> in_parts_;
  AeadTag in_tag_{};
  // Each direction's stream is out of step once an operation on it failed half-way.
  FailureLatch send_latch_, receive_latch_;

  // Sealed image writes: keys, record numbers, the images, and the staging buffer's two halves
  // (a half is reused only once every write from it completed).
  TrafficKey write_key_{};
  std::optional<AeadCipher> write_cipher_;
  std::uint64_t write_seq_ = 0;
  std::span<std::byte> target_;
  std::span<const std::byte> source_;
  std::vector<std::byte> staging_;
  std::size_t half_used_ = 0;
  int half_ = 0;
  std::uint64_t written_bytes_ = 0;
};

}  // namespace hymig
