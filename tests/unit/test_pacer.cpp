// The rate controller against a simulated link (no clocks, no timing): it must hold its rate under
// random loss, settle near the capacity of a full link, and give way when a queue builds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "core/units.hpp"
#include "engine/pacer.hpp"

namespace hymig {
namespace {

// How a link drops: whole batches of `batch` datagrams of `datagram_bytes` each (1: each datagram
// on its own).
struct Drops {
  double datagram_bytes = 65536;
  double batch = 1;
};

// One sample of a link of `capacity` bytes/s with random loss `p`; sending faster than capacity
// builds a queue (delay grows) and drops the excess.
// Loss is drawn per datagram (64 KB each, at least 64 per sample) or per batch, so samples are as
// noisy as real ones.
FeedbackSample link_sample(double rate, double capacity, double p, double& queue_s, Drops drops = {},
                           std::mt19937_64* own_rng = nullptr) {
  static std::mt19937_64 shared_rng(42);
  std::mt19937_64& rng = own_rng ? *own_rng : shared_rng;
  FeedbackSample s;
  s.interval_s = 0.02;
  s.send_rate = rate;
  const double carried = std::min(rate, capacity);
  queue_s = std::max(0.0, queue_s + (rate - capacity) / capacity * s.interval_s);
  queue_s = std::min(queue_s, 0.05);  // a 50 ms buffer, then tail drop
  double batches = std::max(64.0 / drops.batch, rate * s.interval_s / drops.datagram_bytes / drops.batch);
  if (drops.batch > 1) batches = std::ceil(batches);  // whole batches: a fraction of one is drawn as lost every time
  s.datagrams = batches * drops.batch;
  const double drop = 1 - (1 - p) * carried / rate;  // random loss plus what the full link drops
  const double kept = std::binomial_distribution<long>(static_cast<long>(batches), 1 - drop)(rng);
  s.loss = 1 - kept / batches;
  s.delivered_rate = rate * (1 - s.loss);
  s.qdelay_s = queue_s;
  return s;
}

// 4 s alone on a clean link of `capacity`: long enough to have found it.
void settle_alone(RateController& rc, double capacity) {
  double queue = 0;
  for (int i = 0; i < 200; ++i) rc.on_sample(link_sample(rc.rate(), capacity, 0, queue));
}

// The highest rate set in 1.2 s alone on a clean link of `capacity`, its queue empty: back near the
// link after a disturbance, or not.
double best_rate_after(RateController& rc, double capacity) {
  double queue = 0, best = 0;
  for (int i = 0; i < 60; ++i) {
    rc.on_sample(link_sample(rc.rate(), capacity, 0, queue));
    best = std::max(best, rc.rate());
  }
  return best;
}

// A 20 ms sample of 1472-byte datagrams sent at `rate`, the rest of it for the test to fill.
FeedbackSample sent_at(double rate) {
  FeedbackSample s;
  s.interval_s = 0.02;
  s.send_rate = rate;
  s.datagrams = std::max(64.0, rate * s.interval_s / 1472);
  s.datagram_bytes = 1472;
  return s;
}

// 0.4 s in which the receiver takes `pace` bytes/s, its socket backed up beyond it, the path
// losing `p` in whole batches of `drops.batch` datagrams: startup ends at the receiver's pace.
void start_at_a_slow_receiver(RateController& rc, double pace, double p = 0, std::mt19937_64* rng = nullptr,
                              Drops drops = {1472, 1}) {
  for (int i = 0; i < 20; ++i) {
    FeedbackSample s = sent_at(rc.rate());
    if (p > 0) {
      const double batches = std::ceil(s.datagrams / drops.batch);
      s.datagrams = batches * drops.batch;
      const long kept = std::binomial_distribution<long>(static_cast<long>(batches), 1 - p)(*rng);
      s.loss = 1 - static_cast<double>(kept) / batches;
    }
    s.delivered_rate = std::min(rc.rate(), pace) * (1 - s.loss);
    s.receiver_queue_s = rc.rate() > pace ? 0.01 : 0.0;
    s.qdelay_s = s.receiver_queue_s;
    rc.on_sample(s);
  }
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

// Random loss in bursts: a veth's input hook (the lab's nftables loss) sees a GSO batch of ~44
// datagrams as one packet and drops it whole; links drop bursts too. Samples of 1472-byte datagrams
// then vary several times more than a binomial of their datagrams: measured in the lab at 10 %,
// 3.2 % standard deviation over samples of ~3,000 datagrams, where a binomial gives 0.5 %. The
// pacer read that spread as loss above its floor and cut a 250 MB/s path to 80-130 MB/s.
class PacerUnderBurstyLoss : public ::testing::TestWithParam<double> {};

TEST_P(PacerUnderBurstyLoss, SettlesNearCapacityWithoutCollapse) {
  const double capacity = 250e6, p = GetParam();
  const Drops gso_batches{1472, 44};
  RateController rc(RateConfig{100 << 20});
  double queue = 0;
  for (int i = 0; i < 400; ++i) rc.on_sample(link_sample(rc.rate(), capacity, p, queue, gso_batches));
  double sum = 0;
  for (int i = 0; i < 200; ++i) {
    rc.on_sample(link_sample(rc.rate(), capacity, p, queue, gso_batches));
    sum += rc.rate();
  }
  const double avg = sum / 200;
  EXPECT_GT(avg, 0.7 * capacity) << "loss " << p << ", random floor read as " << rc.random_loss();
  EXPECT_LT(avg, 1.4 * capacity) << "loss " << p;
}

INSTANTIATE_TEST_SUITE_P(Loss, PacerUnderBurstyLoss, ::testing::Values(0.01, 0.05, 0.10, 0.20));

TEST(Pacer, GivesWayWhenAQueueBuildsFromOtherTraffic) {
  RateController rc(RateConfig{100 << 20});
  double queue = 0;
  for (int i = 0; i < 200; ++i) rc.on_sample(link_sample(rc.rate(), 1e9, 0, queue));
  EXPECT_GT(rc.rate(), 0.7e9) << "alone, it should have found the 1 GB/s link";
  // Another flow now holds half the link and keeps its queue full.
  for (int i = 0; i < 60; ++i) {
    FeedbackSample s = link_sample(rc.rate(), 0.5e9, 0, queue);
    s.qdelay_s = 0.03;
    rc.on_sample(s);
  }
  // It yields at least down to the half the other flow left, and never below a quarter of the
  // link it had (see PacerOnASharedLink below).
  EXPECT_LT(rc.rate(), 0.55e9);
  EXPECT_GT(rc.rate(), 0.2e9);
  const std::string phase = rc.phase();
  EXPECT_TRUE(phase == "share" || phase == "compete") << phase << ": a queue it did not build, carrying less than it had, is another flow's";
}

TEST(Pacer, ItsOwnQueueIsNotAnotherFlow) {
  // Alone on a link that queues: startup's overshoot and the probes build queues, but the link
  // stays full of our own bytes, so the pacer never goes into sharing.
  RateController rc(RateConfig{100 << 20});
  double queue = 0;
  double sum = 0;
  for (int i = 0; i < 500; ++i) {
    rc.on_sample(link_sample(rc.rate(), 1e9, 0, queue));
    ASSERT_STRNE(rc.phase(), "share") << "sample " << i;
    if (i >= 400) sum += rc.rate() / 100;
  }
  EXPECT_GT(sum, 0.8e9);
}

// Right after a cut empties the link window, one report that reads above the link (a burst out of
// the receiver's softirq backlog: 1.2 Gbit/s on a 1 Gbit/s router queue in the veth lab) must not
// become the "typical" link: against it the pacer's own rate after the next cut looked like a
// share of a busier link, and alone it crawled in phase share at half the link.
TEST(Pacer, OneHighReportAfterACutIsNotTheTypicalLink) {
  RateController rc(RateConfig{100 << 20});
  double queue = 0;
  double last = rc.rate();
  double sum = 0;
  for (int i = 0; i < 500; ++i) {
    FeedbackSample s = link_sample(rc.rate(), 1e9, 0, queue);
    if (rc.rate() < 0.9 * last) s.delivered_rate = 1.25e9;  // the sample after each cut reads high
    last = rc.rate();
    rc.on_sample(s);
    ASSERT_STRNE(rc.phase(), "share") << "sample " << i;
    if (i >= 400) sum += rc.rate() / 100;
  }
  EXPECT_GT(sum, 0.8e9);
}

// A receiver that stalls (cold memory, a busy host: seen on the veth lab at 1.9 GB of a 2 GiB
// image) backs up into the path as well as into its own socket: the reports show its backlog and,
// above it, some queueing delay on the path. That queue is the receiver's doing, not another
// flow's: once the stall ends the pacer must be back near the link within about a second, not
// crawl as a TCP-friendly share for seconds (measured before this rule: ~80 MB/s for 4 s).
TEST(Pacer, AReceiverStallThatBacksUpIntoThePathIsNotAnotherFlow) {
  RateController rc(RateConfig{100 << 20});
  settle_alone(rc, 1e9);
  ASSERT_GT(rc.rate(), 0.7e9);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 100; ++i) {  // 2 s in which the receiver takes 0.2 GB/s
    FeedbackSample s;
    s.interval_s = 0.02;
    s.send_rate = rc.rate();
    s.delivered_rate = std::min(rc.rate(), 0.2e9);
    s.datagrams = 2000;
    s.datagram_bytes = 1472;
    s.rtt_s = 0.002;
    s.receiver_queue_s = 0.05 + 0.04 * std::uniform_real_distribution<>(0, 1)(rng);
    s.qdelay_s = s.receiver_queue_s + 0.012 * std::uniform_real_distribution<>(0, 1)(rng);  // a little spills over
    rc.on_sample(s);
    ASSERT_STRNE(rc.phase(), "share") << "stall sample " << i;
  }
  EXPECT_GT(best_rate_after(rc, 1e9), 0.7e9) << "still " << rc.phase() << " at " << rc.rate() / 1e6 << " MB/s";
}

// A receiver slow at the start (its memory first touched, traced on the veth lab at MTU 1500: 170
// MB/s at the first report) ends startup at its pace. When it speeds up, the pacer must be near
// the link within a few hundred ms: at one probe in eight (+25 % every 160 ms) the climb from 0.15
// to 1 GB/s took ~1.4 s, half of a 2 GiB migration.
TEST(Pacer, FindsTheLinkFastOnceASlowStartingReceiverSpeedsUp) {
  RateController rc(RateConfig{100 << 20});
  start_at_a_slow_receiver(rc, 0.15e9);
  ASSERT_STREQ(rc.phase(), "cruise");
  ASSERT_LT(rc.rate(), 0.2e9) << "the case needs a start that left at the slow receiver's pace";
  double queue = 0;
  int samples = 0;
  while (rc.rate() < 0.9e9 && samples < 200) {
    rc.on_sample(link_sample(rc.rate(), 1e9, 0, queue));
    ++samples;
  }
  EXPECT_LE(samples, 20) << "20 ms samples to reach 0.9 of a 1 GB/s link from 0.15 GB/s";
  EXPECT_GT(best_rate_after(rc, 1e9), 0.8e9);
  settle_alone(rc, 1e9);
  EXPECT_GT(rc.rate(), 0.7e9);
  EXPECT_LT(rc.rate(), 1.3e9);
}

// Traced in the lab (--trace-pacer, 5 % nftables loss over veth at MTU 1500): a start that ended at
// a slow receiver's pace left the rate at 38 Mbit/s, and cruise at 100-250 Mbit/s, where a 20 ms
// sample holds a few hundred datagrams in a handful of GSO batches. A quarter of such samples lose
// none, so a floor taken as a low percentile of per-sample losses read 0; every lost batch was then
// loss above the floor, the pacer cut to its share floor and the long-term link decayed under it:
// 100-250 Mbit/s for up to 2 min on a 10 Gbit/s path, in one run of three or four.
TEST(Pacer, BurstyRandomLossAtALowStartingRateIsNotCongestion) {
  const Drops gso_batches{1472, 44};
  std::vector<int> took;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    RateController rc(RateConfig{100 << 20});
    start_at_a_slow_receiver(rc, 20e6, 0.05, &rng, gso_batches);
    ASSERT_STREQ(rc.phase(), "cruise");
    ASSERT_LT(rc.rate(), 30e6) << "the case needs a start that left at the slow receiver's pace";
    double queue = 0;
    int samples = 0;
    while (rc.rate() < 0.8e9 && samples < 1000) {
      rc.on_sample(link_sample(rc.rate(), 1e9, 0.05, queue, gso_batches, &rng));
      ++samples;
    }
    took.push_back(samples);
  }
  // The code before took over 1000 samples (20 s) in every one of these 20 runs.
  std::sort(took.begin(), took.end());
  EXPECT_LE(took[took.size() / 2], 25)
      << "median of 20 runs, in 20 ms samples, to 0.8 of a 1 GB/s link losing 5 % in batches";
  EXPECT_LE(took.back(), 150) << "the slowest of 20 runs";
}

// A receiver host that cannot keep up for seconds (both ends of the veth lab on 2 busy cores), as
// traced with --trace-pacer: samples with the receiver's socket backlog alternate with samples whose
// backlog sits in its softirq queue, where the socket's counters do not see it (a path queue, no
// receiver backlog, less delivered than sent), and now and then a stall in which nothing arrives.
// Read as another flow's queue, that held a lone migration in 'share' for the rest of the run at
// 2.9 Gbit/s against 5.1 in the runs beside it.
TEST(Pacer, AnOverloadedReceiverHostIsNotAnotherFlow) {
  RateController rc(RateConfig{100 << 20});
  settle_alone(rc, 1e9);
  ASSERT_GT(rc.rate(), 0.7e9);
  const double takes = 0.35e9;     // what the overloaded receiver host takes
  for (int i = 0; i < 150; ++i) {  // 3 s
    FeedbackSample s = sent_at(rc.rate());
    s.rtt_s = 0.005;
    switch (i % 3) {
      case 0:  // its socket backlog shows
        s.delivered_rate = std::min(s.send_rate, takes);
        s.receiver_queue_s = 0.02;
        s.qdelay_s = 0.022;
        break;
      case 1:  // the backlog is in its softirq queue: a "path" queue, less delivered than sent
        s.delivered_rate = 0.5 * std::min(s.send_rate, takes);
        s.receiver_queue_s = 0.001;
        s.qdelay_s = 0.012;
        break;
      default:
        s.delivered_rate = std::min(s.send_rate, takes);
        s.receiver_queue_s = 0.003;
        s.qdelay_s = 0.004;
    }
    if (i % 25 == 24) {  // a stall: nothing arrives, the reports come late
      s.delivered_rate = 0;
      s.receiver_queue_s = 0;
      s.qdelay_s = 0.06;
    }
    rc.on_sample(s);
    ASSERT_STRNE(rc.phase(), "share") << "sample " << i << " of the overloaded stretch";
  }
  EXPECT_GT(best_rate_after(rc, 1e9), 0.7e9) << "still " << rc.phase() << " at " << rc.rate() / 1e6 << " MB/s";
}

// A TCP CUBIC flow growing the shared queue and not yet filling it: no loss, our bytes arriving a
// little slower than we send them (the queue takes the rest). The pacer yields, but following the
// delivered rate down each sample ratcheted it from 180 to 28 Mbit/s on a 1 Gbit/s router queue
// without one loss; it must hold at least the floor its cuts stop at (a quarter of the link it had).
TEST(Pacer, AGrowingSharedQueueWithoutLossDoesNotRatchetTheRateDown) {
  RateController rc(RateConfig{100 << 20});
  settle_alone(rc, 1e9);
  ASSERT_GT(rc.rate(), 0.7e9);
  std::mt19937_64 rng(11);
  double q = 0.01;
  for (int i = 0; i < 400; ++i) {  // 8 s of a queue growing from 10 to 40 ms
    FeedbackSample s = sent_at(rc.rate());
    s.delivered_rate = rc.rate() * std::uniform_real_distribution<>(0.8, 0.95)(rng);
    q += 0.03 / 400;
    s.qdelay_s = q;
    s.rtt_s = 0.001 + q;
    rc.on_sample(s);
    ASSERT_GE(rc.rate(), 0.24e9) << "sample " << i << " in phase " << rc.phase();
  }
  const std::string phase = rc.phase();
  EXPECT_TRUE(phase == "share" || phase == "compete") << phase;
}

// On a path that loses at random, a queue of a few milliseconds is held short (0.9 of the link
// estimate), and that estimate is what we delivered: with another flow growing into each hold, it
// fell sample by sample (the sender's tbf at 1 % loss, against CUBIC: shares down to 0.30). The hold
// drains our queue; it must not yield the link below 0.4 of what we had alone.
TEST(Pacer, TheHoldOnALossyPathDoesNotRatchetTheRateDown) {
  RateController rc(RateConfig{100 << 20});
  double queue = 0;
  for (int i = 0; i < 400; ++i) rc.on_sample(link_sample(rc.rate(), 1e9, 0.01, queue));
  ASSERT_GT(rc.rate(), 0.7e9);
  double lowest = rc.rate();
  for (int i = 0; i < 400; ++i) {  // 8 s with 2 ms of queue, all we send delivered but the 1 %
    FeedbackSample s = sent_at(rc.rate());
    s.loss = 0.01;
    s.delivered_rate = rc.rate() * (1 - s.loss);
    s.qdelay_s = 0.002;
    s.rtt_s = 0.001 + s.qdelay_s;
    rc.on_sample(s);
    lowest = std::min(lowest, rc.rate());
    ASSERT_GE(rc.rate(), 0.35e9) << "sample " << i << " in phase " << rc.phase();
  }
  EXPECT_LT(lowest, 0.8e9) << "the queue was never drained";
  EXPECT_EQ(std::string(rc.phase()), "cruise");
}

// A TCP CUBIC flow (RFC 9438: W(t) = C (t - K)^3 + W_max, its Reno-friendly region, beta 0.7, one
// reduction per round trip) sharing a 1 Gbit/s link with hymig through a 50 ms tail-drop queue, as
// the bench's tc tbf does. Both see the same round trip (1 ms plus the queue). The long-run shares
// are what matter: hymig must leave the other flow room, and must not be starved by it.
struct SharedLink {
  double capacity = 125e6;
  double queue_s = 0;
  double base_rtt = 0.001;
  bool latecomer = false;  // hymig's delay baseline is the queue it first saw, not an empty one
  double seen_min = 1;
  std::mt19937_64 rng{7};
  // CUBIC, in packets of 1448 bytes.
  double cwnd = 10, w_max = 0, k = 0, since_loss = 0;
  bool slow_start = true;
  double tcp_delivered = 0;
  bool tcp_gone = false;  // the TCP flow has ended
  double random_loss = 0;  // of every packet, both flows' alike (a lossy link, not the queue)
  double loss_burst = 1;   // packets lost at once: the lab's nftables rule drops a GRO batch whole

