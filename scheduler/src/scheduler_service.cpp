#include "dagd/scheduler/scheduler_service.hpp"

#include <algorithm>
#include <fstream>
#include <string_view>
#include <system_error>

#include "dagd/scheduler/log_paths.hpp"
#include "dagd/scheduler/new_run.hpp"
#include "for_client.hpp"
#include "logger.hpp"

namespace dagd::scheduler {

namespace {

// Airflow's default [scheduler] allowed_run_id_pattern, with its 250-character column limit. Run
// ids appear in log paths, URLs and templated commands, so nothing outside it is accepted.
bool IsValidRunId(std::string_view id) {
  if (id.empty() || id.size() > 250) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("_.~:+-").find(c) != std::string_view::npos;
  });
}

}  // namespace

SchedulerService::SchedulerService(ServiceOptions options, StateStore& store, Scheduler& scheduler,
                                   const Clock& clock)
    : options_(std::move(options)),
      store_(store),
      scheduler_(scheduler),
      clock_(clock),
      hub_(store) {}

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
  return ForClient(store_.ListDags(query), "DAG listing");
}

StatusOr<DagDetails> SchedulerService::GetDag(const std::string& dag_id) {
  auto record = ForClient(store_.GetDag(dag_id), "DAG lookup");
  if (!record.ok()) return record.status();
  auto dag = scheduler_.GetDag(dag_id, record->latest_version);
  if (!dag.ok()) return dag.status();
  return DagDetails{std::move(record).value(), std::move(dag).value()};
}

StatusOr<DagDetails> SchedulerService::SetPaused(const std::string& dag_id, bool paused) {
  if (Status s = ForClient(store_.SetPaused(dag_id, paused), "pause request"); !s.ok()) return s;
  scheduler_.DagChanged(dag_id);
  return GetDag(dag_id);
}

StatusOr<Listing<ImportError>> SchedulerService::ListImportErrors(const Page& page) {
  return ForClient(store_.ListImportErrors(page), "import error listing");
}

StatusOr<Listing<DagVersionRecord>> SchedulerService::ListDagVersions(
    const DagVersionQuery& query) {
  return ForClient(store_.ListDagVersions(query), "DAG version listing");
}

StatusOr<DagVersionRecord> SchedulerService::GetDagVersion(const std::string& dag_id,
                                                           int version_number) {
  if (auto dag = ForClient(store_.GetDag(dag_id), "DAG lookup"); !dag.ok()) return dag.status();
  return ForClient(store_.GetDagVersion(dag_id, version_number), "DAG version lookup");
}

StatusOr<std::vector<DagRunStats>> SchedulerService::CountRunsByState(
    const std::vector<std::string>& dag_ids) {
  return ForClient(store_.CountRunsByState(dag_ids), "DAG statistics");
}

StatusOr<DagRun> SchedulerService::Trigger(const std::string& dag_id,
                                           const TriggerRequest& request) {
  if (const size_t size = request.conf.dump().size(); size > options_.max_conf_bytes) {
    return Status::InvalidArgument("conf is " + std::to_string(size) +
                                   " bytes of JSON; the limit is " +
                                   std::to_string(options_.max_conf_bytes) +
                                   " (--max-conf-bytes): pass large inputs by reference, e.g. a "
                                   "path or URI");
  }
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
  if (!IsValidRunId(run.run_id)) {
    return Status::InvalidArgument(
        "The dag_run_id provided does not match the pattern ^[A-Za-z0-9_.~:+-]{1,250}$ "
        "(letters, digits and _ . ~ : + -)");
  }

  std::vector<TaskInstance> tis = NewTaskInstances(dag, run);
  auto created = ForClient(store_.CreateRun(run, tis), "run");
  if (!created.ok() && created.status().code() == StatusCode::kAlreadyExists) {
    Log()->info("run not created dag={} run={} error=\"{}\"", dag_id, run.run_id,
                created.status().message());
  }
  if (!created.ok()) return created.status();
  created->version_created_at = details->record.latest_version_created_at;
  scheduler_.Wake();
  return created;
}

StatusOr<Listing<DagRun>> SchedulerService::ListRuns(const RunQuery& query) {
  if (!query.dag_id.empty() && query.dag_id != "~") {
    auto dag = ForClient(store_.GetDag(query.dag_id), "DAG lookup");
    if (!dag.ok()) return dag.status();
  }
  return ForClient(store_.ListRuns(query), "run listing");
}

StatusOr<DagRun> SchedulerService::GetRun(const std::string& dag_id, const std::string& run_id) {
  return ForClient(store_.GetRun(dag_id, run_id), "run lookup");
}

