#include "tcp/tcp_reliable_channel.hpp"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "core/fd_wait.hpp"
#include "core/socket_address.hpp"
#include "core/units.hpp"

namespace hymig {

namespace {

constexpr std::size_t kIovMax = IOV_MAX;  // per readv/sendmsg call

// Drops the first `n` bytes from an iovec list (and the entries they empty).
void advance(iovec*& iov, std::size_t& count, std::size_t n) {
  while (count > 0 && n >= iov->iov_len) {
    n -= iov->iov_len;
    ++iov;
    --count;
  }
  if (count > 0 && n > 0) {
    iov->iov_base = static_cast<char*>(iov->iov_base) + n;
    iov->iov_len -= n;
  }
}

}  // namespace

std::chrono::steady_clock::time_point TcpReliableChannel::frame_deadline(std::uint64_t bytes) const {
  // The io timeout, plus time for the bytes at a floor rate: a large frame on a slow or lossy link
  // may take longer than a small one, a dribbling peer still cannot stretch one without end.
  constexpr std::uint64_t kFloorBytesPerSecond = 64 * 1024;
  return std::chrono::steady_clock::now() + io_timeout_ + std::chrono::milliseconds(bytes * 1000 / kFloorBytesPerSecond);
}

std::unique_ptr<TcpReliableChannel> TcpReliableChannel::adopt(UniqueFd connected) {
  return std::unique_ptr<TcpReliableChannel>(new TcpReliableChannel(std::move(connected)));
}

namespace {

// Linux 6.15+; the C library's headers may predate them.
#ifndef TCP_RTO_MIN_US
#define TCP_RTO_MIN_US 45
#endif
#ifndef TCP_DELACK_MAX_US
#define TCP_DELACK_MAX_US 46
#endif

// A control message is one segment in flight. Lost, it waits for the tail loss probe, which for a
// lone segment includes the minimum RTO: 200 ms by default, the whole of a blackout on a lossy path
// (5 % loss cost +200 ms per lost message). A 5 ms minimum and at most 1 ms of delayed ACK on
// both ends (the peer's ACK must beat our timer) bring a loss back to a few ms. Older kernels
// refuse the options and keep their defaults: best effort, as the measurement it serves.
void shorten_loss_recovery(int fd) {
  const int rto_min_us = 5000;
  const int delack_max_us = 1000;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_RTO_MIN_US, &rto_min_us, sizeof rto_min_us);
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_DELACK_MAX_US, &delack_max_us, sizeof delack_max_us);
}

}  // namespace

