// An image's device state (a VM's) through the engine over the in-memory fake channels: it moves
// after verify and before commit, whole and in order across pieces larger than one message; the
// destination commits only once it applied it; a failure to produce or to apply it is a failure
// before commit: the source resumes, the destination discards.
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <thread>

#include "core/error.hpp"
#include "core/mapping.hpp"
#include "engine/destination_engine.hpp"
#include "engine/source_engine.hpp"
#include "images/synthetic_image.hpp"
#include "testing/engine_harness.hpp"
#include "testing/fake_channel.hpp"

namespace hymig {
namespace {

std::vector<std::byte> state_bytes(std::size_t n) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + i / 7) & 0xff);
  return v;
}

// A synthetic image with device state: handed to the sink in pieces of uneven sizes, one larger
// than a device-state message holds; `fail_after` bytes in, producing fails.
class StatefulImage final : public SourceImage {
 public:
  StatefulImage(const SyntheticSpec& spec, std::vector<std::byte> state) : inner_(spec), state_(std::move(state)) {}
  std::string kind() const override { return "vm"; }
  std::string name() const override { return "guest"; }
  std::size_t page_size() const override { return inner_.page_size(); }
  std::uint64_t page_count() const override { return inner_.page_count(); }
  std::span<const std::byte> memory() const override { return inner_.memory(); }
  void start_dirty_tracking() override { inner_.start_dirty_tracking(); }
  void collect_dirty(Bitmap& out, std::span<const std::uint64_t> h) override { inner_.collect_dirty(out, h); }
  void pause() override { inner_.pause(); }
  void resume() override {
    ++resumed;
    inner_.resume();
  }
  void handed_over() override {
    ++handed;
    if (fail_hand_over) throw std::runtime_error("cannot destroy domain 'guest' (test)");
    inner_.handed_over();
  }
  bool has_device_state() const override { return true; }
  void produce_device_state(const DeviceStateSink& sink) override {
    const std::size_t sizes[] = {1000, 300 * 1024, 17, 64 * 1024};
    std::size_t at = 0, k = 0;
    while (at < state_.size()) {
      if (at >= fail_after) throw std::runtime_error("QEMU's migration failed (test)");
      const std::size_t n = std::min(sizes[k++ % 4], state_.size() - at);
      sink(std::span<const std::byte>(state_.data() + at, n));
      at += n;
    }
  }

  SyntheticImage inner_;
  std::vector<std::byte> state_;
  std::size_t fail_after = SIZE_MAX;
  bool fail_hand_over = false;
  int resumed = 0, handed = 0;
};

struct TargetLog {
  Mapping mem;
  std::vector<std::byte> state;
  bool finished = false, committed = false, discarded = false, committed_after_finish = false;
  bool fail_finish = false;
  bool takes_state = true;
};

class StatefulTarget final : public TargetImage {
 public:
  explicit StatefulTarget(TargetLog& log) : log_(log) {}
  std::span<std::byte> memory() override { return log_.mem.span(); }
  std::string description() const override { return "test"; }
  void commit() override {
    log_.committed = true;
    log_.committed_after_finish = log_.finished;
  }
  void discard() noexcept override { log_.discarded = true; }
  bool takes_device_state() const override { return log_.takes_state; }
  void write_device_state(std::span<const std::byte> b) override { log_.state.insert(log_.state.end(), b.begin(), b.end()); }
  void finish_device_state() override {
    if (log_.fail_finish) throw std::runtime_error("load of migration failed (test)");
    log_.finished = true;
  }

 private:
  TargetLog& log_;
};

struct Run {
  MigrationReport source;
  DestinationReport dest;
};

Run migrate(SourceImage& image, TargetLog& log) {
  TargetFactory targets = [&](const Notify& n) {
    log.mem = map_anonymous(n.image_bytes, "test target");
    return std::make_unique<StatefulTarget>(log);
  };
  SourceOptions opts;
  opts.max_rounds = 3;
  harness::EngineRun r = harness::run_engines(harness::fake_channels(), image, targets, opts);
  return Run{std::move(r.source), std::move(r.dest)};
}

SyntheticSpec small_spec() {
  SyntheticSpec spec;
  spec.size = 4 << 20;
  spec.dirty_rate = 4 << 20;
  return spec;
}

