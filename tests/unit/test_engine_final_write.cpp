// The final delta by one-sided writes, over the in-memory fake channels: a test channel wraps the
// fake reliable channel and "writes" into the destination's exposed image with memcpy, the way
// RDMA WRITE does over RC (tests/unit/test_verbs_rc.cpp and the engine suite over ud_rc/rc_only
// test the real one in the Soft-RoCE lab); the session's sealed channel builds its sealed page
// writes on it, as it does on RC. The engine must commit with the destination byte-for-byte equal
// to the paused source, fall back to pages messages where a side has no writes, and fail cleanly
// (source resumed, target discarded) when writes go wrong or are tampered with.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "cli/command.hpp"
#include "core/error.hpp"
#include "images/synthetic_image.hpp"
#include "testing/engine_harness.hpp"

namespace hymig {
namespace {

enum class Fault { none, misdirect, fail_mid_delta, tamper };

// Forwards everything to the fake channel; adds one-sided writes by memcpy (both ends live in this
// process, so the exposed "address" is the target's pointer). Writes happen at once, before any
// later message is enqueued: the ordering RC gives.
// What a wrapper did, kept by the test: the harness destroys the channels when the session ends.
struct WriteFigures {
  int exposed = 0, registered = 0;
  std::uint64_t written = 0;
};

class WritingChannel final : public ReliableChannel, public RemoteWriter {
 public:
  WritingChannel(std::unique_ptr<ReliableChannel> inner, Fault fault, WriteFigures& figures)
      : inner_(std::move(inner)), fault_(fault), f_(figures) {}

  std::string transport_name() const override { return inner_->transport_name(); }
  void set_limits(std::size_t b, std::uint64_t p) override { inner_->set_limits(b, p); }
  void set_io_timeout(std::chrono::milliseconds t) override { inner_->set_io_timeout(t); }
  void send(std::uint8_t type, std::span<const std::byte> body) override { inner_->send(type, body); }
  void send_with_payload(std::uint8_t type, std::span<const std::byte> body, std::span<const ConstBuffer> payload) override {
    inner_->send_with_payload(type, body, payload);
  }
  std::optional<Message> receive(std::chrono::milliseconds t) override { return inner_->receive(t); }
  void receive_payload(std::span<const MutableBuffer> dst) override { inner_->receive_payload(dst); }
  void discard_payload() override { inner_->discard_payload(); }
  int poll_fd() const override { return inner_->poll_fd(); }
  std::string local_host() const override { return inner_->local_host(); }
  std::string peer_host() const override { return inner_->peer_host(); }
  ReliableStats stats() const override { return inner_->stats(); }
  RemoteWriter* remote_writer() override { return this; }

  RemoteImage expose_target(std::span<std::byte> image) override {
    ++f_.exposed;
    return {reinterpret_cast<std::uint64_t>(image.data()), 0x5eed, image.size()};
  }
  void register_source(std::span<const std::byte> image) override {
    ++f_.registered;
    source_ = image;
  }
  void set_remote_target(const RemoteImage& r) override { remote_ = r; }
  void write_remote(std::uint64_t local, std::uint64_t remote, std::size_t bytes) override {
    ASSERT_LE(local + bytes, source_.size());
    ASSERT_LE(remote + bytes, remote_.bytes);
    ++writes_;
    if (fault_ == Fault::fail_mid_delta && writes_ == 3) {
      cut_fake_reliable(*inner_);  // the link goes with the queue pair
      throw Error(ErrorKind::peer_vanished, "test: the queue pair went to the error state mid-write");
    }
    // Misdirected: every page lands one page further on (wrapping), as a wrong offset would.
    const std::uint64_t to = fault_ == Fault::misdirect ? (remote + bytes) % remote_.bytes : remote;
    auto* dst = reinterpret_cast<std::byte*>(remote_.address) + to;
    std::memcpy(dst, source_.data() + local, std::min<std::size_t>(bytes, remote_.bytes - to));
    // Tampered: one bit of every third write flipped on the way, as an attacker on the fabric would.
    if (fault_ == Fault::tamper && writes_ % 3 == 0) dst[bytes / 2] ^= std::byte{1};
    f_.written += bytes;
  }
  void flush_writes() override {}
  void wait_writes() override {}
  std::uint64_t bytes_written() const override { return f_.written; }

