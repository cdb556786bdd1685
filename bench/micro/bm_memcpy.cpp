// The reference limit: copying the same bytes. Every other bytes/s figure of this binary is read
// against these two: a 4 KiB page hot in cache, and a 64 MiB block that has to come from DRAM.
#include <benchmark/benchmark.h>

#include <cstring>

#include "bench/micro/buffers.hpp"

namespace hymig::micro {
namespace {

void BM_memcpy(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::byte* src = region().data();
  Buffer dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src, n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();  // the copy must really land in dst
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(BM_memcpy)->ArgName("bytes")->Arg(4 << 10)->Arg(64 << 20);

}  // namespace
}  // namespace hymig::micro