  double rtt() const { return base_rtt + queue_s; }
  // One report's 20 ms, in steps of at most half a round trip: a window-limited flow over a
  // 0.2 ms path changes its rate many times within one report.
  FeedbackSample step(double rate) {
    const double dt = 0.02, limit = 0.05, mss = 1448, c = 0.4, beta = 0.7;
    const int n = std::clamp(static_cast<int>(std::ceil(dt / (rtt() / 2))), 1, 400);
    const double h = dt / n;
    double drop_sum = 0, through = 0, tcp_through = 0;
    for (int i = 0; i < n; ++i) {
      const double tcp_rate = tcp_gone ? 0 : cwnd * mss / rtt();
      const double offered = rate + tcp_rate;
      queue_s = std::max(0.0, queue_s + (offered - capacity) / capacity * h);
      const bool overflow = queue_s >= limit;
      queue_s = std::min(queue_s, limit);
      // What the full queue drops, it drops from both flows alike; a filling queue serves the
      // flows at the capacity, in proportion to what they offer.
      const double drop = overflow && offered > capacity ? 1 - capacity / offered : 0;
      const double served = overflow ? 1 - drop : std::min(1.0, offered > 0 ? capacity / offered : 1.0);
      drop_sum += drop / n;
      through += served / n;
      tcp_through += tcp_rate * served * (1 - random_loss) / n;
      since_loss += h;
      // Random loss: a burst of this step's packets lost, a loss event for CUBIC as a full
      // queue's drop is.
      const double packets = tcp_rate * h / mss;
      const bool random_event = random_loss > 0 && std::uniform_real_distribution<>(0, 1)(rng) <
                                                       1 - std::pow(1 - random_loss / loss_burst, packets);
      if ((drop > 0 || random_event) && since_loss > rtt()) {
        slow_start = false;
        w_max = cwnd;
        cwnd = std::max(2.0, cwnd * beta);
        k = std::cbrt(w_max * (1 - beta) / c);
        since_loss = 0;
      } else if (slow_start) {
        cwnd *= std::pow(2.0, h / rtt());
      } else {
        const double cubic = c * std::pow(since_loss - k, 3) + w_max;
        const double reno = w_max * beta + 3 * (1 - beta) / (1 + beta) * since_loss / rtt();
        cwnd = std::max(cubic, reno);
      }
    }
    tcp_delivered = tcp_through;
    FeedbackSample s;
    s.interval_s = dt;
    s.send_rate = rate;
    s.datagram_bytes = 1472;
    s.rtt_s = rtt();
    s.datagrams = std::max(64.0, rate * dt / 1472);
    const double kept =
        std::binomial_distribution<long>(static_cast<long>(s.datagrams), (1 - drop_sum) * (1 - random_loss))(rng);
    s.loss = 1 - kept / s.datagrams;
    s.delivered_rate = rate * through * (1 - s.loss) / (1 - drop_sum);  // the queue served `through`
    if (rate > 0) seen_min = std::min(seen_min, queue_s);
    s.qdelay_s = latecomer ? queue_s - seen_min : queue_s;
    return s;
  }
};

struct ShareCase {
  const char* name;
  bool tcp_first;
  bool latecomer;
};

class PacerOnASharedLink : public ::testing::TestWithParam<ShareCase> {};

// The case's start: the TCP flow owns the link for 2 s before hymig starts, or both start at once
// and run for 4 s before anything is measured.
SharedLink start(const ShareCase& c, RateController& rc) {
  SharedLink link;
  link.latecomer = c.latecomer;
  if (c.tcp_first) {
    for (int i = 0; i < 100; ++i) link.step(0);
  } else {
    for (int i = 0; i < 200; ++i) rc.on_sample(link.step(rc.rate()));
  }
  return link;
}

// Both flows' mean delivered rates over 60 simulated seconds together.
struct Together {
  double hymig = 0, tcp = 0;
  double share() const { return hymig / (hymig + tcp); }
};
Together run_together(SharedLink& link, RateController& rc) {
  Together t;
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    const FeedbackSample s = link.step(rc.rate());
    rc.on_sample(s);
    t.hymig += s.delivered_rate / n;
    t.tcp += link.tcp_delivered / n;
  }
  return t;
}