TcpReliableChannel::TcpReliableChannel(UniqueFd fd) : fd_(std::move(fd)) {
  const int s = fd_.get();
  const int flags = ::fcntl(s, F_GETFL);
  if (flags < 0 || ::fcntl(s, F_SETFL, flags | O_NONBLOCK) != 0) throw_errno("cannot make the TCP socket non-blocking");
  const SocketAddress local = local_address_of(s);
  const SocketAddress peer = peer_address_of(s);
  local_host_ = numeric_host(local);
  peer_host_ = numeric_host(peer);
  local_address_ = format_address(local);
  peer_address_ = format_address(peer);
  latch_.set_connection("connection to " + peer_address_);
  int one = 1;
  if (::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
    throw_errno("cannot set TCP_NODELAY on the connection to " + peer_address_);
  shorten_loss_recovery(s);
  set_io_timeout(io_timeout_);
}

void TcpReliableChannel::set_limits(std::size_t max_body, std::uint64_t max_payload) {
  limits_.max_body = max_body;
  limits_.max_payload = max_payload;
}

void TcpReliableChannel::set_io_timeout(std::chrono::milliseconds timeout) {
  io_timeout_ = std::max(timeout, std::chrono::milliseconds(1));
  const auto ms = static_cast<unsigned>(std::min<std::int64_t>(io_timeout_.count(), UINT_MAX));
  if (::setsockopt(fd_.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) != 0)
    throw_errno("cannot set TCP_USER_TIMEOUT on the connection to " + peer_address_);
}

// ---- send ----------------------------------------------------------------------------------

void TcpReliableChannel::send(std::uint8_t type, std::span<const std::byte> body) {
  send_frame(type, body, {});
}

void TcpReliableChannel::send_with_payload(std::uint8_t type, std::span<const std::byte> body,
                                           std::span<const ConstBuffer> payload) {
  send_frame(type, body, payload);
}

void TcpReliableChannel::send_frame(std::uint8_t type, std::span<const std::byte> body,
                                    std::span<const ConstBuffer> payload) {
  std::uint64_t payload_bytes = 0;
  for (const ConstBuffer& part : payload) payload_bytes += part.size;
  if (body.size() > kMaxFrameField)
    throw Error(ErrorKind::usage, "message body of " + std::to_string(body.size()) + " bytes for " + peer_address_ +
                                      " exceeds the frame limit of 4 GiB - 1; split it");
  if (payload_bytes > kMaxFrameField)
    throw Error(ErrorKind::usage, "message payload of " + std::to_string(payload_bytes) + " bytes for " +
                                      peer_address_ + " exceeds the frame limit of 4 GiB - 1; send it in pieces");
  latch_.guarded([&] {
    const auto header = encode_frame_header(FrameHeader{type, std::uint32_t(body.size()), std::uint32_t(payload_bytes)});
    const std::size_t count = 2 + payload.size();
    if (iov_.size() < count) iov_.resize(count);
    iov_[0] = iovec{const_cast<std::byte*>(header.data()), header.size()};
    iov_[1] = iovec{const_cast<std::byte*>(body.data()), body.size()};
    for (std::size_t i = 0; i < payload.size(); ++i)
      iov_[2 + i] = iovec{const_cast<std::byte*>(payload[i].data), payload[i].size};
    const std::uint64_t total = header.size() + body.size() + payload_bytes;
    deadline_ = frame_deadline(total);
    write_all(iov_.data(), count, total);
    stats_.bytes_sent += total;
    ++stats_.messages_sent;
  });
}

void TcpReliableChannel::write_all(iovec* iov, std::size_t count, std::uint64_t total) {
  while (total > 0) {
    msghdr h{};
    h.msg_iov = iov;
    h.msg_iovlen = std::min(count, kIovMax);
    const ssize_t n = ::sendmsg(fd_.get(), &h, MSG_NOSIGNAL);
    if (n > 0) {
      total -= std::uint64_t(n);
      advance(iov, count, std::size_t(n));
      continue;
    }
    const int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
      // A stall ends it after the io timeout; a trickle, at the frame's deadline.
      const auto left = std::min<std::chrono::steady_clock::duration>(io_timeout_, deadline_ - std::chrono::steady_clock::now());
      if (left <= left.zero() || !wait_fd(fd_.get(), POLLOUT, left))
        throw Error(ErrorKind::timeout, "peer " + peer_address_ + " took no data for " + format_timeout(io_timeout_) +
                                            " or not the whole message in time — link down or peer stuck?");
      continue;
    }
    if (err == EPIPE || err == ECONNRESET)
      throw Error(ErrorKind::peer_vanished, "peer " + peer_address_ + " closed the connection while we were sending");
    if (err == ETIMEDOUT)
      throw Error(ErrorKind::timeout, "peer " + peer_address_ + " acknowledged nothing for " +
                                          format_timeout(io_timeout_) + " — link down or peer stuck?");
    throw_errno("send to " + peer_address_, err);
  }
}

// ---- receive -------------------------------------------------------------------------------

void TcpReliableChannel::read_all(iovec* iov, std::size_t count, std::uint64_t total, const char* what) {
  while (total > 0) {
    const ssize_t n = ::readv(fd_.get(), iov, int(std::min(count, kIovMax)));
    if (n > 0) {
      total -= std::uint64_t(n);
      stats_.bytes_received += std::uint64_t(n);
      advance(iov, count, std::size_t(n));
      continue;
    }
    if (n == 0)
      throw Error(ErrorKind::peer_vanished, "peer " + peer_address_ + " closed the connection in the middle of a " +
                                                what + " (" + std::to_string(total) + " bytes missing)");
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      const auto left = std::min<std::chrono::steady_clock::duration>(io_timeout_, deadline_ - std::chrono::steady_clock::now());
      if (left <= left.zero() || !wait_fd(fd_.get(), POLLIN, left))
        throw Error(ErrorKind::timeout, "peer " + peer_address_ + " sent nothing for " + format_timeout(io_timeout_) +
                                            ", or not the whole " + what + " in time — link down or peer stuck?");
      continue;
    }
    if (err == ECONNRESET)
      throw Error(ErrorKind::peer_vanished, "peer " + peer_address_ + " reset the connection in the middle of a " + what);
    if (err == ETIMEDOUT)
      throw Error(ErrorKind::timeout, "connection to " + peer_address_ + " timed out in the middle of a " + what);
    throw_errno(std::string("receive ") + what + " from " + peer_address_, err);
  }
}

