// The pure decision core: (DAG version, task-instance states, now, limits) → actions.
// No I/O, no clocks, no locks: every function here is deterministic and unit tested.
#pragma once

#include <optional>
#include <vector>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/records.hpp"

namespace dagd::scheduler {

struct RunDecision {
  std::vector<size_t> to_queue;            // task indices, highest priority_weight first
  std::vector<size_t> to_upstream_failed;  // task indices
  std::vector<size_t> to_skip;             // task indices
  std::optional<RunState> finish;          // the run is over, with this state
  std::optional<TimePoint> next_wakeup;    // earliest future retry time, if any
};

// Decides what to do next in one run. `tis[i]` is the task instance of dag.tasks[i].
// `free_slots` bounds to_queue (max_active_tasks minus what is queued or running).
// Tasks are visited in topological order with the states this decision already implies, so
// upstream_failed and skipped propagate through a whole chain in one call.
RunDecision DecideRun(const Dag& dag, const std::vector<TaskInstance>& tis, TimePoint now,
                      int free_slots);

// Run outcome once every task is finished: failed when a leaf task failed or is
// upstream_failed, success otherwise (Airflow's rule). nullopt while any task is unfinished.
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
TaskInstance MarkUnrunnable(TaskInstance ti, TaskState state,
                            TimePoint now);  // skipped/upstream_failed
// A try found queued or running when the daemon starts was cut off by a crash or restart.
TaskInstance RecoverOrphan(TaskInstance ti, TimePoint now);

}  // namespace dagd::scheduler
