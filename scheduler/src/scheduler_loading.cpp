// The store → cache direction of the scheduling loop: catching up with the event log, loading
// and reloading runs, and recovering tries that no live try of this process owns.
#include <algorithm>

#include "dagd/scheduler/decisions.hpp"
#include "logger.hpp"
#include "scheduler_loop.hpp"

namespace dagd::scheduler {
namespace {

constexpr int kEventPage = 1000;

}  // namespace

Status Scheduler::Loop::CatchUp() {
  // Only other writers' events matter: this loop's own commits are already in its cache. Each
  // one touches one run: the work is proportional to what changed, not to what is active. They
  // are counted in the metrics here, the loop's own where they are committed (Measure).
  while (true) {
    auto page = store_.ReadOtherEvents(watermark_, kEventPage, epoch_);
    if (!page.ok()) return page.status();
    watermark_ = std::max(watermark_, page->last_seq);
    for (const EventRecord& e : page->events) {
      if (e.kind == "dag_run") {
        if (auto state = ParseRunState(e.state)) metrics_.RunEntered(*state);
      } else if (auto state = ParseTaskState(e.state.empty() ? "none" : e.state)) {
        metrics_.TaskEntered(*state);
      }
      const bool cached = runs_.count(e.run_key) != 0;
      const bool started =
          e.kind == "dag_run" && (e.state == "queued" || e.state == "running");
      if (cached || started) stale_.insert(e.run_key);
    }
    if (page->events.size() < static_cast<size_t>(kEventPage)) return Status::Ok();
  }
}

Status Scheduler::Loop::RefreshPaused(const std::set<std::string>& dag_ids) {
  for (const std::string& dag_id : dag_ids) {
    auto state = dag_states_.find(dag_id);
    if (state == dag_states_.end()) continue;  // no active run: read when one is loaded
    auto record = store_.GetDag(dag_id);
    if (record.status().code() == StatusCode::kNotFound) {
      // Deleted (StateStore::DeleteDag refuses while a run is active): an id uploaded again
      // starts afresh, its paused flag read with its first run.
      if (state->second.queued.empty() && state->second.running.empty()) dag_states_.erase(state);
      continue;
    }
    if (!record.ok()) return record.status();
    if (!state->second.backfills.empty()) {
      auto opened = LoadBackfillGates(dag_id, state->second);
      if (!opened.ok()) return opened.status();
      if (*opened) dirty_dags_.insert(dag_id);
    }
    if (state->second.paused == record->is_paused) continue;
    state->second.paused = record->is_paused;
    Log()->info("DAG {} dag={}", record->is_paused ? "paused" : "unpaused", dag_id);
    if (record->is_paused) continue;
    dirty_dags_.insert(dag_id);
    dirty_.insert(state->second.running.begin(), state->second.running.end());
  }
  return Status::Ok();
}

StatusOr<std::optional<ActiveRun>> Scheduler::Loop::FromRows(RunRows rows) {
  DagRun& run = rows.run;
  if (IsTerminal(run.state)) return std::optional<ActiveRun>();
  // A DAG seen for the first time: its paused flag came with the run (no round trip per DAG in
  // the loop); later changes arrive through DagChanged and the heartbeat.
  if (dag_states_.count(run.dag_id) == 0) dag_states_[run.dag_id].paused = rows.dag_paused;
  auto dag = GetDag(run.dag_id, run.version_number);
  if (!dag.ok()) {
    Log()->error("run cannot be scheduled dag={} run={} error=\"{}\"", run.dag_id, run.run_id,
                 dag.status().message());
    if (dag.status().code() == StatusCode::kUnavailable) return dag.status();
    return std::optional<ActiveRun>();
  }
  std::vector<TaskInstance> by_task((*dag)->tasks.size());
  std::vector<bool> seen(by_task.size(), false);
  for (TaskInstance& ti : rows.task_instances) {
    auto index = (*dag)->IndexOf(ti.task_id);
    if (!index) continue;  // a task instance of a task this version does not have
    seen[*index] = true;
    by_task[*index] = std::move(ti);
  }
  if (std::find(seen.begin(), seen.end(), false) != seen.end()) {
    Log()->error("run cannot be scheduled: task instances missing dag={} run={}", run.dag_id,
                 run.run_id);
    return std::optional<ActiveRun>();
  }
  return std::optional<ActiveRun>(ActiveRun(std::move(run), *dag, std::move(by_task)));
}

bool Scheduler::Loop::IsOrphan(const TaskInstance& ti, const std::vector<TaskEvent>& held) const {
  if (ti.state != TaskState::kQueued && ti.state != TaskState::kRunning &&
      ti.state != TaskState::kRestarting) {
    return false;
  }
  if (ti.owner_epoch != epoch_) return true;  // queued by a process that is gone
  if (auto flying = in_flight_.find(ti.id);
      flying != in_flight_.end() && flying->second == ti.try_number) {
    return false;
  }
  // Its try ended here but the result is not committed yet: it is applied after the reload.
  return std::none_of(held.begin(), held.end(), [&](const TaskEvent& e) {
    return e.ti_id == ti.id && e.try_number == ti.try_number;
  });
}

Status Scheduler::Loop::StopOrphans(const ActiveRun& active) {
  // A cut-off bash try may still be running (its daemon was killed, not its process group): it
  // is stopped before its retry can be queued, or two tries of one task would run side by side.
  // Until it can be stopped the whole run waits; the next attempt tries again.
  const auto held = held_.find(active.run().id);
  const std::vector<TaskEvent> none;
  for (const TaskInstance& ti : active.tis()) {
    const bool running = ti.state == TaskState::kRunning || ti.state == TaskState::kRestarting;
    if (!running || !ti.process) continue;
    if (!IsOrphan(ti, held == held_.end() ? none : held->second)) continue;
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
        "stopped a try left running by a previous process dag={} run={} task={} try={} pgid={}",
        ti.dag_id, ti.run_id, ti.task_id, ti.try_number, ti.process->pgid);
  }
  return Status::Ok();
}