TEST_P(PacerOnASharedLink, LeavesRoomAndIsNotStarved) {
  const ShareCase c = GetParam();
  RateController rc(RateConfig{100 << 20});
  SharedLink link = start(c, rc);
  const Together t = run_together(link, rc);
  // A model, not the link: the measured shares (bench/run-suite.sh, shared link through a sender's
  // tbf and through a middle namespace) are in docs/performance.md. Here: neither flow takes it all.
  // Joining a link that CUBIC already fills, hymig never measured the whole link, so its floor (a
  // quarter of what it measured) is lower than a quarter of the link.
  const double share = t.share();
  // Before it competed as CUBIC does (it grew by Reno's step from where its delay cuts left it),
  // hymig held 0.19-0.27 here; over 8 seeds it now holds 0.32-0.37 first, 0.39-0.42 second and
  // 0.57-0.61 late.
  EXPECT_GT(share, 0.3) << "hymig starved";
  EXPECT_LT(share, 0.7) << "the TCP flow got no room";
  EXPECT_GT(t.hymig + t.tcp, 0.7 * link.capacity) << "the link is left idle";
  EXPECT_LT(rc.rate(), 3 * link.capacity) << "the rate ran away from the link";
}

INSTANTIATE_TEST_SUITE_P(Order, PacerOnASharedLink,
                         ::testing::Values(ShareCase{"HymigFirst", false, false},
                                           ShareCase{"TcpFirst", true, false},
                                           ShareCase{"TcpFirstQueueAlreadyFull", true, true}),
                         [](const auto& info) { return std::string(info.param.name); });

