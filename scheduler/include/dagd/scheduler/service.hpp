// The service interface the REST API talks to. It never exposes SQL; every call is safe to make
// from any thread and may block on the database (callers keep it off their I/O threads).
//
// Errors: not_found names the missing object ("DAG 'x' not found"), already_exists for a taken
// dag_run_id, invalid_argument for bad queries (unknown order_by field), unavailable when the
// database is down. The messages of not_found, already_exists, invalid_argument and
// failed_precondition are sentences for the client; those of the other codes are details for
// the log (they may quote a library), which the API replaces with a sentence of its own.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dagd/scheduler/backfill.hpp"
#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/status.hpp"
#include "dagd/scheduler/why_not_running.hpp"

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

// PATCH .../taskInstances/{task_id}: a new state for the task instance (and, when asked, for its
// upstream and downstream tasks' instances in the same run) and/or its note.
struct TaskInstanceMark {
  std::optional<TaskState> new_state;  // success, failed or skipped
  std::optional<std::optional<std::string>> note;
  bool include_upstream = false;    // every task upstream of it, transitively
  bool include_downstream = false;  // every task downstream of it, transitively
  bool dry_run = false;             // TaskInstancePatch::dry_run
};

// POST /dags/{dag_id}/clearTaskInstances (ClearTaskInstancesBody) and, with a run id and no
// task ids, POST .../dagRuns/{dag_run_id}/clear.
struct ClearRequest {
  std::optional<std::string> dag_run_id;
  std::optional<TimePoint> start_date;  // on the runs' logical_date, inclusive
  std::optional<TimePoint> end_date;
  std::optional<std::vector<std::string>> task_ids;  // nullopt: every task
  bool only_failed = true;
  bool only_running = false;
  bool reset_dag_runs = true;
  bool prevent_running_task = false;
  bool include_upstream = false;    // the named tasks' upstream tasks, transitively
  bool include_downstream = false;  // and downstream ones
  bool include_past = false;        // with dag_run_id: the runs of earlier logical dates too
  bool include_future = false;      // and of later ones
  bool run_on_latest_version = false;  // TaskInstanceClear::latest_version
  bool dry_run = true;
};

struct DagDetails {
  DagRecord record;
  DagPtr dag;  // the latest version's document, parsed
};

// What Service::UploadDag did with a document.
struct DagUpload {
  // The document's problems, as ParseDag reports them (errors[i] at error_paths[i]); when any,
  // nothing was stored.
  std::vector<std::string> errors;
  std::vector<Json> error_paths;
  bool created = false;  // the DAG did not exist before
  DagDetails details;    // the DAG as stored, when there are no errors
};

struct HealthReport {
  bool metadatabase_healthy = false;
  bool scheduler_healthy = false;
  std::optional<TimePoint> latest_scheduler_heartbeat;
};

// Where OpenLog starts reading a try's log and how far. Offsets count the bytes of the log file
// itself: a note the service puts first is not part of the file, and a head skipped for being
// too large is counted (an offset is where the file's bytes were served up to).
struct LogRange {
  uint64_t offset = 0;  // the first byte to serve; invalid_argument when past the file's end
  // When not empty, invalid_argument unless the log is this try's (LogReader::try_key): a
  // continuation token replayed against another try.
  std::string try_key;
  bool uncapped = false;  // serve everything from `offset`, not only the service's last bytes
  // While the try runs, stop after the last complete line (a line is served whole, once), unless
  // the part after `offset` holds no newline in its last 64 KiB (a long line goes in pieces).
  bool whole_lines = false;
};

// What the service knew of the try when it opened the log.
struct LogOrigin {
  std::string try_key;     // the try, as no other try (even of a recreated run) is named
  bool try_ended = false;  // the try was over: its log does not grow any more
  uint64_t offset = 0;     // the file offset `in` is positioned at
  // Opens the file at its start once it exists, nullptr before; for a log not written yet.
  std::function<std::unique_ptr<std::istream>()> open_later;
};

// A try's log opened for reading piece by piece, so that serving it costs one piece of memory
// however large the file is: first `note` (empty for none), then `length` bytes of `in` from its
// current position, which is the file's byte `origin.offset`. A follower calls Grow once what
// was readable is read, to take in what the try appended since. Movable; one reader per
// response, not thread-safe.
class LogReader {
 public:
  LogReader() = default;  // an empty log
  LogReader(std::string note, std::unique_ptr<std::istream> in, size_t length,
            LogOrigin origin = {});

