// The rate controller against a simulated link (no clocks, no timing): it must hold its rate under
// random loss, settle near the capacity of a full link, and give way when a queue builds.
#include <gtest/gtest.h>

#include <random>

#include "transport/pacer.hpp"
#include "transport/units.hpp"

namespace hymig {
namespace {

// One sample of a link of `capacity` bytes/s with random loss `p`; sending faster than capacity
// builds a queue (delay grows) and drops the excess.
// Loss is drawn per datagram (64 KB each, at least 64 per sample), so samples are as noisy as real ones.
FeedbackSample link_sample(double rate, double capacity, double p, double& queue_s) {
  static std::mt19937_64 rng(42);
  FeedbackSample s;
  s.interval_s = 0.02;
  s.send_rate = rate;
  const double carried = std::min(rate, capacity);
  queue_s = std::max(0.0, queue_s + (rate - capacity) / capacity * s.interval_s);
  queue_s = std::min(queue_s, 0.05);  // a 50 ms buffer, then tail drop
  s.datagrams = std::max(64.0, rate * s.interval_s / 65536);
  const double drop = 1 - (1 - p) * carried / rate;  // random loss plus what the full link drops
  const double kept = std::binomial_distribution<long>(static_cast<long>(s.datagrams), 1 - drop)(rng);
  s.loss = 1 - kept / s.datagrams;
  s.delivered_rate = rate * (1 - s.loss);
  s.qdelay_s = queue_s;
  return s;
}

class PacerUnderRandomLoss : public ::testing::TestWithParam<double> {};

TEST_P(PacerUnderRandomLoss, SettlesNearCapacityWithoutCollapse) {
  const double capacity = 1e9, p = GetParam();
  RateController rc(RateConfig{100 << 20});
  double queue = 0;
  for (int i = 0; i < 400; ++i) rc.on_sample(link_sample(rc.rate(), capacity, p, queue));
  // Average over a few probe cycles.
  double sum = 0;
  for (int i = 0; i < 80; ++i) {
    rc.on_sample(link_sample(rc.rate(), capacity, p, queue));
    sum += rc.rate();
  }
  const double avg = sum / 80;
  EXPECT_GT(avg, 0.7 * capacity) << "loss " << p;
  EXPECT_LT(avg, 1.4 * capacity) << "loss " << p;
}

INSTANTIATE_TEST_SUITE_P(Loss, PacerUnderRandomLoss, ::testing::Values(0.0, 0.01, 0.05, 0.10, 0.30));

TEST(Pacer, GivesWayWhenAQueueBuildsFromOtherTraffic) {
  RateController rc(RateConfig{100 << 20});
  double queue = 0;
  for (int i = 0; i < 200; ++i) rc.on_sample(link_sample(rc.rate(), 1e9, 0, queue));
  const double before = rc.rate();
  // Another flow now holds half the link and keeps its queue full.
  for (int i = 0; i < 20; ++i) {
    FeedbackSample s = link_sample(rc.rate(), 0.5e9, 0, queue);
    s.qdelay_s = 0.03;
    rc.on_sample(s);
  }
  EXPECT_LT(rc.rate(), 0.6 * before);
}

TEST(Pacer, FixedRateNeverMoves) {
  RateController rc(RateConfig{.initial_rate = 20 << 20, .fixed = true});
  double queue = 0;
  for (int i = 0; i < 50; ++i) rc.on_sample(link_sample(rc.rate(), 1e6, 0.5, queue));
  EXPECT_EQ(rc.rate(), double(20 << 20));
}

TEST(Units, SizesAndRates) {
  EXPECT_EQ(parse_size("1G", "x"), 1ull << 30);
  EXPECT_EQ(parse_size("64k", "x"), 65536u);
  EXPECT_EQ(parse_size("4096", "x"), 4096u);
  EXPECT_EQ(parse_rate("256M", "x"), 256ull << 20);
  EXPECT_EQ(parse_rate("8gbit", "x"), 1'000'000'000u);
  EXPECT_EQ(parse_rate("500mbit", "x"), 62'500'000u);
  EXPECT_THROW(parse_size("lots", "x"), std::exception);
  EXPECT_THROW(parse_size("1Q", "x"), std::exception);
  EXPECT_THROW(parse_rate("", "x"), std::exception);
}

}  // namespace
}  // namespace hymig
