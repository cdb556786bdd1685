#include "engine/compression_governor.hpp"

#include <algorithm>

namespace hymig {
namespace {
constexpr double kAlpha = 1.0 / 32;  // the ratio: a moving average over the last few dozen samples
constexpr double kMaxBackoff = 30;
}  // namespace

CompressionGovernor::CompressionGovernor(Compression mode, std::size_t page_size)
    : mode_(page_size > kMaxCompressiblePage ? Compression::off : mode),
      page_(static_cast<double>(page_size)),
      active_(mode_ == Compression::on) {}

bool CompressionGovernor::should_try() {
  if (mode_ == Compression::off) return false;
  const std::uint64_t n = seen_++;
  if (active_) {
    warm_ = true;
    return true;
  }
  const std::uint64_t in_burst = n < kSeedPages ? n : n % kSampleEvery;
  warm_ = in_burst >= kColdAttempts;
  return n < kSeedPages || in_burst < kBurst;
}

void CompressionGovernor::on_attempt(std::size_t compressed_bytes, double seconds) {
  const double r = compressed_bytes ? static_cast<double>(compressed_bytes) / page_ : 1.0;
  ratio_ = attempts_++ == 0 ? r : ratio_ + kAlpha * (r - ratio_);
  if (!warm_) return;
  // The least time of warm pages, allowed to creep up (1 % a sample) so that a machine that got
  // slower is believed eventually.
  t_zstd_ = t_zstd_ == 0 ? seconds : std::min(seconds, t_zstd_ * 1.01);
}

void CompressionGovernor::on_batch(std::uint64_t pages, double busy_seconds, double wall_seconds) {
  if (mode_ != Compression::automatic) return;
  window_pages_ += pages;
  window_s_ += wall_seconds;
  window_busy_s_ += std::min(busy_seconds, wall_seconds);
  since_trial_s_ += wall_seconds;
  if (window_s_ < kWindowSeconds || window_pages_ < kWindowPages) return;
  const double rate = static_cast<double>(window_pages_) / window_s_;
  idle_ = (window_s_ - window_busy_s_) / static_cast<double>(window_pages_);
  end_window(rate);
  window_pages_ = 0;
  window_s_ = window_busy_s_ = 0;
}

void CompressionGovernor::end_window(double rate) {
  if (state_ == State::trial) {
    // The trial window against the steady one before it: keep the trial's setting only when it
    // moved pages 5 % faster.
    const bool better = rate > steady_rate_ * 1.05;
    if (!better) active_ = !active_;
    backoff_s_ = better ? 1 : std::min(kMaxBackoff, backoff_s_ * 2);
    state_ = State::steady;
    steady_rate_ = better ? rate : steady_rate_;
    since_trial_s_ = 0;
    return;
  }
  steady_rate_ = rate;
  if (since_trial_s_ < backoff_s_) return;
  // Off: worth a trial only if pages shrink and the lane waits for the pacer at least as long as
  // zstd would take. On: a trial without it, to notice a link that got faster.
  const bool can_pay = attempts_ >= kSeedPages / 2 && t_zstd_ > 0 && ratio_ < 0.9 && idle_ >= t_zstd_;
  if (!active_ && !can_pay) return;
  active_ = !active_;
  state_ = State::trial;
  ++trials_;
}

}  // namespace hymig
