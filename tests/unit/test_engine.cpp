// The engine end to end over the in-memory fake channels: under seeded loss, reordering,
// duplication, corruption and delay, with writers dirtying the source, the destination must end
// byte-for-byte equal to the paused source, every seed.
#include <atomic>
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "images/synthetic_image.hpp"
#include "testing/engine_harness.hpp"

namespace hymig {
namespace {

using harness::EngineRun;
using harness::TargetRecord;

struct Outcome {
  MigrationReport source;
  DestinationReport dest;
  TargetRecord target;
};

Outcome migrate(SyntheticImage& image, const Impairments& imp, SourceOptions opts,
                const std::function<void(ReliableChannel&)>& sabotage = {}) {
  Outcome out;
  EngineRun run = harness::run_engines(harness::fake_channels(imp), image, harness::kept_targets(out.target), opts, {}, sabotage);
  out.source = std::move(run.source);
  out.dest = std::move(run.dest);
  return out;
}

struct Case {
  const char* name;
  Impairments imp;
  std::size_t datagram;
};

class EngineOverFakeChannels : public ::testing::TestWithParam<std::tuple<Case, std::uint64_t>> {};

TEST_P(EngineOverFakeChannels, DestinationEqualsPausedSourceByteForByte) {
  auto [c, seed] = GetParam();
  SyntheticSpec spec;
  spec.size = 8 << 20;
  spec.dirty_rate = 16 << 20;
  spec.working_set = 2 << 20;
  spec.seed = seed;
  spec.zero_fraction = 0.2;
  SyntheticImage image(spec);
  Impairments imp = c.imp;
  imp.seed = seed;
  imp.max_datagram = c.datagram;
  SourceOptions opts;
  opts.initial_rate = 200 << 20;
  opts.downtime_ms = 50;
  opts.max_rounds = 8;
  opts.datagram_bytes = c.datagram;
  const auto out = migrate(image, imp, opts);
  ASSERT_TRUE(out.source.committed()) << out.source.error << " / destination: " << out.dest.error;
  EXPECT_TRUE(out.source.verified);
  EXPECT_TRUE(out.dest.committed);
  EXPECT_TRUE(out.target.committed);
  EXPECT_GE(out.source.rounds, 1u);
  EXPECT_EQ(out.source.final_delta_pages >= out.source.modified_pages, true);
  // The writers are parked after the handover, so the source is stable to compare against.
  ASSERT_EQ(out.target.memory.size(), image.memory().size());
  EXPECT_EQ(0, std::memcmp(out.target.memory.data(), image.memory().data(), image.memory().size()));
  // Corrupted datagrams fail authentication (or a shape check before it); none of them landed,
  // by the memcmp above.
  if (c.imp.corrupt > 0) {
    EXPECT_GT(out.dest.invalid_datagrams, 0u);
    EXPECT_EQ(out.dest.bad_hash, 0u);
  }
  // The fake channel's duplicates are replays the window drops before authentication.
  if (c.imp.duplicate > 0) {
    EXPECT_GT(out.dest.replayed, 0u);
  }
}

const Case kCases[] = {
    {"clean_whole", {}, 65507},
    {"loss10_whole", {.loss = 0.10}, 65507},
    // 5 % corruption: whole datagrams are few (~15 pages each), and at 2 % a run could see none.
    {"mixed_whole", {.loss = 0.05, .duplicate = 0.05, .reorder = 0.2, .corrupt = 0.05, .delay = std::chrono::microseconds(200)}, 65507},
    {"loss30_chunked1472", {.loss = 0.30}, 1472},
    {"mixed_chunked1024", {.loss = 0.05, .duplicate = 0.1, .reorder = 0.3, .corrupt = 0.05}, 1024},
    {"mixed_jumbo8972", {.loss = 0.05, .duplicate = 0.05, .reorder = 0.1, .corrupt = 0.05}, 8972},
    {"mixed_roce4096", {.loss = 0.05, .duplicate = 0.05, .reorder = 0.1, .corrupt = 0.05}, 4096},
};

INSTANTIATE_TEST_SUITE_P(Seeds, EngineOverFakeChannels,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::Values(1u, 2u, 3u)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_seed" + std::to_string(std::get<1>(info.param));
                         });

TEST(EngineFakeChannels, BulkOverReliableChannelMatches) {
  SyntheticSpec spec;
  spec.size = 8 << 20;
  spec.dirty_rate = 8 << 20;
  SyntheticImage image(spec);
  SourceOptions opts;
  opts.bulk = BulkTransport::tcp;
  const auto out = migrate(image, {}, opts);
  ASSERT_TRUE(out.source.committed()) << out.source.error;
  EXPECT_EQ(out.source.bulk_transport, "tcp");
  EXPECT_EQ(0, std::memcmp(out.target.memory.data(), image.memory().data(), image.memory().size()));
}

TEST(EngineFakeChannels, LinkCutMidMigrationResumesSourceAndDiscardsTarget) {
  SyntheticSpec spec;
  spec.size = 32 << 20;
  spec.dirty_rate = 64 << 20;
  SyntheticImage image(spec);
  SourceOptions opts;
  opts.fixed_rate = 8 << 20;  // slow enough to cut mid-round
  const auto out = migrate(image, {}, opts, [](ReliableChannel& rel) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cut_fake_reliable(rel);
  });
  EXPECT_EQ(out.source.outcome, hymig::Outcome::failed);
  EXPECT_FALSE(out.source.error.empty());
  EXPECT_FALSE(out.target.committed);
  EXPECT_TRUE(out.target.discarded);
  // The source runs on: its writers keep dirtying pages after the failure.
  const auto before = image.writes_done();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_GT(image.writes_done(), before);
}

