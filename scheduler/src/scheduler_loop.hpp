// Scheduler::Loop: everything the scheduling thread owns (see scheduler.hpp for the contract).
// scheduler_loop.cpp: the thread, events, deciding and committing; scheduler_loading.cpp: the
// store → cache direction (event-log catch-up, loading and reloading runs, orphaned tries).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dagd/scheduler/active_run.hpp"
#include "dagd/scheduler/decisions.hpp"
#include "dagd/scheduler/scheduler.hpp"
#include "scheduler_metrics.hpp"

namespace dagd::scheduler {

class Scheduler::Loop {
 public:
  Loop(SchedulerOptions options, StateStore& store, TaskExecutor& executor, const Clock& clock);
  ~Loop();

  Status Start();
  void Wake();
  void DagChanged(const std::string& dag_id);
  void Shutdown(std::chrono::milliseconds grace);
  StatusOr<DagPtr> GetDag(const std::string& dag_id, int version_number);
  void RememberDag(int version_number, DagPtr dag);
  void ForgetDag(const std::string& dag_id);
  std::optional<TimePoint> LastHeartbeat() const;
  bool Fenced() const { return fenced_; }
  // Called from the loop thread whenever an active run leaves the cache (it ended, or another
  // writer ended it). Set before Start.
  void OnRunEnded(std::function<void()> fn) { on_run_ended_ = std::move(fn); }

 private:
  // What other threads hand to the loop. Shared with the executor's sinks and the store's
  // subscription so that a late call can never touch a destroyed loop.
  struct Inbox {
    std::mutex mu;  // guards every field below
    std::condition_variable cv;
    std::deque<TaskEvent> events;
    bool catch_up = true;  // read the event log
    std::set<std::string> dags_changed;
    bool stop = false;
  };

  // Per DAG: its active runs by state (queued ones oldest first) and its paused flag.
  struct DagState {
    std::set<int64_t> queued;
    std::set<int64_t> running;
    bool paused = false;
    // The gates of its backfills with active runs, read when a run of an unknown backfill is
    // to be admitted and refreshed with the paused flag.
    std::map<int64_t, BackfillGate> backfills;
  };

  // What one step changes, to be committed together.
  struct Batch {
    Transition transition;
    std::unordered_map<std::string, size_t> ti_pos;  // ti id → its transition (one per batch)
    std::unordered_map<int64_t, size_t> run_pos;     // run key → its transition (one per batch)
    std::map<int64_t, std::vector<TaskEvent>> events;  // applied task events, by run key
    std::vector<std::pair<int64_t, size_t>> to_submit;
    std::set<int64_t> runs;  // every run with something in the batch
  };

  void Run();
  // Subscribes to changes and reads the watermark and the active runs: the first step's work,
  // retried until the database answers.
  Status Initialize();
  // One iteration at `now`. False when the store could not be read or written for now.
  bool Step(std::vector<TaskEvent> events, bool catch_up, const std::set<std::string>& dags,
            TimePoint now);

  // --- The store → the cache (scheduler_loading.cpp) ---
  // Reads the event log after the watermark: runs other writers changed become stale, new
  // active runs are to be loaded.
  Status CatchUp();
  // Re-reads the paused flag of `dag_ids`; a change makes the DAG's runs dirty.
  Status RefreshPaused(const std::set<std::string>& dag_ids);
  // (Re)loads every stale run. Not ok when the store failed: the rest is retried later.
  Status LoadStaleRuns(TimePoint now, Batch& batch);
  // A loaded run with its DAG version; nullopt when it is not active or can never be scheduled
  // (logged).
  StatusOr<std::optional<ActiveRun>> FromRows(RunRows rows);
  // Stops the process groups of orphaned tries on this host (see Scheduler::Start).
  Status StopOrphans(const ActiveRun& active);
  bool IsOrphan(const TaskInstance& ti, const std::vector<TaskEvent>& held) const;
  // Puts a loaded run into the cache (replacing a stale copy), recovers its orphaned tries and
  // applies the task events held for it.
  void Insert(ActiveRun active, TimePoint now, Batch& batch);
  // Takes a run out of the cache (and its bookkeeping) for good.
  void Remove(int64_t key);
  void Account(const ActiveRun& active, int delta);  // DagState bookkeeping
  void MarkStale(int64_t key, std::vector<TaskEvent> events);
  // Asks the executor to stop the try of `ti` this process runs, if any; `why` is logged and
  // becomes the try's error (a mark, the run's end or its dagrun_timeout).
  void StopTry(const TaskInstance& ti, const std::string& why);

