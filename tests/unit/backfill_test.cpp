// Which existing run a backfill re-runs (Airflow's _get_dag_run_no_create_reason), the
// spelling of reprocess_behavior, and how many of a backfill's runs may start.
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

TEST(Backfill, FreeSlotsAreWhatItsMaxActiveRunsLeavesAndNoneWhilePausedOrOver) {
  const BackfillGate open{.id = 1, .is_paused = false, .completed = false, .max_active_runs = 3};
  EXPECT_EQ(BackfillFreeSlots(open, 0), 3);
  EXPECT_EQ(BackfillFreeSlots(open, 2), 1);
  EXPECT_EQ(BackfillFreeSlots(open, 3), 0);
  EXPECT_EQ(BackfillFreeSlots(open, 5), 0);  // runs started by other writers
  BackfillGate paused = open;
  paused.is_paused = true;
  EXPECT_EQ(BackfillFreeSlots(paused, 0), 0);
  BackfillGate over = open;
  over.completed = true;
  EXPECT_EQ(BackfillFreeSlots(over, 0), 0);
}

}  // namespace
}  // namespace dagd::scheduler
