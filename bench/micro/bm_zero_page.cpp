// is_zero_page: called when a page's hash equals the zero page's hash, to confirm it byte by byte.
// A zero page is the full-scan case; a non-zero page normally fails on its first bytes, and one
// whose only non-zero byte is the last is the worst case. Bytes are the 4 KiB page classified.
#include <benchmark/benchmark.h>

#include "bench/micro/buffers.hpp"
#include "protocol/page_hash.hpp"

namespace hymig::micro {
namespace {

enum class Content { zero, random, last_byte_set };

void BM_is_zero_page(benchmark::State& state, Content content) {
  Buffer page(kPage);  // zeroed
  if (content == Content::random) fill_random(page.span(), 7);
  if (content == Content::last_byte_set) page.data()[kPage - 1] = std::byte{1};
  const bool expected = content == Content::zero;
  if (is_zero_page(page.data(), kPage) != expected) state.SkipWithError("is_zero_page gave the wrong answer");
  for (auto _ : state) {
    benchmark::DoNotOptimize(page.data());  // the compiler must not assume the page is unchanged
    benchmark::DoNotOptimize(is_zero_page(page.data(), kPage));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kPage));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK_CAPTURE(BM_is_zero_page, zero, Content::zero);
BENCHMARK_CAPTURE(BM_is_zero_page, random, Content::random);
BENCHMARK_CAPTURE(BM_is_zero_page, last_byte_set, Content::last_byte_set);

}  // namespace
}  // namespace hymig::micro
