#include "core/parallel.hpp"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace hymig {

unsigned default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

void parallel_for(std::uint64_t n, unsigned threads,
                  const std::function<void(std::uint64_t, std::uint64_t)>& fn, std::uint64_t min_items_per_thread) {
  if (threads == 0) threads = default_threads();
  // Below that many items a thread costs more than it saves.
  threads = static_cast<unsigned>(std::min<std::uint64_t>(
      threads, std::max<std::uint64_t>(1, n / std::max<std::uint64_t>(1, min_items_per_thread))));
  if (threads <= 1) {
    if (n) fn(0, n);
    return;
  }
  std::exception_ptr first_error;
  std::mutex error_mutex;
  std::vector<std::thread> workers;
  const std::uint64_t step = (n + threads - 1) / threads;
  for (unsigned t = 0; t < threads; ++t) {
    const std::uint64_t b = t * step, e = std::min(n, b + step);
    if (b >= e) break;
    workers.emplace_back([&, b, e] {
      try {
        fn(b, e);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
      }
    });
  }
  for (auto& w : workers) w.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace hymig
