#include "dagd/scheduler/scheduler.hpp"

#include <unistd.h>

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

std::string ThisHost() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return {};
  return name;
}

}  // namespace

Scheduler::Scheduler(SchedulerOptions options, StateStore& store, TaskExecutor& executor,
                     const Clock& clock)
    : options_(std::move(options)), store_(store), executor_(executor), clock_(clock) {
  if (options_.hostname.empty()) options_.hostname = ThisHost();
}

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
  //
  // A cut-off bash try may still be running (its daemon was killed, not its process group): it
  // is stopped before its retry can be queued, or two tries of one task would run side by side.
  // Until it can be stopped the whole run waits; the next refresh tries again.
  for (const TaskInstance& ti : active.tis) {
    if (ti.state != TaskState::kRunning || !ti.process) continue;
    if (ti.hostname != options_.hostname) {
      Log()->warn(
          "task recovered from another host, its process cannot be stopped from here dag={} "
          "run={} task={} try={} host={} pgid={}",
          ti.dag_id, ti.run_id, ti.task_id, ti.try_number, ti.hostname, ti.process->pgid);
      continue;
    }
    if (Status s = executor_.StopOrphanedProcess(*ti.process); !s.ok()) {
      Log()->error(
          "cannot stop a try left running by a previous process, its retry waits dag={} run={} "
          "task={} try={} pgid={} error=\"{}\"",
          ti.dag_id, ti.run_id, ti.task_id, ti.try_number, ti.process->pgid, s.message());
      return Status::Unavailable("a try left running by a previous process is not stopped yet");
    }
    Log()->info(
        "stopped a try left running by a previous process dag={} run={} task={} try={} "
        "pgid={}",
        ti.dag_id, ti.run_id, ti.task_id, ti.try_number, ti.process->pgid);
  }
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

Scheduler::ActiveRun& Scheduler::Touch(Changes& changes, int64_t run_key) {
  auto it = changes.runs.find(run_key);
  if (it == changes.runs.end()) it = changes.runs.emplace(run_key, runs_.at(run_key)).first;
  return it->second;
}

bool Scheduler::Step(std::vector<TaskEvent>& events, TimePoint now) {
  Changes changes;
  ApplyEvents(events, changes);
  Decide(now, changes);
  const std::set<int64_t> postponed = Commit(changes);
  // Keep only the events of runs whose changes were not committed: they are applied again.
  std::erase_if(events, [&](const TaskEvent& event) {
    auto where = ti_index_.find(event.ti_id);
    return where == ti_index_.end() || postponed.count(where->second.first) == 0;
  });
  Adopt(changes, now);
  return postponed.empty();
}

void Scheduler::ApplyEvents(const std::vector<TaskEvent>& events, Changes& changes) {
  for (const TaskEvent& event : events) {
    auto where = ti_index_.find(event.ti_id);
    if (where == ti_index_.end()) continue;  // its run is over: a late or duplicate event
    auto [key, index] = where->second;
    const TaskInstance& cached =
        changes.runs.count(key) != 0 ? changes.runs.at(key).tis[index] : runs_.at(key).tis[index];
    if (cached.try_number != event.try_number) continue;  // fencing: an older try reporting late
    ActiveRun& active = Touch(changes, key);
    TaskInstance& ti = active.tis[index];
    if (event.kind == TaskEvent::Kind::kStarted) {
      if (ti.state != TaskState::kQueued) continue;
      ti = MarkRunning(ti, event);
    } else {
      if (ti.state != TaskState::kQueued && ti.state != TaskState::kRunning) continue;
      ti = Finish(ti, active.dag->tasks[index], event.outcome, event.at);
      for (const XcomEntry& x : event.outcome.xcom) changes.xcoms[key].push_back({ti.id, x});
      if (ti.state != TaskState::kSuccess) {
        Log()->info("task {} dag={} run={} task={} try={}/{} error=\"{}\"", ToString(ti.state),
                    ti.dag_id, ti.run_id, ti.task_id, ti.try_number, ti.max_tries + 1,
                    event.outcome.error);
      }
    }
    changes.tis[key].insert(index);
  }
}

