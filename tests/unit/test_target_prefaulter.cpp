// The target prefaulter (engine/target_prefaulter.hpp): it populates exactly the pages it is given
// and nothing else (a zero page of a sparse target stays a hole), never changes a byte a receiver
// wrote meanwhile, gives way to the receive frontier, stops when told, and a failure stops only it.
// Over the engine: a source whose file has holes names them in round 0's round-begin, and the
// destination populates the rest and allocates no page the source knew was zero.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <latch>
#include <thread>

#include "core/mapping.hpp"
#include "core/unique_fd.hpp"
#include "engine/destination_engine.hpp"
#include "engine/source_engine.hpp"
#include "engine/target_prefaulter.hpp"
#include "images/synthetic_image.hpp"
#include "testing/engine_harness.hpp"
#include "testing/fake_channel.hpp"
#include "testing/holey_source.hpp"

namespace hymig {
namespace {

constexpr std::size_t kPage = 4096;

// Anonymous memory without huge pages, so residency is per 4 KiB page.
Mapping small_page_memory(std::size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  EXPECT_NE(p, MAP_FAILED);
  ::madvise(p, bytes, MADV_NOHUGEPAGE);
  return Mapping(p, bytes);
}

Bitmap resident(std::span<std::byte> mem) {
  std::vector<unsigned char> v(mem.size() / kPage);
  EXPECT_EQ(::mincore(mem.data(), mem.size(), v.data()), 0);
  Bitmap out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] & 1) out.set(i);
  return out;
}

// Every page but a hole of 300 pages and every 7th page.
Bitmap some_pages(std::uint64_t n) {
  Bitmap b(n);
  for (std::uint64_t p = 0; p < n; ++p)
    if (p % 7 != 0 && (p < 1000 || p >= 1300)) b.set(p);
  return b;
}

TEST(TargetPrefaulter, PopulatesExactlyTheGivenPages) {
  auto mem = small_page_memory(4096 * kPage);
  const Bitmap want = some_pages(4096);
  TargetPrefaulter pf(mem.span(), kPage, want, [] { return std::uint64_t{0}; });
  pf.wait();
  ASSERT_EQ(pf.error(), 0) << std::strerror(pf.error());
  EXPECT_EQ(pf.populated_bytes(), want.count() * kPage);
  EXPECT_EQ(pf.passed_bytes(), 0u);
  const Bitmap got = resident(mem.span());
  EXPECT_EQ(got.count(), want.count());
  EXPECT_TRUE(got.is_subset_of(want));
  // Populated, not written: every byte still reads zero.
  for (std::size_t i = 0; i < mem.size(); i += 512) ASSERT_EQ(mem.data()[i], std::byte{0});
}

TEST(TargetPrefaulter, LeavesTheHolesOfASharedFileAlone) {
  // A VM's RAM file on tmpfs: the pages it is given get their blocks; the rest stay holes.
  UniqueFd fd(::memfd_create("prefault-test", MFD_CLOEXEC));
  ASSERT_TRUE(fd);
  const std::size_t bytes = 2048 * kPage;
  ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  ASSERT_NE(p, MAP_FAILED);
  Mapping map(p, bytes);
  const Bitmap want = some_pages(2048);
  TargetPrefaulter pf(map.span(), kPage, want, [] { return std::uint64_t{0}; });
  pf.wait();
  ASSERT_EQ(pf.error(), 0) << std::strerror(pf.error());
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_blocks) * 512, want.count() * kPage);
}

TEST(TargetPrefaulter, NeverChangesWhatTheReceiverWrites) {
  // A receiver writes every page while the prefaulter populates the same pages.
  const std::uint64_t pages = 16384;
  auto mem = small_page_memory(pages * kPage);
  Bitmap all(pages);
  all.set_all();
  std::atomic<std::uint64_t> front{0};
  std::thread receiver([&] {
    for (std::uint64_t p = 0; p < pages; ++p) {
      std::memset(mem.data() + p * kPage, static_cast<int>(p % 251) + 1, kPage);
      if (p % 64 == 63) front.store(p + 1);
    }
  });
  TargetPrefaulter pf(mem.span(), kPage, all, [&] { return front.load(); });
  receiver.join();
  pf.wait();
  EXPECT_EQ(pf.error(), 0);
  EXPECT_EQ(pf.populated_bytes() + pf.passed_bytes(), pages * kPage);
  for (std::uint64_t p = 0; p < pages; ++p)
    for (std::size_t i = 0; i < kPage; i += 1024)
      ASSERT_EQ(mem.data()[p * kPage + i], static_cast<std::byte>(p % 251 + 1)) << "page " << p;
}

