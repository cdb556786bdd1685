// The verify digest, keyed by the session: over the per-page hashes of a 1 GiB image (262144 pages
// of 4 KiB, --verify fast), and over a 256 MiB image's contents (--verify full: AES-GMAC of every
// page, then BLAKE2b over the tags), on one core and on all. Bytes are the image bytes covered.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/micro/buffers.hpp"
#include "protocol/page_hash.hpp"

namespace hymig::micro {
namespace {

void BM_keyed_digest_of_hashes(benchmark::State& state) {
  constexpr std::size_t kImageBytes = std::size_t{1} << 30;
  std::vector<std::uint64_t> hashes(kImageBytes / kPage);
  fill_random(std::as_writable_bytes(std::span(hashes)), 3);
  const SessionSecrets secrets = SessionSecrets::random_for_testing();
  for (auto _ : state) benchmark::DoNotOptimize(keyed_digest_of_hashes(secrets, hashes));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kImageBytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * hashes.size()));
}
BENCHMARK(BM_keyed_digest_of_hashes)->Unit(benchmark::kMicrosecond);

// threads = 0: one per core.
void BM_keyed_digest_of_image(benchmark::State& state) {
  const std::span<const std::byte> image = region();
  const Bitmap no_holes(image.size() / kPage);
  const SessionSecrets secrets = SessionSecrets::random_for_testing();
  for (auto _ : state)
    benchmark::DoNotOptimize(keyed_digest_of_image(secrets, image, kPage, no_holes, static_cast<unsigned>(state.range(0))));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * image.size()));
}
BENCHMARK(BM_keyed_digest_of_image)->ArgName("threads")->Arg(1)->Arg(0)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace hymig::micro
