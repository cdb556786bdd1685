// Compressed pages: zstd per page, what the receiver accepts (exactly one page, only when the
// notify allowed it), the governor's decision from measured ratio and CPU, and whole migrations
// with compression on (every page lands byte for byte, whole-page and chunked layouts, under loss).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include <zstd.h>

#include "engine/compression_governor.hpp"
#include "engine/page_applier.hpp"
#include "images/synthetic_image.hpp"
#include "protocol/page_compressor.hpp"
#include "protocol/page_hash.hpp"
#include "protocol/wire.hpp"
#include "security/epoch_keys.hpp"
#include "testing/engine_harness.hpp"

namespace hymig {
namespace {

constexpr std::size_t kPage = 4096;

// A page whose first `random_bytes` are random and the rest a pattern.
std::vector<std::byte> text_page(unsigned seed, std::size_t random_bytes = 1024) {
  std::vector<std::byte> p(kPage);
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < kPage; ++i)
    p[i] = static_cast<std::byte>(i < random_bytes ? rng() & 0xff : 'a' + (i % 13));
  return p;
}

std::vector<std::byte> random_page(unsigned seed) {
  std::vector<std::byte> p(kPage);
  std::mt19937 rng(seed);
  for (auto& b : p) b = static_cast<std::byte>(rng() & 0xff);
  return p;
}

TEST(PageCompressor, RoundTripsACompressiblePage) {
  PageCompressor c;
  PageDecompressor d;
  const auto page = text_page(1);
  std::vector<std::byte> z(compressed_limit(kPage));
  const std::size_t n = c.compress(page, z);
  ASSERT_GT(n, 0u);
  EXPECT_LT(n, kPage / 2);
  std::vector<std::byte> back(kPage);
  ASSERT_TRUE(d.decompress({z.data(), n}, back));
  EXPECT_EQ(back, page);
}

TEST(PageCompressor, RandomPageDoesNotGoCompressed) {
  PageCompressor c;
  std::vector<std::byte> z(compressed_limit(kPage));
  EXPECT_EQ(c.compress(random_page(2), z), 0u);
}

TEST(PageDecompressor, AcceptsOnlyExactlyOnePage) {
  PageCompressor c;
  PageDecompressor d;
  const auto page = text_page(3);
  std::vector<std::byte> z(kPage);
  const std::size_t n = c.compress(page, z);
  ASSERT_GT(n, 0u);
  std::vector<std::byte> out(kPage);
  // Truncated, with trailing bytes, with a flipped byte anywhere: refused or not this page, never
  // a crash and never more than a page written.
  EXPECT_FALSE(d.decompress({z.data(), n - 1}, out));
  std::vector<std::byte> longer(z.begin(), z.begin() + static_cast<long>(n));
  longer.push_back(std::byte{0});
  EXPECT_FALSE(d.decompress(longer, out));
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<std::byte> bad(z.begin(), z.begin() + static_cast<long>(n));
    bad[i] ^= std::byte{0x21};
    std::vector<std::byte> dst(kPage + 64, std::byte{0x77});
    const bool ok = d.decompress(bad, std::span(dst).first(kPage));
    for (std::size_t k = kPage; k < dst.size(); ++k) ASSERT_EQ(dst[k], std::byte{0x77}) << "wrote past the page";
    if (ok) {
      EXPECT_NE(std::vector<std::byte>(dst.begin(), dst.begin() + kPage), page) << "byte " << i;
    }
  }
  // A frame of two pages is not a page, nor is a frame of half a page.
  std::vector<std::byte> two(2 * kPage, std::byte{'x'});
  std::vector<std::byte> z2(ZSTD_compressBound(two.size()));
  const std::size_t n2 = ZSTD_compress(z2.data(), z2.size(), two.data(), two.size(), 1);
  EXPECT_FALSE(d.decompress({z2.data(), n2}, out));
  const std::size_t n3 = ZSTD_compress(z2.data(), z2.size(), two.data(), kPage / 2, 1);
  EXPECT_FALSE(d.decompress({z2.data(), n3}, out));
  // Random junk.
  std::mt19937 rng(9);
  for (int t = 0; t < 2000; ++t) {
    std::vector<std::byte> junk(1 + rng() % 600);
    for (auto& b : junk) b = static_cast<std::byte>(rng() & 0xff);
    if (t % 2) std::memcpy(junk.data(), z.data(), std::min<std::size_t>(junk.size(), 6));  // a real frame header
    d.decompress(junk, out);
  }
}

