#include "engine/pacer.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <numeric>
#include <thread>
#include <vector>

namespace hymig {

std::optional<FeedbackSample> FeedbackTracker::on_progress(const Progress& p, std::uint64_t sender_bytes_sent,
                                                           std::chrono::steady_clock::time_point now, bool quick) {
  if (p.min_owd_ns != INT64_MAX && p.datagrams) {
    min_owd_ns_ = std::min(min_owd_ns_, p.min_owd_ns);
    interval_min_owd_ns_ = std::min(interval_min_owd_ns_, p.min_owd_ns);
  }
  // The round trip: our own stamp, echoed with how long the receiver held it (both clocks'
  // offsets cancel). A smoothed value, as TCP keeps one; absurd samples are ignored.
  const auto now_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count());
  const std::uint64_t sent_ns = p.echo_send_time_ns;
  if (sent_ns && sent_ns <= now_ns && p.echo_hold_ns <= now_ns - sent_ns) {
    const double rtt = static_cast<double>(now_ns - sent_ns - p.echo_hold_ns) * 1e-9;
    if (rtt < 10) srtt_s_ = srtt_s_ == 0 ? rtt : 0.875 * srtt_s_ + 0.125 * rtt;
  }
  if (!have_base_) {
    have_base_ = true;
    origin_ = p;
    base_ = p;
    base_sender_bytes_ = sender_bytes_sent;
    base_time_ = now;
    return std::nullopt;
  }
  if (p.next_seq < base_.next_seq || p.datagrams < base_.datagrams || p.bytes < base_.bytes ||
      p.receiver_time_ns <= base_.receiver_time_ns)
    return std::nullopt;  // out of order or a counter went backwards: not a usable span
  const std::uint64_t passed = p.next_seq - origin_.next_seq;
  const std::uint64_t received = p.datagrams - origin_.datagrams;
  lost_ = passed > received ? passed - received : 0;
  const std::uint64_t seq_span = p.next_seq - base_.next_seq;
  const double dt = (p.receiver_time_ns - base_.receiver_time_ns) * 1e-9;
  // Long enough to average out a receiver that was descheduled for a few ms (2 cores, shared).
  // Startup leaves only on two such samples in a row, so its shorter ones are still ~20 ms of evidence.
  const std::uint64_t min_datagrams = quick ? 32 : 64;
  const double min_dt = quick ? 0.0095 : 0.02;  // the receiver reports every 10 ms: not one report late
  if ((seq_span < min_datagrams || dt < min_dt) && dt < 0.2) return std::nullopt;

  FeedbackSample s;
  s.interval_s = dt;
  const std::uint64_t got = p.datagrams - base_.datagrams;
  s.datagrams = static_cast<double>(seq_span);
  s.loss = seq_span ? std::clamp(1.0 - static_cast<double>(got) / seq_span, 0.0, 1.0) : 0.0;
  // What the path brought in, not what the receiver took: a receiver catching up on its own
  // backlog takes faster than the link delivers (after a stall, 6 MB drained in ~25 ms read as
  // 2.2 Gbit/s on a 1 Gbit/s link), and that one sample held the link estimate above the link for
  // the whole run. Only a drain is taken off: the backlog counts the kernel's buffer memory, more
  // than the payload, so adding a growth on would overstate what arrived.
  const double taken = static_cast<double>(p.bytes - base_.bytes);
  const double drained =
      base_.backlog_bytes > p.backlog_bytes ? static_cast<double>(base_.backlog_bytes - p.backlog_bytes) : 0;
  s.delivered_rate = std::max(0.0, taken - drained) / dt;
  const double sender_dt = std::chrono::duration<double>(now - base_time_).count();
  s.send_rate = sender_dt > 0 ? (sender_bytes_sent - base_sender_bytes_) / sender_dt : 0;
  s.qdelay_s = interval_min_owd_ns_ != INT64_MAX ? (interval_min_owd_ns_ - min_owd_ns_) * 1e-9 : 0;
  // A receiver that took nothing while bytes waited for it is behind by the whole span at least.
  s.receiver_queue_s = taken > 0 ? static_cast<double>(p.backlog_bytes) * dt / taken : p.backlog_bytes ? dt : 0;
  s.datagram_bytes = got ? taken / static_cast<double>(got) : 0;
  s.rtt_s = srtt_s_;