// A link that loses 1 % of every flow's packets at random, 64 KiB at a time (the lab's nftables
// rule drops a GRO batch whole): CUBIC's window is bound by the loss, not by the queue, so its rate
// is that window over the round trip, and every millisecond of queue we keep takes from it. Over a
// 0.2 ms path, cruising at the 5 ms target held 0.70-0.76 here (0.77-0.82 in the lab); holding the
// queue under a millisecond on a lossy path gives 0.36-0.43 over 8 seeds.
TEST(PacerOnALossySharedLink, LeavesALossBoundFlowItsShare) {
  for (const bool tcp_first : {false, true}) {
    RateController rc(RateConfig{100 << 20});
    SharedLink link;
    link.base_rtt = 0.0002;
    link.random_loss = 0.01;
    link.loss_burst = 44;  // 64 KiB of 1448-byte segments
    link.rng.seed(11);
    for (int i = 0; i < 200; ++i) rc.on_sample(link.step(tcp_first ? 0 : rc.rate()));
    const Together t = run_together(link, rc);
    const double share = t.share();
    EXPECT_GT(share, 0.3) << (tcp_first ? "TCP first" : "hymig first") << ": hymig starved";
    EXPECT_LT(share, 0.65) << (tcp_first ? "TCP first" : "hymig first") << ": the loss-bound flow got no room";
    EXPECT_GT(t.hymig + t.tcp, 0.7 * link.capacity) << "the link is left idle";
  }
}

