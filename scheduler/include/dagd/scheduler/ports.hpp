// The ports the scheduler needs: a state store (implemented on PostgreSQL by storage/) and a task
// executor (implemented by executors/). The scheduler depends only on these interfaces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dagd/scheduler/audit.hpp"
#include "dagd/scheduler/backfill.hpp"
#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/status.hpp"

namespace dagd::scheduler {

// One conditional task-instance transition. The store applies it only while the stored row still
// has (expect_state, expect_try, expect_epoch), and writes only the columns its kind owns, taken
// from `after`; every other column keeps whatever is stored.
struct TiTransition {
  enum class Kind {
    // A new try: state, try_number, scheduled_when, queued_when, owner_epoch (:= the writer's
    // epoch); clears start_date, end_date, duration, next_retry_at, hostname, pid, process.
    kQueue,
    // The try started: state, start_date, hostname, unixname, pid, process.
    kStart,
    // The try ended (or was cut off): state, end_date, duration, next_retry_at, max_tries, and
    // start_date when none is stored. From queued (the try started and ended within one batch),
    // also kStart's columns, and the event log shows it running first.
    kFinish,
    // Decided without a worker (skipped, upstream_failed, an `empty` task's success): state,
    // try_number, start_date, end_date, duration.
    kSettle,
  };
  Kind kind = Kind::kQueue;
  TaskInstance after;  // id, run_id_key and the owned columns are read
  TaskState expect_state = TaskState::kNone;
  int expect_try = 0;
  std::optional<int64_t> expect_epoch;
};

// One conditional run transition: applied only while the stored run is in `expect_state`.
struct RunTransition {
  enum class Kind {
    kStart,   // state, start_date, last_scheduling_decision
    kFinish,  // state, end_date, last_scheduling_decision, start_date when none is stored; only
              // while no task instance of the run is unfinished in the store
  };
  Kind kind = Kind::kStart;
  DagRun after;  // id and the owned columns are read
  RunState expect_state = RunState::kQueued;
};

// A batch of transitions of several runs. The store writes it in one commit; each written task
// instance also gets its try row (task_instance_try) updated, and every state change appends an
// event (see EventRecord).
struct Transition {
  std::vector<RunTransition> runs;
  std::vector<TiTransition> task_instances;
  struct Xcom {
    int64_t run_key = 0;
    std::string ti_id;
    XcomEntry entry;
  };
  std::vector<Xcom> xcoms;

