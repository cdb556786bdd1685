// The rate memory: what a session to a peer carried, found again by the next one; a damaged or
// foreign file is a warning and no memory, never a failure; the file stays bounded.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "policy/rate_memory.hpp"

namespace hymig {
namespace {

namespace fs = std::filesystem;
using clock = std::chrono::system_clock;

class RateMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("hymig-rate-memory-" + std::to_string(::getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
  const RateMemoryKey key{"10.0.0.2", "udp", 2};
};

TEST_F(RateMemoryTest, RemembersPerPeerTransportAndLanes) {
  RateMemory m(dir / "sub" / "peer-rates.json");
  const auto now = clock::now();
  EXPECT_FALSE(m.recall(key, now));
  EXPECT_EQ(m.remember(key, 1'500'000'000, now), "");
  const auto r = m.recall(key, now + std::chrono::minutes(5));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bytes_per_s, 1'500'000'000u);
  EXPECT_NEAR(r->age_s, 300, 1);
  EXPECT_FALSE(m.recall({"10.0.0.3", "udp", 2}, now));
  EXPECT_FALSE(m.recall({"10.0.0.2", "ud", 2}, now));
  EXPECT_FALSE(m.recall({"10.0.0.2", "udp", 1}, now));
  // A newer session replaces the older figure.
  EXPECT_EQ(m.remember(key, 700'000'000, now + std::chrono::minutes(10)), "");
  EXPECT_EQ(m.recall(key, now + std::chrono::minutes(11))->bytes_per_s, 700'000'000u);
}

TEST_F(RateMemoryTest, ForgetsAfterThirtyDays) {
  RateMemory m(dir / "peer-rates.json");
  const auto then = clock::now();
  ASSERT_EQ(m.remember(key, 100, then), "");
  EXPECT_TRUE(m.recall(key, then + std::chrono::hours(24 * 29)));
  EXPECT_FALSE(m.recall(key, then + std::chrono::hours(24 * 31)));
  EXPECT_FALSE(m.recall(key, then - std::chrono::hours(1))) << "a figure from the future is a clock step";
}

TEST_F(RateMemoryTest, DamagedFileIsAWarningNotAFailure) {
  fs::create_directories(dir);
  const fs::path file = dir / "peer-rates.json";
  RateMemory m(file);
  for (const char* text : {"", "{", "[]", "{\"version\":2,\"entries\":[]}", "{\"version\":1,\"entries\":{}}"}) {
    std::ofstream(file) << text;
    std::string warning;
    EXPECT_FALSE(m.recall(key, clock::now(), &warning)) << text;
    EXPECT_FALSE(warning.empty()) << text;
  }
  // Entries of the wrong shape are skipped, the good ones still count.
  std::ofstream(file) << R"({"version":1,"entries":[{"peer":5},{"peer":"10.0.0.2","bulk":"udp","lanes":2,"bytes_per_s":-1,"unix_time":1},)"
                      << R"({"peer":"10.0.0.2","bulk":"udp","lanes":2,"bytes_per_s":42,"unix_time":)"
                      << std::chrono::duration_cast<std::chrono::seconds>(clock::now().time_since_epoch()).count() << "}]}";
  std::string warning;
  const auto r = m.recall(key, clock::now(), &warning);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bytes_per_s, 42u);
  EXPECT_EQ(warning, "");
  // And a damaged file is replaced by a good one on the next remember.
  std::ofstream(file) << "garbage";
  EXPECT_EQ(m.remember(key, 99, clock::now()), "");
  EXPECT_EQ(m.recall(key, clock::now())->bytes_per_s, 99u);
}

TEST_F(RateMemoryTest, StaysBounded) {
  RateMemory m(dir / "peer-rates.json");
  const auto now = clock::now();
  for (std::size_t i = 0; i < RateMemory::kMaxEntries + 40; ++i)
    ASSERT_EQ(m.remember({"10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256), "udp", 1}, 1000 + i,
                         now + std::chrono::seconds(i)),
              "");
  EXPECT_LT(fs::file_size(dir / "peer-rates.json"), 64u << 10);
  EXPECT_FALSE(m.recall({"10.1.0.0", "udp", 1}, now + std::chrono::hours(1))) << "the oldest went";
  EXPECT_TRUE(m.recall({"10.1.1.39", "udp", 1}, now + std::chrono::hours(1)));
}

TEST_F(RateMemoryTest, ConcurrentSessionsLoseNoFigure) {
  RateMemory m(dir / "peer-rates.json");
  const auto now = clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) ASSERT_EQ(m.remember({"10.2.0." + std::to_string(t * 10 + i), "udp", 1}, 5, now), "");
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 80; ++i) EXPECT_TRUE(m.recall({"10.2.0." + std::to_string(i), "udp", 1}, now)) << i;
}

TEST_F(RateMemoryTest, UnwritableDirectoryIsReportedNotThrown) {
  fs::create_directories(dir);
  std::ofstream(dir / "file") << "x";
  RateMemory m(dir / "file" / "peer-rates.json");  // a file where the directory would be
  EXPECT_NE(m.remember(key, 5, clock::now()), "");
}

}  // namespace
}  // namespace hymig
