// The receive side's memory: a fixed set of 64 KiB buffers filled by one recvmmsg(), and the
// splitting of a coalesced (UDP GRO) buffer back into the datagrams it holds. Datagrams that do not
// fit the caller's array stay here for the next call instead of being dropped.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/buffer.hpp"

namespace hymig {

class UdpReceiveRing {
 public:
  // A GRO buffer holds up to 64 KiB of coalesced payload; 64 of them make 4 MiB.
  static constexpr std::size_t kBufferBytes = 64 * 1024;
  static constexpr std::size_t kBuffers = 64;

  UdpReceiveRing();

  // Prepares up to `count` (<= kBuffers) msghdrs for recvmmsg(). Only call when !has_pending():
  // it reuses the buffers the previous views point into.
  mmsghdr* prepare(std::size_t count);

  // Records that recvmmsg() filled the first `count` prepared messages.
  void filled(std::size_t count);

  // Moves received datagrams into `out` (views into the buffers); returns how many.
  std::size_t drain(std::span<InDatagram> out);

  bool has_pending() const { return next_message_ < filled_; }

  // Datagrams dropped because they were larger than a buffer (never happens with a 64 KiB buffer
  // and a sane peer; counted so it cannot hide).
  std::uint64_t truncated() const { return truncated_; }

 private:
  struct alignas(cmsghdr) GroControl {
    unsigned char bytes[CMSG_SPACE(sizeof(int))];
  };

  std::unique_ptr<std::byte[]> memory_;
  std::vector<mmsghdr> messages_;
  std::vector<iovec> iovecs_;
  std::vector<GroControl> controls_;
  std::vector<std::uint32_t> segment_size_;  // 0 = the buffer is one datagram

  std::size_t filled_ = 0;        // messages the last recvmmsg() returned
  std::size_t next_message_ = 0;  // first message not fully handed out
  std::size_t next_offset_ = 0;   // bytes of it already handed out
  std::uint64_t truncated_ = 0;
};

}  // namespace hymig
