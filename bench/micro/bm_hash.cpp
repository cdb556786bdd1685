// Page hashing: XXH3-64 of one 4 KiB page (the sender hashes every page it sends, the receiver every
// page it applies), and hash_all_pages over a 256 MiB region (the file image's dirty scan and the
// verify step), single-threaded and spread over every core.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/micro/buffers.hpp"
#include "protocol/page_hash.hpp"

namespace hymig::micro {
namespace {

// The same page over and over: the hash's own speed with the data in L1.
void BM_hash_page_hot(benchmark::State& state) {
  const std::byte* page = region().data();
  for (auto _ : state) benchmark::DoNotOptimize(hash_page(page, kPage));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kPage));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_hash_page_hot);

// Page after page through 64 MiB (more than the last-level cache): what a streaming sender sees.
void BM_hash_page_stream(benchmark::State& state) {
  const std::span<const std::byte> window = region().first(64 * kMiB);
  const std::size_t pages = window.size() / kPage;
  std::size_t p = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(hash_page(window.data() + p * kPage, kPage));
    if (++p == pages) p = 0;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kPage));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_hash_page_stream);

// threads = 0 means one per core (the library's default); real time, since the work is on workers.
void BM_hash_all_pages(benchmark::State& state) {
  const std::span<const std::byte> image = region();
  const auto threads = static_cast<unsigned>(state.range(0));
  std::vector<std::uint64_t> hashes(image.size() / kPage);
  for (auto _ : state) {
    hash_all_pages(image, kPage, hashes, threads);
    benchmark::DoNotOptimize(hashes.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * image.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * hashes.size()));
}
BENCHMARK(BM_hash_all_pages)->ArgName("threads")->Arg(1)->Arg(0)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace hymig::micro