  bool empty() const { return runs.empty() && task_instances.empty() && xcoms.empty(); }
};

// What Apply did: every run of the batch is either written whole or listed here, untouched,
// because a row of it no longer matched its expectation (another writer changed it, or a run
// to finish still has unfinished task instances in the store). The caller reloads those runs
// and decides again.
struct ApplyResult {
  std::vector<int64_t> conflicts;  // run keys
};

// One entry of the event log: every change of a run's or a task instance's state or try
// number, whoever wrote it (dagd, another dagd, SQL), appended in the same transaction by the
// database itself. `seq` is gap-free and in commit order: once a reader has seen seq N, no event
// with a seq <= N can commit later.
struct EventRecord {
  int64_t seq = 0;
  TimePoint at;
  std::string kind;  // "dag_run" or "task_instance"
  int64_t run_key = 0;
  std::string dag_id;
  std::string run_id;
  std::string task_id;  // task_instance events
  std::string ti_id;    // task_instance events
  std::optional<int> try_number;
  std::string state;  // Airflow's spelling; "" for a task instance's none
  std::optional<int64_t> origin;  // the scheduler epoch that wrote it; none for other writers
  Json payload = Json::object();
};

// A page of the event log read for one reader (StateStore::ReadOtherEvents, ReadEventsMatching).
struct EventPage {
  std::vector<EventRecord> events;
  int64_t last_seq = 0;  // the highest seq covered; resume after it
  int64_t head = 0;      // the latest committed seq when the page was read
  // The oldest seq kept when the page was read (head + 1 when none is): a reader whose
  // after_seq is below oldest - 1 has lost events to retention.
  int64_t oldest = 1;
};

// Which events a reader wants; an empty field matches every value.
struct EventFilter {
  std::string dag_id;
  std::string run_id;
  std::string task_id;  // set: task_instance events of that task only
};

// The stored part of the event log: events oldest..latest are readable. oldest is latest + 1
// when none is stored (none written yet, or all removed).
struct EventBounds {
  int64_t oldest = 1;
  int64_t latest = 0;
};

// A run with all its task instances.
struct RunRows {
  DagRun run;
  std::vector<TaskInstance> task_instances;
  bool dag_paused = false;  // its DAG's is_paused, read with the run
};

// A change of a run by a user (PATCH .../dagRuns/{dag_run_id}, StateStore::PatchRun).
struct RunPatch {
  // success, failed or queued, as Airflow's set_dag_run_state_to_*: success marks every task
  // instance success; failed marks the running ones failed and the unfinished others skipped;
  // queued sends the run back to the scheduler, its task instances untouched.
  std::optional<RunState> state;
  std::optional<std::optional<std::string>> note;  // set: the new note (nullopt removes it)
};

// A change of task instances of one run by a user (PATCH .../taskInstances/{task_id}).
struct TaskInstancePatch {
  std::string task_id;                  // the one the request names: its note
  std::vector<std::string> state_tasks;  // the tasks whose instances get new_state
  std::optional<TaskState> new_state;    // success, failed or skipped
  std::optional<std::optional<std::string>> note;
  // Writes nothing: returns the task instances the patch would change (the named one for a
  // note alone), never already_exists.
  bool dry_run = false;
};

// A user's clear of task instances (POST .../clearTaskInstances, .../dagRuns/{id}/clear,
// StateStore::ClearTaskInstances), as Airflow's clear_task_instances.
struct TaskInstanceClear {
  std::string dag_id;
  std::optional<std::string> run_id;  // only this run; otherwise runs by logical date:
  std::optional<TimePoint> start_date;  // logical_date >= start_date (none: no lower bound)
  std::optional<TimePoint> end_date;    // logical_date <= end_date (none: no upper bound)
  std::optional<std::vector<std::string>> task_ids;  // nullopt: every task
  bool only_failed = false;   // only failed and upstream_failed ones
  bool only_running = false;  // only running ones (with only_failed: either)
  bool reset_dag_runs = true;  // a finished run of a cleared task instance goes back to queued
  bool prevent_running_task = false;  // failed_precondition, nothing written, if one runs
  bool dry_run = false;  // writes nothing: returns what would be cleared
  // (version_number, task_id) → the task's retries in that version: a cleared task instance
  // gets max_tries = try_number + retries; one not listed keeps max(max_tries, try_number).
  std::map<std::pair<int, std::string>, int> retries;
  // run_on_latest_version: the runs of the cleared task instances move to this version of the
  // DAG, whose tasks are `latest_tasks`: instances of the tasks it adds are created (no state),
  // those of the tasks it lacks are removed, and the cleared ones take their task's settings
  // (and retries) from it.
  std::optional<int> latest_version;
  std::vector<TaskSpec> latest_tasks;
};

// The single source of truth. Every method is one transaction; implementations are thread-safe.
// Errors: unavailable (database unreachable or busy: retry later), aborted (conflict: retry),
// not_found / already_exists / invalid_argument as documented, internal otherwise.
class StateStore {
 public:
  virtual ~StateStore() = default;

  virtual Status Ping() = 0;

  // Makes this process the database's only scheduler: a PostgreSQL session-level advisory lock
  // on a dedicated connection, and a new scheduler epoch that becomes the database's lease
  // holder (SchedulerEpoch()). failed_precondition, naming the holder when known, when another
  // process holds the lock; unavailable when the database is unreachable. Later calls check the
  // lock: ok while its connection lives; after losing it, the lock is retaken only while the
  // lease still names this epoch, otherwise failed_precondition ("fenced: ...").
  virtual Status AcquireSchedulerLock() = 0;
  // The epoch of the last successful AcquireSchedulerLock; none before.
  virtual std::optional<int64_t> SchedulerEpoch() const = 0;