StatusOr<Listing<TaskInstance>> SchedulerService::ListTaskInstances(
    const TaskInstanceQuery& query) {
  if (!query.run_id.empty() && query.run_id != "~" && query.dag_id != "~") {
    auto run = ForClient(store_.GetRun(query.dag_id, query.run_id), "run lookup");
    if (!run.ok()) return run.status();
  }
  return ForClient(store_.ListTaskInstances(query), "task instance listing");
}

StatusOr<TaskInstance> SchedulerService::GetTaskInstance(const std::string& dag_id,
                                                         const std::string& run_id,
                                                         const std::string& task_id) {
  return ForClient(store_.GetTaskInstance(dag_id, run_id, task_id), "task instance lookup");
}

StatusOr<std::vector<TaskTry>> SchedulerService::ListTries(const std::string& dag_id,
                                                           const std::string& run_id,
                                                           const std::string& task_id) {
  return ForClient(store_.ListTries(dag_id, run_id, task_id), "try listing");
}

namespace {

// The log at `path` opened for reading, or nullptr when it does not exist (yet); checked before
// opening: a FIFO or device in place of the log would block or never end.
StatusOr<std::unique_ptr<std::ifstream>> OpenRegularFile(const std::filesystem::path& path) {
  std::error_code ec;
  const auto type = std::filesystem::symlink_status(path, ec).type();
  if (type == std::filesystem::file_type::not_found) return std::unique_ptr<std::ifstream>();
  if (ec || type != std::filesystem::file_type::regular) {
    Log()->warn("log is not a regular file path={} type={} error=\"{}\"", path.string(),
                static_cast<int>(type), ec ? ec.message() : "");
    return Status::FailedPrecondition("The log is not a regular file");
  }
  auto in = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*in) {
    if (!std::filesystem::exists(path, ec))
      return std::unique_ptr<std::ifstream>();  // removed since the check
    return Status::Internal("cannot open log path=" + path.string());
  }
  return in;
}

// Where the last complete line within [begin, end) of `in` ends, looking at most 64 KiB back;
// `begin` when that much holds no newline but less than that is there (the line is not complete
// yet), `end` when more is (a longer line is served in pieces).
uint64_t LastLineEnd(std::istream& in, uint64_t begin, uint64_t end) {
  constexpr uint64_t kLookBack = 64 << 10;
  const uint64_t from = end - std::min(end - begin, kLookBack);
  std::string tail(end - from, '\0');
  in.seekg(static_cast<std::streamoff>(from));
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  tail.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  in.clear();
  const size_t newline = tail.rfind('\n');
  if (newline != std::string::npos) return from + newline + 1;
  return from == begin ? begin : end;
}

}  // namespace

StatusOr<LogReader> SchedulerService::OpenLog(const std::string& dag_id, const std::string& run_id,
                                              const std::string& task_id, int try_number,
                                              const LogRange& range) {
  auto ti = GetTaskInstance(dag_id, run_id, task_id);
  if (!ti.ok()) return ti.status();
  if (try_number < 1 || try_number > ti->try_number) {
    return Status::NotFound("Task instance '" + task_id + "' of run '" + run_id + "' has no try " +
                            std::to_string(try_number) +
                            " (tries so far: " + std::to_string(ti->try_number) + ")");
  }
  LogOrigin origin;
  // The task instance's id is new when a run is deleted and triggered again under its name.
  origin.try_key = ti->id + "/" + std::to_string(try_number);
  if (!range.try_key.empty() && range.try_key != origin.try_key) {
    return Status::InvalidArgument(
        "The continuation token belongs to the log of another try; pass only the token of a "
        "previous response for this same try");
  }
  // The state is read before the file: when the try is over, the file holds its whole log (a
  // try's output is written before its end commits).
  origin.try_ended = TryHasEnded(*ti, try_number);
  const auto path = TryLogPath(options_.logs_root, dag_id, run_id, task_id, try_number);
  auto past_end = [&](uint64_t size) {
    return Status::InvalidArgument("The continuation token points at byte " +
                                   std::to_string(range.offset) + ", past the end of this log (" +
                                   std::to_string(size) + " bytes)");
  };
  auto opened = OpenRegularFile(path);
  if (!opened.ok()) {
    if (opened.status().code() != StatusCode::kFailedPrecondition) return opened.status();
    return Status::FailedPrecondition("The log of try " + std::to_string(try_number) +
                                      " is not a regular file");
  }
  std::unique_ptr<std::ifstream> in = std::move(*opened);
  if (!in) {  // not written yet
    if (range.offset > 0) return past_end(0);
    origin.open_later = [path]() -> std::unique_ptr<std::istream> {
      auto later = OpenRegularFile(path);
      if (!later.ok()) return nullptr;
      return std::move(*later);
    };
    return LogReader({}, nullptr, 0, std::move(origin));
  }
  in->seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(std::max<std::streamoff>(in->tellg(), 0));
  if (range.offset > size) return past_end(size);
  uint64_t end = size;
  if (range.whole_lines && !origin.try_ended && end > range.offset) {
    end = LastLineEnd(*in, range.offset, end);
  }
  uint64_t start = range.offset;
  std::string note;
  if (!range.uncapped && end - start > options_.max_log_bytes) {
    start = end - options_.max_log_bytes;
    if (range.offset == 0) {
      note = "[dagd: this log has " + std::to_string(size) + " bytes; showing the last " +
             std::to_string(options_.max_log_bytes) + ". The whole file: " + path.string() + "]\n";
    } else {
      note = "[dagd: skipping " + std::to_string(start - range.offset) +
             " bytes of this log after the continuation token's position, to serve its last " +
             std::to_string(options_.max_log_bytes) + ". The whole file: " + path.string() + "]\n";
    }
  }
  in->seekg(static_cast<std::streamoff>(start));
  origin.offset = start;
  std::unique_ptr<std::istream> stream = std::move(in);
  return LogReader(std::move(note), std::move(stream), end - start, std::move(origin));
}

