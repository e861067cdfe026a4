// "Why is my task not running": the reasons a task instance is not running now, in words, as
// Airflow's task instance dependencies (GET .../taskInstances/{task_id}/dependencies).
//
// Pure: no I/O, no clock. The reasons come from the scheduler's own decision helpers
// (AdmitRuns and a backfill's gate for a queued run, DecideTask and the trigger rules for the task,
// the run's max_active_tasks slots as ActiveRun counts them), so an explanation says what the
// scheduling loop would decide from the same state. An empty list: the task instance is queued or
// running, or nothing blocks it (the loop starts it at its next decision).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dagd/scheduler/admission.hpp"
#include "dagd/scheduler/backfill.hpp"
#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/records.hpp"

namespace dagd::scheduler {

// One reason: Airflow's dependency name where one matches ("Trigger Rule", "Dag Not Paused"...),
// and a sentence.
struct Dependency {
  std::string name;
  std::string reason;
  bool operator==(const Dependency&) const = default;
};

struct WhyInput {
  const Dag* dag = nullptr;  // the version the run is pinned to
  const DagRun* run = nullptr;
  size_t task = 0;  // index of the task in dag->tasks
  // The run's task instances by task index (tis[i] for dag->tasks[i]); a missing row is none.
  std::vector<TaskInstance> tis;
  bool paused = false;
  // For a queued run only: the DAG's admission as the loop builds it (running count, the
  // max_active_runs of its newest queued run's version, the queued runs oldest first up to and
  // including this one). run->id is this run's key in `queued`. Its `paused` is not read:
  // `paused` above says it.
  AdmissionInput admission;
  // Queued runs older than this one that are not in admission.queued (beyond what was read).
  int64_t queued_ahead_unread = 0;
  // For a queued run of a backfill: the backfill's gate as the loop reads it, and how many of
  // the backfill's runs are running. Unset for other runs.
  std::optional<BackfillGate> backfill;
  int backfill_running = 0;
};

std::vector<Dependency> ExplainWhyNotRunning(const WhyInput& input, TimePoint now);

}  // namespace dagd::scheduler
