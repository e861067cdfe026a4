// What the scheduling loop records (see the README's "Metrics"): the lag from a try's queueing
// to its start and from its upstream tasks' end to its start, the round trip of each commit, and
// every committed state change by the state entered (its own commits and, read from the event
// log, other writers'). Series are created once; recording is an atomic add.
#pragma once

#include <array>
#include <chrono>

#include "dagd/scheduler/metrics.hpp"
#include "dagd/scheduler/states.hpp"

namespace dagd::scheduler {

class SchedulerMetrics {
 public:
  explicit SchedulerMetrics(MetricsRegistry& registry);

  void QueuedToRunning(double seconds) { queued_to_running_.Observe(seconds); }
  void UpstreamToStart(double seconds) { upstream_to_start_.Observe(seconds); }
  void Commit(std::chrono::steady_clock::duration took) {
    commit_.Observe(std::chrono::duration<double>(took).count());
  }
  void TaskEntered(TaskState state) { tasks_[static_cast<size_t>(state)]->Inc(); }
  void RunEntered(RunState state) { runs_[static_cast<size_t>(state)]->Inc(); }

 private:
  Histogram& queued_to_running_;
  Histogram& upstream_to_start_;
  Histogram& commit_;
  std::array<Counter*, static_cast<size_t>(TaskState::kRestarting) + 1> tasks_{};
  std::array<Counter*, static_cast<size_t>(RunState::kFailed) + 1> runs_{};
};

}  // namespace dagd::scheduler
