// ScheduledRuns: the thread that creates the scheduled runs of every DAG with a schedule, started
// and stopped with the scheduler loop (scheduler.hpp), so only the process holding the scheduler
// lock creates them.
//
// A round reads the scheduled DAGs in one query (StateStore::ListScheduledDags), plans each
// (schedule_plan.hpp), creates the due runs through StateStore::CreateRun and records each DAG's
// next run for the API (SetNextDagRun, only when it changed). A run is created at most once
// whatever happens: its logical date is unique per DAG in the store, so a round repeated after
// a restart, a clock jump or by a second process finds the date taken and moves on. Rounds run
// when the earliest next run falls due, on Poke (a DAG changed), on RunEnded while a DAG waits
// for max_active_runs, and every `heartbeat` (a paused DAG's next run, a missed wake).
//
// Thread-safety: Poke and RunEnded may be called from any thread (RunEnded is cheap when no DAG
// waits); Start and Stop from the owning one.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::scheduler {

class ScheduledRuns {
 public:
  // The parsed DAG version (the scheduler's cache).
  using DagLookup = std::function<StatusOr<DagPtr>(const std::string& dag_id, int version)>;

  // `wake_loop` is called after a round created runs, so that the loop admits them at once.
  ScheduledRuns(StateStore& store, const Clock& clock, DagLookup dags,
                std::function<void()> wake_loop, std::chrono::milliseconds heartbeat);
  ~ScheduledRuns();  // Stop()
  ScheduledRuns(const ScheduledRuns&) = delete;
  ScheduledRuns& operator=(const ScheduledRuns&) = delete;

  void Start();
  void Stop();  // joins the thread; no round runs after it returns
  void Poke();
  void RunEnded();

 private:
  void Run();
  // Plans every scheduled DAG at `now` and creates what is due; returns when to plan again.
  TimePoint Round(TimePoint now);

  StateStore& store_;
  const Clock& clock_;
  const DagLookup dags_;
  const std::function<void()> wake_loop_;
  const std::chrono::milliseconds heartbeat_;

  std::mutex mu_;  // guards poked_ and stop_
  std::condition_variable cv_;
  bool poked_ = false;
  bool stop_ = false;
  std::atomic<bool> blocked_{false};  // some DAG waits for max_active_runs
  // Per DAG, the latest slot found taken by a run of another type (a manual run with the same
  // logical date): the next round plans after it. The round thread's own.
  std::map<std::string, TimePoint> taken_;
  std::thread thread_;
};

}  // namespace dagd::scheduler
