#include "dagd/scheduler/decisions.hpp"

#include <algorithm>

#include "dagd/scheduler/trigger_rules.hpp"

namespace dagd::scheduler {
namespace {

double Seconds(TimePoint from, TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

// What a task that may run does: an `empty` task succeeds without a worker.
TaskAction RunAction(const TaskSpec& task) {
  return task.operator_name == kOperatorEmpty ? TaskAction::kSucceed : TaskAction::kQueue;
}

}  // namespace

TaskDecision DecideTask(const TaskSpec& task, const TaskInstance& ti,
                        const UpstreamSummary& upstream, TimePoint now) {
  TaskDecision decision;
  if (ti.state == TaskState::kUpForRetry) {
    if (ti.next_retry_at && *ti.next_retry_at > now) {
      decision.wake_at = ti.next_retry_at;
    } else {
      decision.action = RunAction(task);
    }
    return decision;
  }
  if (ti.state != TaskState::kNone) return decision;
  switch (Evaluate(task.trigger_rule, upstream)) {
    case RuleVerdict::kRun:
      decision.action = RunAction(task);
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

CandidateDecisions DecideCandidates(ActiveRun& run, TimePoint now, int64_t epoch, bool draining,
                                    const std::function<bool(const TaskInstance&)>& busy) {
  CandidateDecisions out;
  if (run.run().state != RunState::kRunning) return out;
  const Dag& dag = run.dag();
  std::vector<bool> changed(run.size(), false);
  auto change = [&](size_t i, TaskInstance after, TiTransition::Kind kind) {
    out.changes.push_back({i, kind, run.ti(i)});
    changed[i] = true;
    run.Set(i, std::move(after));
  };
  std::vector<size_t> runnable;
  std::vector<size_t> later;
  auto& candidates = run.candidates();
  while (!candidates.empty()) {
    const size_t i = *candidates.begin();
    candidates.erase(candidates.begin());
    const TaskInstance& ti = run.ti(i);
    if (changed[i] || busy(ti)) {
      later.push_back(i);
      continue;
    }
    const TaskDecision decision = DecideTask(dag.tasks[i], ti, run.upstream(i), now);
    switch (decision.action) {
      case TaskAction::kWait:
        if (decision.wake_at) out.wakeups.emplace_back(*decision.wake_at, i);
        break;
      case TaskAction::kQueue:
        runnable.push_back(i);
        break;
      case TaskAction::kSucceed:
        if (draining) {
          later.push_back(i);
          break;
        }
        // Its downstream tasks become candidates, decided in this same loop: a chain of
        // `empty` tasks completes in one commit.
        change(i, SucceedWithoutWorker(ti, now), TiTransition::Kind::kSettle);
        break;
      case TaskAction::kUpstreamFailed:
        change(i, MarkUnrunnable(ti, TaskState::kUpstreamFailed, now),
               TiTransition::Kind::kSettle);
        break;
      case TaskAction::kSkip:
        change(i, MarkUnrunnable(ti, TaskState::kSkipped, now), TiTransition::Kind::kSettle);
        break;
    }
  }
  OrderByPriority(dag, runnable);
  int free_slots = draining ? 0 : run.free_slots();
  for (size_t i : runnable) {
    if (draining) {
      later.push_back(i);
    } else if (free_slots <= 0) {
      run.WaitForSlot(i);
    } else {
      TaskInstance after = Queue(run.ti(i), now);
      after.owner_epoch = epoch;
      change(i, std::move(after), TiTransition::Kind::kQueue);
      out.to_submit.push_back(i);
      --free_slots;
    }
  }
  candidates.insert(later.begin(), later.end());
  out.more = !later.empty();
  if (run.unfinished() == 0) out.finish = RunOutcome(dag, run.tis());
  return out;
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

TaskInstance Restart(TaskInstance ti, const TaskSpec& task, TimePoint at) {
  ti.state = TaskState::kUpForRetry;
  ti.max_tries = ti.try_number + task.retries;
  ti.next_retry_at = at;
  ti.end_date = at;
  if (!ti.start_date) ti.start_date = at;
  ti.duration = Seconds(*ti.start_date, at);
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