void Scheduler::Decide(TimePoint now, Changes& changes) {
  std::map<std::string, int> running_runs;  // dag_id → runs in state running
  for (const auto& [key, active] : runs_) {
    if (active.run.state == RunState::kRunning) ++running_runs[active.run.dag_id];
  }
  auto view = [&](int64_t key) -> const ActiveRun& {
    return changes.runs.count(key) != 0 ? changes.runs.at(key) : runs_.at(key);
  };
  for (const auto& [key, cached] : runs_) {
    const Dag& dag = *cached.dag;
    const std::string& dag_id = cached.run.dag_id;
    if (paused_[dag_id]) continue;
    if (view(key).run.state == RunState::kQueued) {
      if (draining_ || running_runs[dag_id] >= dag.max_active_runs) continue;
      if (cached.run.run_after && *cached.run.run_after > now) {  // triggered for later
        changes.WakeAt(*cached.run.run_after);
        continue;
      }
      ActiveRun& active = Touch(changes, key);
      active.run.state = RunState::kRunning;
      active.run.start_date = now;
      ++running_runs[dag_id];
      changes.run_rows.insert(key);
    }
    const std::vector<TaskInstance>& tis = view(key).tis;
    const int free_slots = draining_ ? 0 : dag.max_active_tasks - ActiveTasks(tis);
    RunDecision decision = DecideRun(dag, tis, now, free_slots);
    if (decision.next_wakeup) changes.WakeAt(*decision.next_wakeup);
    if (decision.to_queue.empty() && decision.to_upstream_failed.empty() &&
        decision.to_skip.empty() && !decision.finish) {
      continue;
    }
    ActiveRun& active = Touch(changes, key);
    for (size_t i : decision.to_upstream_failed) {
      active.tis[i] = MarkUnrunnable(active.tis[i], TaskState::kUpstreamFailed, now);
      changes.tis[key].insert(i);
    }
    for (size_t i : decision.to_skip) {
      active.tis[i] = MarkUnrunnable(active.tis[i], TaskState::kSkipped, now);
      changes.tis[key].insert(i);
    }
    for (size_t i : decision.to_queue) {
      active.tis[i] = Queue(active.tis[i], now);
      changes.tis[key].insert(i);
      changes.to_submit.emplace_back(key, i);
    }
    active.run.last_scheduling_decision = now;
    if (decision.finish) {
      active.run.state = *decision.finish;
      active.run.end_date = now;
      if (!active.run.start_date) active.run.start_date = now;
    }
    changes.run_rows.insert(key);
  }
}

std::set<int64_t> Scheduler::Commit(Changes& changes) {
  // One part per run, so that a run whose rows the store rejects for good cannot block the rest.
  std::map<int64_t, Transition> parts;
  for (const auto& [key, indices] : changes.tis) {
    for (size_t i : indices) parts[key].task_instances.push_back(changes.runs.at(key).tis[i]);
  }
  for (int64_t key : changes.run_rows) parts[key].runs.push_back(changes.runs.at(key).run);
  for (auto& [key, entries] : changes.xcoms) parts[key].xcoms = std::move(entries);

  Transition all;
  for (const auto& [key, part] : parts) {
    all.runs.insert(all.runs.end(), part.runs.begin(), part.runs.end());
    all.task_instances.insert(all.task_instances.end(), part.task_instances.begin(),
                              part.task_instances.end());
    all.xcoms.insert(all.xcoms.end(), part.xcoms.begin(), part.xcoms.end());
  }
  if (all.empty()) return {};
  auto retryable = [](const Status& s) {
    return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kAborted;
  };
  std::set<int64_t> postponed;
  auto drop = [&](int64_t key) {
    changes.runs.erase(key);
    std::erase_if(changes.to_submit, [&](auto entry) { return entry.first == key; });
  };
  Status status = store_.Apply(all);
  if (status.ok()) return {};
  if (retryable(status)) {
    Log()->error("commit failed, will retry error=\"{}\" rows={}", status.message(),
                 all.task_instances.size() + all.runs.size());
    for (const auto& [key, part] : parts) {
      postponed.insert(key);
      drop(key);
    }
    return postponed;
  }
  // Rejected for good (a bug, or data the database cannot hold): find the run it comes from and
  // commit the others.
  for (const auto& [key, part] : parts) {
    Status s = store_.Apply(part);
    if (s.ok()) continue;
    const ActiveRun& run = changes.runs.at(key);
    if (retryable(s)) {
      postponed.insert(key);
    } else {
      Log()->critical("transition rejected by the store, dropped dag={} run={} error=\"{}\"",
                      run.run.dag_id, run.run.run_id, s.message());
    }
    drop(key);
  }
  return postponed;
}

void Scheduler::Adopt(Changes& changes, TimePoint now) {
  for (auto& [key, active] : changes.runs) {
    if (IsTerminal(active.run.state)) {
      Log()->info("run {} dag={} run={}", ToString(active.run.state), active.run.dag_id,
                  active.run.run_id);
      changes.WakeAt(now);  // a queued run held back by max_active_runs may start now
      for (const TaskInstance& ti : active.tis) ti_index_.erase(ti.id);
      runs_.erase(key);
    } else {
      runs_.at(key) = std::move(active);
    }
  }
  for (auto [key, index] : changes.to_submit) {
    auto it = runs_.find(key);
    if (it != runs_.end()) Submit(it->second, index);
  }
  if (changes.next_wakeup) {
    heartbeat_deadline_ = std::min(heartbeat_deadline_, *changes.next_wakeup);
  }
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
    // Part of it could not be committed (database unreachable?): hand the events of those runs
    // back and try again shortly.
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
