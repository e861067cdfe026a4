// The service interface the REST API talks to. It never exposes SQL; every call is safe to make
// from any thread and may block on the database (callers keep it off their I/O threads).
//
// Errors: not_found names the missing object ("DAG 'x' not found"), already_exists for a taken
// dag_run_id, invalid_argument for bad queries (unknown order_by field), unavailable when the
// database is down.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/status.hpp"

namespace dagd::scheduler {

struct TriggerRequest {
  std::optional<TimePoint> logical_date;
  std::optional<std::string> dag_run_id;  // default: manual__<logical_date or now>
  std::optional<TimePoint> run_after;
  std::optional<TimePoint> data_interval_start;
  std::optional<TimePoint> data_interval_end;
  Json conf = Json::object();
  std::optional<std::string> note;
};

struct DagDetails {
  DagRecord record;
  DagPtr dag;  // the latest version's document, parsed
};

struct HealthReport {
  bool metadatabase_healthy = false;
  bool scheduler_healthy = false;
  std::optional<TimePoint> latest_scheduler_heartbeat;
};

class Service {
 public:
  virtual ~Service() = default;

  virtual HealthReport Health() = 0;
  virtual StatusOr<Listing<DagRecord>> ListDags(const DagQuery& query) = 0;
  virtual StatusOr<DagDetails> GetDag(const std::string& dag_id) = 0;
  virtual StatusOr<DagDetails> SetPaused(const std::string& dag_id, bool paused) = 0;
  virtual StatusOr<Listing<ImportError>> ListImportErrors(const Page& page) = 0;

  // Creates a queued run pinned to the DAG's latest version; it starts at once unless the DAG is
  // paused. already_exists when dag_run_id is taken.
  virtual StatusOr<DagRun> Trigger(const std::string& dag_id, const TriggerRequest& request) = 0;
  virtual StatusOr<Listing<DagRun>> ListRuns(const RunQuery& query) = 0;
  virtual StatusOr<DagRun> GetRun(const std::string& dag_id, const std::string& run_id) = 0;

  virtual StatusOr<Listing<TaskInstance>> ListTaskInstances(const TaskInstanceQuery& query) = 0;
  virtual StatusOr<TaskInstance> GetTaskInstance(const std::string& dag_id,
                                                 const std::string& run_id,
                                                 const std::string& task_id) = 0;
  virtual StatusOr<std::vector<TaskTry>> ListTries(const std::string& dag_id,
                                                   const std::string& run_id,
                                                   const std::string& task_id) = 0;
  // The per-try log: the whole file, or when it is larger than the service's limit a first line
  // saying so followed by the file's last bytes (a response must not cost the daemon gigabytes).
  // not_found for unknown ids or a try that never started.
  virtual StatusOr<std::string> ReadLog(const std::string& dag_id, const std::string& run_id,
                                        const std::string& task_id, int try_number) = 0;
};

}  // namespace dagd::scheduler
