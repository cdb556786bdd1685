// The verify digest: XXH3-128 over the per-page hashes of a 1 GiB image (262144 pages of 4 KiB).
// Bytes are the image bytes the digest covers (what the verify step is compared with); items are
// the page hashes consumed.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/micro/buffers.hpp"
#include "transport/page_hash.hpp"

namespace hymig::micro {
namespace {

void BM_digest_of_hashes(benchmark::State& state) {
  constexpr std::size_t kImageBytes = std::size_t{1} << 30;
  std::vector<std::uint64_t> hashes(kImageBytes / kPage);
  fill_random(std::as_writable_bytes(std::span(hashes)), 3);
  for (auto _ : state) benchmark::DoNotOptimize(digest_of_hashes(hashes));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kImageBytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * hashes.size()));
}
BENCHMARK(BM_digest_of_hashes)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace hymig::micro
