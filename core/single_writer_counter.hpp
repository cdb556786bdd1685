// A counter one thread writes and others only read (a lane's datagram counts): adding to it is a
// load and a store, not a locked read-modify-write. On x86 that takes the lock prefix off the
// per-datagram path; readers still see whole values, never torn ones.
#pragma once

#include <atomic>
#include <cstdint>

namespace hymig {

// Adds `n` to `counter`, which only the calling thread writes; returns the value before.
inline std::uint64_t add_single_writer(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
  const std::uint64_t before = counter.load(std::memory_order_relaxed);
  counter.store(before + n, std::memory_order_relaxed);
  return before;
}

}  // namespace hymig
