#include "dagd/scheduler/scheduler_service.hpp"

#include <algorithm>
#include <fstream>

#include "dagd/scheduler/log_paths.hpp"

namespace dagd::scheduler {

SchedulerService::SchedulerService(ServiceOptions options, StateStore& store, Scheduler& scheduler,
                                   const Clock& clock)
    : options_(std::move(options)), store_(store), scheduler_(scheduler), clock_(clock) {}

HealthReport SchedulerService::Health() {
  HealthReport report;
  report.metadatabase_healthy = store_.Ping().ok();
  report.latest_scheduler_heartbeat = scheduler_.LastHeartbeat();
  report.scheduler_healthy =
      report.latest_scheduler_heartbeat &&
      clock_.Now() - *report.latest_scheduler_heartbeat < options_.heartbeat_threshold;
  return report;
}

StatusOr<Listing<DagRecord>> SchedulerService::ListDags(const DagQuery& query) {
  return store_.ListDags(query);
}

StatusOr<DagDetails> SchedulerService::GetDag(const std::string& dag_id) {
  auto record = store_.GetDag(dag_id);
  if (!record.ok()) return record.status();
  auto dag = scheduler_.GetDag(dag_id, record->latest_version);
  if (!dag.ok()) return dag.status();
  return DagDetails{std::move(record).value(), std::move(dag).value()};
}

StatusOr<DagDetails> SchedulerService::SetPaused(const std::string& dag_id, bool paused) {
  if (Status s = store_.SetPaused(dag_id, paused); !s.ok()) return s;
  scheduler_.Wake();
  return GetDag(dag_id);
}

StatusOr<Listing<ImportError>> SchedulerService::ListImportErrors(const Page& page) {
  return store_.ListImportErrors(page);
}

StatusOr<DagRun> SchedulerService::Trigger(const std::string& dag_id,
                                           const TriggerRequest& request) {
  auto details = GetDag(dag_id);
  if (!details.ok()) return details.status();
  const Dag& dag = *details->dag;
  const TimePoint now = clock_.Now();

  DagRun run;
  run.dag_id = dag_id;
  run.version_number = details->record.latest_version;
  run.state = RunState::kQueued;
  run.run_type = RunType::kManual;
  run.logical_date = request.logical_date;
  run.run_after = request.run_after.value_or(now);
  run.queued_at = now;
  run.conf = request.conf;
  run.note = request.note;
  run.data_interval_start = request.data_interval_start;
  run.data_interval_end = request.data_interval_end;
  if (!run.data_interval_start && run.logical_date) {
    run.data_interval_start = run.logical_date;
    run.data_interval_end = run.logical_date;
  }
  run.run_id =
      request.dag_run_id.value_or("manual__" + FormatRfc3339(request.logical_date.value_or(now)));
  if (run.run_id.empty() || run.run_id.size() > 250) {
    return Status::InvalidArgument("dag_run_id must be 1 to 250 characters long");
  }

  std::vector<TaskInstance> tis;
  tis.reserve(dag.tasks.size());
  for (const TaskSpec& task : dag.tasks) {
    TaskInstance ti;
    ti.dag_id = dag_id;
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
  auto created = store_.CreateRun(run, tis);
  if (!created.ok()) return created.status();
  scheduler_.Wake();
  return created;
}

StatusOr<Listing<DagRun>> SchedulerService::ListRuns(const RunQuery& query) {
  if (!query.dag_id.empty() && query.dag_id != "~") {
    if (auto dag = store_.GetDag(query.dag_id); !dag.ok()) return dag.status();
  }
  return store_.ListRuns(query);
}

StatusOr<DagRun> SchedulerService::GetRun(const std::string& dag_id, const std::string& run_id) {
  return store_.GetRun(dag_id, run_id);
}

StatusOr<Listing<TaskInstance>> SchedulerService::ListTaskInstances(
    const TaskInstanceQuery& query) {
  if (!query.run_id.empty() && query.run_id != "~" && query.dag_id != "~") {
    if (auto run = store_.GetRun(query.dag_id, query.run_id); !run.ok()) return run.status();
  }
  return store_.ListTaskInstances(query);
}

StatusOr<TaskInstance> SchedulerService::GetTaskInstance(const std::string& dag_id,
                                                         const std::string& run_id,
                                                         const std::string& task_id) {
  return store_.GetTaskInstance(dag_id, run_id, task_id);
}

StatusOr<std::vector<TaskTry>> SchedulerService::ListTries(const std::string& dag_id,
                                                           const std::string& run_id,
                                                           const std::string& task_id) {
  return store_.ListTries(dag_id, run_id, task_id);
}

StatusOr<std::string> SchedulerService::ReadLog(const std::string& dag_id,
                                                const std::string& run_id,
                                                const std::string& task_id, int try_number) {
  auto ti = store_.GetTaskInstance(dag_id, run_id, task_id);
  if (!ti.ok()) return ti.status();
  if (try_number < 1 || try_number > ti->try_number) {
    return Status::NotFound("Task instance '" + task_id + "' of run '" + run_id + "' has no try " +
                            std::to_string(try_number) +
                            " (tries so far: " + std::to_string(ti->try_number) + ")");
  }
  const auto path = TryLogPath(options_.logs_root, dag_id, run_id, task_id, try_number);
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return std::string();  // queued: the try has not written its log yet
  const auto size = static_cast<size_t>(std::max<std::streamoff>(in.tellg(), 0));
  std::string content;
  size_t keep = size;
  if (size > options_.max_log_bytes) {
    keep = options_.max_log_bytes;
    content = "[dagd: this log has " + std::to_string(size) + " bytes; showing the last " +
              std::to_string(keep) + ". The whole file: " + path.string() + "]\n";
  }
  const size_t header = content.size();
  content.resize(header + keep);
  in.seekg(static_cast<std::streamoff>(size - keep));
  in.read(content.data() + header, static_cast<std::streamsize>(keep));
  content.resize(header + static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return content;
}

}  // namespace dagd::scheduler