  // --- Deciding, in place; every change goes into the batch (scheduler_loop.cpp) ---
  // Applies one executor event; one that must wait for the next step goes to deferred_.
  void ApplyTaskEvent(TaskEvent event, Batch& batch);
  void Admit(const std::string& dag_id, TimePoint now, Batch& batch);
  // Reads the DAG's backfill gates (StateStore::ListBackfillGates); whether one that holds
  // queued runs back opened up.
  StatusOr<bool> LoadBackfillGates(const std::string& dag_id, DagState& state);
  void DecideRun(int64_t key, TimePoint now, Batch& batch);
  void SetTi(ActiveRun& active, size_t index, TaskInstance after, TiTransition::Kind kind,
             Batch& batch);
  // Records an in-place change of the cache as a conditional transition of the batch.
  void Record(const ActiveRun& active, const TaskChange& change, Batch& batch);
  // Sets the timer of a running run's dagrun_timeout (from its start_date, as Airflow).
  void ArmRunTimeout(const ActiveRun& active);
  // The run's dagrun_timeout passed: its running tries are stopped and failed, its other
  // unfinished task instances skipped (as Airflow), the run failed. O(tasks of the run), once.
  void TimeOutRun(ActiveRun& active, TimePoint now, Batch& batch);
  // The run goes to `state`: running (kStart) or its outcome (kFinish).
  void SetRun(ActiveRun& active, RunState state, TimePoint now, Batch& batch);
  bool InBatch(const Batch& batch, const TaskInstance& ti) const {
    return batch.ti_pos.count(ti.id) != 0;
  }

  // --- Committing ---
  // Writes the batch; then submits its tries and lets finished runs go. Conflicting runs become
  // stale, holding their task events for after the reload. False when nothing could be written
  // for now: the batch's runs are stale until the store is back.
  bool Commit(Batch& batch);
  // A batch the store rejected for good: each run's part on its own, so that one bad run
  // cannot block the others.
  bool CommitRunByRun(Batch& batch);
  void Adopt(Batch& batch, const std::set<int64_t>& not_written);
  // Records what a committed batch did (the runs not in `not_written`) in metrics_.
  void Measure(const Batch& batch, const std::set<int64_t>& not_written);
  StatusOr<ApplyResult> TimedApply(const Transition& t);
  void Submit(const ActiveRun& active, size_t task_index);
  bool CheckSchedulerLock();
  void Fence(const Status& why);

  SchedulerOptions options_;
  StateStore& store_;
  TaskExecutor& executor_;
  const Clock& clock_;
  int64_t epoch_ = 0;
  // metrics_ records into options_.metrics, or into own_metrics_ when none was given.
  std::unique_ptr<MetricsRegistry> own_metrics_;
  SchedulerMetrics metrics_;

  std::shared_ptr<Inbox> inbox_ = std::make_shared<Inbox>();
  std::atomic<bool> draining_{false};  // Shutdown began or this process was fenced off
  std::atomic<bool> fenced_{false};

  std::mutex dags_mu_;  // guards dags_
  std::map<std::pair<std::string, int>, DagPtr> dags_;

  std::atomic<int64_t> heartbeat_us_{0};
  TimePoint next_heartbeat_{};  // loop thread: lock check, catch-up, paused refresh

  // Owned by the loop thread (and by Start before the thread exists).
  std::map<int64_t, ActiveRun> runs_;  // by DagRun::id
  std::unordered_map<std::string, std::pair<int64_t, size_t>> ti_index_;  // ti id → run, task
  std::unordered_map<std::string, DagState> dag_states_;                  // by dag_id
  std::set<int64_t> dirty_;            // runs to decide at the next step
  std::set<std::string> dirty_dags_;   // DAGs whose queued runs may start
  std::set<int64_t> stale_;            // runs to (re)load before they are decided again
  std::map<int64_t, std::vector<TaskEvent>> held_;  // task events of stale runs, by run key
  std::multimap<TimePoint, std::pair<int64_t, size_t>> timers_;  // (run, task or kAdmission)
  // ti id → the try number handed to the executor and not finished. By try: a try stopped for
  // a cleared task instance may report after the next try was submitted.
  std::unordered_map<std::string, int> in_flight_;
  std::vector<TaskEvent> deferred_;  // task events for the next step (their ti is in the batch)
  // A backfill's run ended, or the heartbeat passed: complete the backfills whose runs all ended.
  bool complete_backfills_ = false;
  int64_t watermark_ = 0;                      // the last event seq read
  bool initialized_ = false;                   // Initialize succeeded
  // The store subscription; kept when a later step of Initialize fails and it is retried.
  std::optional<StateStore::SubscriptionId> subscription_;
  std::function<void()> on_run_ended_;

  std::thread thread_;
};

}  // namespace dagd::scheduler
