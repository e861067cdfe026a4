#include "dagd/scheduler/states.hpp"

#include <array>
#include <utility>

namespace dagd::scheduler {
namespace {

// One table per enum, in declaration order, so ToString and Parse cannot disagree.
template <typename E, size_t N>
using Names = std::array<std::pair<E, std::string_view>, N>;

constexpr Names<RunState, 4> kRunStates{{
    {RunState::kQueued, "queued"},
    {RunState::kRunning, "running"},
    {RunState::kSuccess, "success"},
    {RunState::kFailed, "failed"},
}};

constexpr Names<RunType, 4> kRunTypes{{
    {RunType::kManual, "manual"},
    {RunType::kScheduled, "scheduled"},
    {RunType::kBackfill, "backfill"},
    {RunType::kAssetTriggered, "asset_triggered"},
}};

constexpr Names<TaskState, 13> kTaskStates{{
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
    {TaskState::kRestarting, "restarting"},
}};

constexpr Names<TriggerRule, 12> kTriggerRules{{
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
    {TriggerRule::kAlways, "always"},
}};

template <typename E, size_t N>
std::string_view NameOf(const Names<E, N>& names, E value) {
  for (const auto& [e, name] : names) {
    if (e == value) return name;
  }
  return "unknown";
}

template <typename E, size_t N>
std::optional<E> ValueOf(const Names<E, N>& names, std::string_view text) {
  for (const auto& [e, name] : names) {
    if (name == text) return e;
  }
  return std::nullopt;
}

}  // namespace

std::string_view ToString(RunState s) { return NameOf(kRunStates, s); }
std::string_view ToString(RunType t) { return NameOf(kRunTypes, t); }
std::string_view ToString(TaskState s) { return NameOf(kTaskStates, s); }
std::string_view ToString(TriggerRule r) { return NameOf(kTriggerRules, r); }

std::optional<RunState> ParseRunState(std::string_view s) { return ValueOf(kRunStates, s); }
std::optional<RunType> ParseRunType(std::string_view s) { return ValueOf(kRunTypes, s); }
std::optional<TaskState> ParseTaskState(std::string_view s) { return ValueOf(kTaskStates, s); }
std::optional<TriggerRule> ParseTriggerRule(std::string_view s) {
  return ValueOf(kTriggerRules, s);
}

bool IsTerminal(RunState s) { return s == RunState::kSuccess || s == RunState::kFailed; }

bool IsFinished(TaskState s) {
  switch (s) {
    case TaskState::kSuccess:
    case TaskState::kFailed:
    case TaskState::kSkipped:
    case TaskState::kUpstreamFailed:
    case TaskState::kRemoved:
      return true;
    default:
      return false;
  }
}

bool IsTryInProgress(TaskState s) {
  switch (s) {
    case TaskState::kQueued:
    case TaskState::kRunning:
    case TaskState::kDeferred:
    case TaskState::kRestarting:
      return true;
    default:
      return false;
  }
}

}  // namespace dagd::scheduler