Status Scheduler::Loop::LoadStaleRuns(TimePoint now, Batch& batch) {
  if (stale_.empty()) return Status::Ok();
  const std::vector<int64_t> keys(stale_.begin(), stale_.end());
  auto loaded = store_.LoadRuns(keys);
  if (!loaded.ok()) return loaded.status();
  std::set<int64_t> gone(keys.begin(), keys.end());
  Status result = Status::Ok();
  for (RunRows& rows : *loaded) {
    const int64_t key = rows.run.id;
    gone.erase(key);
    auto active = FromRows(std::move(rows));
    if (!active.ok()) {
      result = active.status();  // retried at the next step
      continue;
    }
    if (!active->has_value()) {  // over, or never schedulable
      gone.insert(key);
      continue;
    }
    if (Status s = StopOrphans(**active); !s.ok()) {
      result = s;
      continue;
    }
    stale_.erase(key);
    Insert(std::move(**active), now, batch);
  }
  for (int64_t key : gone) {
    if (auto it = runs_.find(key); it != runs_.end()) {
      // Ended by another writer (a user marked it): what it still runs is stopped.
      for (const TaskInstance& ti : it->second.tis()) StopTry(ti, "its run ended");
      Remove(key);
    }
    stale_.erase(key);
    held_.erase(key);
  }
  return result;
}

void Scheduler::Loop::Account(const ActiveRun& active, int delta) {
  DagState& state = dag_states_[active.run().dag_id];
  const int64_t key = active.run().id;
  auto& set = active.run().state == RunState::kQueued ? state.queued : state.running;
  if (delta > 0) {
    set.insert(key);
  } else {
    set.erase(key);
  }
}

