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

// Wall-clock time in Unix seconds: lines that other hosts' or other tools' lines are put beside
// (progress, pacer traces, a bench's series) share one axis.
inline double unix_seconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU seconds this thread has used (user + system): the work it did, not the time it waited in
// a sleep or a blocking call. A system call, not the vDSO: for per-batch use, not per page.
inline double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace hymig
