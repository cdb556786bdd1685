#include "testing/holey_source.hpp"

#include <algorithm>

#include "images/file_image.hpp"

namespace hymig::harness {

void find_zero_pages_now(std::span<const std::byte> mem, std::size_t page_size, Bitmap& out, std::uint64_t* calls) {
  ++*calls;
  for (std::uint64_t p = 0; p < mem.size() / page_size; ++p) {
    const std::byte* page = mem.data() + p * page_size;
    if (std::all_of(page, page + page_size, [](std::byte b) { return b == std::byte{0}; })) out.set(p);
  }
}

void HoleySource::find_zero_pages(Bitmap& out) const { find_zero_pages_now(memory(), page_size(), out, &finds); }

void HoleySource::collect_dirty(Bitmap& out, std::span<const std::uint64_t> sent) {
  Bitmap holes(page_count());
  find_zero_pages(holes);
  scan_modified_pages(memory(), page_size(), sent, out, &holes);
}

}  // namespace hymig::harness