TEST(CompressionGovernor, OffNeverTriesOnAlwaysDoes) {
  CompressionGovernor off(Compression::off, kPage), on(Compression::on, kPage);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(off.should_try());
    EXPECT_TRUE(on.should_try());
  }
  EXPECT_FALSE(CompressionGovernor(Compression::on, 65536).should_try()) << "pages above 16 KiB never go compressed";
}

// A simulated lane: a page costs `plain_s` of CPU, `zstd_s` more when compressed, and
// `ratio` (compressed) or 1 of `wire_s` on a wire the pacer holds it to; the lane moves pages at
// the slower of the two. Returns whether it compresses at the end, and the pages it tried.
struct Lane {
  double ratio, zstd_s, plain_s, wire_s;
  CompressionGovernor g{Compression::automatic, kPage};
  int tried = 0;
  long pages = 0;
  void run(double seconds) {
    for (double t = 0; t < seconds;) {
      double busy = 0, wire = 0;
      for (int i = 0; i < 64; ++i) {
        busy += plain_s;
        if (g.should_try()) {
          ++tried;
          g.on_attempt(ratio >= 0.75 ? 0 : static_cast<std::size_t>(ratio * kPage), zstd_s);
          busy += zstd_s;
          wire += ratio >= 0.75 ? wire_s : ratio * wire_s;
        } else {
          wire += wire_s;
        }
      }
      const double wall = std::max(busy, wire);
      g.on_batch(64, busy, wall);
      pages += 64;
      t += wall;
    }
  }
};

TEST(CompressionGovernor, CompressesOnASlowLinkWithCompressibleMemory) {
  // 1 Gbit/s (33 us a page on the wire), zstd 20 us a page, ratio 0.45: ~1.3x the pages.
  Lane lane{0.45, 20e-6, 9e-6, 33e-6};
  lane.run(5);
  EXPECT_TRUE(lane.g.active());
  EXPECT_GE(lane.g.trials(), 1u);
}

TEST(CompressionGovernor, LeavesAFastLinkAlone) {
  // 2 us a page on the wire: zstd's 20 us would make the lane five times slower; no trial at all.
  Lane lane{0.3, 20e-6, 2e-6, 2e-6};
  lane.run(2);
  EXPECT_FALSE(lane.g.active());
  EXPECT_EQ(lane.g.trials(), 0u);
  EXPECT_LT(lane.tried, lane.pages / 100) << "while off it only samples (0.8 %)";
}

TEST(CompressionGovernor, LeavesIncompressibleMemoryAlone) {
  Lane lane{1.0, 20e-6, 9e-6, 33e-6};
  lane.run(5);
  EXPECT_FALSE(lane.g.active());
  EXPECT_EQ(lane.g.trials(), 0u);
}

TEST(CompressionGovernor, ATrialThatDoesNotPayIsUndoneAndBacksOff) {
  // The lane waits long enough for zstd to look affordable, but compressing gains 3 %: 30 us a
  // page on the wire, then 29 us of CPU.
  Lane lane{0.7, 20e-6, 9e-6, 30e-6};
  lane.run(10);
  EXPECT_FALSE(lane.g.active());
  EXPECT_GE(lane.g.trials(), 1u);
  EXPECT_LE(lane.g.trials(), 5u) << "trials back off: 1, 2, 4, 8 s";
}

TEST(CompressionGovernor, FollowsTheLinkBothWays) {
  Lane lane{0.4, 20e-6, 9e-6, 50e-6};
  lane.run(5);
  EXPECT_TRUE(lane.g.active());
  lane.wire_s = 1e-6;  // the link got fast: compressing is now the bottleneck
  lane.run(40);
  EXPECT_FALSE(lane.g.active());
}

// ---- the receiver ------------------------------------------------------------------------------

struct Sealer {
  SessionSecrets secrets = SessionSecrets::random_for_testing();
  EpochKeys keys{secrets, "datagram/0", Role::source, AeadCipher::Direction::seal};
  std::uint64_t seq = 0;

