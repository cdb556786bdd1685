// Decides, per lane and as the stream goes, whether compressing pages moves them faster
// (docs/protocol.md, "Compression").
//
// A lane moves pages at the slower of its CPU and its wire: without zstd a page costs t_plain of
// CPU and w of wire time (at the pacing rate), with zstd t_plain + t_zstd and ratio * w. Whether
// that is a gain depends on figures no formula gets right from a distance (the pacer's rate moves,
// zstd costs more on cold caches, the receiver's CPU is shared), so the governor measures it:
//  - what zstd does to the lane's pages: the first 64, then bursts of 16 in every 2048 pages while
//    compression is off (0.8 % of them); their ratio, and the least time a warm page took;
//  - a trial only where compression can pay at all: pages shrink (ratio < 0.9) and the lane waits
//    (for the pacer, or for a kernel that holds its sends behind a full link) at least zstd's time
//    per page (a lane busy all the time only gets slower);
//  - the trial itself: compression on for a window (>= 0.3 s and 256 pages), its page rate
//    against the page rate of the window before; kept when 5 % faster. Trials back off (1, 2, 4 ..
//    30 s) while they fail; while on, a window off is tried the same way.
// A fast link (loopback, a receiver that takes GB/s) therefore never compresses; a slow one with
// compressible memory does.
#pragma once

#include <cstddef>
#include <cstdint>

#include "protocol/page_compressor.hpp"

namespace hymig {

class CompressionGovernor {
 public:
  CompressionGovernor(Compression mode, std::size_t page_size);

  // Whether to try compressing the next page.
  bool should_try();
  // One attempt: the page's compressed length (0: did not shrink enough) and the CPU time it took.
  void on_attempt(std::size_t compressed_bytes, double seconds);
  // After each batch: pages sent in it, the lane's busy seconds for them (its CPU time, zstd
  // included; the waits for the pacer and for the kernel not) and the wall seconds since the
  // previous batch.
  void on_batch(std::uint64_t pages, double busy_seconds, double wall_seconds);

  bool active() const { return active_; }
  double ratio() const { return ratio_; }              // compressed / page, 1 for pages that did not shrink
  double zstd_seconds_per_page() const { return t_zstd_; }  // the least a warm page took
  double idle_seconds_per_page() const { return idle_; }    // the lane's wait for the pacer, per page
  std::uint32_t trials() const { return trials_; }

  static constexpr std::uint64_t kSeedPages = 64;
  static constexpr std::uint64_t kSampleEvery = 2048;
  static constexpr std::uint64_t kBurst = 16;
  static constexpr std::uint64_t kColdAttempts = 4;  // the first of a burst are not timed
  static constexpr double kWindowSeconds = 0.3;
  static constexpr std::uint64_t kWindowPages = 256;

 private:
  enum class State { steady, trial };
  void end_window(double rate);

  Compression mode_;
  double page_;
  bool active_;
  std::uint64_t seen_ = 0;  // pages asked about
  std::uint64_t attempts_ = 0;
  bool warm_ = false;       // the attempt should_try just allowed is timed
  double ratio_ = 1;
  double t_zstd_ = 0;       // the least warm time seen (recent minimum: decays up slowly)
  double idle_ = 0;         // the lane's pacer wait per page, last window

  State state_ = State::steady;
  double window_s_ = 0, window_busy_s_ = 0;
  std::uint64_t window_pages_ = 0;
  double steady_rate_ = 0;   // pages/s of the last steady window
  double since_trial_s_ = 0;
  double backoff_s_ = 1;
  std::uint32_t trials_ = 0;
};

}  // namespace hymig