// A cancel (SIGINT/SIGTERM to `hymig migrate`, or `hymig drain` timing a migration out) during the
// rounds: the source fails as cancelled before any pause, runs on, and the destination discards.
TEST(EngineFakeChannels, CancelDuringTheRoundsStopsBeforeThePause) {
  SyntheticSpec spec;
  spec.size = 64 << 20;
  spec.dirty_rate = 32 << 20;
  SyntheticImage image(spec);
  std::atomic<bool> cancel{false};
  SourceOptions opts;
  opts.cancel = &cancel;
  opts.fixed_rate = 16 << 20;  // four seconds of rounds: the cancel comes during round 0
  opts.on_progress = [&](const LiveProgress& p) {
    if (p.round_bytes_done > (4u << 20)) cancel = true;
  };
  const auto out = migrate(image, {}, opts);
  EXPECT_EQ(out.source.outcome, hymig::Outcome::failed);
  EXPECT_NE(out.source.error.find("cancelled"), std::string::npos) << out.source.error;
  EXPECT_EQ(out.source.downtime_ms, 0.0);  // never paused
  EXPECT_FALSE(out.target.committed);
  EXPECT_TRUE(out.target.discarded);
  const auto before = image.writes_done();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_GT(image.writes_done(), before);
}

// Every datagram lost: what the destination misses goes in the final delta only if it fits the
// downtime target at the stream's rate. 16 MiB (0.16 s at the initial 100 MiB/s) against a 20 ms
// target: the rounds do not converge, the source gives up before pausing, runs on, and the
// destination discards. Whole-page datagrams and 3-chunk page records alike.
TEST(EngineFakeChannels, TotalDatagramLossOfALargeImageAbortsBeforeThePause) {
  for (const std::size_t datagram : {std::size_t{65507}, std::size_t{1472}}) {
    SCOPED_TRACE(datagram);
    SyntheticSpec spec;
    spec.size = 16 << 20;
    spec.dirty_rate = 8 << 20;
    SyntheticImage image(spec);
    SourceOptions opts;
    opts.max_rounds = 3;
    opts.downtime_ms = 20;
    opts.datagram_bytes = datagram;
    const auto out = migrate(image, {.loss = 1.0, .max_datagram = datagram}, opts);
    EXPECT_EQ(out.source.outcome, hymig::Outcome::failed);
    EXPECT_NE(out.source.error.find("missing"), std::string::npos) << out.source.error;
    EXPECT_EQ(out.source.downtime_ms, 0.0);
    EXPECT_FALSE(out.target.committed);
    EXPECT_TRUE(out.target.discarded);
  }
}