TEST(DeviceState, MovesWholeAfterVerifyAndBeforeCommit) {
  const auto state = state_bytes(700 * 1024 + 3);
  StatefulImage image(small_spec(), state);
  TargetLog log;
  const auto out = migrate(image, log);
  ASSERT_TRUE(out.source.committed()) << out.source.error << " / destination: " << out.dest.error;
  EXPECT_TRUE(out.dest.committed);
  EXPECT_EQ(log.state, state);
  EXPECT_TRUE(log.committed_after_finish);
  EXPECT_EQ(out.source.device_state_bytes, state.size());
  EXPECT_EQ(out.dest.device_state_bytes, state.size());
  EXPECT_EQ(image.handed, 1);
  EXPECT_EQ(image.resumed, 0);
  EXPECT_EQ(0, std::memcmp(log.mem.data(), image.memory().data(), image.memory().size()));
}

// The destination runs the workload once it committed: a source that cannot then be ended is a
// committed migration whose report says so, never one the source resumes.
TEST(DeviceState, SourceThatCannotBeEndedIsCommittedWithACleanupError) {
  StatefulImage image(small_spec(), state_bytes(64 * 1024));
  image.fail_hand_over = true;
  TargetLog log;
  const auto out = migrate(image, log);
  ASSERT_TRUE(out.source.committed()) << out.source.error;
  EXPECT_TRUE(log.committed);
  EXPECT_EQ(image.resumed, 0);
  EXPECT_NE(out.source.cleanup_error.find("cannot destroy domain"), std::string::npos) << out.source.cleanup_error;
  EXPECT_EQ(out.source.to_json().value("cleanup_error", std::string()), out.source.cleanup_error);
}

TEST(DeviceState, LoadFailureResumesTheSource) {
  StatefulImage image(small_spec(), state_bytes(100 * 1024));
  TargetLog log;
  log.fail_finish = true;
  const auto out = migrate(image, log);
  EXPECT_EQ(out.source.outcome, Outcome::failed);
  EXPECT_NE(out.source.error.find("load of migration failed"), std::string::npos) << out.source.error;
  EXPECT_EQ(image.resumed, 1);
  EXPECT_EQ(image.handed, 0);
  EXPECT_FALSE(log.committed);
  EXPECT_TRUE(log.discarded);
}

TEST(DeviceState, ProduceFailureResumesTheSourceAndDiscardsTheTarget) {
  StatefulImage image(small_spec(), state_bytes(600 * 1024));
  image.fail_after = 200 * 1024;
  TargetLog log;
  const auto out = migrate(image, log);
  EXPECT_EQ(out.source.outcome, Outcome::failed);
  EXPECT_EQ(image.resumed, 1);
  EXPECT_EQ(image.handed, 0);
  EXPECT_FALSE(log.committed);
  EXPECT_TRUE(log.discarded);
}

TEST(DeviceState, TargetWithoutDeviceStateRefusesIt) {
  StatefulImage image(small_spec(), state_bytes(1000));
  TargetLog log;
  log.takes_state = false;
  const auto out = migrate(image, log);
  EXPECT_EQ(out.source.outcome, Outcome::failed);
  EXPECT_EQ(image.resumed, 1);
  EXPECT_FALSE(log.committed);
  EXPECT_TRUE(log.discarded);
}

TEST(DeviceState, TargetThatNeedsItRefusesACommitWithout) {
  SyntheticImage image(small_spec());  // no device state
  TargetLog log;
  const auto out = migrate(image, log);
  EXPECT_FALSE(out.dest.committed);
  EXPECT_NE(out.dest.error.find("device state"), std::string::npos) << out.dest.error;
  EXPECT_FALSE(log.committed);
  EXPECT_TRUE(log.discarded);
  // The commit was sent: the source cannot know whether the destination resumed, so it stays paused.
  EXPECT_EQ(out.source.outcome, Outcome::unknown);
}

TEST(DeviceStateWire, PiecesAndEndRoundTrip) {
  EXPECT_EQ(decode_device_state_header(encode_device_state_header(123456789)), 123456789u);
  StreamDigest d;
  const auto bytes = state_bytes(5000);
  d.update(std::span(bytes).first(1000));
  d.update(std::span(bytes).subspan(1000));
  StreamDigest whole;
  whole.update(bytes);
  EXPECT_EQ(d.digest(), whole.digest());
  const DeviceStateEnd e{5000, d.digest()};
  const auto back = decode_device_state_end(encode_device_state_end(e));
  EXPECT_EQ(back.bytes, 5000u);
  EXPECT_EQ(back.digest, e.digest);
  auto body = encode_device_state_end(e);
  body.pop_back();
  EXPECT_THROW(decode_device_state_end(body), Error);
}

}  // namespace
}  // namespace hymig
