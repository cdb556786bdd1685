// Memory the microbenchmarks read and write, allocated and filled outside every timed loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <span>

namespace hymig::micro {

inline constexpr std::size_t kPage = 4096;
inline constexpr std::size_t kMiB = std::size_t{1} << 20;

// A page-aligned block whose every byte has been written, so no page fault lands in a timed loop.
class Buffer {
 public:
  explicit Buffer(std::size_t bytes)
      : bytes_(bytes), data_(static_cast<std::byte*>(std::aligned_alloc(kPage, (bytes + kPage - 1) / kPage * kPage))) {
    if (!data_) throw std::bad_alloc();
    std::memset(data_.get(), 0, bytes_);
  }
  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  std::size_t size() const { return bytes_; }
  std::span<std::byte> span() { return {data_.get(), bytes_}; }
  std::span<const std::byte> span() const { return {data_.get(), bytes_}; }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::size_t bytes_;
  std::unique_ptr<std::byte, Free> data_;
};

// splitmix64: fast, and random enough that no page is zero or repetitive.
inline void fill_random(std::span<std::byte> out, std::uint64_t seed) {
  std::uint64_t x = seed;
  std::size_t i = 0;
  for (; i + 8 <= out.size(); i += 8) {
    std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    std::memcpy(out.data() + i, &z, 8);
  }
  for (; i < out.size(); ++i) out[i] = std::byte(0x5A);
}

// 256 MiB of random bytes standing in for the image: filled on first use and kept for the whole
// run, so the benchmarks that read it (memcpy source, hashing, datagram payloads) pay it once.
inline constexpr std::size_t kRegionBytes = 256 * kMiB;
inline std::span<const std::byte> region() {
  static Buffer buffer = [] {
    Buffer b(kRegionBytes);
    fill_random(b.span(), 1);
    return b;
  }();
  return buffer.span();
}

}  // namespace hymig::micro
