// The session's phases: which change is legal, and what a failure means on the source in each.
#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "engine/session_phase.hpp"

namespace hymig {
namespace {

using P = SessionPhase;

TEST(SessionPhase, WalksForwardOneStepAndMayEndInFailure) {
  const std::vector<P> path = {P::preparing, P::rounds, P::final_delta, P::verifying, P::device_state, P::committing, P::committed};
  for (std::size_t i = 0; i + 1 < path.size(); ++i) {
    EXPECT_TRUE(may_follow(path[i], path[i + 1])) << to_string(path[i]) << " -> " << to_string(path[i + 1]);
    EXPECT_FALSE(may_follow(path[i + 1], path[i])) << "backwards from " << to_string(path[i + 1]);
    EXPECT_TRUE(may_follow(path[i], P::failed)) << to_string(path[i]);
  }
  EXPECT_TRUE(may_follow(P::verifying, P::committing));   // no device state
  EXPECT_FALSE(may_follow(P::rounds, P::verifying));      // never skips the pause
  EXPECT_FALSE(may_follow(P::preparing, P::committing));
  EXPECT_FALSE(may_follow(P::rounds, P::rounds));
}

TEST(SessionPhase, UnknownOnlyAfterCommitAndEndedPhasesStay) {
  for (P p : {P::preparing, P::rounds, P::final_delta, P::verifying, P::device_state})
    EXPECT_FALSE(may_follow(p, P::unknown)) << to_string(p);
  EXPECT_TRUE(may_follow(P::committing, P::unknown));
  for (P end : {P::committed, P::failed, P::unknown})
    for (P next : {P::preparing, P::rounds, P::failed, P::unknown, P::committed})
      EXPECT_FALSE(may_follow(end, next)) << to_string(end) << " -> " << to_string(next);
}

TEST(SessionPhase, SourceResumesOnlyWhilePausedAndNeverAfterCommit) {
  for (P p : {P::preparing, P::rounds}) {
    EXPECT_EQ(source_failure(p).outcome, Outcome::failed) << to_string(p);
    EXPECT_FALSE(source_failure(p).resume_image) << "never paused in " << to_string(p);
  }
  for (P p : {P::final_delta, P::verifying, P::device_state}) {
    EXPECT_EQ(source_failure(p).outcome, Outcome::failed) << to_string(p);
    EXPECT_TRUE(source_failure(p).resume_image) << "paused in " << to_string(p);
  }
  EXPECT_EQ(source_failure(P::committing).outcome, Outcome::unknown);
  EXPECT_FALSE(source_failure(P::committing).resume_image);  // the destination may run it
}

TEST(SessionPhase, MachineRefusesAnIllegalChangeAndReportsLegalOnes) {
  std::vector<P> seen;
  PhaseMachine m(Role::source, [&](P p) { seen.push_back(p); });
  EXPECT_EQ(m.now(), P::preparing);
  m.to(P::rounds);
  EXPECT_THROW(m.to(P::committing), std::logic_error);
  EXPECT_EQ(m.now(), P::rounds);  // unchanged by the refused change
  m.to(P::final_delta);
  m.to(P::failed);
  EXPECT_THROW(m.to(P::rounds), std::logic_error);
  EXPECT_EQ(seen, (std::vector<P>{P::rounds, P::final_delta, P::failed}));
}

}  // namespace
}  // namespace hymig
