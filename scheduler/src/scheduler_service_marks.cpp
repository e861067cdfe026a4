// SchedulerService: marking runs and task instances, and their notes. The store writes them
// conditionally; the scheduler learns of them from the event log like of any other writer's.
#include <set>

#include "dagd/scheduler/scheduler_service.hpp"

namespace dagd::scheduler {
namespace {

// `from` and every task reachable from it through `edges` (Dag::upstream or Dag::downstream).
void Reach(const std::vector<std::vector<size_t>>& edges, size_t from, std::set<size_t>& out) {
  for (size_t next : edges[from]) {
    if (out.insert(next).second) Reach(edges, next, out);
  }
}

}  // namespace

StatusOr<DagRun> SchedulerService::PatchRun(const std::string& dag_id, const std::string& run_id,
                                            const RunPatch& patch) {
  return store_.PatchRun(dag_id, run_id, patch, clock_.Now());
}

StatusOr<std::vector<TaskInstance>> SchedulerService::PatchTaskInstance(
    const std::string& dag_id, const std::string& run_id, const std::string& task_id,
    const TaskInstanceMark& mark) {
  TaskInstancePatch patch;
  patch.task_id = task_id;
  patch.new_state = mark.new_state;
  patch.note = mark.note;
  patch.dry_run = mark.dry_run;
  patch.state_tasks.push_back(task_id);
  if (mark.new_state && (mark.include_upstream || mark.include_downstream)) {
    auto run = store_.GetRun(dag_id, run_id);
    if (!run.ok()) return run.status();
    auto dag = scheduler_.GetDag(dag_id, run->version_number);
    if (!dag.ok()) return dag.status();
    const auto index = (*dag)->IndexOf(task_id);
    if (!index) {
      return Status::NotFound("The Task Instance with dag_id: '" + dag_id + "', dag_run_id: '" +
                              run_id + "', task_id: '" + task_id + "' was not found");
    }
    std::set<size_t> related;
    if (mark.include_upstream) Reach((*dag)->upstream, *index, related);
    if (mark.include_downstream) Reach((*dag)->downstream, *index, related);
    for (size_t i : related) patch.state_tasks.push_back((*dag)->tasks[i].task_id);
  }
  return store_.PatchTaskInstances(dag_id, run_id, patch, clock_.Now());
}

}  // namespace dagd::scheduler
