// Anti-replay for datagrams (as DTLS does, RFC 9147 §4.5.1, with a wider window because a page
// stream may be reordered by thousands): the highest sequence number authenticated so far and a
// bitmap of the kWindow numbers below it. A number is accepted once; one older than the window is
// refused (the window is kept in whole 64-bit words). check() is called before a datagram is authenticated (cheap, changes nothing), mark()
// only after.
#pragma once

#include <array>
#include <cstdint>

namespace hymig {

class ReplayWindow {
 public:
  static constexpr std::uint64_t kWindow = 1 << 16;

  enum class Verdict { fresh, replayed, too_old };
  Verdict check(std::uint64_t seq) const;
  void mark(std::uint64_t seq);

  std::uint64_t highest() const { return highest_; }

 private:
  bool test(std::uint64_t seq) const { return bits_[(seq / 64) % kWords] >> (seq % 64) & 1; }

  static constexpr std::size_t kWords = kWindow / 64;
  std::array<std::uint64_t, kWords> bits_{};
  std::uint64_t highest_ = 0;
  bool any_ = false;
};

}  // namespace hymig
