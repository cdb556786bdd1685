// The monotonic clock in nanoseconds, as stamped into datagrams and progress reports.
#pragma once

#include <time.h>

#include <cstdint>

namespace hymig {

inline std::uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace hymig