void Scheduler::Loop::Insert(ActiveRun active, TimePoint now, Batch& batch) {
  const int64_t key = active.run().id;
  if (auto old = runs_.find(key); old != runs_.end()) {
    Account(old->second, -1);
    if (old->second.run().version_number != active.run().version_number) {
      // Moved to another DAG version (a clear with run_on_latest_version): the task instances
      // of tasks it no longer has are out of the cache; what they still run is stopped.
      std::set<std::string> kept;
      for (const TaskInstance& ti : active.tis()) kept.insert(ti.id);
      for (const TaskInstance& ti : old->second.tis()) {
        if (kept.count(ti.id) != 0) continue;
        StopTry(ti, "its task is not in the run's new DAG version");
        ti_index_.erase(ti.id);
      }
    }
  }
  Account(active, +1);
  for (size_t i = 0; i < active.size(); ++i) ti_index_[active.ti(i).id] = {key, i};
  if (active.run().state == RunState::kQueued) {
    dirty_dags_.insert(active.run().dag_id);
  } else {
    dirty_.insert(key);
  }
  ActiveRun& cached = runs_.insert_or_assign(key, std::move(active)).first->second;
  ArmRunTimeout(cached);  // from the stored start_date: a restart does not extend it
  std::vector<TaskEvent> held;
  if (auto it = held_.find(key); it != held_.end()) {
    held = std::move(it->second);
    held_.erase(it);
  }
  for (size_t i = 0; i < cached.size(); ++i) {
    const TaskInstance& ti = cached.ti(i);
    // A try whose task instance another writer finished (a user marked it) or cleared is
    // stopped; a cleared one runs again once its try is over (ApplyTaskEvent, or below).
    if (IsFinished(ti.state)) {
      StopTry(ti, "its task instance was marked " + std::string(ToString(ti.state)));
    } else if (ti.state == TaskState::kRestarting || !IsTryInProgress(ti.state)) {
      StopTry(ti, "its task instance was cleared");
    }
    if (!IsOrphan(ti, held)) continue;
    if (ti.state == TaskState::kRestarting) {
      Log()->info("task cleared while running, its try is over, running it again dag={} run={} "
                  "task={} try={}",
                  ti.dag_id, ti.run_id, ti.task_id, ti.try_number);
      SetTi(cached, i, Restart(ti, cached.dag().tasks[i], now), TiTransition::Kind::kFinish,
            batch);
      continue;
    }
    Log()->warn("task recovered: no live try owns it dag={} run={} task={} try={} state={}",
                ti.dag_id, ti.run_id, ti.task_id, ti.try_number, ToString(ti.state));
    SetTi(cached, i, RecoverOrphan(ti, now), TiTransition::Kind::kFinish, batch);
  }
  for (TaskEvent& event : held) ApplyTaskEvent(std::move(event), batch);
}

void Scheduler::Loop::Remove(int64_t key) {
  auto it = runs_.find(key);
  if (it == runs_.end()) return;
  Account(it->second, -1);
  dirty_dags_.insert(it->second.run().dag_id);  // a queued run may take its place
  if (on_run_ended_) on_run_ended_();           // so may a scheduled run not yet created
  for (const TaskInstance& ti : it->second.tis()) ti_index_.erase(ti.id);
  runs_.erase(it);
  stale_.erase(key);
  held_.erase(key);
  dirty_.erase(key);
}

void Scheduler::Loop::StopTry(const TaskInstance& ti, const std::string& why) {
  auto flying = in_flight_.find(ti.id);
  if (flying == in_flight_.end()) return;
  const int try_number = flying->second;
  Log()->info("stopping a try: {} dag={} run={} task={} try={}", why, ti.dag_id, ti.run_id,
              ti.task_id, try_number);
  // A try that had not started is dropped without events: nothing will report it.
  if (!executor_.StopTry(ti.id, try_number, why)) in_flight_.erase(flying);
}

void Scheduler::Loop::MarkStale(int64_t key, std::vector<TaskEvent> events) {
  stale_.insert(key);
  auto& held = held_[key];
  held.insert(held.end(), std::make_move_iterator(events.begin()),
              std::make_move_iterator(events.end()));
}

}  // namespace dagd::scheduler