 private:
  std::unique_ptr<ReliableChannel> inner_;
  Fault fault_;
  std::span<const std::byte> source_;
  RemoteImage remote_{};
  std::uint64_t writes_ = 0;
  WriteFigures& f_;
};

struct Session {
  MigrationReport source;
  DestinationReport dest;
  harness::TargetRecord target;
  std::uint64_t source_bytes_written = 0;
  int source_registered = 0, dest_exposed = 0;
};

// `writes_on`: which ends get the writing wrapper ("both", "source", "destination", "none").
Session migrate(SyntheticImage& image, SourceOptions opts, const std::string& writes_on, Fault fault = Fault::none) {
  Session run;
  harness::EngineChannels c = harness::fake_channels({.loss = 0.05, .seed = 3});
  WriteFigures src_w, dst_w;
  if (writes_on == "both" || writes_on == "source")
    c.source_rel = std::make_unique<WritingChannel>(std::move(c.source_rel), fault, src_w);
  if (writes_on == "both" || writes_on == "destination")
    c.dest_rel = std::make_unique<WritingChannel>(std::move(c.dest_rel), Fault::none, dst_w);
  opts.initial_rate = 200 << 20;
  opts.downtime_ms = 50;
  opts.max_rounds = 6;
  // The reliable channel carries the whole final delta here (under the fake's 5 % loss it would
  // otherwise go as datagram rounds first): what these tests look at.
  opts.final_datagrams = FinalDatagrams::never;
  harness::EngineRun r = harness::run_engines(std::move(c), image, harness::kept_targets(run.target), opts);
  run.source = std::move(r.source);
  run.dest = std::move(r.dest);
  run.source_bytes_written = src_w.written;
  run.source_registered = src_w.registered;
  run.dest_exposed = dst_w.exposed;
  return run;
}

SyntheticSpec spec_for(std::uint64_t seed) {
  SyntheticSpec spec;
  spec.size = 8 << 20;
  spec.dirty_rate = 32 << 20;  // plenty dirty when the rounds stop: the final delta is never empty
  spec.working_set = 2 << 20;
  spec.seed = seed;
  spec.zero_fraction = 0.2;
  return spec;
}

void expect_equal(const Session& r, const SyntheticImage& image) {
  ASSERT_EQ(r.target.memory.size(), image.memory().size());
  EXPECT_EQ(0, std::memcmp(r.target.memory.data(), image.memory().data(), image.memory().size()));
}

class EngineFinalDeltaByWrite : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(EngineFinalDeltaByWrite, DestinationEqualsPausedSourceByteForByte) {
  const auto [bulk, verify] = GetParam();
  SyntheticImage image(spec_for(7));
  SourceOptions opts;
  opts.bulk = std::string(bulk) == "tcp" ? BulkTransport::tcp : BulkTransport::udp;
  opts.verify = std::string(verify) == "fast" ? VerifyMode::fast : VerifyMode::full;
  opts.final_delta = FinalDeltaMethod::write;
  const Session r = migrate(image, opts, "both");
  ASSERT_TRUE(r.source.committed()) << r.source.error << " / destination: " << r.dest.error;
  EXPECT_TRUE(r.dest.committed);
  EXPECT_EQ(r.source.final_delta_method, "write") << r.source.final_delta_note;
  EXPECT_EQ(r.source_registered, 1) << "the source image is registered once, not per page";
  EXPECT_EQ(r.dest_exposed, 1) << "the target image is exposed once";
  ASSERT_GT(r.source.final_delta_pages, 0u);
  EXPECT_EQ(r.dest.final_delta, "write");
  EXPECT_EQ(r.source_bytes_written, r.source.final_delta_pages * r.source.page_size);
  expect_equal(r, image);
}

INSTANTIATE_TEST_SUITE_P(Modes, EngineFinalDeltaByWrite,
                         ::testing::Combine(::testing::Values("udp", "tcp"), ::testing::Values("full", "fast")),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                         });

TEST(EngineFinalDelta, SendWhenAskedForSend) {
  SyntheticImage image(spec_for(8));
  SourceOptions opts;
  opts.final_delta = FinalDeltaMethod::send;
  const Session r = migrate(image, opts, "both");
  ASSERT_TRUE(r.source.committed()) << r.source.error << " / destination: " << r.dest.error;
  EXPECT_EQ(r.source.final_delta_method, "send");
  EXPECT_EQ(r.dest.final_delta, "send");
  EXPECT_EQ(r.source_bytes_written, 0u);
  EXPECT_EQ(r.source_registered, 0);
  EXPECT_EQ(r.dest_exposed, 0);
  expect_equal(r, image);
}

// --final-delta auto: the environment chooses (resolved by the command, cli/command.hpp), and a bad
// value is a usage error before any migration begins.
TEST(EngineFinalDelta, EnvironmentChoosesWhenAuto) {
  SyntheticImage image(spec_for(9));
  SourceOptions opts;
  opts.final_delta = cli::final_delta_option("auto", "send");
  const Session r = migrate(image, opts, "both");
  ASSERT_TRUE(r.source.committed()) << r.source.error;
  EXPECT_EQ(r.source.final_delta_method, "send");
  expect_equal(r, image);

  EXPECT_EQ(cli::final_delta_option("auto", nullptr), std::nullopt);  // kDefaultFinalDelta
  EXPECT_EQ(cli::final_delta_option("auto", ""), std::nullopt);
  EXPECT_EQ(cli::final_delta_option("send", "write"), FinalDeltaMethod::send);  // the flag wins
  try {
    cli::final_delta_option("auto", "sideways");
    ADD_FAILURE() << "HYMIG_FINAL_DELTA=sideways was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_NE(std::string(e.what()).find("HYMIG_FINAL_DELTA"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cli::final_delta_option("sideways", nullptr), Error);
}

// A side without one-sided writes: the final delta goes as pages messages, and the report says why.
TEST(EngineFinalDelta, FallsBackToSendWhereASideHasNoWrites) {
  for (const char* side : {"source", "destination", "none"}) {
    SyntheticImage image(spec_for(11));
    SourceOptions opts;
    opts.final_delta = FinalDeltaMethod::write;
    const Session r = migrate(image, opts, side);
    ASSERT_TRUE(r.source.committed()) << side << ": " << r.source.error << " / destination: " << r.dest.error;
    EXPECT_EQ(r.source.final_delta_method, "send") << side;
    EXPECT_FALSE(r.source.final_delta_note.empty()) << side;
    EXPECT_EQ(r.source_bytes_written, 0u) << side;
    expect_equal(r, image);
  }
}

// Writes that land in the wrong place, or are changed on the way: the page's tag does not open
// where the destination looks; nothing is committed, the source runs on, the destination drops
// its copy.
TEST(EngineFinalDelta, MisdirectedOrTamperedWritesFailAuthentication) {
  for (const Fault f : {Fault::misdirect, Fault::tamper}) {
    SyntheticImage image(spec_for(12));
    SourceOptions opts;
    opts.final_delta = FinalDeltaMethod::write;
    const Session r = migrate(image, opts, "both", f);
    EXPECT_FALSE(r.source.committed());
    EXPECT_NE(r.dest.error.find("failed authentication"), std::string::npos) << r.dest.error;
    EXPECT_FALSE(r.target.committed);
    EXPECT_TRUE(r.target.discarded);
    // The source runs on: its writers keep dirtying pages after the failure.
    const auto before = image.writes_done();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_GT(image.writes_done(), before);
  }
}

// The writer fails mid-delta (the RC queue pair in error): the session fails cleanly, never hangs.
TEST(EngineFinalDelta, WriteFailureMidDeltaFailsCleanly) {
  SyntheticImage image(spec_for(13));
  SourceOptions opts;
  opts.final_delta = FinalDeltaMethod::write;
  const Session r = migrate(image, opts, "both", Fault::fail_mid_delta);
  EXPECT_FALSE(r.source.committed());
  EXPECT_NE(r.source.error.find("mid-write"), std::string::npos) << r.source.error;
  EXPECT_FALSE(r.target.committed);
  EXPECT_TRUE(r.target.discarded);
  EXPECT_FALSE(r.dest.error.empty());
}

}  // namespace
}  // namespace hymig
