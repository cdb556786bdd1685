// Pacing of the datagram stream (docs/protocol.md, "Pacing", says how and why).
//
// RateController turns the receiver's reports into a sending rate. It treats loss that does not
// grow with the sending rate as random (a lost chunk only costs a resend: the rate must not fall),
// and a rising queueing delay or loss above that floor as a full link (yield). TokenBucket then
// spaces the batches in user space: the kernel here has no fq qdisc, so SO_MAX_PACING_RATE
// does nothing for UDP.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

#include "protocol/wire.hpp"

namespace hymig {

struct FeedbackSample {
  double interval_s = 0;      // receiver-clock length of the sample
  double send_rate = 0;       // bytes/s the sender actually put out over the same span
  double delivered_rate = 0;  // bytes/s the receiver took in
  double loss = 0;            // fraction of datagrams of the span that never arrived
  double qdelay_s = 0;        // one-way delay above the smallest seen: the queue on the path and at the receiver
  double receiver_queue_s = 0;  // of it, the receiver's own backlog (its buffers / the delivered rate)
  double datagrams = 0;       // datagrams the sample covers (its loss is that noisy)
  double datagram_bytes = 0;  // their mean size (the unit of a TCP-friendly step)
  double rtt_s = 0;           // smoothed round trip of a datagram and a report (0: unknown)
};

// Builds samples from the cumulative Progress reports: one per >= 64 datagrams and >= 20 ms, or
// per 200 ms; `quick` (the pacer's startup, which doubles the rate per sample): per >= 32
// datagrams and >= 10 ms, the receiver's report interval, so the ramp takes half as long.
class FeedbackTracker {
 public:
  // `sender_bytes_sent` is the sender's cumulative datagram bytes when the report was read.
  std::optional<FeedbackSample> on_progress(const Progress& p, std::uint64_t sender_bytes_sent,
                                            std::chrono::steady_clock::time_point now, bool quick = false);
  // Sequence numbers passed over and not (yet) received since the first report: cumulative, so a
  // datagram that arrives after a later one was reported (reordering, or a report read while a
  // lane counted) is not counted lost for good, as a sum of per-sample shortfalls would count it.
  std::uint64_t datagrams_lost() const { return lost_; }

 private:
  bool have_base_ = false;
  Progress origin_{};  // the first report: datagrams_lost() counts from it
  Progress base_{};
  std::uint64_t base_sender_bytes_ = 0;
  std::chrono::steady_clock::time_point base_time_{};
  std::int64_t min_owd_ns_ = INT64_MAX;
  std::int64_t interval_min_owd_ns_ = INT64_MAX;
  std::uint64_t lost_ = 0;
  double srtt_s_ = 0;
};

struct RateConfig {
  std::uint64_t initial_rate = 100ull << 20;
  bool fixed = false;  // --rate R: never adapt
  std::uint64_t min_rate = 1ull << 20;
  std::uint64_t max_rate = 200ull << 30;
  double qdelay_target_s = 0.005;
};

// What the controller believes after a sample: the trace (`hymig migrate --trace-pacer`) shows it.
struct PacerState {
  const char* phase = "";
  double rate = 0;          // bytes/s it now sends at
  double random_loss = 0;   // the loss floor it reads as random
  double link = 0;          // the recent samples' largest carried rate
  double long_link = 0;     // the same, forgotten slowly
  double typical_link = 0;  // the recent samples' median, forgotten slowly
  int foreign_samples = 0;  // of the last 16, those with another flow's queue
};

// Losses pooled into blocks of at least kDatagrams datagrams (or `max_samples` samples, where
// given), the newest `keep` of them kept. A sample's loss is a fraction of what it held: at a low
// rate a 20 ms sample holds a few hundred datagrams, a handful of GSO batches where loss drops whole
// batches, and a quarter of such samples lose none at 5 % random loss. A percentile of per-sample losses
// then read a floor of 0 (docs/data-path.md). At a high rate each sample is a block.
class LossBlocks {
 public:
  static constexpr double kDatagrams = 2048;
  explicit LossBlocks(std::size_t keep, int max_samples = 0) : keep_(keep), max_samples_(max_samples) {}
  // Adds a sample; true when it completed a block.
  bool add(double loss, double datagrams);
  void clear_partial() {
    lost_ = sent_ = 0;
    samples_ = 0;
  }
  const std::deque<double>& blocks() const { return blocks_; }
  double last_datagrams() const { return last_datagrams_; }  // what the newest block was of

