#include "core/mapping.hpp"

#include "core/error.hpp"

namespace hymig {

Mapping map_anonymous(std::size_t bytes, const char* what) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw_errno(std::string("cannot map ") + std::to_string(bytes) + " bytes for " + what);
  ::madvise(p, bytes, MADV_HUGEPAGE);  // fewer TLB misses on multi-GiB images; a hint only
  return Mapping(p, bytes);
}

}  // namespace hymig
