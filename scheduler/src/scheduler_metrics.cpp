#include "scheduler_metrics.hpp"

#include <string>

namespace dagd::scheduler {

SchedulerMetrics::SchedulerMetrics(MetricsRegistry& registry)
    : queued_to_running_(registry.AddHistogram(
          "dagd_task_queued_to_running_seconds",
          "Time from a try's queueing to its start on a worker.", LatencyBuckets())),
      upstream_to_start_(registry.AddHistogram(
          "dagd_task_upstream_to_start_seconds",
          "Time from the end of a task's last upstream task to the start of its try.",
          LatencyBuckets())),
      commit_(registry.AddHistogram(
          "dagd_scheduler_commit_seconds",
          "Round trip of the scheduling loop's commits (one dagd_apply statement each).",
          LatencyBuckets())) {
  for (size_t i = 0; i < tasks_.size(); ++i) {
    tasks_[i] = &registry.AddCounter(
        "dagd_task_instance_transitions_total",
        "Task-instance state changes committed since the daemon started, by the state entered.",
        {{"state", std::string(ToString(static_cast<TaskState>(i)))}});
  }
  for (size_t i = 0; i < runs_.size(); ++i) {
    runs_[i] = &registry.AddCounter(
        "dagd_dag_run_transitions_total",
        "DAG-run state changes committed since the daemon started, by the state entered.",
        {{"state", std::string(ToString(static_cast<RunState>(i)))}});
  }
}

}  // namespace dagd::scheduler
