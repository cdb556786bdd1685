// Splits [0, n) over worker threads for the scans that sit on the critical path (hashing a whole
// image). Threads are started per call: calls happen once per round, not per page.
#pragma once

#include <cstdint>
#include <functional>

namespace hymig {

unsigned default_threads();

// Calls fn(begin, end) on disjoint ranges covering [0, n); rethrows the first exception. A thread
// is worth starting for at least min_items_per_thread items (the default is sized for pages; a
// caller whose items are bitmap words of 64 pages passes 64).
void parallel_for(std::uint64_t n, unsigned threads,
                  const std::function<void(std::uint64_t begin, std::uint64_t end)>& fn,
                  std::uint64_t min_items_per_thread = 4096);

}  // namespace hymig