// When the other flow ends, competing must end too: the link back within seconds, and (unless
// the delay baseline is the queue it joined) the probing cruise again within a second.
TEST_P(PacerOnASharedLink, TakesTheLinkBackWhenTheOtherFlowEnds) {
  const ShareCase c = GetParam();
  RateController rc(RateConfig{100 << 20});
  SharedLink link = start(c, rc);
  bool competed = false;
  for (int i = 0; i < 1000; ++i) {  // 20 s together
    rc.on_sample(link.step(rc.rate()));
    const std::string phase = rc.phase();
    competed = competed || phase == "compete" || phase == "share";
  }
  ASSERT_TRUE(competed) << "never saw the other flow";
  link.tcp_gone = true;
  double delivered = 0;
  int cruising_at = -1;
  for (int i = 0; i < 500; ++i) {  // 10 s alone
    const FeedbackSample s = link.step(rc.rate());
    rc.on_sample(s);
    if (i >= 250) delivered += s.delivered_rate / 250;
    if (cruising_at < 0 && std::string(rc.phase()) == "cruise") cruising_at = i;
  }
  EXPECT_GT(delivered, 0.85 * link.capacity) << "in phase " << rc.phase();
  if (!c.latecomer) {
    EXPECT_GE(cruising_at, 0);
    EXPECT_LT(cruising_at, 50);
  }
}

