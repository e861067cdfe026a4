// The Service the API uses, on top of the store and the scheduling loop. Reads go to the store;
// writes go to the store and then wake the loop, so a triggered run starts within milliseconds.
// Change watchers (WatchChanges) share one EventHub, started with the first watcher and stopped
// when the service is destroyed.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>

#include "dagd/scheduler/event_hub.hpp"
#include "dagd/scheduler/scheduler.hpp"
#include "dagd/scheduler/service.hpp"

namespace dagd::scheduler {

struct ServiceOptions {
  std::filesystem::path logs_root;
  // The scheduler counts as unhealthy when its last heartbeat is older than this.
  std::chrono::seconds heartbeat_threshold{30};
  // OpenLog serves at most this many bytes of a log (its end) unless told to serve it all.
  size_t max_log_bytes = 8 << 20;
  // Trigger refuses a run conf whose JSON is larger (invalid_argument): the conf is stored with
  // the run, read with it by the scheduler and every listing, and rendered into its tasks.
  size_t max_conf_bytes = 64 << 10;
  // ReadEvents with a filter other than a run (dag_id and dag_run_id) scans at most this many
  // seqs per call, so that one call's cost is bounded however rarely the filter matches.
  int64_t event_scan_window = 20000;
  // How UploadDag validates a document: the options the DAGs folder is read with (job names,
  // run_as accounts), so that an upload passes exactly when the same file would.
  ParseOptions parse_options;
};

class SchedulerService final : public Service {
 public:
  SchedulerService(ServiceOptions options, StateStore& store, Scheduler& scheduler,
                   const Clock& clock);

  HealthReport Health() override;
  StatusOr<Listing<DagRecord>> ListDags(const DagQuery& query) override;
  StatusOr<DagDetails> GetDag(const std::string& dag_id) override;
  StatusOr<DagDetails> SetPaused(const std::string& dag_id, bool paused) override;
  StatusOr<Listing<ImportError>> ListImportErrors(const Page& page) override;
  StatusOr<Listing<DagVersionRecord>> ListDagVersions(const DagVersionQuery& query) override;
  StatusOr<DagVersionRecord> GetDagVersion(const std::string& dag_id, int version_number) override;
  StatusOr<std::vector<DagRunStats>> CountRunsByState(
      const std::vector<std::string>& dag_ids) override;
  StatusOr<DagRun> Trigger(const std::string& dag_id, const TriggerRequest& request) override;
  StatusOr<Listing<DagRun>> ListRuns(const RunQuery& query) override;
  StatusOr<DagRun> GetRun(const std::string& dag_id, const std::string& run_id) override;
  StatusOr<Listing<TaskInstance>> ListTaskInstances(const TaskInstanceQuery& query) override;
  StatusOr<TaskInstance> GetTaskInstance(const std::string& dag_id, const std::string& run_id,
                                         const std::string& task_id) override;
  StatusOr<std::vector<TaskTry>> ListTries(const std::string& dag_id, const std::string& run_id,
                                           const std::string& task_id) override;
  StatusOr<LogReader> OpenLog(const std::string& dag_id, const std::string& run_id,
                              const std::string& task_id, int try_number,
                              const LogRange& range) override;
  StatusOr<DagRun> PatchRun(const std::string& dag_id, const std::string& run_id,
                            const RunPatch& patch) override;
  StatusOr<std::vector<TaskInstance>> PatchTaskInstance(const std::string& dag_id,
                                                        const std::string& run_id,
                                                        const std::string& task_id,
                                                        const TaskInstanceMark& mark) override;
  StatusOr<std::vector<TaskInstance>> ClearTaskInstances(const std::string& dag_id,
                                                         const ClearRequest& request) override;
  StatusOr<DagUpload> UploadDag(const std::string& dag_id, std::string_view document) override;
  Status DeleteDag(const std::string& dag_id) override;
  StatusOr<EventBounds> EventLogBounds() override;
  StatusOr<EventPage> ReadEvents(int64_t after_seq, int limit, const EventFilter& filter) override;
  std::unique_ptr<ChangeWatch> WatchChanges(std::function<void()> wake) override;
  StatusOr<Json> ReturnValue(const std::string& dag_id, const std::string& run_id,
                             const std::string& task_id) override;
  StatusOr<int64_t> RecordAudit(const AuditEntry& entry) override;
  StatusOr<Listing<AuditEntry>> ListAudit(const AuditQuery& query) override;
  StatusOr<AuditEntry> GetAudit(int64_t id) override;
  StatusOr<std::vector<Dependency>> ExplainTaskInstance(const std::string& dag_id,
                                                        const std::string& run_id,
                                                        const std::string& task_id) override;
  // scheduler_service_backfills.cpp
  StatusOr<BackfillRecord> CreateBackfill(const BackfillRequest& request) override;
  StatusOr<std::vector<TimePoint>> DryRunBackfill(const BackfillRequest& request) override;
  StatusOr<Listing<BackfillRecord>> ListBackfills(const BackfillQuery& query) override;
  StatusOr<BackfillRecord> GetBackfill(int64_t id) override;
  StatusOr<BackfillRecord> SetBackfillPaused(int64_t id, bool paused) override;
  StatusOr<BackfillRecord> CancelBackfill(int64_t id) override;

  size_t WatcherCount() const { return hub_.WatcherCount(); }

 private:
  // The backfill's dates as NewBackfill wants them, checked as Airflow checks a request.
  StatusOr<NewBackfill> PlanBackfill(const BackfillRequest& request, bool dry_run);

  ServiceOptions options_;
  StateStore& store_;
  Scheduler& scheduler_;
  const Clock& clock_;
  EventHub hub_;
  std::once_flag hub_started_;
};

}  // namespace dagd::scheduler