// A path that loses some datagrams but works: what the last round lost goes in the final delta
// like pages the guest modified, even past the downtime target (a target, not a reason to give
// up a migration that a loaded host or a lossy link slows down). At 30 % datagram loss a page of
// three chunks is lost at 66 %: more than half the round, and still a working path.
TEST(EngineFakeChannels, PartialLossPastTheDowntimeTargetStillPauses) {
  struct Path {
    double loss;
    std::size_t datagram;
  };
  for (const Path path : {Path{0.2, 65507}, Path{0.3, 1472}}) {
    SCOPED_TRACE(path.datagram);
    SyntheticSpec spec;
    spec.size = 16 << 20;
    SyntheticImage image(spec);
    SourceOptions opts;
    opts.max_rounds = 1;
    opts.downtime_ms = 1;
    opts.datagram_bytes = path.datagram;
    const auto out = migrate(image, {.loss = path.loss, .max_datagram = path.datagram}, opts);
    ASSERT_TRUE(out.source.committed()) << out.source.error;
    EXPECT_GT(out.source.missing_pages, 0u);
    EXPECT_EQ(0, std::memcmp(out.target.memory.data(), image.memory().data(), image.memory().size()));
  }
}

// The default 300 ms target holds a 4 MiB image (40 ms at 100 MiB/s): it all goes in the final
// delta, correct, never stuck.
TEST(EngineFakeChannels, TotalDatagramLossOfASmallImageGoesInTheFinalDelta) {
  SyntheticSpec spec;
  spec.size = 4 << 20;
  SyntheticImage image(spec);
  SourceOptions opts;
  opts.max_rounds = 3;
  const auto out = migrate(image, {.loss = 1.0}, opts);
  ASSERT_TRUE(out.source.committed()) << out.source.error;
  EXPECT_EQ(out.source.missing_pages, image.page_count());
  EXPECT_EQ(0, std::memcmp(out.target.memory.data(), image.memory().data(), image.memory().size()));
}

}  // namespace
}  // namespace hymig

