#include "udp/udp_receive_ring.hpp"

#include <netinet/udp.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>

namespace hymig {

UdpReceiveRing::UdpReceiveRing()
    : memory_(new std::byte[kBuffers * kBufferBytes]),  // uninitialised: the kernel writes it
      messages_(kBuffers),
      iovecs_(kBuffers),
      controls_(kBuffers),
      segment_size_(kBuffers) {
  for (std::size_t i = 0; i < kBuffers; ++i) iovecs_[i] = iovec{memory_.get() + i * kBufferBytes, kBufferBytes};
}

mmsghdr* UdpReceiveRing::prepare(std::size_t count) {
  count = std::min(count, kBuffers);
  for (std::size_t i = 0; i < count; ++i) {
    msghdr& h = messages_[i].msg_hdr;
    h = msghdr{};
    h.msg_iov = &iovecs_[i];
    h.msg_iovlen = 1;
    h.msg_control = controls_[i].bytes;
    h.msg_controllen = sizeof controls_[i].bytes;  // the kernel shrinks it to what it wrote
    messages_[i].msg_len = 0;
  }
  filled_ = 0;
  next_message_ = 0;
  next_offset_ = 0;
  return messages_.data();
}

void UdpReceiveRing::filled(std::size_t count) {
  filled_ = count;
  next_message_ = 0;
  next_offset_ = 0;
  for (std::size_t i = 0; i < count; ++i) {
    msghdr& h = messages_[i].msg_hdr;
    segment_size_[i] = 0;
    if (h.msg_flags & MSG_TRUNC) {
      // Part of the datagram is lost: hand out nothing rather than a wrong prefix.
      ++truncated_;
      messages_[i].msg_len = 0;
      segment_size_[i] = UINT32_MAX;  // marks "skip"
      continue;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int size = 0;
        std::memcpy(&size, CMSG_DATA(c), sizeof size);
        if (size > 0) segment_size_[i] = static_cast<std::uint32_t>(size);
      }
    }
  }
}

std::size_t UdpReceiveRing::drain(std::span<InDatagram> out) {
  std::size_t n = 0;
  while (n < out.size() && next_message_ < filled_) {
    const std::size_t i = next_message_;
    if (segment_size_[i] == UINT32_MAX) {
      ++next_message_;
      continue;
    }
    const std::size_t length = messages_[i].msg_len;
    const std::size_t segment = segment_size_[i] != 0 ? segment_size_[i] : std::max<std::size_t>(length, 1);
    const std::size_t take = std::min(segment, length - next_offset_);  // the last may be shorter
    out[n++] = InDatagram{std::span<const std::byte>(memory_.get() + i * kBufferBytes + next_offset_, take)};
    next_offset_ += take;
    if (next_offset_ >= length) {
      ++next_message_;
      next_offset_ = 0;
    }
  }
  return n;
}

}  // namespace hymig