// While competing, one overflow of the shared queue is one loss episode: the reports of the round
// trip after our cut still carry the losses of what was sent before it, and cutting on each of them
// (as a fixed spacing of 3 samples did at a 48 ms round trip, traced on the middle-namespace link)
// halves the rate where CUBIC takes 0.7.
TEST(Pacer, CompetingCutsOncePerLossEpisode) {
  RateController rc(RateConfig{100 << 20});
  settle_alone(rc, 1e9);
  ASSERT_GT(rc.rate(), 0.7e9);
  auto sample = [&](double loss, double through = 1) {
    FeedbackSample s = sent_at(rc.rate());
    s.delivered_rate = through * rc.rate() * (1 - loss);
    s.loss = loss;
    s.qdelay_s = 0.03;
    s.rtt_s = 0.048;
    rc.on_sample(s);
  };
  // Another flow's queue grows: half of what we send gets through, until we see the flow.
  for (int i = 0; i < 100 && std::string(rc.phase()) == "cruise"; ++i) sample(0, 0.5);
  const std::string phase = rc.phase();
  ASSERT_TRUE(phase == "share" || phase == "compete") << phase;
  for (int i = 0; i < 20; ++i) sample(0);
  const double before = rc.rate();
  for (int i = 0; i < 4; ++i) sample(0.1);  // 80 ms of one overflow's losses
  EXPECT_NEAR(rc.rate(), 0.7 * before, 0.05 * before);
  sample(0);
  for (int i = 0; i < 2; ++i) sample(0.1);  // the next overflow, two round trips on: cut again
  EXPECT_LT(rc.rate(), 0.6 * before);
}