namespace hymig {
namespace {

// Under loss the final delta goes as datagram rounds while paused, the reliable channel repairing
// only the rest; the copy is still byte-equal. Without loss (or when told not to) it does not.
TEST(EngineFakeChannels, FinalDeltaGoesByDatagramsUnderLoss) {
  for (const double loss : {0.10, 0.0}) {
    SyntheticSpec spec;
    spec.size = 8 << 20;
    spec.dirty_rate = 128 << 20;
    spec.working_set = 4 << 20;
    spec.seed = 21;
    SyntheticImage image(spec);
    SourceOptions opts;
    opts.initial_rate = 200 << 20;
    opts.downtime_ms = 50;
    // One bulk round: the final delta is what it lost (~10 % of 2048 pages) and what the writers
    // touched meanwhile, well above the 64 pages datagram rounds need, however fast the host.
    opts.max_rounds = 1;
    const auto out = migrate(image, {.loss = loss, .seed = 4}, opts);
    ASSERT_TRUE(out.source.committed()) << out.source.error << " / destination: " << out.dest.error;
    ASSERT_GT(out.source.final_delta_pages, 64u);
    if (loss > 0) {
      EXPECT_GE(out.source.final_datagram_rounds, 1u);
      EXPECT_GE(out.source.final_datagram_pages, out.source.final_delta_pages);
    } else {
      EXPECT_EQ(out.source.final_datagram_rounds, 0u);
    }
    EXPECT_EQ(0, std::memcmp(out.target.memory.data(), image.memory().data(), image.memory().size()));
  }
  SyntheticSpec spec;
  spec.size = 8 << 20;
  spec.dirty_rate = 32 << 20;
  SyntheticImage image(spec);
  SourceOptions opts;
  opts.final_datagrams = FinalDatagrams::never;
  opts.max_rounds = 3;
  const auto out = migrate(image, {.loss = 0.10}, opts);
  ASSERT_TRUE(out.source.committed()) << out.source.error;
  EXPECT_EQ(out.source.final_datagram_rounds, 0u);
  EXPECT_EQ(0, std::memcmp(out.target.memory.data(), image.memory().data(), image.memory().size()));
}

// A receiver that is away for 15 ms after each batch it takes (descheduled, busy): at round end
// the destination waits for what its lane has not looked at yet instead of reporting it missing
// 10 ms after the last arrival. Lossless, idle: nothing is missing and the final delta is empty.
TEST(EngineFakeChannels, AStalledReceiverIsLateNotLossy) {
  SyntheticSpec spec;
  spec.size = 8 << 20;
  spec.seed = 22;
  SyntheticImage image(spec);
  SourceOptions opts;
  opts.initial_rate = 200 << 20;
  opts.max_rounds = 1;
  const auto out = migrate(image, {.receiver_stall = std::chrono::milliseconds(15)}, opts);
  ASSERT_TRUE(out.source.committed()) << out.source.error << " / destination: " << out.dest.error;
  ASSERT_EQ(out.source.round_stats.size(), 1u);
  EXPECT_EQ(out.source.round_stats[0].missing_after, 0u);
  EXPECT_EQ(out.source.final_delta_pages, 0u);
  EXPECT_EQ(0, std::memcmp(out.target.memory.data(), image.memory().data(), image.memory().size()));
}

}  // namespace
}  // namespace hymig

namespace hymig {
namespace {

// Lanes: the pages split among several channels, each with its own thread on both sides, its own
// keys and numbers; under loss, reordering and duplication the copy is byte-equal, every lane
// carried its share, and the final delta (by datagrams under loss) still works.
class EngineLanes : public ::testing::TestWithParam<std::tuple<std::uint32_t, std::size_t>> {};

TEST_P(EngineLanes, EveryLaneCarriesItsShareAndTheCopyMatches) {
  const auto [lanes, datagram] = GetParam();
  SyntheticSpec spec;
  spec.size = 16 << 20;
  spec.dirty_rate = 16 << 20;
  spec.working_set = 4 << 20;
  spec.seed = 9;
  spec.zero_fraction = 0.2;
  SyntheticImage image(spec);
  SourceOptions opts;
  opts.lanes = lanes;
  opts.initial_rate = 200 << 20;
  opts.downtime_ms = 50;
  opts.max_rounds = 6;
  opts.datagram_bytes = datagram;
  const auto out = migrate(image, {.loss = 0.05, .duplicate = 0.05, .reorder = 0.1, .max_datagram = datagram}, opts);
  ASSERT_TRUE(out.source.committed()) << out.source.error << " / destination: " << out.dest.error;
  EXPECT_EQ(out.source.lanes, lanes);
  EXPECT_GT(out.dest.datagrams, 0u);
  EXPECT_EQ(out.dest.bad_mac, 0u);
  EXPECT_EQ(0, std::memcmp(out.target.memory.data(), image.memory().data(), image.memory().size()));
}

INSTANTIATE_TEST_SUITE_P(Lanes, EngineLanes,
                         ::testing::Combine(::testing::Values(1u, 2u, 4u), ::testing::Values(std::size_t{65507}, std::size_t{1472})),
                         [](const auto& info) {
                           return "lanes" + std::to_string(std::get<0>(info.param)) + "_dgram" +
                                  std::to_string(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace hymig