  // A datagram of entries with their payload pieces (already compressed where the entry says).
  std::vector<std::byte> seal(const std::vector<DatagramEntry>& entries, const std::vector<std::vector<std::byte>>& pieces,
                              std::uint32_t round = 0) {
    DatagramHeader h;
    h.flags = kDatagramEncrypted;
    h.session = 77;
    h.round = round;
    h.seq = seq++;
    std::size_t payload = 0;
    for (const auto& p : pieces) payload += p.size();
    h.payload_bytes = static_cast<std::uint32_t>(payload);
    std::vector<std::byte> out(kDatagramHeaderBytes + entries.size() * kEntryBytes + payload + kDatagramTagBytes);
    const auto head = encode_datagram_head(out.data(), h, entries);
    AeadCipher& c = keys.for_seq(h.seq);
    c.begin(h.seq, std::span(out).first(kDatagramHeaderBytes));
    c.crypt(std::span(out).subspan(kDatagramHeaderBytes, head - kDatagramHeaderBytes), out.data() + kDatagramHeaderBytes);
    std::size_t at = head;
    for (const auto& p : pieces) {
      c.crypt(p, out.data() + at);
      at += p.size();
    }
    const AeadTag tag = c.finish_seal();
    std::memcpy(out.data() + at, tag.data(), tag.size());
    return out;
  }
};

DatagramEntry compressed_entry(std::uint64_t page, std::size_t len) {
  DatagramEntry e{page, false, 0};
  e.compressed = static_cast<std::uint16_t>(len);
  return e;
}

std::vector<std::byte> zstd_of(const std::vector<std::byte>& page) {
  PageCompressor c;
  std::vector<std::byte> z(kPage);
  z.resize(c.compress(page, z));
  return z;
}

class CompressedDatagrams : public ::testing::TestWithParam<std::size_t> {
 protected:
  Sealer s;
  std::vector<std::byte> image = std::vector<std::byte>(kPage * 8, std::byte{0x11});
  DatagramLayout layout = make_layout(kPage, GetParam());
  PageApplier applier(bool allowed) {
    return PageApplier(image, kPage, 77, layout, DatagramProtection::aead, s.secrets, 1, true, false, allowed);
  }
};

TEST_P(CompressedDatagrams, LandExactlyWhereAllowed) {
  PageApplier a = applier(true);
  const auto p1 = text_page(5, 200), p2 = text_page(6, 200);
  const auto z1 = zstd_of(p1), z2 = zstd_of(p2);
  ASSERT_FALSE(z1.empty());
  ASSERT_EQ(a.apply_datagram(0, s.seal({compressed_entry(2, z1.size()), {4, true, zero_page_hash(kPage)},
                                        compressed_entry(5, z2.size())},
                                       {z1, z2}),
                             0),
            DropReason::none);
  EXPECT_EQ(0, std::memcmp(image.data() + 2 * kPage, p1.data(), kPage));
  EXPECT_EQ(0, std::memcmp(image.data() + 5 * kPage, p2.data(), kPage));
  EXPECT_TRUE(a.present().test(2) && a.present().test(4) && a.present().test(5));
  EXPECT_EQ(a.page_hashes()[2], hash_page(p1.data(), kPage));
}

TEST_P(CompressedDatagrams, RefusedUnlessTheNotifyAllowedThem) {
  PageApplier a = applier(false);
  const auto z = zstd_of(text_page(7, 200));
  EXPECT_EQ(a.apply_datagram(0, s.seal({compressed_entry(1, z.size())}, {z}), 0), DropReason::bad_shape);
  EXPECT_FALSE(a.present().test(1));
  EXPECT_EQ(image[kPage], std::byte{0x11});
}

TEST_P(CompressedDatagrams, MalformedEntriesAreRefusedBeforeAnythingLands) {
  PageApplier a = applier(true);
  const auto z = zstd_of(text_page(8, 200));
  // A length that disagrees with the payload, a compressed zero page, a length of a whole page.
  EXPECT_EQ(a.apply_datagram(0, s.seal({compressed_entry(1, z.size() + 1)}, {z}), 0), DropReason::bad_shape);
  DatagramEntry zc = compressed_entry(1, z.size());
  zc.zero = true;
  EXPECT_EQ(a.apply_datagram(0, s.seal({zc}, {z}), 0), DropReason::bad_shape);
  std::vector<std::byte> whole(kPage, std::byte{1});
  EXPECT_EQ(a.apply_datagram(0, s.seal({compressed_entry(1, kPage)}, {whole}), 0), DropReason::bad_shape);
  EXPECT_FALSE(a.present().test(1));
  for (std::size_t i = 0; i < image.size(); ++i) ASSERT_EQ(image[i], std::byte{0x11}) << i;
}

