// Which existing run a backfill re-runs (Airflow's _get_dag_run_no_create_reason) and the
// spelling of reprocess_behavior.
#include "dagd/scheduler/backfill.hpp"

#include <gtest/gtest.h>

namespace dagd::scheduler {
namespace {

TEST(Backfill, ARunNotEndedIsInFlightWhateverTheReprocessBehavior) {
  for (RunState state : {RunState::kQueued, RunState::kRunning}) {
    for (auto b :
         {ReprocessBehavior::kNone, ReprocessBehavior::kFailed, ReprocessBehavior::kCompleted}) {
      EXPECT_EQ(NoRunReason(state, b), kInFlight);
    }
  }
}

TEST(Backfill, NoneKeepsEveryRunFailedReRunsFailedOnesCompletedReRunsEveryEndedOne) {
  EXPECT_EQ(NoRunReason(RunState::kSuccess, ReprocessBehavior::kNone), kAlreadyExists);
  EXPECT_EQ(NoRunReason(RunState::kFailed, ReprocessBehavior::kNone), kAlreadyExists);
  EXPECT_EQ(NoRunReason(RunState::kSuccess, ReprocessBehavior::kFailed), kAlreadyExists);
  EXPECT_EQ(NoRunReason(RunState::kFailed, ReprocessBehavior::kFailed), std::nullopt);
  EXPECT_EQ(NoRunReason(RunState::kSuccess, ReprocessBehavior::kCompleted), std::nullopt);
  EXPECT_EQ(NoRunReason(RunState::kFailed, ReprocessBehavior::kCompleted), std::nullopt);
}

TEST(Backfill, ReprocessBehaviorsAreSpelledAsAirflows) {
  for (auto b :
       {ReprocessBehavior::kNone, ReprocessBehavior::kFailed, ReprocessBehavior::kCompleted}) {
    EXPECT_EQ(ParseReprocessBehavior(ToString(b)), b);
  }
  EXPECT_EQ(ToString(ReprocessBehavior::kCompleted), "completed");
  EXPECT_EQ(ParseReprocessBehavior("FAILED"), std::nullopt);
  EXPECT_EQ(ParseReprocessBehavior(""), std::nullopt);
}

}  // namespace
}  // namespace dagd::scheduler
