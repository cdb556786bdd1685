// A fixed-size set of page indices, one bit per page. Used for the receiver's "present" set, the
// round sets, and (with atomic_set) the synthetic image's exact dirty log written by other threads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace hymig {

class Bitmap {
 public:
  Bitmap() = default;
  explicit Bitmap(std::uint64_t bits) : bits_(bits), words_((bits + 63) / 64, 0) {}

  std::uint64_t size() const { return bits_; }
  bool test(std::uint64_t i) const { return (words_[i >> 6] >> (i & 63)) & 1u; }
  // Every bit set here is set in `other` (of the same size).
  bool is_subset_of(const Bitmap& other) const;
  void set(std::uint64_t i) { words_[i >> 6] |= (std::uint64_t{1} << (i & 63)); }
  void reset(std::uint64_t i) { words_[i >> 6] &= ~(std::uint64_t{1} << (i & 63)); }
  void set_all();
  std::uint64_t count() const;

  Bitmap& operator|=(const Bitmap& o);
  // Clears every bit that is set in `o` (this &= ~o).
  void clear_where(const Bitmap& o);
  // Sets every bit that is clear in `o` (this |= ~o), used for "missing = not present".
  void set_complement_of(const Bitmap& o);

  // Thread-safe set, for writers marking dirty pages while the sender drains the log.
  void atomic_set(std::uint64_t i);
  // Moves every set bit into `out` (out |= this; this = 0), word by word with atomic exchange so
  // writers running concurrently lose no mark.
  void atomic_drain_into(Bitmap& out);

  // Calls fn(index) for each set bit in increasing order.
  template <typename Fn>
  void for_each_set(Fn&& fn) const {
    for (std::size_t w = 0; w < words_.size(); ++w) {
      std::uint64_t word = words_[w];
      while (word) {
        const int b = __builtin_ctzll(word);
        fn(static_cast<std::uint64_t>(w) * 64 + b);
        word &= word - 1;
      }
    }
  }

  // The next set bit at or after `from`, or size() if none.
  std::uint64_t next_set(std::uint64_t from) const;

  std::span<const std::uint64_t> words() const { return words_; }
  std::span<std::uint64_t> words() { return words_; }

 private:
  std::uint64_t bits_ = 0;
  std::vector<std::uint64_t> words_;
};

}  // namespace hymig
