// The pure decision core: (DAG version, task-instance states, now, limits) → actions.
// No I/O, no clocks, no locks: every function here is deterministic and unit tested.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "dagd/scheduler/active_run.hpp"
#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/trigger_rules.hpp"

namespace dagd::scheduler {

enum class TaskAction {
  kWait,            // nothing to do now
  kQueue,           // hand a new try to a worker (when a slot is free)
  kSucceed,         // an `empty` task that may run: it succeeds at once, without a worker
  kUpstreamFailed,  // its trigger rule can no longer be met because of failures
  kSkip,            // its trigger rule can no longer be met because of skips
};

struct TaskDecision {
  TaskAction action = TaskAction::kWait;
  std::optional<TimePoint> wake_at;  // kWait in a retry delay: decide again at this time
};

// Decides one task instance that can change without a worker event: state none (by its trigger
// rule, over the counts of its direct upstreams' states) or up_for_retry (once its delay has
// passed). Every other state is kWait. Cost: O(1), whatever the size of the DAG.
TaskDecision DecideTask(const TaskSpec& task, const TaskInstance& ti,
                        const UpstreamSummary& upstream, TimePoint now);

// Orders runnable task indices for the free slots: highest priority_weight first, then
// topological order.
void OrderByPriority(const Dag& dag, std::vector<size_t>& runnable);

// One task instance changed by DecideCandidates: `before` is the row it replaced.
struct TaskChange {
  size_t index = 0;
  TiTransition::Kind kind = TiTransition::Kind::kQueue;
  TaskInstance before;
};

struct CandidateDecisions {
  std::vector<TaskChange> changes;        // in the order they were made
  std::vector<size_t> to_submit;          // queued now: hand to a worker once committed
  std::vector<std::pair<TimePoint, size_t>> wakeups;  // decide these tasks again then
  std::optional<RunState> finish;         // no task is unfinished: the run's outcome
  bool more = false;  // candidates were left for the next step (`busy` ones, or draining)
};

// Decides the run's candidate tasks (ActiveRun::candidates) and applies the result to `run` in
// place: skipped / upstream_failed / an `empty` task's success cascade through the downstream
// tasks in the same call; runnable tasks are queued into the free slots by priority (new tries
// owned by `epoch`), the others wait for a slot; when no task is unfinished any more, `finish`
// is the run's outcome (the run itself is left to the caller). `busy(ti)`: the task instance already changed in the batch being
// built, so it is left as a candidate for the next step. While `draining`, nothing new starts.
// A run in any state but running is left alone. Cost: O(candidates + what they change).
CandidateDecisions DecideCandidates(ActiveRun& run, TimePoint now, int64_t epoch, bool draining,
                                    const std::function<bool(const TaskInstance&)>& busy);

// Run outcome once every task is finished: failed when a leaf task failed or is
// upstream_failed, success otherwise (Airflow's rule). nullopt while any task is unfinished.
// O(tasks): called once, when a run's count of unfinished tasks reaches zero.
std::optional<RunState> RunOutcome(const Dag& dag, const std::vector<TaskInstance>& tis);

// When a failed try may be retried: retry_delay, doubled per try with exponential backoff,
// capped by max_retry_delay.
TimePoint NextRetryAt(const TaskSpec& task, int try_number, TimePoint failed_at);

// --- Task-instance transitions: each returns the new row -----------------------------------

// A new try: try_number + 1, nothing of the previous try's run (times, host, pid, process).
TaskInstance Queue(TaskInstance ti, TimePoint now);
// Records where the try runs: host, account, pid and, for a command, its process group.
TaskInstance MarkRunning(TaskInstance ti, const TaskEvent& started);
// success; failed → up_for_retry while try_number <= max_tries, else failed; interrupted →
// up_for_retry at once with max_tries + 1 (a try stopped by shutdown does not count).
TaskInstance Finish(TaskInstance ti, const TaskSpec& task, const TaskOutcome& outcome,
                    TimePoint at);
// skipped or upstream_failed, decided without a try.
TaskInstance MarkUnrunnable(TaskInstance ti, TaskState state, TimePoint now);
// An `empty` task's try, done by the scheduler itself: a new try number, success, no duration.
TaskInstance SucceedWithoutWorker(TaskInstance ti, TimePoint now);
// The end of a try whose task instance was cleared while it ran (restarting): up_for_retry at
// once with the task's full retries again (max_tries = try_number + retries), as Airflow's clear
// gives them, whatever the stopped try's outcome.
TaskInstance Restart(TaskInstance ti, const TaskSpec& task, TimePoint at);
// A try found queued or running that no live process of this scheduler owns (its process was
// stopped, crashed, or fenced off): up_for_retry at once, without using a retry.
TaskInstance RecoverOrphan(TaskInstance ti, TimePoint now);

}  // namespace dagd::scheduler
