// One active run as the scheduling loop caches it between commits: the run row, its DAG version,
// its task instances, and the counts that make each decision O(what changed): per task, the
// states of its direct upstreams; per run, how many tasks are unfinished and how many hold a
// slot (queued or running). Set() keeps them current in O(out-degree) and marks the tasks whose
// inputs changed as candidates for the next decision. Owned by the loop thread.
#pragma once

#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/trigger_rules.hpp"

namespace dagd::scheduler {

// Whether a task instance in state `s` takes one of its run's max_active_tasks slots.
bool HoldsSlot(TaskState s);

class ActiveRun {
 public:
  // tis[i] is the task instance of dag->tasks[i]. Every task starts as a candidate.
  ActiveRun(DagRun run, DagPtr dag, std::vector<TaskInstance> tis);

  const DagRun& run() const { return run_; }
  DagRun& run() { return run_; }
  const Dag& dag() const { return *dag_; }
  const DagPtr& dag_ptr() const { return dag_; }
  size_t size() const { return tis_.size(); }
  const TaskInstance& ti(size_t i) const { return tis_[i]; }
  const std::vector<TaskInstance>& tis() const { return tis_; }
  const UpstreamSummary& upstream(size_t i) const { return upstream_[i]; }

  // Replaces task instance i. When its state changed, its downstream tasks become candidates, and
  // so does the task itself when it is back to none or up_for_retry; when a slot was freed, the
  // best task waiting for one does.
  void Set(size_t i, TaskInstance ti);

  int unfinished() const { return unfinished_; }  // tasks not in a finished state
  int active() const { return active_; }          // tasks queued or running
  int free_slots() const { return dag_->max_active_tasks - active_; }

  // Tasks to decide next, in topological order (task indices are topological).
  std::set<size_t>& candidates() { return candidates_; }
  // A runnable task that found no free slot: it becomes a candidate again when a slot frees up,
  // highest priority_weight first, then topological order.
  void WaitForSlot(size_t i) { waiting_for_slot_.insert({-dag_->tasks[i].priority_weight, i}); }

 private:
  void Tally(const TaskInstance& ti, int delta);  // unfinished_ and active_

  DagRun run_;
  DagPtr dag_;
  std::vector<TaskInstance> tis_;
  std::vector<UpstreamSummary> upstream_;
  int unfinished_ = 0;
  int active_ = 0;
  std::set<size_t> candidates_;
  std::set<std::pair<int, size_t>> waiting_for_slot_;  // (-priority_weight, task index)
};

}  // namespace dagd::scheduler