TEST_P(CompressedDatagrams, AnAuthenticFrameThatIsNoPageLeavesThePageMissing) {
  PageApplier a = applier(true);
  const auto p = text_page(9, 200);
  const auto z = zstd_of(p);
  ASSERT_EQ(a.apply_datagram(0, s.seal({compressed_entry(3, z.size())}, {z}), 0), DropReason::none);
  ASSERT_TRUE(a.present().test(3));
  // Round 1 announces page 3 again; its authentic copy is junk: the page counts as missing.
  Bitmap again(8);
  again.set(3);
  a.begin_round(1, again);
  std::vector<std::byte> junk(z.size(), std::byte{0x42});
  EXPECT_EQ(a.apply_datagram(0, s.seal({compressed_entry(3, junk.size())}, {junk}, 1), 0), DropReason::bad_compressed);
  EXPECT_FALSE(a.present().test(3));
  EXPECT_EQ(a.dropped(DropReason::bad_compressed), 1u);
}

// On a chunked path a compressed page too large for one datagram goes as its own chunks.
TEST_P(CompressedDatagrams, CompressedChunksAssembleOrAreRefused) {
  if (!layout.chunked()) GTEST_SKIP() << "whole-page layout: no chunks";
  PageApplier a = applier(true);
  const auto p = text_page(10, 1500);
  const auto z = zstd_of(p);
  const std::size_t cb = layout.chunk_bytes;
  ASSERT_GT(z.size(), cb);
  const auto n = static_cast<std::uint16_t>((z.size() + cb - 1) / cb);
  ASSERT_LT(n, layout.chunk_count);
  // Built by hand: header with the chunk fields, then sealed like the streamer does.
  auto seal_chunk = [&](std::uint64_t page, std::uint16_t index, std::uint16_t count, std::size_t len,
                        std::span<const std::byte> piece) {
    DatagramHeader h;
    h.flags = kDatagramEncrypted;
    h.session = 77;
    h.seq = s.seq++;
    h.chunk_index = index;
    h.chunk_count = count;
    h.payload_bytes = static_cast<std::uint32_t>(piece.size());
    const DatagramEntry e = compressed_entry(page, len);
    std::vector<std::byte> out(kDatagramHeaderBytes + kEntryBytes + piece.size() + kDatagramTagBytes);
    encode_datagram_head(out.data(), h, std::span(&e, 1));
    AeadCipher& c = s.keys.for_seq(h.seq);
    c.begin(h.seq, std::span(out).first(kDatagramHeaderBytes));
    c.crypt(std::span(out).subspan(kDatagramHeaderBytes, kEntryBytes), out.data() + kDatagramHeaderBytes);
    c.crypt(piece, out.data() + kDatagramHeaderBytes + kEntryBytes);
    const AeadTag tag = c.finish_seal();
    std::memcpy(out.data() + out.size() - kDatagramTagBytes, tag.data(), tag.size());
    return out;
  };
  auto piece = [&](std::uint16_t i) {
    return std::span<const std::byte>(z).subspan(i * cb, std::min(cb, z.size() - i * cb));
  };
  // All chunks, in reverse order: the page lands once the last one is in.
  for (std::uint16_t i = n; i-- > 0;) {
    EXPECT_FALSE(a.present().test(6));
    ASSERT_EQ(a.apply_datagram(0, seal_chunk(6, i, n, z.size(), piece(i)), 0), DropReason::none) << i;
  }
  EXPECT_TRUE(a.present().test(6));
  EXPECT_EQ(0, std::memcmp(image.data() + 6 * kPage, p.data(), kPage));
  // A chunk count that does not fit the length, a length of a whole page's chunks, a last chunk
  // of the wrong size: refused, nothing lands.
  EXPECT_EQ(a.apply_datagram(0, seal_chunk(1, 0, n + 1, z.size(), piece(0)), 0), DropReason::bad_shape);
  EXPECT_EQ(a.apply_datagram(0, seal_chunk(1, 0, layout.chunk_count, cb * (layout.chunk_count - 1) + 1, piece(0)), 0),
            DropReason::bad_shape);
  EXPECT_EQ(a.apply_datagram(0, seal_chunk(1, n - 1, n, z.size(), piece(0)), 0), DropReason::bad_shape);
  // Chunks of another page in between: the first page's gathered chunk is dropped, it stays missing.
  EXPECT_EQ(a.apply_datagram(0, seal_chunk(1, 0, n, z.size(), piece(0)), 0), DropReason::none);
  EXPECT_EQ(a.apply_datagram(0, seal_chunk(2, 0, n, z.size(), piece(0)), 0), DropReason::none);
  for (std::uint16_t i = 1; i < n; ++i) EXPECT_EQ(a.apply_datagram(0, seal_chunk(1, i, n, z.size(), piece(i)), 0), DropReason::none);
  EXPECT_FALSE(a.present().test(1));
  EXPECT_FALSE(a.present().test(2));
  EXPECT_EQ(image[kPage], std::byte{0x11});
}

