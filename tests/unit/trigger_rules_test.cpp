#include "dagd/scheduler/trigger_rules.hpp"

#include <gtest/gtest.h>

namespace dagd::scheduler {
namespace {

using S = TaskState;
using V = RuleVerdict;

V Eval(TriggerRule rule, std::vector<TaskState> upstream) {
  return Evaluate(rule, Summarize(upstream));
}

TEST(TriggerRules, EveryRuleRunsATaskWithoutUpstreams) {
  for (auto rule : {TriggerRule::kAllSuccess, TriggerRule::kAllFailed, TriggerRule::kAllDone,
                    TriggerRule::kOneSuccess, TriggerRule::kOneFailed, TriggerRule::kNoneFailed,
                    TriggerRule::kAlways, TriggerRule::kAllSkipped}) {
    EXPECT_EQ(Eval(rule, {}), V::kRun) << ToString(rule);
  }
}

TEST(TriggerRules, AllSuccessWaitsThenRuns) {
  EXPECT_EQ(Eval(TriggerRule::kAllSuccess, {S::kSuccess, S::kRunning}), V::kWait);
  EXPECT_EQ(Eval(TriggerRule::kAllSuccess, {S::kSuccess, S::kSuccess}), V::kRun);
}

TEST(TriggerRules, AllSuccessFailsAsSoonAsOneUpstreamFails) {
  EXPECT_EQ(Eval(TriggerRule::kAllSuccess, {S::kFailed, S::kRunning}), V::kUpstreamFailed);
  EXPECT_EQ(Eval(TriggerRule::kAllSuccess, {S::kUpstreamFailed, S::kSuccess}), V::kUpstreamFailed);
}

TEST(TriggerRules, AllSuccessSkipsWhenAnUpstreamIsSkipped) {
  EXPECT_EQ(Eval(TriggerRule::kAllSuccess, {S::kSkipped, S::kSuccess}), V::kSkip);
}

TEST(TriggerRules, AllDoneWaitsForEveryUpstreamWhateverItsOutcome) {
  EXPECT_EQ(Eval(TriggerRule::kAllDone, {S::kFailed, S::kUpForRetry}), V::kWait);
  EXPECT_EQ(Eval(TriggerRule::kAllDone, {S::kFailed, S::kSkipped, S::kUpstreamFailed}), V::kRun);
}

TEST(TriggerRules, OneSuccessFiresOnFirstSuccess) {
  EXPECT_EQ(Eval(TriggerRule::kOneSuccess, {S::kSuccess, S::kRunning}), V::kRun);
  EXPECT_EQ(Eval(TriggerRule::kOneSuccess, {S::kFailed, S::kRunning}), V::kWait);
  EXPECT_EQ(Eval(TriggerRule::kOneSuccess, {S::kFailed, S::kFailed}), V::kUpstreamFailed);
  EXPECT_EQ(Eval(TriggerRule::kOneSuccess, {S::kSkipped, S::kSkipped}), V::kSkip);
}

TEST(TriggerRules, OneFailedFiresOnFirstFailure) {
  EXPECT_EQ(Eval(TriggerRule::kOneFailed, {S::kFailed, S::kRunning}), V::kRun);
  EXPECT_EQ(Eval(TriggerRule::kOneFailed, {S::kSuccess, S::kRunning}), V::kWait);
  EXPECT_EQ(Eval(TriggerRule::kOneFailed, {S::kSuccess, S::kSuccess}), V::kSkip);
}

TEST(TriggerRules, NoneFailedRunsAfterSuccessesAndSkips) {
  EXPECT_EQ(Eval(TriggerRule::kNoneFailed, {S::kSuccess, S::kSkipped}), V::kRun);
  EXPECT_EQ(Eval(TriggerRule::kNoneFailed, {S::kSuccess, S::kRunning}), V::kWait);
  EXPECT_EQ(Eval(TriggerRule::kNoneFailed, {S::kUpstreamFailed, S::kRunning}), V::kUpstreamFailed);
}

TEST(TriggerRules, NoneFailedMinOneSuccessSkipsWhenEverythingWasSkipped) {
  EXPECT_EQ(Eval(TriggerRule::kNoneFailedMinOneSuccess, {S::kSkipped, S::kSkipped}), V::kSkip);
  EXPECT_EQ(Eval(TriggerRule::kNoneFailedMinOneSuccess, {S::kSkipped, S::kSuccess}), V::kRun);
}

TEST(TriggerRules, AllFailedRunsOnlyWhenEveryUpstreamFailed) {
  EXPECT_EQ(Eval(TriggerRule::kAllFailed, {S::kFailed, S::kUpstreamFailed}), V::kRun);
  EXPECT_EQ(Eval(TriggerRule::kAllFailed, {S::kFailed, S::kSuccess}), V::kSkip);
}

TEST(TriggerRules, AlwaysRunsWhateverTheUpstreams) {
  EXPECT_EQ(Eval(TriggerRule::kAlways, {S::kRunning, S::kNone}), V::kRun);
}

TEST(TriggerRules, UpForRetryIsNotDone) {
  EXPECT_EQ(Eval(TriggerRule::kAllDone, {S::kUpForRetry}), V::kWait);
  EXPECT_EQ(Eval(TriggerRule::kAllSuccess, {S::kUpForRetry}), V::kWait);
}

}  // namespace
}  // namespace dagd::scheduler
