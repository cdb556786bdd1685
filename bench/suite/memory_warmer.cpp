#include "bench/suite/memory_warmer.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstddef>

#include "policy/host_capacity.hpp"

namespace hymig::bench {

double warm_memory(std::uint64_t bytes) {
  // Both ranks of a pair may share the host: each takes at most 40 % of what is free.
  bytes = std::min<std::uint64_t>(bytes, probe_host_memory().memory_available / 5 * 2) & ~std::uint64_t{(2 << 20) - 1};
  if (bytes == 0) return 0;
  const auto start = std::chrono::steady_clock::now();
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return 0;  // a best effort: the run still goes, only less evenly
  ::madvise(p, bytes, MADV_HUGEPAGE);
#ifdef MADV_POPULATE_WRITE
  const bool populated = ::madvise(p, bytes, MADV_POPULATE_WRITE) == 0;
#else
  const bool populated = false;
#endif
  if (!populated) {
    auto* b = static_cast<volatile std::byte*>(p);
    for (std::uint64_t off = 0; off < bytes; off += 4096) b[off] = std::byte{1};
  }
  ::munmap(p, bytes);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s > 0 ? static_cast<double>(bytes) / s : 0;
}

}  // namespace hymig::bench