INSTANTIATE_TEST_SUITE_P(Layouts, CompressedDatagrams, ::testing::Values(65507, 9000, 1472),
                         [](const auto& info) { return "datagram" + std::to_string(info.param); });

// ---- whole migrations --------------------------------------------------------------------------

struct Case {
  const char* name;
  std::size_t datagram;
  double loss;
  double compressible;
};

class CompressedMigration : public ::testing::TestWithParam<Case> {};

TEST_P(CompressedMigration, DestinationEqualsSourceAndPagesWentCompressed) {
  const Case c = GetParam();
  SyntheticSpec spec;
  spec.size = 8 << 20;
  spec.dirty_rate = 8 << 20;
  spec.working_set = 1 << 20;
  // Zero pages the writers touch are almost all zeros, and compress: only the random image has none.
  spec.zero_fraction = c.compressible > 0 ? 0.2 : 0;
  spec.compressible = c.compressible;
  SyntheticImage image(spec);
  Impairments imp;
  imp.loss = c.loss;
  imp.seed = 3;
  imp.max_datagram = c.datagram;
  SourceOptions opts;
  opts.initial_rate = 200 << 20;
  opts.downtime_ms = 50;
  opts.max_rounds = 6;
  opts.datagram_bytes = c.datagram;
  opts.lanes = 2;
  opts.compression = Compression::on;
  harness::TargetRecord target;
  const auto run = harness::run_engines(harness::fake_channels(imp), image, harness::kept_targets(target), opts);
  ASSERT_TRUE(run.source.committed()) << run.source.error << " / destination: " << run.dest.error;
  EXPECT_TRUE(run.source.verified);
  ASSERT_EQ(target.memory.size(), image.memory().size());
  EXPECT_EQ(0, std::memcmp(target.memory.data(), image.memory().data(), image.memory().size()));
  EXPECT_EQ(run.source.compression, "on");
  EXPECT_EQ(run.dest.bad_compressed, 0u);
  if (c.compressible > 0) {
    EXPECT_GT(run.source.compressed_pages, image.page_count() / 2);
    // Round 0 sends every page once; later rounds depend on how fast the writers outrun a slow
    // (sanitized) engine, so the whole session's bytes do not measure compression.
    ASSERT_FALSE(run.source.round_stats.empty());
    const RoundStats& first = run.source.round_stats.front();
    EXPECT_EQ(first.pages, image.page_count());
    EXPECT_LT(static_cast<double>(first.bytes), static_cast<double>(first.pages * kPage) * (1 - c.compressible / 2))
        << "compressed pages should shrink the stream";
  } else {
    EXPECT_EQ(run.source.compressed_pages, 0u) << "random pages never shrink by a quarter";
  }
}

const Case kCases[] = {
    {"whole", 65507, 0, 0.75},
    {"whole_loss5", 65507, 0.05, 0.75},
    {"jumbo", 9000, 0, 0.75},
    {"chunked", 1472, 0, 0.75},
    {"chunked_loss5", 1472, 0.05, 0.75},
    {"chunked_two_chunks", 1472, 0, 0.6},           // compressed pages larger than a datagram
    {"chunked_two_chunks_loss5", 1472, 0.05, 0.6},
    {"roce_mtu", 1024, 0.05, 0.5},
    {"incompressible", 65507, 0, 0},
};
INSTANTIATE_TEST_SUITE_P(Layouts, CompressedMigration, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace hymig
