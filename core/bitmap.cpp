#include "core/bitmap.hpp"

#include <algorithm>
#include <bit>

namespace hymig {

void Bitmap::set_all() {
  std::fill(words_.begin(), words_.end(), ~std::uint64_t{0});
  if (bits_ % 64) words_.back() = (std::uint64_t{1} << (bits_ % 64)) - 1;
}


std::uint64_t Bitmap::count() const {
  std::uint64_t n = 0;
  for (auto w : words_) n += std::popcount(w);
  return n;
}

Bitmap& Bitmap::operator|=(const Bitmap& o) {
  const std::size_t n = std::min(words_.size(), o.words_.size());
  for (std::size_t i = 0; i < n; ++i) words_[i] |= o.words_[i];
  return *this;
}

void Bitmap::clear_where(const Bitmap& o) {
  const std::size_t n = std::min(words_.size(), o.words_.size());
  for (std::size_t i = 0; i < n; ++i) words_[i] &= ~o.words_[i];
}

void Bitmap::set_complement_of(const Bitmap& o) {
  const std::size_t n = std::min(words_.size(), o.words_.size());
  for (std::size_t i = 0; i < n; ++i) words_[i] |= ~o.words_[i];
  if (bits_ % 64 && !words_.empty()) words_.back() &= (std::uint64_t{1} << (bits_ % 64)) - 1;
}

void Bitmap::atomic_set(std::uint64_t i) {
  std::atomic_ref<std::uint64_t> word(words_[i >> 6]);
  word.fetch_or(std::uint64_t{1} << (i & 63), std::memory_order_release);
}

void Bitmap::atomic_drain_into(Bitmap& out) {
  const std::size_t n = std::min(words_.size(), out.words_.size());
  for (std::size_t i = 0; i < n; ++i) {
    std::atomic_ref<std::uint64_t> word(words_[i]);
    if (word.load(std::memory_order_relaxed) == 0) continue;
    out.words_[i] |= word.exchange(0, std::memory_order_acq_rel);
  }
}

std::uint64_t Bitmap::next_set(std::uint64_t from) const {
  if (from >= bits_) return bits_;
  std::size_t w = from >> 6;
  std::uint64_t word = words_[w] & (~std::uint64_t{0} << (from & 63));
  while (true) {
    if (word) return std::min<std::uint64_t>(bits_, std::uint64_t{w} * 64 + std::countr_zero(word));
    if (++w >= words_.size()) return bits_;
    word = words_[w];
  }
}

bool Bitmap::is_subset_of(const Bitmap& other) const {
  if (other.size() != size()) return false;
  for (std::size_t w = 0; w < words_.size(); ++w)
    if (words_[w] & ~other.words_[w]) return false;
  return true;
}

}  // namespace hymig