  base_ = p;
  base_sender_bytes_ = sender_bytes_sent;
  base_time_ = now;
  interval_min_owd_ns_ = INT64_MAX;
  return s;
}

RateController::RateController(const RateConfig& cfg)
    : cfg_(cfg), rate_(static_cast<double>(cfg.initial_rate)) {
  clamp();
}

const char* RateController::phase() const {
  if (cfg_.fixed) return "fixed";
  if (phase_ == Phase::cruise && competing()) return "compete";
  if (phase_ == Phase::cruise && sharing()) return "share";
  switch (phase_) {
    case Phase::startup: return "startup";
    case Phase::drain: return "drain";
    case Phase::cruise: return "cruise";
  }
  return "?";
}

PacerState RateController::state() const {
  PacerState st;
  st.phase = phase();
  st.rate = rate_;
  st.random_loss = base_loss_;
  st.link = bw_window_.empty() ? 0 : *std::max_element(bw_window_.begin(), bw_window_.end());
  st.long_link = long_link_;
  st.typical_link = typical_link_;
  st.foreign_samples = std::popcount(foreign_samples_);
  return st;
}

void RateController::clamp() {
  rate_ = std::clamp(rate_, static_cast<double>(cfg_.min_rate), static_cast<double>(cfg_.max_rate));
}

bool LossBlocks::add(double loss, double datagrams) {
  lost_ += loss * datagrams;
  sent_ += datagrams;
  ++samples_;
  if (sent_ < kDatagrams && (max_samples_ == 0 || samples_ < max_samples_)) return false;
  blocks_.push_back(lost_ / sent_);
  if (blocks_.size() > keep_) blocks_.pop_front();
  last_datagrams_ = sent_;
  clear_partial();
  return true;
}

namespace {
constexpr int kCutSpacing = 3;    // samples between two cuts: the last one must show in the reports first
constexpr double kCutFactor = 0.8;
constexpr double kContestedShare = 0.7;  // of the typical link: a queue while sending less = not alone
constexpr double kThroughShare = 0.25;   // of what we sent, delivered: a shared queue lets our share through
constexpr std::size_t kTypicalSamples = 5;  // a median of fewer is one sample's say
constexpr double kShareFloor = 0.25;  // of the long-term link: yield, but never starve
constexpr double kLongLossCredit = 1.25;   // at most this much random loss is added back into it
constexpr double kLongLinkDecay = 0.9998;  // per sample: a half-life of ~3500 samples (over a minute)
constexpr double kFallbackStep = 0.003;    // of the long-term link per sample, competing with no round trip known
constexpr double kProbeTaken = 0.95;       // of a probe's bytes delivered: the path took it, probe again
constexpr double kReceiverPace = 0.9;    // of what a receiver that falls behind took in the sample
constexpr double kContendProbe = 1.05;   // per sample, from the start of competing to the first loss
constexpr double kCubicC = 0.4;          // RFC 9438's C, packets per second cubed
constexpr double kCubicBeta = 0.7;       // and its multiplicative decrease
constexpr double kCubicAlpha = 3 * (1 - kCubicBeta) / (1 + kCubicBeta);  // its Reno-friendly step
constexpr double kPathQueueHold = 0.001;  // s of queue on the path, twice in a row: hold under the link
constexpr double kHoldGain = 0.9;         // of the link estimate, while held
constexpr double kHoldFloor = 0.4;        // of the long-term link: the hold drains our queue, it does not yield
constexpr double kLossyPath = 0.002;      // mean loss of the samples with no queue: a path that loses at random
constexpr double kLossyPathMax = 0.05;    // and no more: that much is as likely a full queue we do not see
}  // namespace