TEST(TargetPrefaulter, PopulatesNothingBehindTheFrontier) {
  auto mem = small_page_memory(4096 * kPage);
  const Bitmap want = some_pages(4096);
  // The receiver is past page 3000 before it starts: only what lies ahead is populated.
  TargetPrefaulter pf(mem.span(), kPage, want, [] { return std::uint64_t{3000}; });
  pf.wait();
  std::uint64_t ahead = 0;
  for (std::uint64_t p = 3000; p < 4096; ++p) ahead += want.test(p);
  EXPECT_EQ(pf.populated_bytes(), ahead * kPage);
  EXPECT_EQ(pf.passed_bytes(), (want.count() - ahead) * kPage);
  const Bitmap got = resident(mem.span());
  EXPECT_EQ(got.next_set(0), want.next_set(3000));
}

TEST(TargetPrefaulter, StopsWhenTold) {
  // 1 GiB of address space: stopped after its first step, it populates a few steps at most.
  const std::size_t bytes = std::size_t{1} << 30;
  auto mem = small_page_memory(bytes);
  Bitmap all(bytes / kPage);
  all.set_all();
  std::latch first(1);
  std::atomic<bool> counted{false};
  TargetPrefaulter pf(mem.span(), kPage, all, [&] {
    if (!counted.exchange(true)) first.count_down();
    return std::uint64_t{0};
  });
  first.wait();
  pf.stop();
  EXPECT_LT(pf.populated_bytes(), std::uint64_t{64} << 20);
  EXPECT_LT(resident(mem.span()).count() * kPage, std::uint64_t{64} << 20);
}

TEST(TargetPrefaulter, AFailureStopsOnlyThePrefaulter) {
  // Memory that cannot be written: populating it fails; the prefaulter says why and ends.
  void* p = ::mmap(nullptr, 64 * kPage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  Mapping map(p, 64 * kPage);
  Bitmap all(64);
  all.set_all();
  TargetPrefaulter pf(map.span(), kPage, all, [] { return std::uint64_t{0}; });
  pf.wait();
  EXPECT_NE(pf.error(), 0);
  EXPECT_EQ(pf.populated_bytes(), 0u);
}

// ---- over the engine ---------------------------------------------------------------------------

// A target in a file on tmpfs that starts as one hole: what it allocates is what was written or
// populated. The file and its mapping outlive the session (the engine drops its target at the end).
struct SparseFile {
  UniqueFd fd;
  Mapping map;
  std::uint64_t allocated_bytes() const {
    struct stat st {};
    ::fstat(fd.get(), &st);
    return static_cast<std::uint64_t>(st.st_blocks) * 512;
  }
};

class SparseFileTarget final : public TargetImage {
 public:
  SparseFileTarget(SparseFile& f, std::uint64_t bytes) : f_(f) {
    f_.fd = UniqueFd(::memfd_create("target", MFD_CLOEXEC));
    if (!f_.fd || ::ftruncate(f_.fd.get(), static_cast<off_t>(bytes)) != 0) throw std::runtime_error("memfd");
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, f_.fd.get(), 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    f_.map = Mapping(p, bytes);
  }
  std::span<std::byte> memory() override { return f_.map.span(); }
  std::string description() const override { return "memfd"; }
  bool starts_zeroed() const override { return true; }
  void commit() override {}
  void discard() noexcept override {}

 private:
  SparseFile& f_;
};

TEST(TargetPrefaulter, TheDestinationPopulatesAheadAndAllocatesNoKnownZeroPage) {
  SyntheticSpec spec;
  spec.size = 16 << 20;
  spec.zero_fraction = 0.5;
  spec.seed = 11;
  harness::HoleySource image(spec);
  Bitmap zero(image.page_count());
  image.find_zero_pages(zero);
  const std::uint64_t data_bytes = (image.page_count() - zero.count()) * kPage;
  ASSERT_GT(zero.count(), image.page_count() / 3);

  SparseFile file;
  TargetFactory targets = [&](const Notify& n) { return std::make_unique<SparseFileTarget>(file, n.image_bytes); };
  SourceOptions opts;
  opts.initial_rate = 100 << 20;  // ~80 ms for round 0's data: the prefaulter has time to run ahead
  opts.downtime_ms = 50;
  opts.verify = VerifyMode::fast;  // the full digest would read (and so allocate) the target's holes
  harness::EngineRun r = harness::run_engines(harness::fake_channels({}), image, targets, opts);
  ASSERT_TRUE(r.source.committed()) << r.source.error << " / destination: " << r.dest.error;
  EXPECT_GT(r.dest.prefaulted_bytes, 0u);
  EXPECT_LE(r.dest.prefaulted_bytes, data_bytes);
  // Only data pages took memory: the ones the prefaulter populated and the ones that landed.
  EXPECT_EQ(file.allocated_bytes(), data_bytes);
  ASSERT_EQ(file.map.size(), image.memory().size());
  EXPECT_EQ(0, std::memcmp(file.map.data(), image.memory().data(), image.memory().size()));
}

}  // namespace
}  // namespace hymig
