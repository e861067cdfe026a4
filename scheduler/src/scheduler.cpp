#include "dagd/scheduler/scheduler.hpp"

#include <algorithm>
#include <set>

#include "dagd/scheduler/decisions.hpp"
#include "dagd/scheduler/log_paths.hpp"
#include "logger.hpp"

namespace dagd::scheduler {
namespace {

int64_t Micros(TimePoint t) { return t.time_since_epoch().count(); }

// Tries that occupy a slot of the run's max_active_tasks.
int ActiveTasks(const std::vector<TaskInstance>& tis) {
  return static_cast<int>(std::count_if(tis.begin(), tis.end(), [](const TaskInstance& ti) {
    return ti.state == TaskState::kQueued || ti.state == TaskState::kRunning;
  }));
}

}  // namespace

Scheduler::Scheduler(SchedulerOptions options, StateStore& store, TaskExecutor& executor,
                     const Clock& clock)
    : options_(std::move(options)), store_(store), executor_(executor), clock_(clock) {}

Scheduler::~Scheduler() {
  if (thread_.joinable()) Shutdown(std::chrono::milliseconds(0));
}

Status Scheduler::Start() {
  // What cannot be loaded now is loaded by the loop's first iterations (the inbox starts awake).
  if (Status s = RefreshActiveRuns(); !s.ok()) {
    Log()->warn("some active runs not loaded yet, retrying error=\"{}\"", s.message());
  }
  Log()->info("scheduler started active_runs={}", runs_.size());
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void Scheduler::Wake() {
  {
    std::lock_guard lock(inbox_->mu);
    inbox_->wake = true;
  }
  inbox_->cv.notify_one();
}

void Scheduler::Shutdown(std::chrono::milliseconds grace) {
  if (!thread_.joinable()) return;
  draining_ = true;
  executor_.StopAccepting();
  if (!executor_.WaitIdle(grace)) {
    Log()->warn("grace period over, stopping running tasks running={} grace_ms={}",
                executor_.RunningCount(), grace.count());
    executor_.CancelRunning();
    if (!executor_.WaitIdle(std::chrono::seconds(15))) {
      Log()->error("tasks still running after cancellation running={}", executor_.RunningCount());
    }
  }
  {
    std::lock_guard lock(inbox_->mu);
    inbox_->stop = true;
  }
  inbox_->cv.notify_one();
  thread_.join();
}

StatusOr<DagPtr> Scheduler::GetDag(const std::string& dag_id, int version_number) {
  {
    std::lock_guard lock(dags_mu_);
    auto it = dags_.find({dag_id, version_number});
    if (it != dags_.end()) return it->second;
  }
  auto version = store_.GetDagVersion(dag_id, version_number);
  if (!version.ok()) return version.status();
  ParseResult parsed = ParseDag(std::string_view(version->document), ParseOptions{});
  if (!parsed.dag) {
    return Status::Internal("stored version " + std::to_string(version_number) + " of DAG '" +
                            dag_id + "' no longer parses: " + parsed.errors.front());
  }
  std::lock_guard lock(dags_mu_);
  return dags_.emplace(std::make_pair(dag_id, version_number), parsed.dag).first->second;
}

std::optional<TimePoint> Scheduler::LastHeartbeat() const {
  int64_t us = heartbeat_us_.load();
  if (us == 0) return std::nullopt;
  return TimePoint(Duration(us));
}

Status Scheduler::RefreshActiveRuns() {
  auto active = store_.LoadActiveRuns();
  if (!active.ok()) {
    Log()->warn("cannot load active runs error=\"{}\"", active.status().message());
    return active.status();
  }
  Status result = Status::Ok();
  for (DagRun& run : *active) {
    if (runs_.count(run.id) != 0) continue;
    auto loaded = LoadRun(std::move(run));
    if (!loaded.ok()) {
      result = loaded.status();  // retried on the next refresh
      continue;
    }
    if (!loaded->has_value()) continue;  // cannot be scheduled at all; logged
    ActiveRun& active_run = **loaded;
    if (Status s = RecoverTries(active_run); !s.ok()) {
      result = s;
      continue;
    }
    const int64_t key = active_run.run.id;
    for (size_t i = 0; i < active_run.tis.size(); ++i) ti_index_[active_run.tis[i].id] = {key, i};
    auto& inserted = runs_.emplace(key, std::move(active_run)).first->second;
    for (size_t i = 0; i < inserted.tis.size(); ++i) {
      if (inserted.tis[i].state == TaskState::kQueued) Submit(inserted, i);
    }
  }
  std::set<std::string> dag_ids;
  for (const auto& [key, run] : runs_) dag_ids.insert(run.run.dag_id);
  for (const auto& dag_id : dag_ids) {
    auto record = store_.GetDag(dag_id);
    if (record.ok()) {
      paused_[dag_id] = record->is_paused;
    } else {
      result = record.status();
    }
  }
  return result;
}

StatusOr<std::optional<Scheduler::ActiveRun>> Scheduler::LoadRun(DagRun run) {
  auto dag = GetDag(run.dag_id, run.version_number);
  if (!dag.ok()) {
    Log()->error("run cannot be scheduled dag={} run={} error=\"{}\"", run.dag_id, run.run_id,
                 dag.status().message());
    if (dag.status().code() == StatusCode::kUnavailable) return dag.status();
    return std::optional<ActiveRun>();
  }
  auto tis = store_.LoadTaskInstances(run.id);
  if (!tis.ok()) {
    Log()->warn("cannot load task instances dag={} run={} error=\"{}\"", run.dag_id, run.run_id,
                tis.status().message());
    return tis.status();
  }
  ActiveRun active{std::move(run), *dag, std::vector<TaskInstance>((*dag)->tasks.size())};
  std::vector<bool> seen(active.tis.size(), false);
  for (TaskInstance& ti : *tis) {
    auto index = active.dag->IndexOf(ti.task_id);
    if (!index) continue;  // a task instance of a task this version does not have
    seen[*index] = true;
    active.tis[*index] = std::move(ti);
  }
  if (std::find(seen.begin(), seen.end(), false) != seen.end()) {
    Log()->error("run cannot be scheduled: task instances missing dag={} run={}", active.run.dag_id,
                 active.run.run_id);
    return std::optional<ActiveRun>();
  }
  return std::optional<ActiveRun>(std::move(active));
}

Status Scheduler::RecoverTries(ActiveRun& active) {
  // This process holds the scheduler lock, so a try that is running in the store but unknown to
  // this process was cut off by a crash or a stop: it goes up_for_retry without using a retry.
  // Queued tries never started; the caller submits them again.
  const TimePoint now = clock_.Now();
  Transition recovered;
  std::vector<TaskInstance> tis = active.tis;
  for (TaskInstance& ti : tis) {
    if (ti.state != TaskState::kRunning) continue;
    ti = RecoverOrphan(ti, now);
    recovered.task_instances.push_back(ti);
    Log()->warn("task recovered after restart dag={} run={} task={} try={} state={}", ti.dag_id,
                ti.run_id, ti.task_id, ti.try_number, ToString(ti.state));
  }
  if (recovered.empty()) return Status::Ok();
  if (Status s = store_.Apply(recovered); !s.ok()) return s;
  active.tis = std::move(tis);
  return Status::Ok();
}

bool Scheduler::Step(std::vector<TaskEvent>& events, TimePoint now) {
  // Work on copies of the runs this step touches; the cache changes only after the commit.
  std::map<int64_t, ActiveRun> changed;
  std::map<int64_t, std::set<size_t>> changed_tis;
  std::set<int64_t> changed_runs;
  auto touch = [&](int64_t key) -> ActiveRun& {
    auto it = changed.find(key);
    if (it == changed.end()) it = changed.emplace(key, runs_.at(key)).first;
    return it->second;
  };
  std::map<int64_t, std::vector<Transition::Xcom>> xcoms;  // by run

  for (const TaskEvent& event : events) {
    auto where = ti_index_.find(event.ti_id);
    if (where == ti_index_.end()) continue;  // its run is over: a late or duplicate event
    auto [key, index] = where->second;
    ActiveRun& active = touch(key);
    TaskInstance& ti = active.tis[index];
    if (ti.try_number != event.try_number) continue;  // fencing: an older try reporting late
    if (event.kind == TaskEvent::Kind::kStarted) {
      if (ti.state != TaskState::kQueued) continue;
      ti = MarkRunning(ti, event);
    } else {
      if (ti.state != TaskState::kQueued && ti.state != TaskState::kRunning) continue;
      ti = Finish(ti, active.dag->tasks[index], event.outcome, event.at);
      for (const XcomEntry& x : event.outcome.xcom) xcoms[key].push_back({ti.id, x});
      if (ti.state != TaskState::kSuccess) {
        Log()->info("task {} dag={} run={} task={} try={}/{} error=\"{}\"", ToString(ti.state),
                    ti.dag_id, ti.run_id, ti.task_id, ti.try_number, ti.max_tries + 1,
                    event.outcome.error);
      }
    }
    changed_tis[key].insert(index);
  }

  std::vector<std::pair<int64_t, size_t>> to_submit;
  std::map<std::string, int> running_runs;  // dag_id → runs in state running
  for (const auto& [key, active] : runs_) {
    if (active.run.state == RunState::kRunning) ++running_runs[active.run.dag_id];
  }
  std::optional<TimePoint> next_wakeup;
  for (auto& [key, cached] : runs_) {
    const ActiveRun& view = changed.count(key) != 0 ? changed.at(key) : cached;
    const Dag& dag = *view.dag;
    if (paused_[view.run.dag_id]) continue;
    if (view.run.state == RunState::kQueued) {
      if (draining_ || running_runs[view.run.dag_id] >= dag.max_active_runs) continue;
      if (view.run.run_after && *view.run.run_after > now) {  // triggered for later
        if (!next_wakeup || *view.run.run_after < *next_wakeup) next_wakeup = view.run.run_after;
        continue;
      }
      ActiveRun& active = touch(key);
      active.run.state = RunState::kRunning;
      active.run.start_date = now;
      ++running_runs[view.run.dag_id];
      changed_runs.insert(key);
    }
    const ActiveRun& current = changed.count(key) != 0 ? changed.at(key) : cached;
    const int free_slots = draining_ ? 0 : dag.max_active_tasks - ActiveTasks(current.tis);
    RunDecision decision = DecideRun(dag, current.tis, now, free_slots);
    if (decision.next_wakeup && (!next_wakeup || *decision.next_wakeup < *next_wakeup)) {
      next_wakeup = decision.next_wakeup;
    }
    if (decision.to_queue.empty() && decision.to_upstream_failed.empty() &&
        decision.to_skip.empty() && !decision.finish) {
      continue;
    }
    ActiveRun& active = touch(key);
    for (size_t i : decision.to_upstream_failed) {
      active.tis[i] = MarkUnrunnable(active.tis[i], TaskState::kUpstreamFailed, now);
      changed_tis[key].insert(i);
    }
    for (size_t i : decision.to_skip) {
      active.tis[i] = MarkUnrunnable(active.tis[i], TaskState::kSkipped, now);
      changed_tis[key].insert(i);
    }
    for (size_t i : decision.to_queue) {
      active.tis[i] = Queue(active.tis[i], now);
      changed_tis[key].insert(i);
      to_submit.emplace_back(key, i);
    }
    active.run.last_scheduling_decision = now;
    if (decision.finish) {
      active.run.state = *decision.finish;
      active.run.end_date = now;
      if (!active.run.start_date) active.run.start_date = now;
    }
    changed_runs.insert(key);
  }

  // One part per run, so that a run whose rows the store rejects for good cannot block the rest.
  std::map<int64_t, Transition> parts;
  for (const auto& [key, indices] : changed_tis) {
    for (size_t i : indices) parts[key].task_instances.push_back(changed.at(key).tis[i]);
  }
  for (int64_t key : changed_runs) parts[key].runs.push_back(changed.at(key).run);
  for (auto& [key, entries] : xcoms) parts[key].xcoms = std::move(entries);
  if (Status s = Commit(parts); !s.ok()) return false;
  for (const auto& [key, part] : parts) {
    if (part.empty()) changed.erase(key);  // rejected: keep the cached view of this run
  }
  to_submit.erase(std::remove_if(to_submit.begin(), to_submit.end(),
                                 [&](auto entry) { return changed.count(entry.first) == 0; }),
                  to_submit.end());

  for (auto& [key, active] : changed) {
    const bool over = IsTerminal(active.run.state);
    if (over) {
      Log()->info("run {} dag={} run={}", ToString(active.run.state), active.run.dag_id,
                  active.run.run_id);
      next_wakeup = now;  // a queued run held back by max_active_runs may start now
      for (const TaskInstance& ti : active.tis) ti_index_.erase(ti.id);
      runs_.erase(key);
    } else {
      runs_.at(key) = std::move(active);
    }
  }
  for (auto [key, index] : to_submit) {
    auto it = runs_.find(key);
    if (it != runs_.end()) Submit(it->second, index);
  }
  if (next_wakeup) {
    heartbeat_deadline_ = std::min(heartbeat_deadline_, *next_wakeup);
  }
  return true;
}

Status Scheduler::Commit(std::map<int64_t, Transition>& parts) {
  Transition all;
  for (const auto& [key, part] : parts) {
    all.runs.insert(all.runs.end(), part.runs.begin(), part.runs.end());
    all.task_instances.insert(all.task_instances.end(), part.task_instances.begin(),
                              part.task_instances.end());
    all.xcoms.insert(all.xcoms.end(), part.xcoms.begin(), part.xcoms.end());
  }
  if (all.empty()) return Status::Ok();
  Status status = store_.Apply(all);
  if (status.ok()) return status;
  if (status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kAborted) {
    Log()->error("commit failed, will retry error=\"{}\" rows={}", status.message(),
                 all.task_instances.size() + all.runs.size());
    return status;
  }
  // Rejected for good (a bug, or data the database cannot hold): find the run it comes from and
  // commit the others. A rejected part is emptied; its events are not retried.
  for (auto& [key, part] : parts) {
    Status s = store_.Apply(part);
    if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kAborted) return s;
    if (!s.ok()) {
      const std::string dag_id =
          part.runs.empty() ? part.task_instances.front().dag_id : part.runs.front().dag_id;
      const std::string run_id =
          part.runs.empty() ? part.task_instances.front().run_id : part.runs.front().run_id;
      Log()->critical("transition rejected by the store, dropped dag={} run={} error=\"{}\"",
                      dag_id, run_id, s.message());
      part = Transition();
    }
  }
  return Status::Ok();
}

void Scheduler::Submit(const ActiveRun& active, size_t task_index) {
  const TaskInstance& ti = active.tis[task_index];
  TaskAssignment assignment;
  assignment.dag = active.dag;
  assignment.task_index = task_index;
  assignment.run = active.run;
  assignment.ti_id = ti.id;
  assignment.try_number = ti.try_number;
  assignment.max_tries = ti.max_tries;
  assignment.log_path =
      TryLogPath(options_.logs_root, ti.dag_id, ti.run_id, ti.task_id, ti.try_number);
  std::weak_ptr<Inbox> weak = inbox_;
  executor_.Submit(std::move(assignment), [weak](TaskEvent event) {
    auto inbox = weak.lock();
    if (!inbox) return;
    {
      std::lock_guard lock(inbox->mu);
      inbox->events.push_back(std::move(event));
    }
    inbox->cv.notify_one();
  });
}

bool Scheduler::CheckSchedulerLock() {
  // The lock lives on a database session: after a database restart it must be taken again, and
  // if another process took it meanwhile, this one must stop starting tries.
  Status s = store_.AcquireSchedulerLock();
  if (s.code() == StatusCode::kFailedPrecondition && !draining_) {
    Log()->critical("scheduler lock lost, starting no more tasks; restart this dagd error=\"{}\"",
                    s.message());
    draining_ = true;
  }
  return s.code() != StatusCode::kUnavailable;
}

void Scheduler::Loop() {
  int failed_commits = 0;
  while (true) {
    std::vector<TaskEvent> events;
    bool wake = false;
    bool stop = false;
    {
      std::unique_lock lock(inbox_->mu);
      const auto deadline = std::chrono::system_clock::now() +
                            std::max<Duration>(heartbeat_deadline_ - clock_.Now(), Duration(0));
      inbox_->cv.wait_until(
          lock, deadline, [&] { return inbox_->stop || inbox_->wake || !inbox_->events.empty(); });
      events.assign(std::make_move_iterator(inbox_->events.begin()),
                    std::make_move_iterator(inbox_->events.end()));
      inbox_->events.clear();
      wake = inbox_->wake;
      inbox_->wake = false;
      stop = inbox_->stop;
    }
    const TimePoint now = clock_.Now();
    heartbeat_deadline_ = now + options_.heartbeat;
    if (now >= next_lock_check_) {
      store_reachable_ = CheckSchedulerLock();
      next_lock_check_ = now + options_.heartbeat;
    }
    // Like Airflow's heartbeat, which lives in the database: it goes stale while the database is
    // unreachable, so health reports the scheduler unhealthy after a while.
    if (store_reachable_) heartbeat_us_ = Micros(now);
    const bool refresh_failed = wake && !RefreshActiveRuns().ok();
    if (Step(events, now)) {
      failed_commits = 0;
      if (stop) break;
      if (refresh_failed) {  // the store is unreachable: try again shortly, without spinning
        {
          std::lock_guard lock(inbox_->mu);
          inbox_->wake = true;
        }
        std::this_thread::sleep_for(options_.store_retry);
      }
      continue;
    }
    // The commit failed (database unreachable?): hand the events back and try again shortly.
    {
      std::lock_guard lock(inbox_->mu);
      inbox_->events.insert(inbox_->events.begin(), std::make_move_iterator(events.begin()),
                            std::make_move_iterator(events.end()));
    }
    if (stop && ++failed_commits >= 5) {
      Log()->error(
          "stopping with uncommitted task results events={}; their tries are retried "
          "after restart",
          events.size());
      break;
    }
    std::this_thread::sleep_for(options_.store_retry);
    heartbeat_deadline_ = clock_.Now();  // decide again at once, events or not
  }
  Log()->info("scheduler stopped");
}

}  // namespace dagd::scheduler
