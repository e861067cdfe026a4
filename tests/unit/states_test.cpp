#include "dagd/scheduler/states.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dagd/scheduler/status.hpp"

namespace dagd::scheduler {
namespace {

TEST(States, RunStatesUseAirflowSpellingAndRoundTrip) {
  const std::vector<std::pair<RunState, std::string>> cases = {{RunState::kQueued, "queued"},
                                                               {RunState::kRunning, "running"},
                                                               {RunState::kSuccess, "success"},
                                                               {RunState::kFailed, "failed"}};
  for (const auto& [state, name] : cases) {
    EXPECT_EQ(ToString(state), name);
    EXPECT_EQ(ParseRunState(name), state) << name;
  }
}

TEST(States, RunTypesUseAirflowSpellingAndRoundTrip) {
  const std::vector<std::pair<RunType, std::string>> cases = {
      {RunType::kManual, "manual"},
      {RunType::kScheduled, "scheduled"},
      {RunType::kBackfill, "backfill"},
      {RunType::kAssetTriggered, "asset_triggered"}};
  for (const auto& [type, name] : cases) {
    EXPECT_EQ(ToString(type), name);
    EXPECT_EQ(ParseRunType(name), type) << name;
  }
}

TEST(States, TaskStatesUseAirflowSpellingAndRoundTrip) {
  const std::vector<std::pair<TaskState, std::string>> cases = {
      {TaskState::kNone, "none"},
      {TaskState::kScheduled, "scheduled"},
      {TaskState::kQueued, "queued"},
      {TaskState::kRunning, "running"},
      {TaskState::kSuccess, "success"},
      {TaskState::kFailed, "failed"},
      {TaskState::kUpForRetry, "up_for_retry"},
      {TaskState::kUpForReschedule, "up_for_reschedule"},
      {TaskState::kUpstreamFailed, "upstream_failed"},
      {TaskState::kSkipped, "skipped"},
      {TaskState::kDeferred, "deferred"},
      {TaskState::kRemoved, "removed"},
      {TaskState::kRestarting, "restarting"}};
  for (const auto& [state, name] : cases) {
    EXPECT_EQ(ToString(state), name);
    EXPECT_EQ(ParseTaskState(name), state) << name;
  }
}

TEST(States, TriggerRulesUseAirflowSpellingAndRoundTrip) {
  const std::vector<std::pair<TriggerRule, std::string>> cases = {
      {TriggerRule::kAllSuccess, "all_success"},
      {TriggerRule::kAllFailed, "all_failed"},
      {TriggerRule::kAllDone, "all_done"},
      {TriggerRule::kAllDoneMinOneSuccess, "all_done_min_one_success"},
      {TriggerRule::kAllSkipped, "all_skipped"},
      {TriggerRule::kOneSuccess, "one_success"},
      {TriggerRule::kOneFailed, "one_failed"},
      {TriggerRule::kOneDone, "one_done"},
      {TriggerRule::kNoneFailed, "none_failed"},
      {TriggerRule::kNoneSkipped, "none_skipped"},
      {TriggerRule::kNoneFailedMinOneSuccess, "none_failed_min_one_success"},
      {TriggerRule::kAlways, "always"}};
  for (const auto& [rule, name] : cases) {
    EXPECT_EQ(ToString(rule), name);
    EXPECT_EQ(ParseTriggerRule(name), rule) << name;
  }
}

TEST(States, ParseAcceptsOnlyTheExactSpelling) {
  EXPECT_EQ(ParseRunState("Running"), std::nullopt);
  EXPECT_EQ(ParseRunState(""), std::nullopt);
  EXPECT_EQ(ParseRunType("asset-triggered"), std::nullopt);
  EXPECT_EQ(ParseRunType("dataset_triggered"), std::nullopt);
  EXPECT_EQ(ParseTaskState("up-for-retry"), std::nullopt);
  EXPECT_EQ(ParseTaskState("null"), std::nullopt);
  EXPECT_EQ(ParseTaskState("success "), std::nullopt);
  EXPECT_EQ(ParseTriggerRule("ALL_SUCCESS"), std::nullopt);
  EXPECT_EQ(ParseTriggerRule("none_failed_or_skipped"), std::nullopt);
}

TEST(States, OnlySuccessAndFailedRunsAreTerminal) {
  EXPECT_TRUE(IsTerminal(RunState::kSuccess));
  EXPECT_TRUE(IsTerminal(RunState::kFailed));
  EXPECT_FALSE(IsTerminal(RunState::kQueued));
  EXPECT_FALSE(IsTerminal(RunState::kRunning));
}

TEST(States, FinishedTaskStatesAreThoseThatWillNotRunAgain) {
  for (int i = 0; i <= static_cast<int>(TaskState::kRestarting); ++i) {
    auto state = static_cast<TaskState>(i);
    bool expected = state == TaskState::kSuccess || state == TaskState::kFailed ||
                    state == TaskState::kSkipped || state == TaskState::kUpstreamFailed ||
                    state == TaskState::kRemoved;
    EXPECT_EQ(IsFinished(state), expected) << ToString(state);
  }
}

TEST(Status, CodesPrintInSnakeCase) {
  EXPECT_EQ(ToString(StatusCode::kOk), "ok");
  EXPECT_EQ(ToString(StatusCode::kInvalidArgument), "invalid_argument");
  EXPECT_EQ(ToString(StatusCode::kNotFound), "not_found");
  EXPECT_EQ(ToString(StatusCode::kAlreadyExists), "already_exists");
  EXPECT_EQ(ToString(StatusCode::kFailedPrecondition), "failed_precondition");
  EXPECT_EQ(ToString(StatusCode::kAborted), "aborted");
  EXPECT_EQ(ToString(StatusCode::kUnavailable), "unavailable");
  EXPECT_EQ(ToString(StatusCode::kDeadlineExceeded), "deadline_exceeded");
  EXPECT_EQ(ToString(StatusCode::kCancelled), "cancelled");
  EXPECT_EQ(ToString(StatusCode::kInternal), "internal");
}

TEST(Status, ToStringIsCodeThenMessage) {
  EXPECT_EQ(Status::Ok().ToString(), "ok");
  EXPECT_EQ(Status::NotFound("dag 'x' does not exist").ToString(),
            "not_found: dag 'x' does not exist");
  EXPECT_EQ(Status(StatusCode::kInternal, "").ToString(), "internal");
}

TEST(Status, StatusOrHoldsAValueOrAnError) {
  StatusOr<int> value = 3;
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, 3);
  StatusOr<int> error = Status::Unavailable("database down");
  EXPECT_FALSE(error.ok());
  EXPECT_EQ(error.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace dagd::scheduler
