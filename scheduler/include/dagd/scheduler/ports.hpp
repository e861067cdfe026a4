// The ports the scheduler needs: a state store (implemented on PostgreSQL by storage/) and a task
// executor (implemented by executors/). The scheduler depends only on these interfaces.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/status.hpp"

namespace dagd::scheduler {

// A batch of state transitions, written atomically.
struct Transition {
  // Full rows: the store writes each row's mutable columns and appends `event` rows (kind
  // dag_run / task_instance, with the new state) in the same transaction: one per task-instance
  // entry, and one per run entry whose state differs from the run's previous state.
  std::vector<DagRun> runs;
  std::vector<TaskInstance> task_instances;
  struct Xcom {
    std::string ti_id;
    XcomEntry entry;
  };
  std::vector<Xcom> xcoms;

  bool empty() const { return runs.empty() && task_instances.empty() && xcoms.empty(); }
};

// The single source of truth. Every method is one transaction; implementations are thread-safe.
// Errors: unavailable (database unreachable: retry later), aborted (conflict: retry),
// not_found / already_exists / invalid_argument as documented, internal otherwise.
class StateStore {
 public:
  virtual ~StateStore() = default;

  virtual Status Ping() = 0;

  // Makes this process the database's only scheduler for as long as the store lives (a
  // PostgreSQL session-level advisory lock on a dedicated connection). failed_precondition,
  // naming the holder when known, when another process holds it; unavailable when the database
  // is unreachable. Idempotent.
  virtual Status AcquireSchedulerLock() = 0;

  // --- DAGs ---
  // Records `dag`, read from `fileloc`: creates the dag row on first sight (paused when
  // is_paused_upon_creation), appends a dag_version when the hash differs from the latest one,
  // refreshes the row's denormalised fields and clears is_stale. Returns the latest version
  // number. Safe against two daemons syncing the same DAG at once.
  virtual StatusOr<int> SyncDag(const Dag& dag, const std::string& fileloc,
                                TimePoint parsed_at) = 0;
  // Marks every DAG whose id is not in `present_dag_ids` as stale.
  virtual Status MarkStaleExcept(const std::vector<std::string>& present_dag_ids) = 0;
  // Replaces the whole import-error list (the errors of the latest folder scan).
  virtual Status ReplaceImportErrors(const std::vector<ImportError>& errors) = 0;
  virtual StatusOr<Listing<ImportError>> ListImportErrors(const Page& page) = 0;
  virtual StatusOr<Listing<DagRecord>> ListDags(const DagQuery& query) = 0;
  virtual StatusOr<DagRecord> GetDag(const std::string& dag_id) = 0;     // not_found
  virtual Status SetPaused(const std::string& dag_id, bool paused) = 0;  // not_found
  virtual StatusOr<DagVersionRecord> GetDagVersion(const std::string& dag_id,
                                                   int version_number) = 0;  // not_found

  // --- Runs ---
  // Inserts the run and its task instances, with their events, in one transaction. Fills ids
  // (run key, task-instance uuids). already_exists when (dag_id, run_id) is taken.
  virtual StatusOr<DagRun> CreateRun(const DagRun& run, std::vector<TaskInstance>& tis) = 0;
  virtual StatusOr<DagRun> GetRun(const std::string& dag_id, const std::string& run_id) = 0;
  virtual StatusOr<Listing<DagRun>> ListRuns(const RunQuery& query) = 0;
  // Runs in state queued or running, oldest queued_at first.
  virtual StatusOr<std::vector<DagRun>> LoadActiveRuns() = 0;
  virtual StatusOr<std::vector<TaskInstance>> LoadTaskInstances(int64_t run_key) = 0;

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

  // Writes every row of `t` and its events in one transaction; nothing when it fails.
  virtual Status Apply(const Transition& t) = 0;
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
// starts, the sink receives exactly one kStarted then exactly one kFinished, from a worker thread.
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
