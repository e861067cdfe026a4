// The scheduling loop: one thread that owns the cache of active runs and turns what happened into
// conditional transitions, committed before they are acted on.
//
// PostgreSQL is the truth; memory is a cache of the active runs. What happened is: task events
// from the executor (started, finished), changes other writers committed (read from the event log
// after a notification, or by the periodic catch-up), timers (retry delays, run_after), and
// Wake(). Each iteration decides only the runs these touched (a dirty set), each decision only
// the tasks whose inputs changed (ActiveRun), and commits everything in one Transition. A run
// whose rows another writer changed comes back as a conflict: it is reloaded from the store and
// decided again, and the task events it was holding are applied again to the reloaded rows.
// `empty` tasks never reach a worker: they succeed in the commit that makes them runnable.
//
// Fencing: the store gives this process an epoch with the scheduler lock. When the lock or the
// lease is lost to another process (or a commit is refused for it), the loop stops writing,
// reports it through options.on_fenced and LastHeartbeat stops; the daemon exits non-zero.
//
// Thread-safety: Wake, DagChanged, GetDag, RememberDag, ForgetDag, LastHeartbeat, Fenced and the
// executor's event sink may be called from any thread; Start and Shutdown from the owning one.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>

#include "dagd/scheduler/dag_parser.hpp"
#include "dagd/scheduler/metrics.hpp"
#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::scheduler {

struct SchedulerOptions {
  std::filesystem::path logs_root;  // per-try logs: see log_paths.hpp
  // How often the lock is checked, paused flags re-read and the event log caught up with even
  // without a notification (the safety net for a lost one).
  std::chrono::milliseconds heartbeat{5000};
  std::chrono::milliseconds store_retry{1000};  // pause before retrying a failed commit
  // How long a try's start may wait to be committed together with other changes (typically
  // its own end): `running` shows up to this late, and a short task costs one commit.
  std::chrono::milliseconds start_grace{20};
  // This host's name as the executor reports it in kStarted (the same value must go to both);
  // empty = gethostname(). A recovered try recorded on another host cannot be stopped from here.
  std::string hostname;
  // Called once, from the loop thread, when this process lost the scheduler lease to another.
  std::function<void()> on_fenced;
  // Where the loop records its metrics (scheduler_metrics.hpp); must outlive the Scheduler.
  // None: they are recorded nowhere.
  MetricsRegistry* metrics = nullptr;
};

class Scheduler {
 public:
  Scheduler(SchedulerOptions options, StateStore& store, TaskExecutor& executor,
            const Clock& clock);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts the loop thread, whose first step subscribes to the store's change notifications and
  // loads the active runs (retried while the database is unreachable), and the thread that
  // creates the DAGs' scheduled runs (scheduled_runs.hpp). The caller must hold the
  // scheduler lock (StateStore::AcquireSchedulerLock); failed_precondition otherwise.
  // Tries that no live try of this process owns (queued or running under an older epoch) are
  // recovered when their run is loaded: up_for_retry without using a retry, once what is left
  // of their process group on this host is stopped (TaskExecutor::StopOrphanedProcess); while
  // it cannot be, the run is not loaded and is tried again shortly.
  Status Start();

  // Something changed in the store: catch up with the event log now.
  void Wake();
  // A DAG's row changed (paused, unpaused): re-read it, and plan its scheduled runs again.
  void DagChanged(const std::string& dag_id);

  // Stops gracefully: no new tries start; running tries get `grace` to finish, then are
  // cancelled and recorded as up_for_retry; pending transitions are committed; the thread joins.
  void Shutdown(std::chrono::milliseconds grace);

  // A DAG version, parsed from the store and cached (versions are immutable). Thread-safe.
  StatusOr<DagPtr> GetDag(const std::string& dag_id, int version_number);
  // Caches a version parsed elsewhere (the DAG folder sync: `dag` is the document stored as
  // `version_number`), so that the first run of a DAG does not read and parse it again.
  // Thread-safe.
  void RememberDag(int version_number, DagPtr dag);
  // The DAG was deleted: drops its cached versions (a DAG uploaded again under the same id
  // numbers its versions from 1 again) and its paused flag. Thread-safe.
  void ForgetDag(const std::string& dag_id);

  std::optional<TimePoint> LastHeartbeat() const;
  bool Fenced() const;

 private:
  class Loop;  // scheduler_loop.hpp: everything the loop thread owns
  std::unique_ptr<Loop> loop_;
  std::unique_ptr<class ScheduledRuns> scheduled_;  // scheduled_runs.hpp: the timetables' runs
};

}  // namespace dagd::scheduler
