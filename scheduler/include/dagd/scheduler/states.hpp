// Airflow's vocabulary, verbatim: run states, run types, task-instance states, trigger rules.
// ToString gives Airflow's spelling; Parse accepts exactly that spelling and nothing else.
#pragma once

#include <optional>
#include <string_view>

namespace dagd::scheduler {

enum class RunState { kQueued, kRunning, kSuccess, kFailed };
enum class RunType { kManual, kScheduled, kBackfill, kAssetTriggered };

// kNone is Airflow's null state: created with the run, not yet scheduled.
enum class TaskState {
  kNone,
  kScheduled,
  kQueued,
  kRunning,
  kSuccess,
  kFailed,
  kUpForRetry,
  kUpForReschedule,
  kUpstreamFailed,
  kSkipped,
  kDeferred,
  kRemoved,
  kRestarting,
};

enum class TriggerRule {
  kAllSuccess,
  kAllFailed,
  kAllDone,
  kAllDoneMinOneSuccess,
  kAllSkipped,
  kOneSuccess,
  kOneFailed,
  kOneDone,
  kNoneFailed,
  kNoneSkipped,
  kNoneFailedMinOneSuccess,
  kAlways,
};

std::string_view ToString(RunState s);
std::string_view ToString(RunType t);
std::string_view ToString(TaskState s);  // kNone → "none" (codecs write JSON null)
std::string_view ToString(TriggerRule r);

std::optional<RunState> ParseRunState(std::string_view s);
std::optional<RunType> ParseRunType(std::string_view s);
std::optional<TaskState> ParseTaskState(std::string_view s);  // accepts "none" for kNone
std::optional<TriggerRule> ParseTriggerRule(std::string_view s);

bool IsTerminal(RunState s);
// success, failed, skipped, upstream_failed, removed: the task will not run again in this run
// unless it is cleared.
bool IsFinished(TaskState s);
// queued, running, deferred, restarting: the current try is with a worker (or handed to one).
bool IsTryInProgress(TaskState s);

}  // namespace dagd::scheduler
