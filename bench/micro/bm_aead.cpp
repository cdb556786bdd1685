// AES-128-GCM (OpenSSL, AES-NI + PCLMULQDQ), the cipher of every record hymig sends: bytes/s on one
// core, to read against memcpy (bm_memcpy) and XXH3 (bm_hash) of the same run. Seal and open of a
// datagram's payload (4 KiB, 8 KiB: a jumbo frame's two pages, 60 KiB: a loopback datagram's 15),
// encrypted out of place as the sender does (image -> arena) and in place; and the MAC alone
// (--encrypt off: the payload is only authenticated).
#include <benchmark/benchmark.h>

#include <array>
#include <vector>

#include "bench/micro/buffers.hpp"
#include "security/aead.hpp"
#include "security/session_secrets.hpp"

namespace hymig::micro {
namespace {

TrafficKey test_key() { return SessionSecrets::random_for_testing().traffic_key("bench", Role::source); }

// Walks 64 MiB of the region (more than the last-level cache), as a stream of records would.
struct Stream {
  explicit Stream(std::size_t record) : window(region().first(64 * kMiB)), record(record) {}
  std::span<const std::byte> next() {
    if (offset + record > window.size()) offset = 0;
    const auto r = window.subspan(offset, record);
    offset += record;
    return r;
  }
  std::span<const std::byte> window;
  std::size_t record, offset = 0;
};

const std::array<std::byte, 64> kAad{};

void BM_aead_seal(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  AeadCipher c(test_key(), AeadCipher::Direction::seal);
  Stream in(bytes);
  std::vector<std::byte> out(bytes);
  std::uint64_t seq = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(aead_seal(c, seq++, kAad, in.next(), out.data()));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_aead_seal)->ArgName("bytes")->Arg(4096)->Arg(8192)->Arg(61440);

void BM_aead_open_in_place(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const TrafficKey key = test_key();
  AeadCipher sealer(key, AeadCipher::Direction::seal);
  AeadCipher opener(key, AeadCipher::Direction::open);
  // One sealed record, opened again and again (each open rewrites it: re-seal it untimed).
  std::vector<std::byte> clear(bytes, std::byte{7}), record(bytes);
  std::uint64_t ok = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const AeadTag tag = aead_seal(sealer, 1, kAad, clear, record.data());
    state.ResumeTiming();
    ok += aead_open(opener, 1, kAad, record, record.data(), tag);
  }
  if (ok != state.iterations()) state.SkipWithError("a sealed record did not open");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_aead_open_in_place)->ArgName("bytes")->Arg(4096)->Arg(61440);

void BM_aead_mac_only(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  AeadCipher c(test_key(), AeadCipher::Direction::seal);
  Stream in(bytes);
  std::uint64_t seq = 0;
  for (auto _ : state) {
    c.begin(seq++, kAad);
    c.authenticate(in.next());
    benchmark::DoNotOptimize(c.finish_seal());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_aead_mac_only)->ArgName("bytes")->Arg(4096)->Arg(61440);

}  // namespace
}  // namespace hymig::micro