  // --- DAGs ---
  // Records `dag` from `source`: creates the dag row on first sight (paused when
  // is_paused_upon_creation), appends a dag_version when the hash differs from the latest one,
  // refreshes the row's denormalised fields and source and clears is_stale. Returns the latest
  // version number. Safe against two daemons syncing the same DAG at once.
  // kFile: `fileloc` is the file's path; a file takes over a DAG that was uploaded. kApi:
  // `fileloc` is ignored (stored empty); failed_precondition, with a sentence naming the file,
  // while the DAG is read from a file (a kFile row that is not stale): the file wins.
  virtual StatusOr<int> SyncDag(const Dag& dag, const std::string& fileloc, TimePoint parsed_at,
                                DagSource source) = 0;
  // Marks every DAG read from a file whose id is not in `present_dag_ids` as stale. Uploaded DAGs
  // have no file to lose and are left alone.
  virtual Status MarkStaleExcept(const std::vector<std::string>& present_dag_ids) = 0;
  // Deletes the DAG with its versions, runs, task instances, tries and XComs, as Airflow's
  // delete_dag does. Its rows of the event log stay: the log's seqs are gap-free for readers,
  // and a hole in the middle would read as lost events. not_found; failed_precondition with a
  // sentence while one of its runs is queued or running, or while a file defines it (a kFile row
  // that is not stale: it would come back at the next scan).
  virtual Status DeleteDag(const std::string& dag_id) = 0;
  // Replaces the whole import-error list (the errors of the latest folder scan).
  virtual Status ReplaceImportErrors(const std::vector<ImportError>& errors) = 0;
  virtual StatusOr<Listing<ImportError>> ListImportErrors(const Page& page) = 0;
  virtual StatusOr<Listing<DagRecord>> ListDags(const DagQuery& query) = 0;
  virtual StatusOr<DagRecord> GetDag(const std::string& dag_id) = 0;     // not_found
  virtual Status SetPaused(const std::string& dag_id, bool paused) = 0;  // not_found
  virtual StatusOr<DagVersionRecord> GetDagVersion(const std::string& dag_id,
                                                   int version_number) = 0;  // not_found
  // The DAGs with a schedule that are not stale and have a version, with what planning their
  // scheduled runs needs (one query).
  virtual StatusOr<std::vector<ScheduledDag>> ListScheduledDags() = 0;
  // Records the next scheduled run of the DAG (none: no run is left to create), as DagRecord's
  // next_dagrun shows it. not_found.
  virtual Status SetNextDagRun(const std::string& dag_id, const std::optional<RunSlot>& next) = 0;
  // A page of DAG versions (documents left out). not_found when the DAG named is unknown.
  virtual StatusOr<Listing<DagVersionRecord>> ListDagVersions(const DagVersionQuery& query) = 0;
  // Run counts by state of the DAGs named (every DAG that is not stale when none is named),
  // ordered by dag_id; a named DAG that does not exist is left out.
  virtual StatusOr<std::vector<DagRunStats>> CountRunsByState(
      const std::vector<std::string>& dag_ids) = 0;

  // --- Runs ---
  // Inserts the run and its task instances in one transaction (their events come with them).
  // Fills ids (run key, task-instance uuids). not_found when the DAG is unknown,
  // already_exists when (dag_id, run_id) is taken.
  virtual StatusOr<DagRun> CreateRun(const DagRun& run, std::vector<TaskInstance>& tis) = 0;
  virtual StatusOr<DagRun> GetRun(const std::string& dag_id, const std::string& run_id) = 0;
  // The runs with these keys and their task instances, in a fixed number of queries whatever
  // their number (keys that do not exist are left out), for loading many new runs at once.
  virtual StatusOr<std::vector<RunRows>> LoadRuns(const std::vector<int64_t>& run_keys) = 0;
  virtual StatusOr<Listing<DagRun>> ListRuns(const RunQuery& query) = 0;
  // Runs in state queued or running, oldest queued_at first.
  virtual StatusOr<std::vector<DagRun>> LoadActiveRuns() = 0;

  // --- Task instances ---
  virtual StatusOr<Listing<TaskInstance>> ListTaskInstances(const TaskInstanceQuery& query) = 0;
  virtual StatusOr<TaskInstance> GetTaskInstance(const std::string& dag_id,
                                                 const std::string& run_id,
                                                 const std::string& task_id) = 0;
  // Every try of one task instance, oldest first. not_found when the task instance is unknown.
  virtual StatusOr<std::vector<TaskTry>> ListTries(const std::string& dag_id,
                                                   const std::string& run_id,
                                                   const std::string& task_id) = 0;
  virtual StatusOr<std::vector<XcomEntry>> ListXcom(const std::string& ti_id) = 0;

  // --- Marking and notes: a user's writes (pg_marks.cpp) ---
  // Each is one transaction that locks the run's row and changes only rows that are not yet in
  // the state asked for (conditional: a scheduler commit that expected their old state is then
  // rejected and reloads the run, instead of overwriting the user's change). Changed task
  // instances' current try rows follow. not_found for an unknown run.
  virtual StatusOr<DagRun> PatchRun(const std::string& dag_id, const std::string& run_id,
                                    const RunPatch& patch, TimePoint now) = 0;
  // Returns the task instances whose state changed, or the named one when only its note
  // changed. not_found for an unknown run or task instance; already_exists ("Task id x is
  // already in success state"), with nothing written, when a new state changes no row.
  virtual StatusOr<std::vector<TaskInstance>> PatchTaskInstances(const std::string& dag_id,
                                                                 const std::string& run_id,
                                                                 const TaskInstancePatch& patch,
                                                                 TimePoint now) = 0;