// The path is full (a queue of ours or another flow's, or loss above the random floor): cut the
// rate multiplicatively and forget the link maximum measured before, so that the next clear sample
// does not put the old rate back (that jump is what filled a shared queue and starved TCP). The probe
// cycle then regrows the estimate by at most 25 % per cycle, and only if the extra is delivered.
// Cuts stop at half the long-term link: a loss-driven flow that fills any queue it is given
// must not push the migration to nothing.
void RateController::yield_to_congestion(double carried) {
  if (since_cut_ < kCutSpacing) return;
  rate_ = std::max(kShareFloor * long_link_, kCutFactor * std::min(rate_, carried));
  bw_window_.assign(1, rate_);
  since_cut_ = 0;
  recent_loss_.clear_partial();
  excess_streak_ = 0;
}

// Competing before a round trip is known: an additive step from no more than what we could send (a
// sender that cannot fill its rate must not grow it), and never below the floor cuts stop at. Not
// from what was delivered: while another flow grows the shared queue, our bytes arrive slower than
// we send them, and following them down ratcheted a migration against one TCP CUBIC flow from 180
// to 28 Mbit/s on a 1 Gbit/s link without a single loss (the queue had not even filled).
double RateController::fallback_growth(const FeedbackSample& s) const {
  const double sendable = 1.1 * s.send_rate;
  return std::max(kShareFloor * long_link_, std::min(rate_, sendable) + kFallbackStep * long_link_);
}

// A CUBIC epoch: W(t) = C (t - K)^3 + W_max in datagrams (RFC 9438), from a cut (or from the
// start of competing) at `rate_now` after `rate_max`.
void RateController::begin_epoch(double rate_max, double rate_now, const FeedbackSample& s) {
  cubic_ = CubicEpoch{};
  if (s.datagram_bytes <= 0 || s.rtt_s <= 0) return;
  const double per_datagram = s.datagram_bytes / s.rtt_s;  // bytes/s one datagram in flight carries
  const double w_now = rate_now / per_datagram;
  cubic_.w_max = std::max(rate_max, rate_now) / per_datagram;
  cubic_.k = std::cbrt((cubic_.w_max - w_now) / kCubicC);
  cubic_.reno = w_now;
  cubic_.rtt = s.rtt_s;
}

// The epoch's window over this sample's round trip: a window-limited flow's rate falls as the queue
// grows and rises as it drains, and so does ours.
double RateController::cubic_rate(const FeedbackSample& s) {
  if (cubic_.w_max <= 0) begin_epoch(rate_, rate_, s);  // competing began before a round trip was known
  if (cubic_.w_max <= 0 || s.datagram_bytes <= 0 || s.rtt_s <= 0) return fallback_growth(s);
  cubic_.t += s.interval_s;
  cubic_.reno += kCubicAlpha * s.interval_s / s.rtt_s;
  const double w = std::max(cubic_.reno, cubic_.w_max + kCubicC * std::pow(cubic_.t - cubic_.k, 3));
  // Never more than a quarter above what we sent: a sender that cannot fill its rate does not grow it.
  const double sendable = std::max(1.25 * s.send_rate, 0.5 * rate_);
  const double rtt = std::max(s.rtt_s, cubic_.rtt);
  return std::max(kShareFloor * long_link_, std::min({w * s.datagram_bytes / rtt, sendable, long_link_}));
}