// Under TCG (or on a busy 2-core host) one report can come from a receiver that was descheduled:
// a queueing delay far above the target and a delivered rate far below the link, once. Startup must
// not drain on it (it used to, down to 0.8x that one sample's rate, and stayed there).
TEST(Pacer, OneNoisyHighDelaySampleDuringStartupDoesNotDrain) {
  RateController rc(RateConfig{.initial_rate = 4 << 20});
  const double capacity = 1e9;
  double queue = 0;
  for (int i = 0; i < 3; ++i) rc.on_sample(link_sample(rc.rate(), capacity, 0, queue));
  ASSERT_STREQ(rc.phase(), "startup");
  const double before = rc.rate();
  FeedbackSample noisy = link_sample(rc.rate(), capacity, 0, queue);
  noisy.qdelay_s = 0.04;
  noisy.delivered_rate = before / 20;
  rc.on_sample(noisy);
  EXPECT_STREQ(rc.phase(), "startup") << "one sample over the delay target ended startup";
  EXPECT_GE(rc.rate(), before) << "one noisy sample cut the startup rate";
  for (int i = 0; i < 60; ++i) rc.on_sample(link_sample(rc.rate(), capacity, 0, queue));
  EXPECT_GT(rc.rate(), 0.7 * capacity) << "it should still find the 1 GB/s link";
}