 private:
  std::size_t keep_;
  int max_samples_;
  double lost_ = 0, sent_ = 0;  // of the block being filled
  int samples_ = 0;
  double last_datagrams_ = 0;
  std::deque<double> blocks_;
};

class RateController {
 public:
  explicit RateController(const RateConfig& cfg);
  void on_sample(const FeedbackSample& s);
  double rate() const { return rate_; }
  double random_loss() const { return base_loss_; }
  const char* phase() const;
  PacerState state() const;
  bool starting() const { return !cfg_.fixed && phase_ == Phase::startup; }
  bool competing() const { return queued_streak_ >= kStandingQueue; }
  bool sharing() const { return contested_ > 0; }
  static constexpr int kStandingQueue = 50;  // samples (~1 s) with a queue that our cuts did not drain
  static constexpr int kSharingSamples = 200;  // ~4 s without another flow's queue end sharing

 private:
  enum class Phase { startup, drain, cruise };
  void clamp();

  RateConfig cfg_;
  double rate_;
  Phase phase_ = Phase::startup;
  void yield_to_congestion(double carried);

  LossBlocks loss_window_{16};  // losses of recent samples taken with no queue: the random floor
  // What the newest samples lost, judged when a block is complete: above the floor twice in a row
  // is two blocks of evidence, not one block seen twice (one probe's overshoot stays in a pool).
  LossBlocks recent_loss_{1, 8};
  std::deque<double> bw_window_;     // recent loss-corrected delivery rates: their maximum is the link
  double base_loss_ = 0;
  double loss_spread_ = 0;  // the standard deviation of recent samples' loss, from their quartiles
  double startup_best_ = 0;
  int startup_flat_ = 0;
  bool receiver_ended_startup_ = false;  // startup ended at the receiver's pace: the path is not measured
  int startup_restarts_ = 0;             // times startup was entered again once the receiver kept up
  int excess_streak_ = 0;
  unsigned cycle_ = 0;
  int since_cut_ = 0;
  // Samples since the queue was last below target: a queue that outlives our cuts is another
  // flow's, standing (a loss-driven flow fills any buffer); then compete on loss, not on delay.
  int queued_streak_ = 0;
  int receiver_streak_ = 0;  // samples in a row with the receiver's own backlog above target
  int held_streak_ = 0;      // samples in a row with over a millisecond of queue on the path
  bool lossy_path_ = false;  // the samples taken with no queue lose at random: hold the queue short
  // Another flow's queue was seen (one we did not build by probing): samples left in which the
  // rate follows loss as CUBIC's does, without probes (phase share).
  int contested_ = 0;
  bool drained_once_ = false;           // a cruise sample without a queue was seen
  std::uint16_t foreign_samples_ = 0;  // of the last 16 samples, those with another flow's signs
  std::uint8_t receiver_samples_ = 0;  // of the last 8 samples, those with the receiver's backlog above target
  double fallback_growth(const FeedbackSample& s) const;
  LossBlocks drain_losses_{3};       // losses of the last samples sent at the drain gain (0.85)
  double last_gain_ = 1;             // the gain the rate of the sample now arriving was set with
  // The largest carried rate, forgotten slowly (half-life over a minute): what the path gave
  // us lately. Cuts stop at a quarter of it; the additive step is capped by it.
  double long_link_ = 0;
  double typical_link_ = 0;  // the same, of the recent samples' median: no single high sample in it
  // Competing with a loss-driven flow (phases compete and share): CUBIC's window function
  // (RFC 9438), sent as that window over the round trip. A rate that ignored the round trip would
  // keep its bytes coming while the queue grows, and squeeze a window-limited flow whose rate
  // falls as it grows. Not over a round trip shorter than the epoch's: as our cut drains the
  // queue the rate holds, so a queue that was only ours empties and competing ends.
  struct CubicEpoch {
    double t = 0;      // seconds since the epoch began (a cut, or the start of competing)
    double k = 0;      // when the window is back at w_max
    double w_max = 0;  // datagrams in flight before the cut
    double reno = 0;   // the Reno-friendly window, grown by alpha datagrams per round trip
    double rtt = 0;    // the round trip at the epoch's start: below it the rate does not rise
  };
  CubicEpoch cubic_;
  double cut_age_s_ = 0;        // seconds since the last cut while competing
  bool contend_probe_ = false;  // competing and no loss yet: grow as a TCP flow in slow start does
  bool contending_ = false;     // in compete or share: the rate follows loss, not delay
  void begin_epoch(double rate_max, double rate_now, const FeedbackSample& s);
  double cubic_rate(const FeedbackSample& s);
  void compete_as_cubic(const FeedbackSample& s, double carried, double noise);
};

// Spaces sends to `rate` bytes/s with a burst of about one millisecond.
class TokenBucket {
 public:
  void set_rate(double bytes_per_s) { rate_ = bytes_per_s; }
  // Sleeps until `bytes` may go, then books them.
  void acquire(std::size_t bytes);

 private:
  double rate_ = 100e6;
  std::chrono::steady_clock::time_point next_{};
};

}  // namespace hymig
