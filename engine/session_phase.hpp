// The phases of one migration session, the same on both sides, and the one place that says which
// change is legal and what a failure means in each phase. QEMU's MigrationStatus and libvirt's job
// phases are the model: the phase, not a scatter of flags, decides whether the source resumes.
#pragma once

#include <cstdint>
#include <functional>

#include "engine/report.hpp"
#include "security/session_secrets.hpp"

namespace hymig {

// In order; a session walks them forward (device_state only for images with device state) and
// ends in committed, failed or, on the source only, unknown (commit sent, never confirmed).
enum class SessionPhase : std::uint8_t {
  preparing,     // handshake done: notify, ready, the lanes
  rounds,        // the bulk rounds; the source's image runs
  final_delta,   // the source's image paused, the last pages in flight
  verifying,     // digests compared
  device_state,  // a VM's device state moving
  committing,    // commit sent (source) or taken (destination)
  committed,
  failed,
  unknown,
};

const char* to_string(SessionPhase p);

// Whether `to` may follow `from` (forward one step, verifying straight to committing, any live
// phase to failed, committing to unknown).
bool may_follow(SessionPhase from, SessionPhase to);

// What a failure in phase `at` means on the source. Before the pause the image never stopped;
// paused, it resumes; once commit left, the destination may run it: the source must stay paused.
struct SourceFailure {
  Outcome outcome;
  bool resume_image;
};
SourceFailure source_failure(SessionPhase at);

// A session's phase. to() is the one transition: it refuses an illegal change (an engine bug: a
// std::logic_error), logs the change at debug level and tells the observer.
class PhaseMachine {
 public:
  PhaseMachine(Role role, std::function<void(SessionPhase)> on_change = {});
  SessionPhase now() const { return now_; }
  void to(SessionPhase next);

 private:
  Role role_;
  std::function<void(SessionPhase)> on_change_;
  SessionPhase now_ = SessionPhase::preparing;
};

}  // namespace hymig