  // The next at most `max_bytes` (> 0) bytes; empty once what is readable is read. A file that
  // ends early or fails while being read ends with a line saying so, never silently.
  std::string Read(size_t max_bytes);
  // Once Read returned empty: makes readable what the file holds beyond position() (opening it
  // through open_later when it did not exist); whether there is anything new. A no-op returning
  // true while bytes are left to read.
  bool Grow();

  const std::string& try_key() const { return origin_.try_key; }
  bool try_ended() const { return origin_.try_ended; }
  // The file offset after the last byte read, and where the bytes readable now end.
  uint64_t position() const { return origin_.offset; }
  uint64_t end() const { return origin_.offset + remaining_; }

 private:
  std::string note_;
  std::unique_ptr<std::istream> in_;
  size_t remaining_ = 0;
  bool ends_line_ = true;  // whether the bytes served so far end with a newline
  LogOrigin origin_;
};

// Whether try `try_number` (at most ti.try_number) of `ti` is over, so that its log is complete:
// an earlier try, or the current one once it is neither queued nor running.
inline bool TryHasEnded(const TaskInstance& ti, int try_number) {
  return try_number < ti.try_number || !IsTryInProgress(ti.state);
}

// A registration for change notifications (Service::WatchChanges); destroying it unregisters.
class ChangeWatch {
 public:
  virtual ~ChangeWatch() = default;
};

class Service {
 public:
  virtual ~Service() = default;

  virtual HealthReport Health() = 0;
  virtual StatusOr<Listing<DagRecord>> ListDags(const DagQuery& query) = 0;
  virtual StatusOr<DagDetails> GetDag(const std::string& dag_id) = 0;
  virtual StatusOr<DagDetails> SetPaused(const std::string& dag_id, bool paused) = 0;
  virtual StatusOr<Listing<ImportError>> ListImportErrors(const Page& page) = 0;
  // not_found when the DAG (or, for GetDagVersion, the version) is unknown.
  virtual StatusOr<Listing<DagVersionRecord>> ListDagVersions(const DagVersionQuery& query) = 0;
  virtual StatusOr<DagVersionRecord> GetDagVersion(const std::string& dag_id,
                                                   int version_number) = 0;
  // See StateStore::CountRunsByState.
  virtual StatusOr<std::vector<DagRunStats>> CountRunsByState(
      const std::vector<std::string>& dag_ids) = 0;

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
  // The per-try log as it is when opened, from range.offset: all of it, or when that is more
  // than the service's limit (and not range.uncapped) a first line saying so followed by the
  // last bytes (a response must not cost the daemon gigabytes). Empty while the try has not
  // written its log yet. not_found for unknown ids or a try that was never queued;
  // invalid_argument for an offset past the end or another try's key (LogRange);
  // failed_precondition when the log is not a regular file.
  virtual StatusOr<LogReader> OpenLog(const std::string& dag_id, const std::string& run_id,
                                      const std::string& task_id, int try_number,
                                      const LogRange& range) = 0;

  // --- Marking and notes (StateStore::PatchRun, PatchTaskInstances) ---
  // The run as stored afterwards. A try the scheduler runs whose task instance was marked
  // finished is stopped. not_found for an unknown run.
  virtual StatusOr<DagRun> PatchRun(const std::string& dag_id, const std::string& run_id,
                                    const RunPatch& patch) = 0;
  // The task instances whose state changed, or the named one when only its note was set.
  // not_found for an unknown run or task instance; already_exists ("Task id x is already in
  // success state") when a new state changed nothing, as Airflow answers 409.
  virtual StatusOr<std::vector<TaskInstance>> PatchTaskInstance(const std::string& dag_id,
                                                                const std::string& run_id,
                                                                const std::string& task_id,
                                                                const TaskInstanceMark& mark) = 0;

  // --- Clearing (StateStore::ClearTaskInstances) ---
  // The task instances cleared (or, dry_run, that would be): upstream/downstream relatives from
  // the run's DAG version (with dag_run_id) or the latest one. not_found for an unknown DAG or
  // run ("Dag Run id x not found in dag y"); invalid_argument for include_past/include_future
  // on a run without a logical date; failed_precondition with prevent_running_task when a
  // selected task instance is running. A try the scheduler runs for a cleared task instance
  // is stopped, and the task runs again with a new try number.
  virtual StatusOr<std::vector<TaskInstance>> ClearTaskInstances(const std::string& dag_id,
                                                                 const ClearRequest& request) = 0;