  // --- Clearing: a user's write (pg_clear.cpp) ---
  // One transaction: locks the selected runs' rows, then sets the selected running task
  // instances to restarting (the scheduler stops their tries and runs them again) and the
  // others to none with max_tries raised (TaskInstanceClear::retries), and finished runs back
  // to queued (reset_dag_runs). Returns the selected task instances as stored afterwards
  // (dry_run: as they are), by run then task id. not_found for an unknown DAG or run_id.
  virtual StatusOr<std::vector<TaskInstance>> ClearTaskInstances(const TaskInstanceClear& clear,
                                                                 TimePoint now) = 0;

  // Writes `t` in one commit as this process's epoch (see ApplyResult for conflicts). At most
  // one transition per task instance and per run in a batch. failed_precondition when this
  // store holds no epoch or another scheduler took the lease (fenced): nothing is written.
  virtual StatusOr<ApplyResult> Apply(const Transition& t) = 0;

  // --- Event log ---
  // Up to `limit` events with seq > after_seq, in seq order.
  virtual StatusOr<std::vector<EventRecord>> ReadEvents(int64_t after_seq, int limit) = 0;
  // The same, leaving out the events written by scheduler epoch `skip_origin` (a scheduler's
  // own commits): `last_seq` is the highest seq the read covered, returned or not, so that the
  // reader resumes after it.
  virtual StatusOr<EventPage> ReadOtherEvents(int64_t after_seq, int limit,
                                              int64_t skip_origin) = 0;
  // Up to `limit` events with seq > after_seq that match `filter`, in seq order, with the
  // highest seq the read covered (`last_seq`, matching or not: resume after it) and the head.
  // A read without both dag_id and run_id (which use the run's index) covers at most
  // `scan_window` seqs, so that its cost is bounded however rarely the filter matches.
  virtual StatusOr<EventPage> ReadEventsMatching(int64_t after_seq, int limit,
                                                 const EventFilter& filter,
                                                 int64_t scan_window) = 0;
  // The seq of the latest committed event; 0 when there is none.
  virtual StatusOr<int64_t> LatestEventSeq() = 0;
  virtual StatusOr<EventBounds> ReadEventBounds() = 0;
  // Event retention: removes up to `max_events` of the oldest events, stopping at the first one
  // recorded at or after `before`, so that what stays is always a contiguous tail of the log
  // (readers of a removed seq are told the oldest one kept). Returns how many were removed.
  virtual StatusOr<int64_t> PruneEvents(TimePoint before, int64_t max_events) = 0;
  // Calls on_change(origin) from a background thread after every commit that changed runs or
  // task instances (origin: the writer's epoch, none for other writers), and on_change(nullopt)
  // after a lost listening connection is restored (changes may have been missed: catch up).
  // Calls may be coalesced. Several subscriptions may be held at once (the scheduler's, the
  // event hub's); each gets every call, one after the other on the same thread, so on_change
  // must return quickly. Subscribe returns the id to unsubscribe with. Unsubscribe (and the
  // destructor) returns once no call of that subscription is in progress; on_change must not
  // call either.
  using ChangeCallback = std::function<void(std::optional<int64_t> origin)>;
  using SubscriptionId = uint64_t;
  virtual StatusOr<SubscriptionId> Subscribe(ChangeCallback on_change) = 0;
  virtual void Unsubscribe(SubscriptionId id) = 0;

  // --- Audit log (audit.hpp) ---
  // Appends `entry` (its id is ignored) in one statement; returns the id given to it.
  virtual StatusOr<int64_t> AppendAudit(const AuditEntry& entry) = 0;
  // A page of entries; invalid_argument for an unknown order_by field.
  virtual StatusOr<Listing<AuditEntry>> ListAudit(const AuditQuery& query) = 0;
  virtual StatusOr<AuditEntry> GetAudit(int64_t id) = 0;  // not_found

