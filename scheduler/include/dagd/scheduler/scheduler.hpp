// The scheduling loop: one thread that owns all scheduling state and reacts to events.
//
// Events are: a task event from the executor (started, finished), a Wake() after something changed
// in the store (a run was triggered, a DAG paused or unpaused), a retry coming due, or the
// heartbeat. Each iteration turns pending events into one Transition, commits it, and only then
// acts on it (submits queued tries to the executor): a transition is committed before it is
// acted on. Memory is a cache of the active runs that Start() rebuilds from the store.
//
// Thread-safety: Wake, GetDag, LastHeartbeat and the executor's event sink may be called from any
// thread. Start and Shutdown from the owning thread only.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dagd/scheduler/dag_parser.hpp"
#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::scheduler {

struct SchedulerOptions {
  std::filesystem::path logs_root;  // per-try logs: see log_paths.hpp
  std::chrono::milliseconds heartbeat{5000};
  std::chrono::milliseconds store_retry{1000};  // pause before retrying a failed commit
  // This host's name as the executor reports it in kStarted (the same value must go to both);
  // empty = gethostname(). A recovered try recorded on another host cannot be stopped from here.
  std::string hostname;
};

class Scheduler {
 public:
  Scheduler(SchedulerOptions options, StateStore& store, TaskExecutor& executor,
            const Clock& clock);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Loads the active runs and starts the loop thread. Tries a previous process left behind are
  // recovered whenever a run is first loaded: queued ones are submitted again, running ones go
  // up_for_retry without using a retry — once what is left of their process group on this host
  // is stopped (TaskExecutor::StopOrphanedProcess); while it cannot be, that run is not loaded
  // and is tried again at the next refresh. The caller must hold the database's scheduler lock.
  Status Start();

  // Something changed in the store: re-read the active runs and paused flags soon.
  void Wake();

  // Stops gracefully: no new tries start; running tries get `grace` to finish, then are
  // cancelled and recorded as up_for_retry; pending transitions are committed; the thread joins.
  void Shutdown(std::chrono::milliseconds grace);

  // A DAG version, parsed from the store and cached (versions are immutable). Thread-safe.
  StatusOr<DagPtr> GetDag(const std::string& dag_id, int version_number);

  std::optional<TimePoint> LastHeartbeat() const;

 private:
  struct ActiveRun {
    DagRun run;
    DagPtr dag;
    std::vector<TaskInstance> tis;  // tis[i] belongs to dag->tasks[i]
  };

  void Loop();
  // Adds active runs the cache does not have yet (recovering their tries) and refreshes paused
  // flags. Not ok when something could not be read: the caller retries later.
  Status RefreshActiveRuns();
  // A run with its DAG version and task instances; nullopt when it can never be scheduled
  // (logged), an error when the store failed.
  StatusOr<std::optional<ActiveRun>> LoadRun(DagRun run);
  Status RecoverTries(ActiveRun& active);
  // What one iteration changes: copies of the runs it touches (the cache changes only after the
  // commit), which of their rows to write, and what to do once committed.
  struct Changes {
    std::map<int64_t, ActiveRun> runs;                       // by run key
    std::map<int64_t, std::set<size_t>> tis;                 // changed task indices, by run key
    std::set<int64_t> run_rows;                              // runs whose own row changed
    std::map<int64_t, std::vector<Transition::Xcom>> xcoms;  // by run key
    std::vector<std::pair<int64_t, size_t>> to_submit;       // (run key, task index)
    std::optional<TimePoint> next_wakeup;
    void WakeAt(TimePoint t) {
      if (!next_wakeup || t < *next_wakeup) next_wakeup = t;
    }
  };
  ActiveRun& Touch(Changes& changes, int64_t run_key);
  // One iteration: applies `events`, decides, commits, then acts. Returns false when some of it
  // could not be committed for now (database unavailable); the events of those runs are left in
  // `events` for the next attempt, the others are removed.
  bool Step(std::vector<TaskEvent>& events, TimePoint now);
  void ApplyEvents(const std::vector<TaskEvent>& events, Changes& changes);
  void Decide(TimePoint now, Changes& changes);
  // Commits the changes, one part per run, in one transaction. Returns the runs whose part could
  // not be committed for now (unavailable or conflict: retry later); they are removed from
  // `changes`. A part the store rejects for good is logged and dropped too, but not retried.
  std::set<int64_t> Commit(Changes& changes);
  // After the commit: the cache takes the changes, finished runs leave it, tries are submitted.
  void Adopt(Changes& changes, TimePoint now);
  void Submit(const ActiveRun& active, size_t task_index);
  // Takes the scheduler lock again if the database lost it; stops queueing if another process
  // holds it now. False when the database is unreachable.
  bool CheckSchedulerLock();

  SchedulerOptions options_;
  StateStore& store_;
  TaskExecutor& executor_;
  const Clock& clock_;

  // What other threads hand to the loop. Shared with the executor's sinks so that a late event
  // from a try that ignored cancellation can never touch a destroyed Scheduler.
  struct Inbox {
    std::mutex mu;  // guards every field below
    std::condition_variable cv;
    std::deque<TaskEvent> events;
    bool wake = true;
    bool stop = false;
  };
  std::shared_ptr<Inbox> inbox_ = std::make_shared<Inbox>();
  std::atomic<bool> draining_{false};  // Shutdown began or the lock was lost: no new tries

  std::mutex dags_mu_;  // guards dags_
  std::map<std::pair<std::string, int>, DagPtr> dags_;

  std::atomic<int64_t> heartbeat_us_{0};
  TimePoint heartbeat_deadline_{};  // loop thread: when to iterate next without an event
  TimePoint next_lock_check_{};     // loop thread
  bool store_reachable_ = true;     // loop thread: the last lock check reached the database

  // Owned by the loop thread (and by Start before the thread exists).
  std::map<int64_t, ActiveRun> runs_;  // by DagRun::id, so older runs come first
  std::unordered_map<std::string, std::pair<int64_t, size_t>> ti_index_;  // ti id → run, task
  std::unordered_map<std::string, bool> paused_;                          // dag_id → is_paused

  std::thread thread_;
};

}  // namespace dagd::scheduler
