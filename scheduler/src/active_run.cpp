#include "dagd/scheduler/active_run.hpp"

namespace dagd::scheduler {

// A restarting task instance's try still runs until it is stopped.
bool HoldsSlot(TaskState s) {
  return s == TaskState::kQueued || s == TaskState::kRunning || s == TaskState::kRestarting;
}

ActiveRun::ActiveRun(DagRun run, DagPtr dag, std::vector<TaskInstance> tis)
    : run_(std::move(run)),
      dag_(std::move(dag)),
      tis_(std::move(tis)),
      upstream_(tis_.size()) {
  for (size_t i = 0; i < tis_.size(); ++i) {
    upstream_[i].total = static_cast<int>(dag_->upstream[i].size());
    Tally(tis_[i], +1);
    for (size_t down : dag_->downstream[i]) {
      Count(upstream_[down], tis_[i].state, +1);
    }
    candidates_.insert(candidates_.end(), i);
  }
}

void ActiveRun::Tally(const TaskInstance& ti, int delta) {
  if (!IsFinished(ti.state)) unfinished_ += delta;
  if (HoldsSlot(ti.state)) active_ += delta;
}

void ActiveRun::Set(size_t i, TaskInstance ti) {
  const TaskState before = tis_[i].state;
  const bool freed = HoldsSlot(before) && !HoldsSlot(ti.state);
  Tally(tis_[i], -1);
  Tally(ti, +1);
  tis_[i] = std::move(ti);
  const TaskState after = tis_[i].state;
  if (before != after && (after == TaskState::kNone || after == TaskState::kUpForRetry)) {
    candidates_.insert(i);
  }
  // Downstream tasks count only finished upstreams: queued → running changes nothing there.
  if (before != after && (IsFinished(before) || IsFinished(after))) {
    for (size_t down : dag_->downstream[i]) {
      Count(upstream_[down], before, -1);
      Count(upstream_[down], after, +1);
      candidates_.insert(down);
    }
  }
  if (freed && !waiting_for_slot_.empty()) {
    candidates_.insert(waiting_for_slot_.begin()->second);
    waiting_for_slot_.erase(waiting_for_slot_.begin());
  }
}

}  // namespace dagd::scheduler
