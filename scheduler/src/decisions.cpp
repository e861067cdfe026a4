#include "dagd/scheduler/decisions.hpp"

#include <algorithm>

#include "dagd/scheduler/trigger_rules.hpp"

namespace dagd::scheduler {
namespace {

double Seconds(TimePoint from, TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

RunDecision DecideRun(const Dag& dag, const std::vector<TaskInstance>& tis, TimePoint now,
                      int free_slots) {
  RunDecision decision;
  std::vector<TaskState> state(tis.size());
  for (size_t i = 0; i < tis.size(); ++i) state[i] = tis[i].state;

  std::vector<size_t> runnable;
  std::vector<TaskState> upstream_states;
  for (size_t i = 0; i < dag.tasks.size(); ++i) {
    if (state[i] == TaskState::kUpForRetry) {
      const auto& at = tis[i].next_retry_at;
      if (!at || *at <= now) {
        runnable.push_back(i);
      } else if (!decision.next_wakeup || *at < *decision.next_wakeup) {
        decision.next_wakeup = *at;
      }
      continue;
    }
    if (state[i] != TaskState::kNone) continue;
    upstream_states.clear();
    for (size_t up : dag.upstream[i]) upstream_states.push_back(state[up]);
    switch (Evaluate(dag.tasks[i].trigger_rule, Summarize(upstream_states))) {
      case RuleVerdict::kRun:
        runnable.push_back(i);
        break;
      case RuleVerdict::kUpstreamFailed:
        state[i] = TaskState::kUpstreamFailed;
        decision.to_upstream_failed.push_back(i);
        break;
      case RuleVerdict::kSkip:
        state[i] = TaskState::kSkipped;
        decision.to_skip.push_back(i);
        break;
      case RuleVerdict::kWait:
        break;
    }
  }

  // Highest priority_weight first; topological order breaks ties.
  std::stable_sort(runnable.begin(), runnable.end(), [&](size_t a, size_t b) {
    return dag.tasks[a].priority_weight > dag.tasks[b].priority_weight;
  });
  const size_t take = static_cast<size_t>(std::max(free_slots, 0));
  if (runnable.size() > take) runnable.resize(take);
  decision.to_queue = std::move(runnable);

  // Tasks left runnable by the slot limit are still unfinished, so the run goes on.
  if (std::all_of(state.begin(), state.end(), IsFinished)) {
    std::vector<TaskInstance> after = tis;
    for (size_t i = 0; i < state.size(); ++i) after[i].state = state[i];
    decision.finish = RunOutcome(dag, after);
  }
  return decision;
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

TaskInstance RecoverOrphan(TaskInstance ti, TimePoint now) {
  if (ti.state == TaskState::kQueued) return ti;  // never started: submit it again as it is
  ti.state = TaskState::kUpForRetry;
  ti.max_tries += 1;
  ti.next_retry_at = now;
  ti.end_date = now;
  if (ti.start_date) ti.duration = Seconds(*ti.start_date, now);
  return ti;
}

}  // namespace dagd::scheduler
