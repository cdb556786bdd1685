// Memory the microbenchmarks read and write, allocated and filled outside every timed loop.
#pragma once

#include "bench/stream_buffer.hpp"

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

// Random bytes with no zero byte: no page is zero or repetitive (the suite's generator).
inline void fill_random(std::span<std::byte> out, std::uint64_t seed) { bench::fill_incompressible(out, seed); }

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