  // --- Backfills (backfill.hpp; pg_backfills.cpp) ---
  // In one transaction: the backfill row, then for each date in order its run (created with
  // backfill_id set, or the existing run re-run: cleared, its task instances back to none for a
  // new try, the run queued and owned by the backfill) or the reason it has none, recorded in
  // backfill_dag_run. not_found when the DAG is unknown; already_exists ("There is already a
  // running backfill for dag x") while another backfill of the DAG is not completed.
  virtual StatusOr<BackfillRecord> CreateBackfill(const NewBackfill& backfill, TimePoint now) = 0;
  // The states of the DAG's runs with these logical dates (dates without a run left out).
  virtual StatusOr<std::vector<std::pair<TimePoint, RunState>>> RunStatesAt(
      const std::string& dag_id, const std::vector<TimePoint>& logical_dates) = 0;
  virtual StatusOr<Listing<BackfillRecord>> ListBackfills(const BackfillQuery& query) = 0;
  virtual StatusOr<BackfillRecord> GetBackfill(int64_t id) = 0;  // not_found
  // Pauses or unpauses it. not_found; failed_precondition ("Backfill is already completed.").
  virtual StatusOr<BackfillRecord> SetBackfillPaused(int64_t id, bool paused, TimePoint now) = 0;
  // Pauses it, fails its queued runs (conditionally: a run the scheduler started meanwhile keeps
  // running) and completes it. not_found; failed_precondition when already completed.
  virtual StatusOr<BackfillRecord> CancelBackfill(int64_t id, TimePoint now) = 0;
  // The gates of the DAG's backfills that own a queued or running run.
  virtual StatusOr<std::vector<BackfillGate>> ListBackfillGates(const std::string& dag_id) = 0;
  // Completes every backfill whose runs all ended; returns how many.
  virtual StatusOr<int> CompleteEndedBackfills(TimePoint now) = 0;
};

// Everything an operator needs to run one try.
struct TaskAssignment {
  DagPtr dag;
  size_t task_index = 0;  // into dag->tasks
  DagRun run;
  std::string ti_id;
  int try_number = 1;
  int max_tries = 0;
  std::filesystem::path log_path;  // the per-try log file; the executor creates it

  const TaskSpec& task() const { return dag->tasks[task_index]; }
};

struct TaskOutcome {
  enum class Kind {
    kSuccess,
    kFailed,       // the try failed (non-zero exit, job error, timeout): counts as a try
    kInterrupted,  // stopped by shutdown: does not count against retries
  };
  Kind kind = Kind::kFailed;
  std::string error;  // one sentence, empty on success
  std::vector<XcomEntry> xcom;
};

struct TaskEvent {
  enum class Kind { kStarted, kFinished };
  Kind kind = Kind::kStarted;
  std::string ti_id;
  int try_number = 0;
  TimePoint at;
  std::string hostname;  // kStarted
  std::string unixname;  // kStarted: the account the try runs as
  int pid = 0;           // kStarted
  std::optional<TryProcess> process;  // kStarted of a try that runs a command: its group
  TaskOutcome outcome;   // kFinished
};

using TaskEventSink = std::function<void(TaskEvent)>;

// Runs tries on a bounded pool. Every method is thread-safe. For each submitted assignment that
// starts, the sink receives exactly one kStarted then exactly one kFinished, from an executor
// thread.
class TaskExecutor {
 public:
  virtual ~TaskExecutor() = default;
  virtual void Submit(TaskAssignment assignment, TaskEventSink sink) = 0;
  // Stops starting work. Assignments not yet started are dropped without events: they stay
  // `queued` in the store and are submitted again after a restart.
  virtual void StopAccepting() = 0;
  // Asks every running try to stop (cancellation token; TERM then KILL to process groups). They
  // finish with kInterrupted.
  virtual void CancelRunning() = 0;
  // Stops one try: a user marked its task instance or its run, or its run timed out. A running
  // try is asked to stop as CancelRunning does and later reports kFinished, kFailed with
  // `reason` as its error (unless it had already been asked to stop: the first reason wins);
  // true. A try not started yet is dropped without events, false; false too when the executor
  // does not hold it.
  virtual bool StopTry(const std::string& ti_id, int try_number, std::string reason) = 0;
  // Blocks until no try is running or `timeout` passed; true when idle.
  virtual bool WaitIdle(std::chrono::milliseconds timeout) = 0;
  virtual size_t RunningCount() const = 0;
  // Stops what is left of a try that a previous daemon process started (recorded in the
  // store): kills the whole process group, TERM then KILL, if `process` still names that group
  // (same leader start), and returns once it is gone. ok when nothing of it is left (or it
  // was never there); unavailable when it could not be stopped in time.
  virtual Status StopOrphanedProcess(const TryProcess& process) = 0;
};

}  // namespace dagd::scheduler