StatusOr<DagUpload> SchedulerService::UploadDag(const std::string& dag_id,
                                                std::string_view document) {
  DagUpload upload;
  ParseResult parsed = ParseDag(document, options_.parse_options);
  if (parsed.dag && parsed.dag->dag_id != dag_id) {
    parsed.errors.push_back("dag_id '" + parsed.dag->dag_id +
                            "' differs from the DAG id in the path, '" + dag_id + "'");
    parsed.error_paths.push_back(Json::array({"dag_id"}));
  }
  if (!parsed.errors.empty()) {
    upload.errors = std::move(parsed.errors);
    upload.error_paths = std::move(parsed.error_paths);
    return upload;
  }
  auto before = store_.GetDag(dag_id);
  if (!before.ok() && before.status().code() != StatusCode::kNotFound) return before.status();
  upload.created = !before.ok();
  auto version = ForClient(
      store_.SyncDag(*parsed.dag, std::string(), clock_.Now(), DagSource::kApi), "DAG upload");
  if (!version.ok()) return version.status();
  if (upload.created || before->latest_version != *version) {
    Log()->info("DAG version uploaded dag={} version={}", dag_id, *version);
  }
  // The scheduler has the new version at once, as it has a file's after a scan.
  scheduler_.RememberDag(*version, parsed.dag);
  auto details = GetDag(dag_id);
  if (!details.ok()) return details.status();
  upload.details = std::move(details).value();
  return upload;
}

Status SchedulerService::DeleteDag(const std::string& dag_id) {
  if (Status s = ForClient(store_.DeleteDag(dag_id), "DAG deletion"); !s.ok()) return s;
  scheduler_.ForgetDag(dag_id);
  Log()->info("DAG deleted dag={}", dag_id);
  return Status::Ok();
}

StatusOr<EventBounds> SchedulerService::EventLogBounds() {
  return ForClient(store_.ReadEventBounds(), "event log bounds");
}

StatusOr<EventPage> SchedulerService::ReadEvents(int64_t after_seq, int limit,
                                                 const EventFilter& filter) {
  return ForClient(store_.ReadEventsMatching(after_seq, limit, filter, options_.event_scan_window),
                   "event log read");
}

std::unique_ptr<ChangeWatch> SchedulerService::WatchChanges(std::function<void()> wake) {
  std::call_once(hub_started_, [this] { hub_.Start(); });
  return hub_.Watch(std::move(wake));
}

StatusOr<Json> SchedulerService::ReturnValue(const std::string& dag_id, const std::string& run_id,
                                             const std::string& task_id) {
  auto ti = GetTaskInstance(dag_id, run_id, task_id);
  if (!ti.ok()) return ti.status();
  auto xcoms = ForClient(store_.ListXcom(ti->id), "XCom lookup");
  if (!xcoms.ok()) return xcoms.status();
  for (const XcomEntry& x : *xcoms) {
    if (x.key == "return_value") return x.value;
  }
  return Json(nullptr);
}

StatusOr<int64_t> SchedulerService::RecordAudit(const AuditEntry& entry) {
  AuditEntry stamped = entry;
  stamped.at = clock_.Now();
  return store_.AppendAudit(stamped);
}

StatusOr<Listing<AuditEntry>> SchedulerService::ListAudit(const AuditQuery& query) {
  return ForClient(store_.ListAudit(query), "audit log listing");
}

