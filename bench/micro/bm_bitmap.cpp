// Page bitmaps of 1 Mi pages (a 4 GiB image at 4 KiB): OR-merging one into another (the dirty log
// into a round set, the final delta's union) and visiting the set bits (building a round, encoding
// a page set) when few pages are set (a late round) or many (round 0). Bytes are the bitmap's own
// bytes (128 KiB), the memory each pass reads; items are pages covered (merge) or set bits found
// (scans).
#include <benchmark/benchmark.h>

#include <random>

#include "bench/micro/buffers.hpp"
#include "core/bitmap.hpp"

namespace hymig::micro {
namespace {

constexpr std::uint64_t kPages = std::uint64_t{1} << 20;
constexpr std::int64_t kBitmapBytes = kPages / 8;

// Every page set with probability per_mille / 1000.
Bitmap random_bitmap(std::int64_t per_mille, std::uint32_t seed) {
  Bitmap b(kPages);
  if (per_mille >= 1000) {
    b.set_all();
    return b;
  }
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(0, 999);
  for (std::uint64_t i = 0; i < kPages; ++i)
    if (d(rng) < per_mille) b.set(i);
  return b;
}

void BM_bitmap_or_merge(benchmark::State& state) {
  Bitmap into = random_bitmap(10, 1);
  const Bitmap from = random_bitmap(10, 2);
  for (auto _ : state) {
    into |= from;
    benchmark::DoNotOptimize(into.words().data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kBitmapBytes);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kPages));
}
BENCHMARK(BM_bitmap_or_merge);

void BM_bitmap_for_each_set(benchmark::State& state) {
  const Bitmap b = random_bitmap(state.range(0), 3);
  const std::uint64_t set = b.count();
  for (auto _ : state) {
    std::uint64_t sum = 0;
    b.for_each_set([&](std::uint64_t i) { sum += i; });
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(state.iterations() * kBitmapBytes);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * set));
}
// Density in per mille: 1 (sparse), 500 (random half), 1000 (every page).
BENCHMARK(BM_bitmap_for_each_set)->ArgName("per_mille")->Arg(1)->Arg(500)->Arg(1000);

void BM_bitmap_next_set(benchmark::State& state) {
  const Bitmap b = random_bitmap(state.range(0), 3);
  const std::uint64_t set = b.count();
  for (auto _ : state) {
    std::uint64_t sum = 0;
    for (std::uint64_t i = b.next_set(0); i < b.size(); i = b.next_set(i + 1)) sum += i;
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(state.iterations() * kBitmapBytes);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * set));
}
BENCHMARK(BM_bitmap_next_set)->ArgName("per_mille")->Arg(1)->Arg(500)->Arg(1000);

}  // namespace
}  // namespace hymig::micro
