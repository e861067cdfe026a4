#include "scheduler_loop.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "dagd/scheduler/admission.hpp"
#include "dagd/scheduler/decisions.hpp"
#include "dagd/scheduler/log_paths.hpp"
#include "logger.hpp"
#include "scheduled_runs.hpp"

namespace dagd::scheduler {
namespace {

// A timer's task index that means "the run's DAG may admit a queued run now".
constexpr size_t kAdmission = static_cast<size_t>(-1);
// A timer's task index that means "the run's dagrun_timeout may have passed".
constexpr size_t kRunTimeout = static_cast<size_t>(-2);

int64_t Micros(TimePoint t) { return t.time_since_epoch().count(); }

double SecondsBetween(TimePoint from, TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

std::string ThisHost() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return {};
  return name;
}

bool Retryable(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kAborted;
}

}  // namespace

// --- Scheduler: the public face -------------------------------------------------------------------

Scheduler::Scheduler(SchedulerOptions options, StateStore& store, TaskExecutor& executor,
                     const Clock& clock) {
  const auto heartbeat = options.heartbeat;
  loop_ = std::make_unique<Loop>(std::move(options), store, executor, clock);
  Loop* loop = loop_.get();
  scheduled_ = std::make_unique<ScheduledRuns>(
      store, clock,
      [loop](const std::string& dag_id, int version) { return loop->GetDag(dag_id, version); },
      [loop] { loop->Wake(); }, heartbeat);
  ScheduledRuns* scheduled = scheduled_.get();
  loop_->OnRunEnded([scheduled] { scheduled->RunEnded(); });
}
Scheduler::~Scheduler() = default;  // scheduled_ stops first: it calls into loop_
Status Scheduler::Start() {
  Status started = loop_->Start();
  if (started.ok()) scheduled_->Start();
  return started;
}
void Scheduler::Wake() { loop_->Wake(); }
void Scheduler::DagChanged(const std::string& dag_id) {
  loop_->DagChanged(dag_id);
  scheduled_->Poke();
}
void Scheduler::Shutdown(std::chrono::milliseconds grace) {
  scheduled_->Stop();
  loop_->Shutdown(grace);
}
StatusOr<DagPtr> Scheduler::GetDag(const std::string& dag_id, int version_number) {
  return loop_->GetDag(dag_id, version_number);
}

void Scheduler::RememberDag(int version_number, DagPtr dag) {
  loop_->RememberDag(version_number, std::move(dag));
  scheduled_->Poke();
}
void Scheduler::ForgetDag(const std::string& dag_id) {
  loop_->ForgetDag(dag_id);
  scheduled_->Poke();
}
std::optional<TimePoint> Scheduler::LastHeartbeat() const { return loop_->LastHeartbeat(); }
bool Scheduler::Fenced() const { return loop_->Fenced(); }

// --- The loop -------------------------------------------------------------------------------------

Scheduler::Loop::Loop(SchedulerOptions options, StateStore& store, TaskExecutor& executor,
                      const Clock& clock)
    : options_(std::move(options)),
      store_(store),
      executor_(executor),
      clock_(clock),
      own_metrics_(options_.metrics ? nullptr : std::make_unique<MetricsRegistry>()),
      metrics_(options_.metrics ? *options_.metrics : *own_metrics_) {
  if (options_.hostname.empty()) options_.hostname = ThisHost();
}

Scheduler::Loop::~Loop() {
  if (thread_.joinable()) Shutdown(std::chrono::milliseconds(0));
}

Status Scheduler::Loop::Start() {
  const std::optional<int64_t> epoch = store_.SchedulerEpoch();
  if (!epoch) return Status::FailedPrecondition("the scheduler lock is not held");
  epoch_ = *epoch;
  // The first steps load the active runs (retried while the database is unreachable).
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

Status Scheduler::Loop::Initialize() {
  if (!subscription_) {
    std::weak_ptr<Inbox> weak = inbox_;
    auto subscribed = store_.Subscribe([weak, self = epoch_](std::optional<int64_t> origin) {
      if (origin == self) return;  // this loop's own commit: nothing new to read
      auto inbox = weak.lock();
      if (!inbox) return;
      {
        std::lock_guard lock(inbox->mu);
        inbox->catch_up = true;
      }
      inbox->cv.notify_one();
    });
    if (!subscribed.ok()) return subscribed.status();
    subscription_ = *subscribed;
  }
  // The watermark first: whatever commits after it is read by the catch-ups, and the active
  // runs loaded next already show everything before it.
  auto latest = store_.LatestEventSeq();
  if (!latest.ok()) return latest.status();
  auto active = store_.LoadActiveRuns();
  if (!active.ok()) return active.status();
  watermark_ = *latest;
  for (const DagRun& run : *active) stale_.insert(run.id);
  initialized_ = true;
  Log()->info("scheduler started epoch={} active_runs={}", epoch_, stale_.size());
  return Status::Ok();
}

void Scheduler::Loop::Wake() {
  {
    std::lock_guard lock(inbox_->mu);
    inbox_->catch_up = true;
  }
  inbox_->cv.notify_one();
}

void Scheduler::Loop::DagChanged(const std::string& dag_id) {
  {
    std::lock_guard lock(inbox_->mu);
    inbox_->dags_changed.insert(dag_id);
  }
  inbox_->cv.notify_one();
}

void Scheduler::Loop::Shutdown(std::chrono::milliseconds grace) {
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
  if (subscription_) store_.Unsubscribe(*subscription_);
}

StatusOr<DagPtr> Scheduler::Loop::GetDag(const std::string& dag_id, int version_number) {
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

void Scheduler::Loop::RememberDag(int version_number, DagPtr dag) {
  std::lock_guard lock(dags_mu_);
  const std::string dag_id = dag->dag_id;
  dags_.try_emplace({dag_id, version_number}, std::move(dag));
}

void Scheduler::Loop::ForgetDag(const std::string& dag_id) {
  {
    std::lock_guard lock(dags_mu_);
    auto it = dags_.lower_bound({dag_id, std::numeric_limits<int>::min()});
    while (it != dags_.end() && it->first.first == dag_id) it = dags_.erase(it);
  }
  // The loop drops its paused flag when it finds the row gone (RefreshPaused).
  DagChanged(dag_id);
}

std::optional<TimePoint> Scheduler::Loop::LastHeartbeat() const {
  int64_t us = heartbeat_us_.load();
  if (us == 0) return std::nullopt;
  return TimePoint(Duration(us));
}

void Scheduler::Loop::Run() {
  int failed_steps = 0;
  bool retry_now = true;  // the first step loads the active runs
  std::vector<TaskEvent> starts;  // kStarted events waiting for company (start_grace)
  TimePoint starts_due{};
  while (true) {
    std::vector<TaskEvent> events;
    bool catch_up = false;
    bool stop = false;
    std::set<std::string> dags_changed;
    {
      std::unique_lock lock(inbox_->mu);
      TimePoint until = next_heartbeat_;
      if (!timers_.empty()) until = std::min(until, timers_.begin()->first);
      if (!starts.empty()) until = std::min(until, starts_due);
      if (retry_now || !dirty_.empty() || !dirty_dags_.empty()) until = clock_.Now();
      const auto deadline = std::chrono::system_clock::now() +
                            std::max<Duration>(until - clock_.Now(), Duration(0));
      inbox_->cv.wait_until(lock, deadline, [&] {
        return inbox_->stop || inbox_->catch_up || !inbox_->events.empty() ||
               !inbox_->dags_changed.empty();
      });
      for (TaskEvent& event : inbox_->events) {
        (event.kind == TaskEvent::Kind::kStarted ? starts : events).push_back(std::move(event));
      }
      inbox_->events.clear();
      catch_up = inbox_->catch_up;
      inbox_->catch_up = false;
      dags_changed.swap(inbox_->dags_changed);
      stop = inbox_->stop;
    }
    const TimePoint now = clock_.Now();
    const bool heartbeat = now >= next_heartbeat_;
    if (heartbeat) {
      // The safety net: the lock, every DAG's paused flag, and the event log, whatever the
      // notifications said. Like Airflow's heartbeat, which lives in the database, it goes stale
      // while the database is unreachable, so health reports the scheduler unhealthy.
      next_heartbeat_ = now + options_.heartbeat;
      if (CheckSchedulerLock() && !fenced_) heartbeat_us_ = Micros(now);
      catch_up = true;
      complete_backfills_ = true;
      // Only DAGs with active runs: a DAG's paused flag matters to nothing else.
      for (const auto& [dag_id, state] : dag_states_) {
        if (!state.running.empty()) dags_changed.insert(dag_id);
        if (!state.queued.empty()) {
          dags_changed.insert(dag_id);
          dirty_dags_.insert(dag_id);  // bounded: see Admit
        }
      }
    }
    if (fenced_) {
      if (stop) break;
      continue;  // writes nothing more; the daemon is stopping
    }
    // A try's start alone is not worth a commit of its own: it waits (start_grace) for the next
    // step, usually the one that records the same try's end, so that a short task costs one
    // commit, not two, and the hop to its downstream task waits for no other commit.
    if (!starts.empty() && events.empty() && starts_due == TimePoint{}) {
      starts_due = now + options_.start_grace;
    }
    const bool timer_due = !timers_.empty() && timers_.begin()->first <= now;
    const bool work = stop || catch_up || !dags_changed.empty() || !events.empty() || retry_now ||
                      !dirty_.empty() || !dirty_dags_.empty() || timer_due ||
                      (!starts.empty() && now >= starts_due);
    if (!work) continue;
    events.insert(events.begin(), std::make_move_iterator(starts.begin()),
                  std::make_move_iterator(starts.end()));
    starts.clear();
    starts_due = TimePoint{};
    const bool ok = Step(std::move(events), catch_up, dags_changed, now);
    if (!deferred_.empty() || !ok) {
      // Not applied yet (a task instance already in the step's batch, or a step that could not
      // read the store): first in line for the next step.
      std::lock_guard lock(inbox_->mu);
      inbox_->events.insert(inbox_->events.begin(), std::make_move_iterator(deferred_.begin()),
                            std::make_move_iterator(deferred_.end()));
      deferred_.clear();
      if (!ok) {
        inbox_->catch_up = inbox_->catch_up || catch_up;
        inbox_->dags_changed.insert(dags_changed.begin(), dags_changed.end());
      }
    }
    retry_now = !stale_.empty() && ok;
    if (ok) {
      failed_steps = 0;
      if (stop) break;
      continue;
    }
    if (stop && ++failed_steps >= 5) {
      Log()->error("stopping with uncommitted task results; their tries are retried after restart");
      break;
    }
    std::this_thread::sleep_for(options_.store_retry);
  }
  Log()->info("scheduler stopped");
}

bool Scheduler::Loop::Step(std::vector<TaskEvent> events, bool catch_up,
                           const std::set<std::string>& dags, TimePoint now) {
  auto unread = [&](const Status& s, std::string_view what) {
    Log()->warn("cannot read {}, retrying error=\"{}\"", what, s.message());
    deferred_.insert(deferred_.end(), std::make_move_iterator(events.begin()),
                     std::make_move_iterator(events.end()));
    return false;
  };
  if (!initialized_) {
    if (Status s = Initialize(); !s.ok()) return unread(s, "the active runs");
  }
  if (catch_up) {
    if (Status s = CatchUp(); !s.ok()) return unread(s, "the event log");
  }
  if (!dags.empty()) {
    if (Status s = RefreshPaused(dags); !s.ok()) return unread(s, "paused flags");
  }
  Batch batch;
  const Status loaded = LoadStaleRuns(now, batch);
  while (!timers_.empty() && timers_.begin()->first <= now) {
    auto [key, index] = timers_.begin()->second;
    timers_.erase(timers_.begin());
    auto it = runs_.find(key);
    if (it == runs_.end()) continue;
    if (index == kAdmission) {
      dirty_dags_.insert(it->second.run().dag_id);
    } else if (index == kRunTimeout) {
      if (stale_.count(key) == 0) TimeOutRun(it->second, now, batch);
    } else {
      it->second.candidates().insert(index);
      dirty_.insert(key);
    }
  }
  for (TaskEvent& event : events) ApplyTaskEvent(std::move(event), batch);
  std::set<std::string> dags_to_admit;
  dags_to_admit.swap(dirty_dags_);
  for (const std::string& dag_id : dags_to_admit) Admit(dag_id, now, batch);
  std::set<int64_t> to_decide;
  to_decide.swap(dirty_);
  for (int64_t key : to_decide) DecideRun(key, now, batch);
  const bool committed = Commit(batch);
  if (complete_backfills_ && committed) {
    // Not worth failing the step for: the next heartbeat tries again.
    auto completed = store_.CompleteEndedBackfills(now);
    complete_backfills_ = !completed.ok();
    if (completed.ok() && *completed > 0) Log()->info("backfills completed count={}", *completed);
  }
  if (!loaded.ok()) {
    Log()->warn("some runs not loaded yet, retrying error=\"{}\"", loaded.message());
    return false;
  }
  return committed;
}

// --- Deciding -------------------------------------------------------------------------------------

void Scheduler::Loop::SetTi(ActiveRun& active, size_t index, TaskInstance after,
                            TiTransition::Kind kind, Batch& batch) {
  TaskChange change{index, kind, active.ti(index)};
  active.Set(index, std::move(after));
  Record(active, change, batch);
}

void Scheduler::Loop::Record(const ActiveRun& active, const TaskChange& change, Batch& batch) {
  const TaskInstance& before = change.before;
  auto [pos, inserted] =
      batch.ti_pos.try_emplace(before.id, batch.transition.task_instances.size());
  if (inserted) {
    TiTransition t;
    t.expect_state = before.state;
    t.expect_try = before.try_number;
    t.expect_epoch = before.owner_epoch;
    batch.transition.task_instances.push_back(std::move(t));
  }
  // A second change of one task instance in a batch is only ever a try that started and ended
  // within it: one kFinish from queued writes both (see TiTransition::Kind::kFinish).
  TiTransition& t = batch.transition.task_instances[pos->second];
  t.kind = change.kind;
  t.after = active.ti(change.index);
  batch.runs.insert(active.run().id);
}

void Scheduler::Loop::SetRun(ActiveRun& active, RunState state, TimePoint now, Batch& batch) {
  const int64_t key = active.run().id;
  auto [pos, inserted] = batch.run_pos.try_emplace(key, batch.transition.runs.size());
  if (inserted) {
    RunTransition t;
    t.expect_state = active.run().state;
    batch.transition.runs.push_back(std::move(t));
  }
  // A run that starts and ends in one batch (all of its tasks `empty`) is one kFinish from
  // queued: kFinish also sets start_date when none is stored.
  RunTransition& t = batch.transition.runs[pos->second];
  t.kind = state == RunState::kRunning ? RunTransition::Kind::kStart : RunTransition::Kind::kFinish;
  DagRun& run = active.run();
  run.state = state;
  run.last_scheduling_decision = now;
  if (state == RunState::kRunning) {
    run.start_date = now;
    ArmRunTimeout(active);
  } else {
    run.end_date = now;
    if (!run.start_date) run.start_date = now;
  }
  t.after = run;
  batch.runs.insert(key);
}

void Scheduler::Loop::ApplyTaskEvent(TaskEvent event, Batch& batch) {
  if (event.kind == TaskEvent::Kind::kFinished) {
    auto flying = in_flight_.find(event.ti_id);
    if (flying != in_flight_.end() && flying->second == event.try_number) in_flight_.erase(flying);
  }
  auto where = ti_index_.find(event.ti_id);
  if (where == ti_index_.end()) return;  // its run is over: a late or duplicate event
  auto [key, index] = where->second;
  if (stale_.count(key) != 0) {
    held_[key].push_back(std::move(event));
    return;
  }
  ActiveRun& active = runs_.at(key);
  const TaskInstance& ti = active.ti(index);
  if (ti.try_number != event.try_number) return;  // fencing: an older try reporting late
  if (InBatch(batch, ti)) {
    const auto& pending = batch.transition.task_instances[batch.ti_pos.at(ti.id)];
    const bool merge = event.kind == TaskEvent::Kind::kFinished &&
                       pending.kind == TiTransition::Kind::kStart;
    if (!merge) {
      deferred_.push_back(std::move(event));
      return;
    }
  }
  if (event.kind == TaskEvent::Kind::kStarted) {
    if (ti.state != TaskState::kQueued) return;
    SetTi(active, index, MarkRunning(ti, event), TiTransition::Kind::kStart, batch);
  } else if (ti.state == TaskState::kRestarting) {
    // Its task instance was cleared while the try ran: whatever the try's outcome, the task
    // runs again.
    Log()->info("task cleared while running, running it again dag={} run={} task={} try={}",
                ti.dag_id, ti.run_id, ti.task_id, ti.try_number);
    SetTi(active, index, Restart(ti, active.dag().tasks[index], event.at),
          TiTransition::Kind::kFinish, batch);
  } else {
    if (ti.state != TaskState::kQueued && ti.state != TaskState::kRunning) return;
    TaskInstance after =
        Finish(ti, active.dag().tasks[index], active.run().logical_date, event.outcome, event.at);
    if (after.state != TaskState::kSuccess) {
      Log()->info("task {} dag={} run={} task={} try={}/{} error=\"{}\"", ToString(after.state),
                  after.dag_id, after.run_id, after.task_id, after.try_number,
                  after.max_tries + 1, event.outcome.error);
    }
    for (const XcomEntry& x : event.outcome.xcom) {
      batch.transition.xcoms.push_back({key, ti.id, x});
    }
    SetTi(active, index, std::move(after), TiTransition::Kind::kFinish, batch);
  }
  batch.events[key].push_back(std::move(event));
  dirty_.insert(key);
}

void Scheduler::Loop::Admit(const std::string& dag_id, TimePoint now, Batch& batch) {
  auto state_it = dag_states_.find(dag_id);
  if (state_it == dag_states_.end() || state_it->second.queued.empty()) return;
  DagState& state = state_it->second;
  const Dag& dag = runs_.at(*state.queued.rbegin()).dag();  // the newest run's version
  AdmissionInput input;
  input.paused = state.paused;
  input.draining = draining_;
  input.running = static_cast<int>(state.running.size());
  input.max_active_runs = dag.max_active_runs;
  // A backfill's runs start within its own max_active_runs too, and not while it is paused or
  // cancelled: per backfill, how many more may start.
  std::map<int64_t, int> backfill_free;
  bool gates_read = false;
  auto free_in = [&](int64_t backfill_id) -> int& {
    auto it = backfill_free.find(backfill_id);
    if (it != backfill_free.end()) return it->second;
    if (state.backfills.count(backfill_id) == 0 && !gates_read) {
      gates_read = true;
      if (auto read = LoadBackfillGates(dag_id, state); !read.ok()) {
        Log()->warn("cannot read backfills, retrying dag={} error=\"{}\"", dag_id,
                    read.status().message());
      }
    }
    int free = 0;
    if (auto gate = state.backfills.find(backfill_id); gate != state.backfills.end()) {
      const auto running = std::count_if(
          state.running.begin(), state.running.end(),
          [&](int64_t key) { return runs_.at(key).run().backfill_id == backfill_id; });
      free = BackfillFreeSlots(gate->second, static_cast<int>(running));
    }
    return backfill_free.emplace(backfill_id, free).first->second;
  };
  // Only as many queued runs as could start: the work does not grow with the queue.
  int due = 0;
  for (int64_t key : state.queued) {
    if (due >= input.max_active_runs - input.running) break;
    if (stale_.count(key) != 0) continue;  // admitted once reloaded
    const DagRun& run = runs_.at(key).run();
    const bool is_due = !run.run_after || *run.run_after <= now;
    if (run.backfill_id) {
      int& free = free_in(*run.backfill_id);
      if (free <= 0) continue;  // the heartbeat, an unpause or a run's end admits it later
      if (is_due) --free;
    }
    input.queued.push_back({key, run.run_after});
    if (is_due) ++due;
  }
  const Admission admission = AdmitRuns(input, now);
  if (admission.next_wakeup) {
    timers_.emplace(*admission.next_wakeup, std::make_pair(*state.queued.begin(), kAdmission));
  }
  for (int64_t key : admission.start) {
    SetRun(runs_.at(key), RunState::kRunning, now, batch);
    state.queued.erase(key);
    state.running.insert(key);
    dirty_.insert(key);
  }
}

StatusOr<bool> Scheduler::Loop::LoadBackfillGates(const std::string& dag_id, DagState& state) {
  auto gates = store_.ListBackfillGates(dag_id);
  if (!gates.ok()) return gates.status();
  bool opened = false;
  std::map<int64_t, BackfillGate> fresh;
  for (const BackfillGate& gate : *gates) {
    auto before = state.backfills.find(gate.id);
    if (before != state.backfills.end() && before->second.is_paused && !gate.is_paused) {
      opened = true;
    }
    fresh.emplace(gate.id, gate);
  }
  state.backfills.swap(fresh);
  return opened;
}

void Scheduler::Loop::DecideRun(int64_t key, TimePoint now, Batch& batch) {
  auto it = runs_.find(key);
  if (it == runs_.end() || stale_.count(key) != 0) return;
  ActiveRun& active = it->second;
  if (dag_states_[active.run().dag_id].paused) return;  // candidates wait for the unpause
  const CandidateDecisions decided =
      DecideCandidates(active, now, epoch_, draining_,
                       [&](const TaskInstance& ti) { return InBatch(batch, ti); });
  for (const TaskChange& change : decided.changes) Record(active, change, batch);
  for (size_t i : decided.to_submit) batch.to_submit.emplace_back(key, i);
  for (const auto& [at, i] : decided.wakeups) timers_.emplace(at, std::make_pair(key, i));
  if (decided.more && !draining_) dirty_.insert(key);
  if (decided.finish) SetRun(active, *decided.finish, now, batch);
}

void Scheduler::Loop::ArmRunTimeout(const ActiveRun& active) {
  const DagRun& run = active.run();
  if (!active.dag().dagrun_timeout || run.state != RunState::kRunning || !run.start_date) return;
  timers_.emplace(*run.start_date + *active.dag().dagrun_timeout,
                  std::make_pair(run.id, kRunTimeout));
}

void Scheduler::Loop::TimeOutRun(ActiveRun& active, TimePoint now, Batch& batch) {
  const DagRun& run = active.run();
  const auto& timeout = active.dag().dagrun_timeout;
  if (run.state != RunState::kRunning || !run.start_date || !timeout) return;
  // A timer armed for an earlier start (the run was cleared and started again) is early.
  if (now < *run.start_date + *timeout) return ArmRunTimeout(active);
  if (batch.run_pos.count(run.id) != 0) {  // already changed in this batch: next step
    timers_.emplace(now, std::make_pair(run.id, kRunTimeout));
    return;
  }
  const double seconds = std::chrono::duration<double>(*timeout).count();
  const std::string reason =
      fmt::format("the run timed out: dagrun_timeout of {:g}s exceeded", seconds);
  Log()->info("run timed out dag={} run={} dagrun_timeout={:g}s", run.dag_id, run.run_id, seconds);
  // As Airflow, every unfinished task instance is skipped, except that a running try is stopped
  // and recorded as failed (Airflow skips it too; its end is a failure, not a skip).
  for (size_t i = 0; i < active.size(); ++i) {
    const TaskInstance& ti = active.ti(i);
    if (IsFinished(ti.state)) continue;
    StopTry(ti, reason);
    TaskInstance after = ti;
    if (ti.state == TaskState::kRunning) {
      after.state = TaskState::kFailed;
      after.end_date = now;
      if (!after.start_date) after.start_date = now;
      after.duration = std::chrono::duration<double>(now - *after.start_date).count();
      after.next_retry_at.reset();
      Log()->info("task failed dag={} run={} task={} try={} error=\"{}\"", ti.dag_id, ti.run_id,
                  ti.task_id, ti.try_number, reason);
      SetTi(active, i, std::move(after), TiTransition::Kind::kFinish, batch);
    } else {
      SetTi(active, i, MarkUnrunnable(std::move(after), TaskState::kSkipped, now),
            TiTransition::Kind::kSettle, batch);
    }
  }
  active.candidates().clear();
  SetRun(active, RunState::kFailed, now, batch);
}

// --- Committing -----------------------------------------------------------------------------------

bool Scheduler::Loop::Commit(Batch& batch) {
  if (batch.transition.empty()) return true;
  auto result = TimedApply(batch.transition);
  if (result.ok()) {
    const std::set<int64_t> conflicts(result->conflicts.begin(), result->conflicts.end());
    for (int64_t key : conflicts) {
      Log()->info("run changed by another writer, reloading dag={} run_key={}",
                  runs_.at(key).run().dag_id, key);
      MarkStale(key, std::move(batch.events[key]));
    }
    Adopt(batch, conflicts);
    return true;
  }
  const Status& status = result.status();
  if (status.code() == StatusCode::kFailedPrecondition) {
    Fence(status);
    return false;
  }
  if (!Retryable(status)) return CommitRunByRun(batch);
  Log()->error("commit failed, will retry error=\"{}\" runs={}", status.message(),
               batch.runs.size());
  // The cache of these runs holds changes the store may not have: reload them once it is back.
  for (int64_t key : batch.runs) MarkStale(key, std::move(batch.events[key]));
  return false;
}

bool Scheduler::Loop::CommitRunByRun(Batch& batch) {
  std::set<int64_t> not_written;
  std::vector<int64_t> set_aside;
  bool all_ok = true;
  for (int64_t key : batch.runs) {
    Transition part;
    for (const RunTransition& t : batch.transition.runs) {
      if (t.after.id == key) part.runs.push_back(t);
    }
    for (const TiTransition& t : batch.transition.task_instances) {
      if (t.after.run_id_key == key) part.task_instances.push_back(t);
    }
    for (const Transition::Xcom& x : batch.transition.xcoms) {
      if (x.run_key == key) part.xcoms.push_back(x);
    }
    auto result = TimedApply(part);
    if (result.ok() && result->conflicts.empty()) continue;
    not_written.insert(key);
    if (result.ok()) {
      MarkStale(key, std::move(batch.events[key]));
    } else if (Retryable(result.status())) {
      MarkStale(key, std::move(batch.events[key]));
      all_ok = false;
    } else if (result.status().code() == StatusCode::kFailedPrecondition) {
      Fence(result.status());
      return false;
    } else {
      // Deciding it again would be rejected again: it is set aside until another writer
      // changes it or dagd restarts (its running tries are then recovered as orphans).
      Log()->critical(
          "transition rejected by the store, run set aside dag={} run_key={} error=\"{}\"",
          runs_.at(key).run().dag_id, key, result.status().message());
      set_aside.push_back(key);
    }
  }
  Adopt(batch, not_written);
  for (int64_t key : set_aside) Remove(key);
  return all_ok;
}

StatusOr<ApplyResult> Scheduler::Loop::TimedApply(const Transition& t) {
  const auto began = std::chrono::steady_clock::now();
  auto result = store_.Apply(t);
  metrics_.Commit(std::chrono::steady_clock::now() - began);
  return result;
}

void Scheduler::Loop::Measure(const Batch& batch, const std::set<int64_t>& not_written) {
  for (const TiTransition& t : batch.transition.task_instances) {
    if (not_written.count(t.after.run_id_key) != 0) continue;
    // A try that started and ended within the batch shows as running first in the event log.
    if (t.kind == TiTransition::Kind::kFinish && t.expect_state == TaskState::kQueued) {
      metrics_.TaskEntered(TaskState::kRunning);
    }
    metrics_.TaskEntered(t.after.state);
  }
  for (const RunTransition& t : batch.transition.runs) {
    if (not_written.count(t.after.id) == 0) metrics_.RunEntered(t.after.state);
  }
  // The lags of the tries whose start this batch recorded: O(in-degree) per start.
  for (const auto& [key, events] : batch.events) {
    if (not_written.count(key) != 0) continue;
    for (const TaskEvent& event : events) {
      if (event.kind != TaskEvent::Kind::kStarted) continue;
      auto where = ti_index_.find(event.ti_id);
      if (where == ti_index_.end()) continue;
      const ActiveRun& active = runs_.at(where->second.first);
      const size_t index = where->second.second;
      const TaskInstance& ti = active.ti(index);
      if (ti.queued_when) {
        metrics_.QueuedToRunning(std::max(0.0, SecondsBetween(*ti.queued_when, event.at)));
      }
      std::optional<TimePoint> upstream_end;
      for (size_t u : active.dag().upstream[index]) {
        const auto& end = active.ti(u).end_date;
        if (end && (!upstream_end || *end > *upstream_end)) upstream_end = end;
      }
      if (upstream_end) {
        metrics_.UpstreamToStart(std::max(0.0, SecondsBetween(*upstream_end, event.at)));
      }
    }
  }
}

void Scheduler::Loop::Adopt(Batch& batch, const std::set<int64_t>& not_written) {
  Measure(batch, not_written);
  for (auto [key, index] : batch.to_submit) {
    if (not_written.count(key) != 0) continue;
    Submit(runs_.at(key), index);
  }
  for (int64_t key : batch.runs) {
    if (not_written.count(key) != 0) continue;
    const ActiveRun& active = runs_.at(key);
    if (!IsTerminal(active.run().state)) continue;
    Log()->info("run {} dag={} run={}", ToString(active.run().state), active.run().dag_id,
                active.run().run_id);
    dirty_dags_.insert(active.run().dag_id);  // a queued run held back by max_active_runs
    if (active.run().backfill_id) complete_backfills_ = true;
    Remove(key);
  }
}

void Scheduler::Loop::Submit(const ActiveRun& active, size_t task_index) {
  const TaskInstance& ti = active.ti(task_index);
  TaskAssignment assignment;
  assignment.dag = active.dag_ptr();
  assignment.task_index = task_index;
  assignment.run = active.run();
  assignment.ti_id = ti.id;
  assignment.try_number = ti.try_number;
  assignment.max_tries = ti.max_tries;
  assignment.log_path =
      TryLogPath(options_.logs_root, ti.dag_id, ti.run_id, ti.task_id, ti.try_number);
  in_flight_[ti.id] = ti.try_number;
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

bool Scheduler::Loop::CheckSchedulerLock() {
  // The lock lives on a database session: after a database restart it is taken again, which
  // succeeds only if no other process held the lease meanwhile.
  Status s = store_.AcquireSchedulerLock();
  if (s.code() == StatusCode::kFailedPrecondition) Fence(s);
  return s.ok();
}

void Scheduler::Loop::Fence(const Status& why) {
  if (fenced_.exchange(true)) return;
  draining_ = true;
  executor_.StopAccepting();
  Log()->critical("another scheduler took over this database; writing nothing more, stopping "
                  "error=\"{}\"",
                  why.message());
  if (options_.on_fenced) options_.on_fenced();
}

}  // namespace dagd::scheduler