StatusOr<AuditEntry> SchedulerService::GetAudit(int64_t id) {
  auto entry = store_.GetAudit(id);
  if (!entry.ok() && entry.status().code() == StatusCode::kNotFound) {
    return Status::NotFound("The Event Log with id: `" + std::to_string(id) + "` not found");
  }
  return ForClient(std::move(entry), "audit log entry");
}

// The state the scheduling loop decides from, read from the store: the task instances of the
// run and, for a queued run, the DAG's admission (its queued runs oldest first, as the loop
// keeps them, and the max_active_runs of the newest one's version).
StatusOr<std::vector<Dependency>> SchedulerService::ExplainTaskInstance(
    const std::string& dag_id, const std::string& run_id, const std::string& task_id) {
  auto ti = GetTaskInstance(dag_id, run_id, task_id);
  if (!ti.ok()) return ti.status();
  auto record = ForClient(store_.GetDag(dag_id), "DAG lookup");
  if (!record.ok()) return record.status();
  auto run = GetRun(dag_id, run_id);
  if (!run.ok()) return run.status();
  auto dag = scheduler_.GetDag(dag_id, run->version_number);
  if (!dag.ok()) return dag.status();
  const std::optional<size_t> index = (*dag)->IndexOf(task_id);
  if (!index) {
    return Status::Internal("task " + task_id + " is not in version " +
                            std::to_string(run->version_number) + " of dag " + dag_id);
  }
  TaskInstanceQuery query;
  query.dag_id = dag_id;
  query.run_id = run_id;
  query.page.limit = static_cast<int>((*dag)->tasks.size()) + 1;
  auto rows = ForClient(store_.ListTaskInstances(query), "task instance listing");
  if (!rows.ok()) return rows.status();

  WhyInput input;
  input.dag = dag->get();
  input.run = &*run;
  input.task = *index;
  input.paused = record->is_paused;
  input.tis.resize((*dag)->tasks.size());
  for (size_t i = 0; i < input.tis.size(); ++i) input.tis[i].task_id = (*dag)->tasks[i].task_id;
  for (TaskInstance& row : rows->items) {
    if (auto i = (*dag)->IndexOf(row.task_id)) input.tis[*i] = std::move(row);
  }
  input.tis[*index] = std::move(ti).value();

  if (run->state == RunState::kQueued) {
    AdmissionInput& admission = input.admission;  // paused: input.paused says it
    // The first `limit` of the DAG's runs in `state` by `order_by`, and how many there are.
    auto list_runs = [&](RunState state, int limit, std::string order_by) {
      RunQuery runs;
      runs.dag_id = dag_id;
      runs.states = {state};
      runs.page.limit = limit;
      runs.page.order_by = {std::move(order_by)};
      return ForClient(store_.ListRuns(runs), "run listing");
    };
    // The queue ahead of this run and the running runs, read up to a bound: what lies beyond is
    // counted, not read. Running runs are at most max_active_runs (other writers aside).
    constexpr int kQueueRead = 1000;
    auto running = list_runs(RunState::kRunning, kQueueRead, "id");
    if (!running.ok()) return running.status();
    admission.running = static_cast<int>(running->total_entries);
    auto last = list_runs(RunState::kQueued, 1, "-id");
    if (!last.ok()) return last.status();
    admission.max_active_runs = (*dag)->max_active_runs;
    if (!last->items.empty() && last->items[0].version_number != run->version_number) {
      auto newest_dag = scheduler_.GetDag(dag_id, last->items[0].version_number);
      if (!newest_dag.ok()) return newest_dag.status();
      admission.max_active_runs = (*newest_dag)->max_active_runs;
    }
    auto queue = list_runs(RunState::kQueued, kQueueRead, "id");
    if (!queue.ok()) return queue.status();
    bool found = false;
    for (const DagRun& q : queue->items) {
      admission.queued.push_back({q.id, q.run_after});
      if (q.id == run->id) {
        found = true;
        break;
      }
    }
    if (!found) {
      input.queued_ahead_unread = queue->total_entries - static_cast<int64_t>(queue->items.size());
      admission.queued.push_back({run->id, run->run_after});
    }
    if (run->backfill_id) {
      auto gates = ForClient(store_.ListBackfillGates(dag_id), "backfill listing");
      if (!gates.ok()) return gates.status();
      for (const BackfillGate& gate : *gates) {
        if (gate.id == *run->backfill_id) input.backfill = gate;
      }
      input.backfill_running = static_cast<int>(
          std::count_if(running->items.begin(), running->items.end(),
                        [&](const DagRun& r) { return r.backfill_id == run->backfill_id; }));
    }
  }
  return ExplainWhyNotRunning(input, clock_.Now());
}

}  // namespace dagd::scheduler
