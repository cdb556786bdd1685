#include "security/replay_window.hpp"

namespace hymig {

ReplayWindow::Verdict ReplayWindow::check(std::uint64_t seq) const {
  if (!any_ || seq > highest_) return Verdict::fresh;
  // By whole words of the ring: the oldest word shares its slot with the newest.
  if (highest_ / 64 - seq / 64 >= kWords) return Verdict::too_old;
  return test(seq) ? Verdict::replayed : Verdict::fresh;
}

void ReplayWindow::mark(std::uint64_t seq) {
  if (!any_) {
    bits_.fill(0);
    highest_ = seq;
    any_ = true;
  } else if (seq > highest_) {
    // Clear the slots of the words the window slides onto (all of them after a jump of a window).
    const std::uint64_t old_word = highest_ / 64, new_word = seq / 64;
    if (new_word - old_word >= kWords) {
      bits_.fill(0);
    } else {
      for (std::uint64_t w = old_word + 1; w <= new_word; ++w) bits_[w % kWords] = 0;
    }
    highest_ = seq;
  }
  bits_[(seq / 64) % kWords] |= std::uint64_t{1} << (seq % 64);
}

}  // namespace hymig
