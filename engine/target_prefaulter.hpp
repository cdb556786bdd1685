// Populates the target image ahead of the receive stream, from a thread of its own.
//
// A target's memory is faulted in as pages land. Where the host backs this machine with memory it
// took back, a first touch runs at ~0.45 GB/s per thread, 20x slower than warm memory
// (docs/data-path.md, "Populating ahead"): the receiving thread waits in those faults while its
// socket fills. MADV_POPULATE_WRITE (Linux 5.14) takes the same faults here, beside the receiver
// and ahead of it. It allocates and maps without changing a byte, so it is safe while lanes write
// the same pages. Only pages that will carry data are given: a zero page is a flag the receiver
// never writes into a target that starts zeroed, and populating it would allocate it.
//
// Advisory: a kernel without it, or any failure, stops the prefaulter and never the session.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <thread>

#include "core/bitmap.hpp"

namespace hymig {

class TargetPrefaulter {
 public:
  // The receiver has passed every page below frontier() (they landed, or are late and few):
  // populating behind it would only cost CPU. Called from the prefaulter's thread.
  using Frontier = std::function<std::uint64_t()>;

  // Starts populating `pages` (sized to the image's page count) in increasing order.
  TargetPrefaulter(std::span<std::byte> image, std::size_t page_size, Bitmap pages, Frontier frontier);
  ~TargetPrefaulter() { stop(); }
  TargetPrefaulter(const TargetPrefaulter&) = delete;
  TargetPrefaulter& operator=(const TargetPrefaulter&) = delete;

  // Stops and joins; nothing touches the image after it returns.
  void stop() noexcept;
  // Waits until every page was populated or passed, or it stopped on an error.
  void wait() noexcept;

  std::uint64_t populated_bytes() const { return populated_.load(std::memory_order_relaxed); }
  // Bytes of `pages` the receiver passed before they were populated.
  std::uint64_t passed_bytes() const { return passed_.load(std::memory_order_relaxed); }
  // The errno that stopped it (EINVAL: the kernel has no MADV_POPULATE_WRITE); 0 if none.
  int error() const { return error_.load(std::memory_order_relaxed); }

 private:
  void run() noexcept;
  std::uint64_t count_set(std::uint64_t from, std::uint64_t to) const;

  std::span<std::byte> image_;
  std::size_t page_size_;
  Bitmap pages_;
  Frontier frontier_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> populated_{0}, passed_{0};
  std::atomic<int> error_{0};
  std::thread thread_;
};

}  // namespace hymig
