#include "engine/session_phase.hpp"

#include <stdexcept>
#include <string>

#include "core/log.hpp"

namespace hymig {

const char* to_string(SessionPhase p) {
  switch (p) {
    case SessionPhase::preparing: return "preparing";
    case SessionPhase::rounds: return "rounds";
    case SessionPhase::final_delta: return "final-delta";
    case SessionPhase::verifying: return "verifying";
    case SessionPhase::device_state: return "device-state";
    case SessionPhase::committing: return "committing";
    case SessionPhase::committed: return "committed";
    case SessionPhase::failed: return "failed";
    case SessionPhase::unknown: return "unknown";
  }
  return "?";
}

bool may_follow(SessionPhase from, SessionPhase to) {
  using P = SessionPhase;
  const bool ended = from == P::committed || from == P::failed || from == P::unknown;
  if (ended) return false;
  if (to == P::failed) return true;
  if (to == P::unknown) return from == P::committing;
  if (from == P::verifying && to == P::committing) return true;  // no device state
  return static_cast<int>(to) == static_cast<int>(from) + 1;
}

SourceFailure source_failure(SessionPhase at) {
  switch (at) {
    case SessionPhase::preparing:
    case SessionPhase::rounds: return {Outcome::failed, false};
    case SessionPhase::final_delta:
    case SessionPhase::verifying:
    case SessionPhase::device_state: return {Outcome::failed, true};
    case SessionPhase::committing:
    case SessionPhase::unknown: return {Outcome::unknown, false};
    case SessionPhase::committed: return {Outcome::committed, false};
    case SessionPhase::failed: return {Outcome::failed, false};
  }
  return {Outcome::unknown, false};
}

PhaseMachine::PhaseMachine(Role role, std::function<void(SessionPhase)> on_change)
    : role_(role), on_change_(std::move(on_change)) {}

void PhaseMachine::to(SessionPhase next) {
  if (!may_follow(now_, next))
    throw std::logic_error(std::string("session phase ") + to_string(now_) + " cannot go to " + to_string(next));
  logger().debug("{} session: {} -> {}", to_string(role_), to_string(now_), to_string(next));
  now_ = next;
  if (on_change_) on_change_(next);
}

}  // namespace hymig
