#include "dagd/scheduler/new_run.hpp"

#include <string>

namespace dagd::scheduler {

std::vector<TaskInstance> NewTaskInstances(const Dag& dag, const DagRun& run) {
  std::vector<TaskInstance> tis;
  tis.reserve(dag.tasks.size());
  for (const TaskSpec& task : dag.tasks) {
    TaskInstance ti;
    ti.dag_id = run.dag_id;
    ti.run_id = run.run_id;
    ti.task_id = task.task_id;
    ti.version_number = run.version_number;
    ti.max_tries = task.retries;
    ti.operator_name = task.operator_name;
    ti.pool = task.pool;
    ti.pool_slots = task.pool_slots;
    ti.priority_weight = task.priority_weight;
    tis.push_back(std::move(ti));
  }
  return tis;
}

DagRun NewTimetableRun(const Dag& dag, int version_number, const RunSlot& slot, RunType type,
                       TimePoint now) {
  DagRun run;
  run.dag_id = dag.dag_id;
  run.version_number = version_number;
  run.state = RunState::kQueued;
  run.run_type = type;
  run.logical_date = slot.logical_date;
  run.data_interval_start = slot.data_interval_start;
  run.data_interval_end = slot.data_interval_end;
  run.run_after = slot.run_after;
  run.queued_at = now;
  run.triggered_by = type == RunType::kBackfill ? "backfill" : "timetable";
  run.run_id = std::string(ToString(type)) + "__" + FormatIsoformat(slot.logical_date);
  return run;
}

}  // namespace dagd::scheduler