// Two samples in a row over the target are a queue: startup drains, to 80 % of the recent link
// estimate, not to one sample's delivered rate.
TEST(Pacer, TwoHighDelaySamplesDrainToTheLinkEstimate) {
  RateController rc(RateConfig{.initial_rate = 4 << 20});
  double queue = 0;
  for (int i = 0; i < 3; ++i) rc.on_sample(link_sample(rc.rate(), 1e9, 0, queue));
  FeedbackSample s;
  s.interval_s = 0.02;
  s.datagrams = 128;
  s.send_rate = rc.rate();
  s.delivered_rate = 30e6;
  s.qdelay_s = 0.02;
  rc.on_sample(s);
  const double held = rc.rate();
  s.delivered_rate = 1e6;  // the second one's own rate is tiny: the drain must not follow it
  rc.on_sample(s);
  EXPECT_STREQ(rc.phase(), "drain");
  EXPECT_GE(rc.rate(), 0.8 * 30e6 * 0.99);
  EXPECT_LE(rc.rate(), held);
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

namespace hymig {
namespace {

// The round trip comes from stamps the receiver echoes: a stamp from the future, a hold longer
// than the time that passed, or a stamp from long ago must not give a negative or absurd round
// trip (the friendly step divides by its square).
TEST(FeedbackTracker, HostileEchoesGiveNoRoundTrip) {
  using namespace std::chrono;
  const auto t0 = steady_clock::now();
  const auto ns = [](steady_clock::time_point t) {
    return static_cast<std::uint64_t>(duration_cast<nanoseconds>(t.time_since_epoch()).count());
  };
  struct Echo {
    std::uint64_t sent, hold;
  };
  const Echo hostile[] = {{ns(t0 + seconds(5)), 0},            // sent "later" than it arrived
                          {ns(t0), 60'000'000'000ull},         // held for a minute
                          {ns(t0) - 3'600'000'000'000ull, 0},  // an hour-old stamp
                          {~0ull, ~0ull}};
  // A tracker's second report, 50 ms and 1000 datagrams after its first, echoing `e`.
  const auto sample = [&](const Echo& e) {
    FeedbackTracker tr;
    Progress p{};
    tr.on_progress(p, 0, t0);
    p.receiver_time_ns = 50'000'000;
    p.datagrams = p.next_seq = 1000;
    p.bytes = 1000 * 1472;
    p.echo_send_time_ns = e.sent;
    p.echo_hold_ns = e.hold;
    return tr.on_progress(p, p.bytes, t0 + milliseconds(50));
  };
  for (const Echo& e : hostile) {
    const auto s = sample(e);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->rtt_s, 0.0) << "sent " << e.sent << " hold " << e.hold;
  }
  // An honest echo: sent 3 ms before the report arrived, held 1 ms.
  const auto s = sample({ns(t0 + milliseconds(47)), 1'000'000});
  ASSERT_TRUE(s.has_value());
  EXPECT_NEAR(s->rtt_s, 0.002, 1e-6);
}

// Startup doubles the rate per sample: it samples each receiver report (10 ms), cruise every
// 20 ms at least (a shorter span is too noisy on a shared host to cut or probe on).
TEST(FeedbackTracker, StartupSamplesEveryReport) {
  using namespace std::chrono;
  const auto t0 = steady_clock::now();
  for (const bool quick : {false, true}) {
    FeedbackTracker tr;
    Progress p{};
    tr.on_progress(p, 0, t0, quick);
    p.receiver_time_ns = 10'000'000;  // one report interval later
    p.datagrams = p.next_seq = 100;
    p.bytes = 100 * 1472;
    const auto s = tr.on_progress(p, p.bytes, t0 + milliseconds(10), quick);
    EXPECT_EQ(s.has_value(), quick) << (quick ? "startup waited for a second report" : "cruise sampled 10 ms");
    // Startup's next span holds too few datagrams (8); cruise's, 20 ms later, is its first.
    p.receiver_time_ns = 30'000'000;
    p.datagrams = p.next_seq = p.next_seq + 8;
    EXPECT_EQ(tr.on_progress(p, p.bytes, t0 + milliseconds(30), quick).has_value(), !quick);
  }
}

// What a round counts lost is what never came: a report that shows a gap being filled (a
// datagram reordered, or counted by its lane as the report was read) and a later one that shows
// it filled leave nothing lost. Summing each sample's shortfall counted the gap for good: one
// datagram of a 128-datagram round is 0.8 % "loss" on a lossless link, enough to send the
// final delta by datagram rounds.
TEST(FeedbackTracker, AGapFilledLaterIsNotLost) {
  using namespace std::chrono;
  const auto t0 = steady_clock::now();
  FeedbackTracker tr;
  Progress p{};
  tr.on_progress(p, 0, t0);
  p.receiver_time_ns = 30'000'000;
  p.next_seq = 100;
  p.datagrams = 97;  // three behind: reordered, or not yet counted
  p.bytes = p.datagrams * 1472;
  ASSERT_TRUE(tr.on_progress(p, p.next_seq * 1472, t0 + milliseconds(30)).has_value());
  EXPECT_EQ(tr.datagrams_lost(), 3u);
  p.receiver_time_ns = 60'000'000;
  p.next_seq = 200;
  p.datagrams = 200;  // they came
  p.bytes = p.datagrams * 1472;
  ASSERT_TRUE(tr.on_progress(p, p.next_seq * 1472, t0 + milliseconds(60)).has_value());
  EXPECT_EQ(tr.datagrams_lost(), 0u);
  // Real loss stays counted, from the first report on.
  p.receiver_time_ns = 90'000'000;
  p.next_seq = 300;
  p.datagrams = 290;
  p.bytes = p.datagrams * 1472;
  tr.on_progress(p, p.next_seq * 1472, t0 + milliseconds(90));
  EXPECT_EQ(tr.datagrams_lost(), 10u);
}

// A receiver that catches up on its own socket backlog takes in faster than the path delivers. That
// is not link capacity: in the veth lab with a 1 Gbit/s router queue, one such sample (6 MB drained
// in 25 ms, read as 2.2 Gbit/s) held the link estimate above the link for the whole run, so the
// pacer's own cut rate looked like a share of a busier link and it crawled alone at half the link.
// The delivered rate is what arrived: what the receiver took less what came out of its backlog.
TEST(FeedbackTracker, AReceiverCatchingUpOnItsBacklogIsNotAFasterLink) {
  using namespace std::chrono;
  const auto t0 = steady_clock::now();
  FeedbackTracker tr;
  Progress p{};
  p.backlog_bytes = 6'000'000;  // a stall left 6 MB in the receiver's socket
  tr.on_progress(p, 0, t0);
  p.receiver_time_ns = 25'000'000;
  p.datagrams = p.next_seq = 4000;
  p.bytes = 7'000'000;          // it took 7 MB in 25 ms
  p.backlog_bytes = 1'000'000;  // 5 MB of it from its own backlog
  auto s = tr.on_progress(p, p.bytes, t0 + milliseconds(25));
  ASSERT_TRUE(s.has_value());
  EXPECT_NEAR(s->delivered_rate, 2'000'000 / 0.025, 1) << "the backlog's drain was counted as arrivals";
  EXPECT_NEAR(s->receiver_queue_s, 1'000'000 / (7'000'000 / 0.025), 1e-9) << "the backlog in time at the rate it takes";
  // A backlog that grows adds nothing: it is counted in buffer memory, above the payload.
  p.receiver_time_ns = 50'000'000;
  p.datagrams = p.next_seq = 8000;
  p.bytes = 10'000'000;
  p.backlog_bytes = 4'000'000;
  s = tr.on_progress(p, p.bytes, t0 + milliseconds(50));
  ASSERT_TRUE(s.has_value());
  EXPECT_NEAR(s->delivered_rate, 3'000'000 / 0.025, 1);
  // A report whose byte count went backwards (hostile, or broken) is no sample, not a wrapped rate.
  p.receiver_time_ns = 75'000'000;
  p.datagrams = p.next_seq = 12000;
  p.bytes = 1'000;
  EXPECT_FALSE(tr.on_progress(p, 0, t0 + milliseconds(75)).has_value());
}

// A receiver that took nothing in a span while bytes waited in its socket is behind by the span at
// least; read as no backlog (the rate it takes was 0), the stall's path queue looked like another
// flow's.
TEST(FeedbackTracker, AReceiverThatTookNothingWithBytesWaitingIsBehind) {
  using namespace std::chrono;
  const auto t0 = steady_clock::now();
  FeedbackTracker tr;
  Progress p{};
  p.datagrams = p.next_seq = 1000;
  p.bytes = 1'472'000;
  tr.on_progress(p, p.bytes, t0);
  p.receiver_time_ns = 30'000'000;
  p.next_seq = 3000;            // 2000 more were sent
  p.backlog_bytes = 2'000'000;  // they wait in its socket; it took none of them
  auto s = tr.on_progress(p, p.bytes + 2000 * 1472, t0 + milliseconds(30));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->delivered_rate, 0);
  EXPECT_GE(s->receiver_queue_s, 0.03);
}

}  // namespace
}  // namespace hymig
