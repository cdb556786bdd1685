// Turns a batch of OutDatagrams into the mmsghdr array one sendmmsg() takes: the parts become
// iovecs pointing at the caller's memory (zero-copy), and runs of equal-size datagrams become one
// msghdr with a UDP_SEGMENT cmsg (GSO) so the kernel walks the stack once per run, not per datagram.
// The arrays are allocated once and only grow, so packing allocates nothing in the steady state.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/buffer.hpp"

namespace hymig {

struct GsoLimits {
  bool enabled = false;
  std::size_t max_segment = 0;     // a datagram larger than this is never coalesced (path MTU)
  std::size_t max_segments = 64;   // per msghdr (the kernel allows 64 or more)
  std::size_t max_total = 65000;   // payload bytes per msghdr (one IP datagram before segmentation)
};

class UdpSendArena {
 public:
  // sendmmsg() handles at most UIO_MAXIOV (1024) msghdrs per call, and so does one msghdr iovecs.
  static constexpr std::size_t kMaxMessages = 1024;
  static constexpr std::size_t kMaxIovPerMessage = 1024;

  UdpSendArena();

  // Packs a prefix of `datagrams` (at most kMaxMessages msghdrs) and returns how many datagrams it
  // covers. `gso` decides coalescing.
  std::size_t pack(std::span<const OutDatagram> datagrams, const GsoLimits& gso);

  mmsghdr* messages() { return messages_.data(); }
  std::size_t message_count() const { return message_count_; }
  // OutDatagrams carried by message i, their payload bytes, and whether it carries a GSO cmsg.
  std::size_t datagrams_in(std::size_t i) const { return datagrams_per_message_[i]; }
  std::uint64_t bytes_in(std::size_t i) const { return bytes_per_message_[i]; }
  bool segmented(std::size_t i) const { return messages_[i].msg_hdr.msg_controllen != 0; }

 private:
  // Room for one cmsghdr carrying a uint16_t segment size, suitably aligned.
  struct alignas(cmsghdr) GsoControl {
    unsigned char bytes[CMSG_SPACE(sizeof(std::uint16_t))];
  };

  std::vector<mmsghdr> messages_;
  std::vector<GsoControl> controls_;
  std::vector<std::uint32_t> datagrams_per_message_;
  std::vector<std::uint64_t> bytes_per_message_;
  std::vector<iovec> iovecs_;
  std::size_t message_count_ = 0;
};

}  // namespace hymig
