#include "verbs/verbs_handles.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace hymig::verbs {

AlignedBytes allocate_aligned(std::size_t bytes) {
  constexpr std::size_t kAlign = 4096;
  const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
  void* p = std::aligned_alloc(kAlign, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  return AlignedBytes(static_cast<std::byte*>(p));
}

}  // namespace hymig::verbs