void TcpReliableChannel::read_exact(std::byte* dst, std::size_t n, const char* what) {
  iovec one{dst, n};
  read_all(&one, 1, n, what);
}

std::optional<Message> TcpReliableChannel::receive(std::chrono::milliseconds timeout) {
  if (payload_pending_ > 0)
    throw std::logic_error("TcpReliableChannel::receive: the previous message's payload (" +
                           std::to_string(payload_pending_) + " bytes) was neither received nor discarded");
  return latch_.guarded([&] { return receive_frame(timeout); });
}

std::optional<Message> TcpReliableChannel::receive_frame(std::chrono::milliseconds timeout) {
  std::array<std::byte, kFrameHeaderBytes> header_bytes;
  std::size_t got = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Until the first byte of a frame arrives, waiting is the caller's `timeout` and not an error.
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), header_bytes.data(), header_bytes.size(), MSG_DONTWAIT);
    if (n > 0) {
      got = std::size_t(n);
      stats_.bytes_received += got;
      deadline_ = frame_deadline(kFrameHeaderBytes);
      break;
    }
    if (n == 0) throw Error(ErrorKind::peer_vanished, "peer " + peer_address_ + " closed the connection");
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      // A zero timeout (the engine's poll for control messages) has its answer already.
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= left.zero() || !wait_fd(fd_.get(), POLLIN, left)) return std::nullopt;
      continue;
    }
    if (err == ECONNRESET) throw Error(ErrorKind::peer_vanished, "peer " + peer_address_ + " reset the connection");
    if (err == ETIMEDOUT) throw Error(ErrorKind::timeout, "connection to " + peer_address_ + " timed out");
    throw_errno("receive from " + peer_address_, err);
  }
  if (got < header_bytes.size()) read_exact(header_bytes.data() + got, header_bytes.size() - got, "frame header");

  FrameHeader header;
  try {
    header = decode_frame_header(header_bytes, limits_);
  } catch (const Error& e) {
    throw Error(e.kind(), std::string(e.what()) + " (from " + peer_address_ + ")");
  }
  deadline_ += frame_deadline(header.body_len) - frame_deadline(0);
  if (body_.size() < header.body_len) body_.resize(header.body_len);  // <= limits_.max_body, checked above
  read_exact(body_.data(), header.body_len, "frame body");

  payload_pending_ = header.payload_len;
  ++stats_.messages_received;
  return Message{header.type, std::span<const std::byte>(body_.data(), header.body_len), header.payload_len};
}

void TcpReliableChannel::receive_payload(std::span<const MutableBuffer> dst) {
  std::uint64_t total = 0;
  for (const MutableBuffer& b : dst) total += b.size;
  if (total != payload_pending_)
    throw std::logic_error("TcpReliableChannel::receive_payload: buffers hold " + std::to_string(total) +
                           " bytes but the pending payload is " + std::to_string(payload_pending_));
  if (total == 0) return;
  latch_.guarded([&] {
    if (iov_.size() < dst.size()) iov_.resize(dst.size());
    for (std::size_t i = 0; i < dst.size(); ++i) iov_[i] = iovec{dst[i].data, dst[i].size};
    deadline_ = frame_deadline(total);
    read_all(iov_.data(), dst.size(), total, "payload");
    payload_pending_ = 0;
  });
}

void TcpReliableChannel::discard_payload() {
  if (payload_pending_ == 0) return;
  latch_.guarded([&] {
    if (discard_.empty()) discard_.resize(64 * 1024);
    deadline_ = frame_deadline(payload_pending_);
    while (payload_pending_ > 0) {
      const std::size_t n = std::size_t(std::min<std::uint64_t>(payload_pending_, discard_.size()));
      read_exact(discard_.data(), n, "payload");
      payload_pending_ -= n;
    }
  });
}

}  // namespace hymig