// Another flow's queue: the delay signal is saturated by it, and yielding to it would hand that flow
// the whole link (against one TCP CUBIC flow behind a router, a quarter). Compete as CUBIC does.
void RateController::compete_as_cubic(const FeedbackSample& s, double carried, double noise) {
  // From well under half the path, grow as its slow start grows to the first loss; then cut by
  // its beta on loss above the random floor (at least two datagrams: a full tail-drop queue drops
  // little of a sample) and regrow along its window function.
  if (s.loss > base_loss_ + std::max({1.5 / std::max(1.0, s.datagrams), 0.25 * base_loss_, noise})) {
    // One cut per loss episode, as TCP cuts once per window: until a round trip and a
    // sample have passed, the reports still carry losses of what was sent before the cut.
    if (since_cut_ >= kCutSpacing && cut_age_s_ > s.rtt_s + s.interval_s) {
      // RFC 9438's fast convergence: a flow cut again below its last maximum releases more,
      // so that a newcomer's share grows.
      const bool below_last = s.rtt_s > 0 && s.datagram_bytes > 0 && rate_ * s.rtt_s / s.datagram_bytes < cubic_.w_max;
      const double peak = below_last ? rate_ * (1 + kCubicBeta) / 2 : rate_;
      rate_ = std::max(kShareFloor * long_link_, kCubicBeta * std::min(rate_, carried / (1 - s.loss + 1e-9)));
      since_cut_ = 0;
      cut_age_s_ = 0;
      contend_probe_ = false;
      begin_epoch(peak, rate_, s);
    }
  } else if (contend_probe_) {
    // +5 % per sample (x2.7 per second), slower than TCP's slow start; never past the
    // long-term link (our own estimate of the whole path).
    if (s.send_rate >= 0.8 * rate_) rate_ = std::min(long_link_, rate_ * kContendProbe);
    if (rate_ >= long_link_) {
      contend_probe_ = false;
      begin_epoch(rate_, rate_, s);
    }
  } else {
    rate_ = cubic_rate(s);
  }
}

