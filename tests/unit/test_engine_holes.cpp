// Holes: a source whose file reports pages as holes (SourceImage::find_zero_pages, sent as zero
// entries without being read, and counted as zero pages by the dirty scan and the final rehash),
// and a target that starts zeroed (zero pages not written) and reports its holes to the verify.
// A page reported as a hole may be written right after; the migration must still end with the
// destination byte-for-byte equal to the paused source.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "core/mapping.hpp"
#include "engine/destination_engine.hpp"
#include "engine/source_engine.hpp"
#include "images/file_image.hpp"
#include "images/synthetic_image.hpp"
#include "protocol/page_hash.hpp"
#include "testing/engine_harness.hpp"
#include "testing/fake_channel.hpp"
#include "testing/holey_source.hpp"

namespace hymig {
namespace {

using harness::HoleySource;

class SparseTarget final : public harness::KeptTarget {
 public:
  SparseTarget(harness::TargetRecord& r, std::uint64_t& finds) : KeptTarget(r), finds_(finds) {}
  bool starts_zeroed() const override { return true; }
  void find_zero_pages(Bitmap& out) const override {
    harness::find_zero_pages_now(r_.memory.span(), 4096, out, &finds_);
  }

 private:
  std::uint64_t& finds_;
};

struct Run {
  MigrationReport source;
  DestinationReport dest;
  harness::TargetRecord target;
  std::uint64_t target_finds = 0;
};

Run migrate(SourceImage& image, const Impairments& imp, const std::string& verify) {
  Run out;
  TargetFactory targets = [&](const Notify& n) {
    out.target.memory = map_anonymous(n.image_bytes, "test target");
    return std::make_unique<SparseTarget>(out.target, out.target_finds);
  };
  SourceOptions opts;
  opts.initial_rate = 200 << 20;
  opts.downtime_ms = 50;
  opts.max_rounds = 6;
  opts.verify = verify == "fast" ? VerifyMode::fast : VerifyMode::full;
  harness::EngineRun r = harness::run_engines(harness::fake_channels(imp), image, targets, opts);
  out.source = std::move(r.source);
  out.dest = std::move(r.dest);
  return out;
}

class EngineWithHoles : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineWithHoles, DestinationEqualsPausedSourceWhileHolesFillIn) {
  SyntheticSpec spec;
  spec.size = 8 << 20;
  spec.dirty_rate = 16 << 20;  // writers turn zero pages (holes) into data during the rounds
  spec.zero_fraction = 0.6;
  spec.seed = 7;
  HoleySource image(spec);
  const auto out = migrate(image, {.loss = 0.05, .reorder = 0.1}, GetParam());
  ASSERT_TRUE(out.source.committed()) << out.source.error << " / destination: " << out.dest.error;
  EXPECT_GT(out.source.zero_pages, 0u);
  EXPECT_GE(image.finds, 3u);  // each round, each dirty scan, the final rehash
  if (GetParam() == "full") {
    EXPECT_EQ(out.target_finds, 1u);
  }
  ASSERT_EQ(out.target.memory.size(), image.memory().size());
  EXPECT_EQ(0, std::memcmp(out.target.memory.data(), image.memory().data(), image.memory().size()));
}

INSTANTIATE_TEST_SUITE_P(Verify, EngineWithHoles, ::testing::Values("full", "fast"));

TEST(PageHashWithHoles, HolesHashAsZeroPagesWithoutBeingRead) {
  std::vector<std::byte> mem(4096 * 4, std::byte{1});
  Bitmap holes(4);
  holes.set(2);  // the caller's word: page 2 is a hole (its bytes here are deliberately not zero)
  std::vector<std::uint64_t> h(4);
  hash_all_pages(mem, 4096, h, holes, 1);
  EXPECT_EQ(h[2], zero_page_hash(4096));
  EXPECT_EQ(h[1], hash_page(mem.data() + 4096, 4096));
  // The dirty scan: a page sent as zero and still a hole is unmodified; one that is data now is.
  std::vector<std::uint64_t> sent = {h[0], zero_page_hash(4096), zero_page_hash(4096), h[3]};
  Bitmap dirty(4);
  scan_modified_pages(mem, 4096, sent, dirty, &holes);
  EXPECT_FALSE(dirty.test(0));
  EXPECT_TRUE(dirty.test(1));
  EXPECT_FALSE(dirty.test(2));
  EXPECT_FALSE(dirty.test(3));
}

}  // namespace
}  // namespace hymig
