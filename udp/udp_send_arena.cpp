#include "udp/udp_send_arena.hpp"

#include <netinet/udp.h>

#include <cstring>

namespace hymig {

UdpSendArena::UdpSendArena()
    : messages_(kMaxMessages),
      controls_(kMaxMessages),
      datagrams_per_message_(kMaxMessages),
      bytes_per_message_(kMaxMessages),
      iovecs_(4 * kMaxMessages) {}  // header + payload, sometimes a split page: rarely more

namespace {

struct Run {
  std::size_t count, iovs, bytes;
};

// Which datagrams starting at datagrams[0] go into one msghdr: a run of equal sizes, optionally
// closed by one shorter datagram (the kernel allows a short final segment), with its iovec and
// byte totals.
Run run_of(std::span<const OutDatagram> datagrams, const GsoLimits& gso) {
  const std::size_t size = datagrams[0].bytes;
  if (!gso.enabled || size == 0 || size > gso.max_segment || 2 * size > gso.max_total)
    return {1, datagrams[0].parts.size(), size};
  std::size_t run = 1;
  std::size_t total = size;
  std::size_t iovs = datagrams[0].parts.size();
  while (run < datagrams.size() && run < gso.max_segments) {
    const OutDatagram& next = datagrams[run];
    if (next.bytes == 0 || next.bytes > size || total + next.bytes > gso.max_total) break;
    if (iovs + next.parts.size() > UdpSendArena::kMaxIovPerMessage) break;
    total += next.bytes;
    iovs += next.parts.size();
    ++run;
    if (next.bytes < size) break;  // a shorter one ends the run
  }
  return {run, iovs, total};
}

}  // namespace

std::size_t UdpSendArena::pack(std::span<const OutDatagram> datagrams, const GsoLimits& gso) {
  // First decide the msghdrs and count the iovecs, so the iovec array grows (rarely) before any
  // pointer into it is taken.
  std::size_t covered = 0;
  std::size_t iov_total = 0;
  message_count_ = 0;
  while (covered < datagrams.size() && message_count_ < kMaxMessages) {
    const Run run = run_of(datagrams.subspan(covered), gso);
    iov_total += run.iovs;
    datagrams_per_message_[message_count_] = static_cast<std::uint32_t>(run.count);
    bytes_per_message_[message_count_] = run.bytes;
    covered += run.count;
    ++message_count_;
  }
  if (iov_total > iovecs_.size()) iovecs_.resize(iov_total);

  std::size_t iov = 0;
  std::size_t next = 0;
  for (std::size_t m = 0; m < message_count_; ++m) {
    const std::size_t run = datagrams_per_message_[m];
    msghdr& h = messages_[m].msg_hdr;
    h = msghdr{};
    h.msg_iov = iovecs_.data() + iov;
    for (std::size_t k = 0; k < run; ++k) {
      for (const ConstBuffer& part : datagrams[next + k].parts)
        iovecs_[iov++] = iovec{const_cast<std::byte*>(part.data), part.size};
    }
    h.msg_iovlen = static_cast<std::size_t>(iovecs_.data() + iov - h.msg_iov);
    if (run > 1) {
      h.msg_control = controls_[m].bytes;
      h.msg_controllen = sizeof controls_[m].bytes;
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
      const auto segment = static_cast<std::uint16_t>(datagrams[next].bytes);
      std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
    }
    messages_[m].msg_len = 0;
    next += run;
  }
  return covered;
}

}  // namespace hymig