void RateController::on_sample(const FeedbackSample& s) {
  if (cfg_.fixed) return;
  ++since_cut_;
  cut_age_s_ += s.interval_s;

  // Where the queue is. The receiver's own buffers (it cannot take in what arrives: a host with
  // its cores busy, or descheduled for a moment) ask for pacing to what it takes; a queue on the
  // path (another flow, or our overshoot) asks for a cut, and one that outlives our cuts is
  // another flow's (compete). Telling the two apart keeps a busy receiver from reading as a
  // congested link: the rate then follows the receiver, and the link estimate is kept.
  const bool receiver_behind = s.receiver_queue_s > cfg_.qdelay_target_s;
  const double path_queue_s = std::max(0.0, s.qdelay_s - s.receiver_queue_s);
  const bool queue_building = path_queue_s > cfg_.qdelay_target_s;
  held_streak_ = path_queue_s > kPathQueueHold ? held_streak_ + 1 : 0;
  receiver_streak_ = receiver_behind ? receiver_streak_ + 1 : 0;
  const bool receiver_full = receiver_streak_ >= 2;
  // Random loss floor: a low percentile of the loss of the last 16 blocks of samples (a sample at
  // a high rate, several pooled to 2048 datagrams at a low one; not the probes, which overshoot on
  // purpose). Loss caused by sending too fast vanishes in the samples taken below the link rate;
  // random loss stays in all of them. Not the minimum: a sample of 64 datagrams at 30 % loss varies by +-6 %, and the
  // minimum of 16 such samples would put the floor far below the real random loss. (Not the median either: a flow that
  // joins a link whose queue is already full sees its drops in every sample.) Only samples taken while no queue stood
  // count: a full tail-drop queue's losses are congestion, and counting them as random is the loop that kept the rate
  // above a shared link's capacity. The spread of the same samples (their interquartile range, as a standard deviation)
  // is the noise: loss that drops a whole GSO batch at once, as a veth's input hook does, varies far more than a
  // binomial of the sample's datagrams.
  const double sample_gain = last_gain_;  // what the rate of the sample now arriving was set with
  if (!queue_building && sample_gain <= 1 && loss_window_.add(s.loss, s.datagrams)) {
    std::vector<double> sorted(loss_window_.blocks().begin(), loss_window_.blocks().end());
    std::sort(sorted.begin(), sorted.end());
    base_loss_ = sorted[sorted.size() / 4];
    // At most half the floor: a shared queue's drops spread the samples too, and taken whole as
    // noise they muted the loss signal (hymig's share of a router-limited link fell from 0.39 to
    // 0.23). Random loss high enough to spread far is a floor well above its spread.
    const double iqr = sorted.size() >= 8 ? sorted[3 * sorted.size() / 4] - sorted[sorted.size() / 4] : 0;
    loss_spread_ = std::min(iqr / 1.35, base_loss_ / 2);
    // The mean, not a percentile: loss that drops a GSO batch at a time leaves most samples at 0.
    const double mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(sorted.size());
    lossy_path_ = mean >= kLossyPath && mean <= kLossyPathMax;
  }
  // And no higher than the loss of the samples sent 15 % below the link estimate. Random loss is
  // there too; loss from overfilling the link is not. Without this, a flow that joins a link
  // whose queue is already full (so it never sees the queue's delay) reads the drops as random,
  // adds them back into its link estimate and sends ever faster: the floor must not feed itself.
  if (sample_gain < 1) drain_losses_.add(s.loss, s.datagrams);
  if (drain_losses_.blocks().size() >= 2) {
    std::vector<double> d(drain_losses_.blocks().begin(), drain_losses_.blocks().end());
    std::sort(d.begin(), d.end());
    base_loss_ = std::min(base_loss_, d[d.size() / 2]);
  }
  last_gain_ = 1;

  // What the path carried, with random loss added back: under 5 % random loss a link that takes
  // everything we send delivers 95 % of it, and that must not read as a slower link.
  const double carried = s.delivered_rate / std::max(0.05, 1.0 - base_loss_);
  bw_window_.push_back(carried);
  if (bw_window_.size() > 10) bw_window_.pop_front();
  const double link = *std::max_element(bw_window_.begin(), bw_window_.end());

  // Loss above the floor by more than the samples' noise (3 standard deviations: of a binomial of
  // the sample's datagrams, or the spread measured, whichever is larger), twice in a row: one noisy
  // sample must not cut the rate.
  const auto noise_of = [&](double datagrams) {
    return 3 * std::max(std::sqrt(base_loss_ * (1 - base_loss_) / std::max(1.0, datagrams)), loss_spread_);
  };
  const double noise = noise_of(s.datagrams);
  // Judged on the newest samples pooled into a block, with the noise of as many datagrams: a small
  // sample that lost one batch is no evidence. Between blocks the streak stands. A probe is judged
  // on its own sample, not pooled: it sends above the link on purpose, and a block of 8 samples at
  // a low rate held one probe's overshoot each time, read as excess twice in a row.
  const bool probe = sample_gain > 1;
  const bool judged = probe || recent_loss_.add(s.loss, s.datagrams);
  const double judged_loss = probe ? s.loss : recent_loss_.blocks().empty() ? 0 : recent_loss_.blocks().back();
  const double judged_noise = probe ? noise : noise_of(recent_loss_.last_datagrams());
  const bool above = judged && loss_window_.blocks().size() >= 4 &&
                     judged_loss > base_loss_ + std::max({0.02, 0.25 * base_loss_, judged_noise});
  if (judged) excess_streak_ = above ? excess_streak_ + 1 : 0;
  const bool excess_loss = excess_streak_ >= 2;
  const bool app_limited = s.send_rate < 0.7 * rate_;
  queued_streak_ = queue_building ? queued_streak_ + 1 : 0;
  // A queue on the path while we send well under what the path gave us is another flow's: alone, a
  // queue builds only while we send above the link (a probe, startup), and our cuts stop at 0.8 of
  // it. Seen in 4 of the last 16 samples (a receiver descheduled for a moment makes single
  // samples): compete as a CUBIC flow would, until ~4 s pass without such a sample (alone again,
  // we send near the typical link and no sample counts). Probing on instead (+25 % every 8
  // samples) takes a CUBIC flow's room faster than it can grow; yielding to its queue gives it all.
  // Counted only once a sample in cruise showed no queue: the queue startup built drains slowly.
  // Not while the receiver's own backlog is above target: a receiver that stalls (cold memory, a
  // busy host) backs up into the path too (the NIC ring, a veth's backlog), and that queue is
  // ours; read as another flow's it held a lossless veth migration at a tenth of the link for 4 s.
  // Nor within a few samples of one: a receiver host that falls behind (both ends of the veth lab
  // on 2 busy cores) alternates samples with its socket backlog and samples whose backlog is still
  // in its softirq queue, which the socket's counters do not see; 4 of those in 16 read as another
  // flow, and alone on the link a migration crawled in 'share' for the rest of the run (2.9 against
  // 5.1 Gbit/s). And a sample in which our bytes hardly got through (a stall: the receiver took
  // nothing) says nothing about who else is on the path: on a shared link our share still arrives.
  if (phase_ == Phase::cruise && !queue_building) drained_once_ = true;
  receiver_samples_ = static_cast<std::uint8_t>((receiver_samples_ << 1) | (receiver_behind ? 1 : 0));
  const bool foreign = drained_once_ && queue_building && receiver_samples_ == 0 &&
                       s.delivered_rate >= kThroughShare * s.send_rate && s.send_rate > 0 &&
                       s.send_rate < kContestedShare * typical_link_;
  foreign_samples_ = static_cast<std::uint16_t>((foreign_samples_ << 1) | (foreign ? 1 : 0));
  if (phase_ == Phase::cruise && std::popcount(foreign_samples_) >= 4)
    contested_ = kSharingSamples;
  else if (contested_ > 0 && !foreign)
    --contested_;
  // A queue counts when two samples in a row show it: one alone is as likely a receiver that was
  // descheduled for a few ms (a shared 2-core host, a TCG guest) as a queue on the path.
  const bool full = queued_streak_ >= 2 || excess_loss;
  // From measured samples only (the initial rate is a guess). For telling another flow's queue from
  // ours, the median of the recent ones: one sample can read high (a token bucket's burst, a report
  // that came late), and a high estimate makes our own drain below it look like another flow. Not
  // of a window a cut has just emptied: the median of one or two samples is their maximum (one
  // report of 1.2 Gbit/s on a 1 Gbit/s link, a burst from the receiver's softirq backlog, held it
  // above the link for the run, and alone the pacer shared with no one at half the link).
  typical_link_ *= kLongLinkDecay;
  if (bw_window_.size() >= kTypicalSamples) {
    std::array<double, 10> recent{};
    std::copy(bw_window_.begin(), bw_window_.end(), recent.begin());
    std::nth_element(recent.begin(), recent.begin() + bw_window_.size() / 2, recent.begin() + bw_window_.size());
    typical_link_ = std::max(typical_link_, recent[bw_window_.size() / 2]);
  }
  const double long_link_before = long_link_;
  long_link_ = std::max(long_link_ * kLongLinkDecay, std::min(carried, kLongLossCredit * s.delivered_rate));

  switch (phase_) {
    case Phase::startup:
      // Leave startup on a queue seen twice in a row (or loss above the floor twice in a row), not
      // on one sample: under TCG or on a shared 2-core host one receiver that was descheduled for a
      // few ms reads as 5+ ms of queue with a delivered rate far below the link, and draining to
      // that one sample's rate left UD migrations in the lab crawling at a fraction of the link.
      if (full) {
        phase_ = Phase::drain;
        // Let the queue we built drain: below the link as the recent samples measured it (their
        // maximum), not below the one sample that showed the queue.
        rate_ = 0.8 * link;
        since_cut_ = 0;
        break;
      }
      if (receiver_full) {
        // The receiver is the bottleneck: no point doubling further, and no queue to drain on
        // the path. Cruise at what it takes, a little under so its backlog empties.
        phase_ = Phase::cruise;
        rate_ = kReceiverPace * carried;
        since_cut_ = 0;
        receiver_ended_startup_ = true;
        break;
      }
      if (queue_building || receiver_behind) break;  // one sample over the target: hold until the next says more
      if (carried > 1.25 * startup_best_) {
        startup_best_ = carried;
        startup_flat_ = 0;
      } else if (!app_limited && ++startup_flat_ >= 3) {
        phase_ = Phase::cruise;
        rate_ = link;
        break;
      }
      if (!app_limited) rate_ *= 2;
      break;
    case Phase::drain:
      phase_ = Phase::cruise;
      rate_ = std::min(rate_ / 0.8, link);
      break;
    case Phase::cruise: {
      // Startup ended at the receiver's pace (its memory first touched, its host busy), so the
      // path was never measured. Once the receiver has kept up for 8 samples, measure it as
      // startup does, doubling: under 5 % random loss the probe cycle alone took 2 min to climb
      // from 150 Mbit/s on a 10 Gbit/s veth (docs/data-path.md). Twice at most: a receiver that
      // is the bottleneck for good must not be overrun every few samples.
      if (receiver_ended_startup_ && receiver_samples_ == 0 && !queue_building && !full && !competing() && !sharing() &&
          startup_restarts_ < 2) {
        receiver_ended_startup_ = false;
        ++startup_restarts_;
        phase_ = Phase::startup;
        startup_best_ = carried;
        startup_flat_ = 0;
        rate_ = 2 * std::max(rate_, carried);
        break;
      }
      // Probe up one sample in eight, drain a little after, hold at the link rate otherwise. A
      // probe the path took whole (all of it delivered, no queue, no loss above the floor, the
      // receiver keeping up) at a rate it never gave before is followed by another at once:
      // startup may have left at a rate a receiver took while slow (its memory first touched),
      // and at one probe in eight the climb to the link from there took 1.5 s of a 3 s migration
      // (docs/data-path.md). Back under a link it has given (after a cut), the cadence stays.
      if (sample_gain > 1 && !queue_building && !receiver_behind && !above && !app_limited &&
          carried >= kProbeTaken * s.send_rate && carried > long_link_before)
        cycle_ = 0;
      static constexpr double gains[] = {1.25, 0.85, 1, 1, 1, 1, 1, 1};
      const double gain = gains[cycle_++ % 8];
      const double target = link * gain;
      const bool contend = competing() || (sharing() && !receiver_full);
      if (contend && !contending_) {
        begin_epoch(rate_, rate_, s);
        contend_probe_ = rate_ < 0.5 * long_link_;
      }
      contending_ = contend;
      if (contend) {
        compete_as_cubic(s, carried, noise);
      } else if (full) {
        yield_to_congestion(carried);
      } else if (receiver_full) {
        if (since_cut_ >= kCutSpacing) {
          rate_ = std::min(rate_, kReceiverPace * carried);
          since_cut_ = 0;
        }
      } else if (app_limited) {
        rate_ = std::max(std::min(rate_, target), s.send_rate);
      } else if (held_streak_ >= 2 && lossy_path_) {
        // On a path that loses at random, over a millisecond of queue (short of the 5 ms that
        // cut): drain it, with no probe and no cut (the link estimate stands). A TCP flow there
        // has its window bound by the loss and runs at that window over the round trip, so each
        // millisecond of queue we keep takes from it: cruising at the 5 ms target over the middle
        // namespace at 1 % loss left iperf3 CUBIC a fifth of the link. Where nothing is lost at
        // random, a TCP flow fills any queue, and competing (above) answers it.
        // Never under 0.4 of the long-term link: the link estimate is what we delivered, and with
        // another flow growing into each hold it ratcheted down to a quarter of the link. Not
        // half: the probes in between take the mean above the floor (docs/data-path.md).
        rate_ = std::max(kHoldFloor * long_link_, kHoldGain * link);
        last_gain_ = link > 0 ? std::min(1.0, rate_ / link) : 1.0;
      } else {
        rate_ = target;
        last_gain_ = gain;
      }
      break;
    }
  }
  clamp();
}

void TokenBucket::acquire(std::size_t bytes) {
  using clock = std::chrono::steady_clock;
  const auto now = clock::now();
  // Credit at most ~1 ms of idle time: an idle sender may burst that much, no more.
  const auto burst = std::chrono::microseconds(1000);
  if (next_ < now - burst) next_ = now - burst;
  const auto start = next_;
  next_ += std::chrono::nanoseconds(static_cast<std::int64_t>(bytes / rate_ * 1e9));
  // Sleep, never spin: a sleep that oversleeps (timer slack, a busy core) leaves the bucket in
  // credit, and the next batches catch up within the burst, so the mean rate holds. Spinning out
  // the last stretch cost 10-20 % of a core at cruise, on a host whose 2 cores also receive.
  if (start > now) std::this_thread::sleep_until(start);
}

}  // namespace hymig
