#include "dagd/scheduler/decisions.hpp"

#include <algorithm>

#include "dagd/scheduler/trigger_rules.hpp"

namespace dagd::scheduler {
namespace {

double Seconds(TimePoint from, TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

TaskDecision DecideTask(const TaskSpec& task, const TaskInstance& ti,
                        const UpstreamSummary& upstream, TimePoint now) {
  TaskDecision decision;
  if (ti.state == TaskState::kUpForRetry) {
    if (ti.next_retry_at && *ti.next_retry_at > now) {
      decision.wake_at = ti.next_retry_at;
    } else {
      decision.action = TaskAction::kQueue;
    }
    return decision;
  }
  if (ti.state != TaskState::kNone) return decision;
  switch (Evaluate(task.trigger_rule, upstream)) {
    case RuleVerdict::kRun:
      decision.action =
          task.operator_name == kOperatorEmpty ? TaskAction::kSucceed : TaskAction::kQueue;
      break;
    case RuleVerdict::kUpstreamFailed:
      decision.action = TaskAction::kUpstreamFailed;
      break;
    case RuleVerdict::kSkip:
      decision.action = TaskAction::kSkip;
      break;
    case RuleVerdict::kWait:
      break;
  }
  return decision;
}

void OrderByPriority(const Dag& dag, std::vector<size_t>& runnable) {
  std::sort(runnable.begin(), runnable.end(), [&](size_t a, size_t b) {
    if (dag.tasks[a].priority_weight != dag.tasks[b].priority_weight) {
      return dag.tasks[a].priority_weight > dag.tasks[b].priority_weight;
    }
    return a < b;  // task indices are in topological order
  });
}

std::optional<RunState> RunOutcome(const Dag& dag, const std::vector<TaskInstance>& tis) {
  for (const auto& ti : tis) {
    if (!IsFinished(ti.state)) return std::nullopt;
  }
  for (size_t i = 0; i < dag.tasks.size(); ++i) {
    if (!dag.downstream[i].empty()) continue;
    if (tis[i].state == TaskState::kFailed || tis[i].state == TaskState::kUpstreamFailed) {
      return RunState::kFailed;
    }
  }
  return RunState::kSuccess;
}

TimePoint NextRetryAt(const TaskSpec& task, int try_number, TimePoint failed_at) {
  Duration delay = task.retry_delay;
  if (task.retry_exponential_backoff) {
    for (int i = 1; i < try_number && delay < std::chrono::hours(24 * 365); ++i) delay *= 2;
  }
  if (task.max_retry_delay && delay > *task.max_retry_delay) delay = *task.max_retry_delay;
  return failed_at + delay;
}

TaskInstance Queue(TaskInstance ti, TimePoint now) {
  ti.state = TaskState::kQueued;
  ti.try_number += 1;
  ti.scheduled_when = now;
  ti.queued_when = now;
  ti.start_date.reset();
  ti.end_date.reset();
  ti.duration.reset();
  ti.next_retry_at.reset();
  ti.pid.reset();
  ti.process.reset();
  ti.hostname.clear();
  return ti;
}

TaskInstance MarkRunning(TaskInstance ti, const TaskEvent& started) {
  ti.state = TaskState::kRunning;
  ti.start_date = started.at;
  ti.hostname = started.hostname;
  ti.unixname = started.unixname;
  ti.pid = started.pid;
  ti.process = started.process;
  return ti;
}

TaskInstance Finish(TaskInstance ti, const TaskSpec& task, const TaskOutcome& outcome,
                    TimePoint at) {
  ti.end_date = at;
  if (!ti.start_date) ti.start_date = at;
  ti.duration = Seconds(*ti.start_date, at);
  switch (outcome.kind) {
    case TaskOutcome::Kind::kSuccess:
      ti.state = TaskState::kSuccess;
      break;
    case TaskOutcome::Kind::kFailed:
      if (ti.try_number <= ti.max_tries) {
        ti.state = TaskState::kUpForRetry;
        ti.next_retry_at = NextRetryAt(task, ti.try_number, at);
      } else {
        ti.state = TaskState::kFailed;
      }
      break;
    case TaskOutcome::Kind::kInterrupted:
      ti.state = TaskState::kUpForRetry;
      ti.max_tries += 1;
      ti.next_retry_at = at;
      break;
  }
  return ti;
}

TaskInstance MarkUnrunnable(TaskInstance ti, TaskState state, TimePoint now) {
  ti.state = state;
  ti.start_date = now;
  ti.end_date = now;
  ti.duration = 0.0;
  return ti;
}

TaskInstance SucceedWithoutWorker(TaskInstance ti, TimePoint now) {
  ti.try_number += 1;
  ti.state = TaskState::kSuccess;
  ti.start_date = now;
  ti.end_date = now;
  ti.duration = 0.0;
  return ti;
}

TaskInstance RecoverOrphan(TaskInstance ti, TimePoint now) {
  ti.state = TaskState::kUpForRetry;
  ti.max_tries += 1;
  ti.next_retry_at = now;
  ti.end_date = now;
  if (ti.start_date) ti.duration = Seconds(*ti.start_date, now);
  return ti;
}

}  // namespace dagd::scheduler
