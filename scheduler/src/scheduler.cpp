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
  if (Status s = RefreshActiveRuns(); !s.ok()) return s;

  // Tries the previous process left behind: queued ones never started and are submitted again;
  // running ones were cut off and go up_for_retry without using a retry.
  const TimePoint now = clock_.Now();
  Transition recovered;
  for (auto& [key, run] : runs_) {
    for (size_t i = 0; i < run.tis.size(); ++i) {
      TaskInstance& ti = run.tis[i];
      if (ti.state == TaskState::kQueued) {
        recovered_queued_.emplace_back(key, i);
      } else if (ti.state == TaskState::kRunning) {
        ti = RecoverOrphan(ti, now);
        recovered.task_instances.push_back(ti);
        Log()->warn("task recovered after restart dag={} run={} task={} try={} state={}",
                    ti.dag_id, ti.run_id, ti.task_id, ti.try_number, ToString(ti.state));
      }
    }
  }
  if (!recovered.empty()) {
    if (Status s = store_.Apply(recovered); !s.ok()) return s;
  }
  Log()->info("scheduler started active_runs={} resubmitted={} recovered={}", runs_.size(),
              recovered_queued_.size(), recovered.task_instances.size());
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
  for (DagRun& run : *active) {
    if (runs_.count(run.id) != 0) continue;
    auto dag = GetDag(run.dag_id, run.version_number);
    if (!dag.ok()) {
      Log()->error("run skipped dag={} run={} error=\"{}\"", run.dag_id, run.run_id,
                   dag.status().message());
      continue;
    }
    auto tis = store_.LoadTaskInstances(run.id);
    if (!tis.ok()) {
      Log()->warn("cannot load task instances dag={} run={} error=\"{}\"", run.dag_id,
                  run.run_id, tis.status().message());
      continue;
    }
    ActiveRun active_run{run, *dag, std::vector<TaskInstance>((*dag)->tasks.size())};
    std::vector<bool> seen((*dag)->tasks.size(), false);
    for (TaskInstance& ti : *tis) {
      auto index = (*dag)->IndexOf(ti.task_id);
      if (!index) continue;  // a task instance of a task this version does not have
      seen[*index] = true;
      active_run.tis[*index] = std::move(ti);
    }
    if (std::find(seen.begin(), seen.end(), false) != seen.end()) {
      Log()->error("run skipped: task instances missing dag={} run={}", run.dag_id, run.run_id);
      continue;
    }
    for (size_t i = 0; i < active_run.tis.size(); ++i) {
      ti_index_[active_run.tis[i].id] = {run.id, i};
    }
    runs_.emplace(run.id, std::move(active_run));
  }
  std::set<std::string> dag_ids;
  for (const auto& [key, run] : runs_) dag_ids.insert(run.run.dag_id);
  for (const auto& dag_id : dag_ids) {
    auto record = store_.GetDag(dag_id);
    if (record.ok()) paused_[dag_id] = record->is_paused;
  }
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
  Transition t;

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
      for (const XcomEntry& x : event.outcome.xcom) t.xcoms.push_back({ti.id, x});
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

  for (const auto& [key, indices] : changed_tis) {
    for (size_t i : indices) t.task_instances.push_back(changed.at(key).tis[i]);
  }
  for (int64_t key : changed_runs) t.runs.push_back(changed.at(key).run);

  if (!t.empty()) {
    if (Status s = store_.Apply(t); !s.ok()) {
      Log()->error("commit failed, will retry error=\"{}\" rows={}", s.message(),
                   t.task_instances.size() + t.runs.size());
      return false;
    }
  }

  for (auto& [key, active] : changed) {
    const bool over = IsTerminal(active.run.state);
    if (over) {
      Log()->info("run {} dag={} run={}", ToString(active.run.state), active.run.dag_id,
                  active.run.run_id);
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

void Scheduler::Loop() {
  for (auto [key, index] : recovered_queued_) {
    auto it = runs_.find(key);
    if (it != runs_.end()) Submit(it->second, index);
  }
  recovered_queued_.clear();

  int failed_commits = 0;
  while (true) {
    std::vector<TaskEvent> events;
    bool wake = false;
    bool stop = false;
    {
      std::unique_lock lock(inbox_->mu);
      const auto deadline = std::chrono::system_clock::now() +
                            std::max<Duration>(heartbeat_deadline_ - clock_.Now(), Duration(0));
      inbox_->cv.wait_until(lock, deadline, [&] {
        return inbox_->stop || inbox_->wake || !inbox_->events.empty();
      });
      events.assign(std::make_move_iterator(inbox_->events.begin()),
                    std::make_move_iterator(inbox_->events.end()));
      inbox_->events.clear();
      wake = inbox_->wake;
      inbox_->wake = false;
      stop = inbox_->stop;
    }
    const TimePoint now = clock_.Now();
    heartbeat_us_ = Micros(now);
    heartbeat_deadline_ = now + options_.heartbeat;
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
      Log()->error("stopping with uncommitted task results events={}; their tries are retried "
                   "after restart", events.size());
      break;
    }
    std::this_thread::sleep_for(options_.store_retry);
  }
  Log()->info("scheduler stopped");
}

}  // namespace dagd::scheduler