  // --- DAG upload (dagd's extension) ---
  // Validates `document` exactly as a file of the DAGs folder is validated (ParseDag with the
  // daemon's options) and stores it as the DAG's new version (its latest one when identical):
  // the scheduler runs it like a file's DAG. The document's dag_id must be `dag_id` (an error
  // at ["dag_id"] otherwise). failed_precondition, naming the file, when a file of the DAGs
  // folder defines the DAG: the file wins.
  virtual StatusOr<DagUpload> UploadDag(const std::string& dag_id, std::string_view document) = 0;
  // Deletes the DAG with its versions, runs and task instances (StateStore::DeleteDag: events
  // stay); the scheduler forgets it. not_found; failed_precondition with a sentence while a run
  // is queued or running, or while a file of the DAGs folder defines it.
  virtual Status DeleteDag(const std::string& dag_id) = 0;

  // --- The event log (the event stream, waiting for a run) ---
  // Which seqs can be read now (EventBounds).
  virtual StatusOr<EventBounds> EventLogBounds() = 0;
  // Up to `limit` events after `after_seq` that match `filter`, in commit order; resume after
  // the page's last_seq (StateStore::ReadEventsMatching). One page per call, whatever the
  // backlog.
  virtual StatusOr<EventPage> ReadEvents(int64_t after_seq, int limit,
                                         const EventFilter& filter) = 0;
  // Calls `wake` from another thread after commits that changed runs or task instances
  // (coalesced), until the returned watch is destroyed; see EventHub for what `wake` may do.
  virtual std::unique_ptr<ChangeWatch> WatchChanges(std::function<void()> wake) = 0;
  // The task instance's return_value XCom; null when it pushed none. not_found for unknown ids.
  virtual StatusOr<Json> ReturnValue(const std::string& dag_id, const std::string& run_id,
                                     const std::string& task_id) = 0;

  // --- The audit log (audit.hpp) ---
  // Stores `entry` stamped with the clock's now (its `at` and `id` are ignored); returns its id.
  // Errors as the store's (unavailable when the database is down).
  virtual StatusOr<int64_t> RecordAudit(const AuditEntry& entry) = 0;
  // invalid_argument for an unknown order_by field; not_found for an unknown id.
  virtual StatusOr<Listing<AuditEntry>> ListAudit(const AuditQuery& query) = 0;
  virtual StatusOr<AuditEntry> GetAudit(int64_t id) = 0;

  // --- Why is my task not running (why_not_running.hpp) ---
  // Every reason the task instance is not running now, from the store's state and the DAG
  // version its run is pinned to; empty when it is queued or running or nothing blocks it.
  // not_found for unknown ids.
  virtual StatusOr<std::vector<Dependency>> ExplainTaskInstance(const std::string& dag_id,
                                                                const std::string& run_id,
                                                                const std::string& task_id) = 0;

  // --- Backfills (backfill.hpp) ---
  // Creates the backfill and its runs (StateStore::CreateBackfill). not_found ("Could not find
  // dag x"); already_exists while the DAG has an active backfill; invalid_argument, with
  // Airflow's sentence, for a DAG without a periodic schedule, from_date after to_date, dates
  // all in the future, max_active_runs below 1, a conf too large, or a range with no run (or
  // more than the limit).
  virtual StatusOr<BackfillRecord> CreateBackfill(const BackfillRequest& request) = 0;
  // The logical dates CreateBackfill would give a run (new or re-run), in its order; writes
  // nothing. Errors as CreateBackfill's, except that no active backfill is checked and an empty
  // range is an empty list.
  virtual StatusOr<std::vector<TimePoint>> DryRunBackfill(const BackfillRequest& request) = 0;
  // not_found for GetBackfill ("Backfill not found"); invalid_argument for an order_by other
  // than id.
  virtual StatusOr<Listing<BackfillRecord>> ListBackfills(const BackfillQuery& query) = 0;
  virtual StatusOr<BackfillRecord> GetBackfill(int64_t id) = 0;
  // not_found; failed_precondition ("Backfill is already completed.").
  virtual StatusOr<BackfillRecord> SetBackfillPaused(int64_t id, bool paused) = 0;
  virtual StatusOr<BackfillRecord> CancelBackfill(int64_t id) = 0;
};

}  // namespace dagd::scheduler
