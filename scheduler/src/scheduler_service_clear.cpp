// SchedulerService: clearing task instances (Airflow's post_clear_task_instances and
// clear_dag_run). The service resolves what Airflow resolves from the DAG (relatives, retries);
// the store selects and writes conditionally, and the scheduler learns of the change from the
// event log like of any other writer's.
#include <set>

#include "dagd/scheduler/scheduler_service.hpp"

namespace dagd::scheduler {
namespace {

// Every task reachable from `from` through `edges` (Dag::upstream or Dag::downstream).
void Relatives(const std::vector<std::vector<size_t>>& edges, size_t from, std::set<size_t>& out) {
  std::vector<size_t> todo = {from};
  while (!todo.empty()) {
    const size_t at = todo.back();
    todo.pop_back();
    for (size_t next : edges[at]) {
      if (out.insert(next).second) todo.push_back(next);
    }
  }
}

}  // namespace

StatusOr<std::vector<TaskInstance>> SchedulerService::ClearTaskInstances(
    const std::string& dag_id, const ClearRequest& request) {
  auto record = store_.GetDag(dag_id);
  if (!record.ok()) return record.status();
  TaskInstanceClear clear;
  clear.dag_id = dag_id;
  clear.start_date = request.start_date;
  clear.end_date = request.end_date;
  clear.task_ids = request.task_ids;
  clear.only_failed = request.only_failed;
  clear.only_running = request.only_running;
  clear.reset_dag_runs = request.reset_dag_runs;
  clear.prevent_running_task = request.prevent_running_task;
  int version = record->latest_version;
  const bool past = request.include_past;
  const bool future = request.include_future;
  if (request.dag_run_id) {
    auto run = store_.GetRun(dag_id, *request.dag_run_id);
    if (run.status().code() == StatusCode::kNotFound) {
      return Status::NotFound("Dag Run id " + *request.dag_run_id + " not found in dag " + dag_id);
    }
    if (!run.ok()) return run.status();
    version = run->version_number;
    if ((past || future) && !run->logical_date) {
      return Status::InvalidArgument(
          "Cannot use include_past or include_future with no logical_date(e.g. manually or "
          "asset-triggered).");
    }
    if (past || future) {
      // Airflow's meaning: the run's logical date bounds the other side of the range.
      clear.start_date = past ? std::nullopt : run->logical_date;
      clear.end_date = future ? std::nullopt : run->logical_date;
    } else {
      clear.run_id = request.dag_run_id;
    }
  } else {
    if (past) clear.start_date.reset();
    if (future) clear.end_date.reset();
  }
  if (clear.task_ids && (request.include_upstream || request.include_downstream) &&
      version > 0) {
    auto dag = scheduler_.GetDag(dag_id, version);
    if (!dag.ok()) return dag.status();
    std::set<size_t> related;
    for (const std::string& task_id : *clear.task_ids) {
      const auto index = (*dag)->IndexOf(task_id);
      if (!index) continue;  // selects nothing, as in Airflow
      if (request.include_upstream) Relatives((*dag)->upstream, *index, related);
      if (request.include_downstream) Relatives((*dag)->downstream, *index, related);
    }
    std::set<std::string> ids(clear.task_ids->begin(), clear.task_ids->end());
    for (size_t i : related) ids.insert((*dag)->tasks[i].task_id);
    clear.task_ids.emplace(ids.begin(), ids.end());
  }
  clear.dry_run = true;
  auto selected = store_.ClearTaskInstances(clear, clock_.Now());
  if (!selected.ok() || request.dry_run || selected->empty()) return selected;
  if (request.run_on_latest_version && record->latest_version > 0) {
    auto latest = scheduler_.GetDag(dag_id, record->latest_version);
    if (!latest.ok()) return latest.status();
    clear.latest_version = record->latest_version;
    clear.latest_tasks = (*latest)->tasks;
    for (const TaskSpec& task : (*latest)->tasks) {
      clear.retries[{record->latest_version, task.task_id}] = task.retries;
    }
  }
  // The retries of each version the selected task instances belong to: clearing gives a task
  // its full retries again (max_tries = try_number + retries), as Airflow's clear does.
  std::set<int> versions;
  if (!clear.latest_version) {
    for (const TaskInstance& ti : *selected) versions.insert(ti.version_number);
  }
  for (int v : versions) {
    auto dag = scheduler_.GetDag(dag_id, v);
    if (!dag.ok()) return dag.status();
    for (const TaskSpec& task : (*dag)->tasks) clear.retries[{v, task.task_id}] = task.retries;
  }
  clear.dry_run = false;
  return store_.ClearTaskInstances(clear, clock_.Now());
}

}  // namespace dagd::scheduler
