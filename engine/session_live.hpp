// A running session's phase and progress as other threads may read them while it runs (the
// daemon's status answer and metrics). The engine writes; readers get a consistent-enough view.
#pragma once

#include <atomic>
#include <cstdint>

#include "engine/session_phase.hpp"

namespace hymig {

struct SessionLive {
  std::atomic<SessionPhase> phase{SessionPhase::preparing};
  std::atomic<std::uint32_t> round{0};
  std::atomic<std::uint64_t> bytes_received{0};  // page bytes in (datagrams and the reliable channel)
  // The current round: its page set's bytes, and bytes_received when it began (what is still to
  // come is their difference, at best).
  std::atomic<std::uint64_t> round_bytes{0}, round_start_bytes{0};
  // Pages the guest dirtied per second, as the rounds' sizes tell (round N's set over round N-1's time).
  std::atomic<double> dirty_rate{0};
  std::atomic<std::int64_t> paused_at_ns{0};  // steady clock when the source paused (0: not yet)
  std::atomic<double> blackout_s{-1};          // pause to commit, once committed
};

}  // namespace hymig
