#include "protocol/sealed_channel.hpp"

#include <cstring>

namespace hymig {
namespace {

std::array<std::byte, 8> le64(std::uint64_t v) {
  std::array<std::byte, 8> b;
  for (int i = 0; i < 8; ++i) b[i] = std::byte(v >> (8 * i));
  return b;
}

}  // namespace

SealedChannel::SealedChannel(std::unique_ptr<ReliableChannel> raw, const TrafficKey& send_key,
                             const TrafficKey& receive_key, std::string peer)
    : raw_(std::move(raw)),
      seal_(send_key, AeadCipher::Direction::seal),
      open_(receive_key, AeadCipher::Direction::open),
      peer_(std::move(peer)) {
  send_latch_.set_connection("the channel to " + peer_);
  receive_latch_.set_connection("the channel to " + peer_);
}

void SealedChannel::set_limits(std::size_t max_body, std::uint64_t max_payload) {
  raw_->set_limits(max_body + 1 + kAeadTagBytes, max_payload ? max_payload + kAeadTagBytes : 0);
}

void SealedChannel::send(std::uint8_t type, std::span<const std::byte> body) { send_with_payload(type, body, {}); }

void SealedChannel::send_with_payload(std::uint8_t type, std::span<const std::byte> body,
                                      std::span<const ConstBuffer> payload) {
  send_latch_.guarded([&] {
    std::uint64_t payload_bytes = 0;
    for (const auto& p : payload) payload_bytes += p.size;
    const std::uint64_t n = sent_++;
    out_body_.resize(1 + body.size() + kAeadTagBytes);
    const auto aad = le64(payload_bytes);
    seal_.begin(2 * n, aad);
    const std::byte t{type};
    seal_.crypt({&t, 1}, out_body_.data());
    seal_.crypt(body, out_body_.data() + 1);
    const AeadTag tag = seal_.finish_seal();
    std::memcpy(out_body_.data() + 1 + body.size(), tag.data(), tag.size());
    if (payload_bytes == 0) {
      raw_->send(kSealedFrame, out_body_);
      return;
    }
    if (out_payload_.size() < payload_bytes + kAeadTagBytes) out_payload_.resize(payload_bytes + kAeadTagBytes);
    seal_.begin(2 * n + 1, {});
    std::byte* at = out_payload_.data();
    for (const auto& p : payload) {
      seal_.crypt({p.data, p.size}, at);
      at += p.size;
    }
    const AeadTag ptag = seal_.finish_seal();
    std::memcpy(at, ptag.data(), ptag.size());
    const ConstBuffer part{out_payload_.data(), payload_bytes + kAeadTagBytes};
    raw_->send_with_payload(kSealedFrame, out_body_, {&part, 1});
  });
}

std::optional<Message> SealedChannel::receive(std::chrono::milliseconds timeout) {
  return receive_latch_.guarded([&]() -> std::optional<Message> {
    auto m = raw_->receive(timeout);
    if (!m) return std::nullopt;
    const std::uint64_t n = received_++;
    if (m->type != kSealedFrame || m->body.size() < 1 + kAeadTagBytes ||
        (m->payload_bytes != 0 && m->payload_bytes <= kAeadTagBytes))
      throw Error(ErrorKind::protocol, "a message from " + peer_ + " is not sealed as this session's are");
    const std::uint64_t payload_bytes = m->payload_bytes ? m->payload_bytes - kAeadTagBytes : 0;
    const std::size_t sealed = m->body.size() - kAeadTagBytes;
    if (in_body_.size() < sealed) in_body_.resize(sealed);
    const auto aad = le64(payload_bytes);
    if (!aead_open(open_, 2 * n, aad, m->body.first(sealed), in_body_.data(),
                   m->body.subspan(sealed).first<kAeadTagBytes>()))
      throw Error(ErrorKind::protocol, "a message from " + peer_ +
                                           " failed authentication (tampered with, replayed, or not from the session's peer)");
    payload_pending_ = payload_bytes;
    return Message{static_cast<std::uint8_t>(in_body_[0]), std::span<const std::byte>(in_body_.data() + 1, sealed - 1),
                   payload_bytes};
  });
}

void SealedChannel::receive_payload(std::span<const MutableBuffer> dst) {
  std::uint64_t total = 0;
  for (const auto& b : dst) total += b.size;
  if (total != payload_pending_)
    throw std::logic_error("SealedChannel::receive_payload: buffers hold " + std::to_string(total) +
                           " bytes but the pending payload is " + std::to_string(payload_pending_));
  if (total == 0) return;
  receive_latch_.guarded([&] {
    in_parts_.assign(dst.begin(), dst.end());
    in_parts_.push_back({in_tag_.data(), in_tag_.size()});
    raw_->receive_payload(in_parts_);
    payload_pending_ = 0;
    open_.begin(2 * (received_ - 1) + 1, {});
    for (const auto& b : dst) open_.crypt({b.data, b.size}, b.data);
    if (!open_.finish_open(in_tag_))
      throw Error(ErrorKind::protocol, "the payload of a message from " + peer_ +
                                           " failed authentication (tampered with, or not from the session's peer)");
  });
}

void SealedChannel::discard_payload() {
  receive_latch_.guarded([&] {
    payload_pending_ = 0;
    raw_->discard_payload();
  });
}

// ---- sealed image writes ---------------------------------------------------------------------

namespace {

std::array<std::byte, 16> write_aad(std::uint64_t offset, std::size_t bytes) {
  std::array<std::byte, 16> a;
  for (int i = 0; i < 8; ++i) {
    a[i] = std::byte(offset >> (8 * i));
    a[8 + i] = std::byte(std::uint64_t{bytes} >> (8 * i));
  }
  return a;
}

}  // namespace

RemoteImage SealedChannel::expose_target(std::span<std::byte> image) {
  RemoteImage r = raw_->remote_writer()->expose_target(image);
  target_ = image;
  write_cipher_.emplace(write_key_, AeadCipher::Direction::open);
  return r;
}

bool SealedChannel::open_written(std::uint64_t offset, std::size_t bytes, std::span<const std::byte, kAeadTagBytes> tag) {
  if (!write_cipher_ || offset > target_.size() || bytes > target_.size() - offset)
    throw Error(ErrorKind::protocol, peer_ + " named a written page outside the exposed image");
  std::byte* at = target_.data() + offset;
  return aead_open(*write_cipher_, write_seq_++, write_aad(offset, bytes), {at, bytes}, at, tag);
}

void SealedChannel::register_source(std::span<const std::byte> image) {
  source_ = image;
  staging_.assign(2 * kStagingHalf, std::byte{0});
  raw_->remote_writer()->register_source(staging_);
  write_cipher_.emplace(write_key_, AeadCipher::Direction::seal);
}

void SealedChannel::set_remote_target(const RemoteImage& remote) {
  if (remote.bytes < source_.size())
    throw Error(ErrorKind::protocol, peer_ + " exposed a target image of " + std::to_string(remote.bytes) + " bytes for a " +
                                         std::to_string(source_.size()) + "-byte image");
  raw_->remote_writer()->set_remote_target(remote);
}

AeadTag SealedChannel::write_sealed(std::uint64_t offset, std::size_t bytes) {
  return send_latch_.guarded([&] {
    if (!write_cipher_ || offset > source_.size() || bytes > source_.size() - offset || bytes > kStagingHalf)
      throw std::logic_error("SealedChannel::write_sealed: not registered, or outside the source image");
    RemoteWriter& raw = *raw_->remote_writer();
    if (half_used_ + bytes > kStagingHalf) {
      // The other half's writes must be complete before it is overwritten.
      raw.wait_writes();
      half_ ^= 1;
      half_used_ = 0;
    }
    const std::size_t local = std::size_t(half_) * kStagingHalf + half_used_;
    const AeadTag tag = aead_seal(*write_cipher_, write_seq_++, write_aad(offset, bytes), source_.subspan(offset, bytes),
                                  staging_.data() + local);
    raw.write_remote(local, offset, bytes);
    half_used_ += bytes;
    written_bytes_ += bytes;
    return tag;
  });
}

void SealedChannel::flush_writes() {
  send_latch_.guarded([&] { raw_->remote_writer()->flush_writes(); });
}

}  // namespace hymig
