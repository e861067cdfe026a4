#include "scheduled_runs.hpp"

#include <algorithm>
#include <set>

#include "dagd/scheduler/new_run.hpp"
#include "dagd/scheduler/schedule_plan.hpp"
#include "logger.hpp"

namespace dagd::scheduler {

namespace {

// A round creates at most this many runs per DAG, then plans again at once: a catchup of a
// minutely DAG over a long downtime does not hold the round (and other DAGs) for long.
constexpr size_t kMaxCreatePerRound = 64;
// How soon a round that could not read or write the store is tried again.
constexpr std::chrono::seconds kStoreRetry{1};

}  // namespace

ScheduledRuns::ScheduledRuns(StateStore& store, const Clock& clock, DagLookup dags,
                             std::function<void()> wake_loop, std::chrono::milliseconds heartbeat)
    : store_(store),
      clock_(clock),
      dags_(std::move(dags)),
      wake_loop_(std::move(wake_loop)),
      heartbeat_(heartbeat) {}

ScheduledRuns::~ScheduledRuns() { Stop(); }

void ScheduledRuns::Start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

void ScheduledRuns::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void ScheduledRuns::Poke() {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
  }
  cv_.notify_one();
}

void ScheduledRuns::RunEnded() {
  if (blocked_.load(std::memory_order_relaxed)) Poke();
}

void ScheduledRuns::Run() {
  while (true) {
    const TimePoint next = Round(clock_.Now());
    // The wait is real time: a clock that jumps is read again at least every heartbeat.
    const auto wait = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     next - clock_.Now()),
                                 std::chrono::milliseconds(0), heartbeat_);
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, wait, [this] { return poked_ || stop_; });
    if (stop_) return;
    poked_ = false;
  }
}

TimePoint ScheduledRuns::Round(TimePoint now) {
  TimePoint next_round = now + heartbeat_;
  auto scheduled = store_.ListScheduledDags();
  if (!scheduled.ok()) {
    Log()->warn("scheduled runs: cannot read the DAGs, retrying error=\"{}\"",
                scheduled.status().message());
    return now + kStoreRetry;
  }
  bool any_blocked = false;
  bool created_any = false;
  std::set<std::string> seen;
  for (const ScheduledDag& entry : *scheduled) {
    const DagRecord& record = entry.record;
    seen.insert(record.dag_id);
    auto dag = dags_(record.dag_id, record.latest_version);
    if (!dag.ok()) {
      Log()->warn("scheduled runs: cannot read DAG dag={} version={} error=\"{}\"", record.dag_id,
                  record.latest_version, dag.status().message());
      continue;
    }
    ScheduleState state{entry.last_scheduled_logical_date, entry.active_runs, record.is_paused};
    if (auto taken = taken_.find(record.dag_id);
        taken != taken_.end() && (!state.last_logical_date || *state.last_logical_date < taken->second)) {
      state.last_logical_date = taken->second;
    }
    SchedulePlan plan = PlanScheduledRuns(**dag, state, now, kMaxCreatePerRound);
    for (const RunSlot& slot : plan.create) {
      DagRun run = NewTimetableRun(**dag, record.latest_version, slot, RunType::kScheduled, now);
      std::vector<TaskInstance> tis = NewTaskInstances(**dag, run);
      auto created = store_.CreateRun(run, tis);
      if (created.ok()) {
        created_any = true;
        Log()->info("scheduled run created dag={} run={} run_after={}", run.dag_id, run.run_id,
                    FormatRfc3339(slot.run_after));
      } else if (created.status().code() == StatusCode::kAlreadyExists) {
        // Created before (a restart, a second process) or the date is another run's.
        Log()->info("scheduled run not created dag={} run={} reason=\"{}\"", run.dag_id,
                    run.run_id, created.status().message());
        taken_[record.dag_id] = slot.logical_date;
      } else {
        Log()->warn("scheduled run not created, retrying dag={} run={} error=\"{}\"", run.dag_id,
                    run.run_id, created.status().message());
        plan.next = slot;
        next_round = std::min(next_round, now + kStoreRetry);
        break;
      }
    }
    if (plan.next != record.next_dagrun) {
      if (Status set = store_.SetNextDagRun(record.dag_id, plan.next); !set.ok()) {
        Log()->warn("scheduled runs: cannot record the next run dag={} error=\"{}\"",
                    record.dag_id, set.message());
      }
    }
    if (plan.blocked) {
      any_blocked = true;
    } else if (plan.next && !record.is_paused) {
      next_round = std::min(next_round, plan.next->run_after);
    }
  }
  std::erase_if(taken_, [&](const auto& entry) { return seen.count(entry.first) == 0; });
  blocked_.store(any_blocked, std::memory_order_relaxed);
  if (created_any) wake_loop_();
  return next_round;
}

}  // namespace dagd::scheduler
