// SchedulerService's backfills: a request checked as Airflow's _create_backfill and _do_dry_run
// check it, its logical dates from the DAG's timetable (Airflow's _get_info_list), and the
// store's writes; the scheduler loop is told so that it admits or holds the runs at once.
#include <algorithm>
#include <map>
#include <string>

#include "dagd/scheduler/new_run.hpp"
#include "dagd/scheduler/scheduler_service.hpp"
#include "for_client.hpp"
#include "logger.hpp"

namespace dagd::scheduler {

namespace {

// A backfill's dates are written in one transaction and its runs held by the scheduler: a
// request for more is refused rather than left to exhaust the daemon.
constexpr size_t kMaxBackfillRuns = 1000;

}  // namespace

StatusOr<NewBackfill> SchedulerService::PlanBackfill(const BackfillRequest& request, bool dry_run) {
  auto details = GetDag(request.dag_id);
  if (!details.ok()) {
    if (details.status().code() == StatusCode::kNotFound) {
      return Status::NotFound("Could not find dag " + request.dag_id);
    }
    return details.status();
  }
  const Dag& dag = *details->dag;
  const Timetable& timetable = *dag.timetable;
  // Airflow's periodic timetables: not a null schedule nor @once.
  if (!timetable.Periodic() || timetable.Summary() == "@once") {
    return Status::InvalidArgument(request.dag_id +
                                   " has a non-periodic schedule that does not support backfills");
  }
  if (!dry_run) {
    if (const size_t size = request.dag_run_conf.dump().size(); size > options_.max_conf_bytes) {
      return Status::InvalidArgument(
          "dag_run_conf is " + std::to_string(size) + " bytes of JSON; the limit is " +
          std::to_string(options_.max_conf_bytes) + " (--max-conf-bytes)");
    }
  }
  if (request.from_date > request.to_date) {
    return Status::InvalidArgument("from_date (" + FormatIsoformat(request.from_date) +
                                   ") must not be after to_date (" + FormatIsoformat(request.to_date) +
                                   ").");
  }
  const TimePoint now = clock_.Now();
  if (request.from_date >= now && request.to_date >= now) {
    return Status::InvalidArgument("Backfill cannot be executed for future dates.");
  }
  if (request.max_active_runs < 1) {
    return Status::InvalidArgument("max_active_runs must be at least 1; a backfill with " +
                                   std::to_string(request.max_active_runs) +
                                   " would never start a run");
  }

  // Each slot whose logical date lies in [from_date, to_date] and whose data interval has ended.
  std::vector<RunSlot> slots;
  TimePoint after = request.from_date - std::chrono::microseconds(1);
  for (bool more = true; more;) {
    const std::vector<RunSlot> next = timetable.Upcoming(after, 256, dag.start_date, dag.end_date);
    if (next.empty()) break;
    for (const RunSlot& slot : next) {
      if (slot.logical_date > request.to_date) {
        more = false;
        break;
      }
      if (slot.logical_date < request.from_date || slot.data_interval_end >= now) continue;
      if (slots.size() == kMaxBackfillRuns) {
        return Status::InvalidArgument(
            "The range holds more than " + std::to_string(kMaxBackfillRuns) +
            " runs of this DAG's schedule; backfill it in several smaller ranges");
      }
      slots.push_back(slot);
    }
    after = next.back().run_after;
  }
  if (request.run_backwards) std::reverse(slots.begin(), slots.end());

  NewBackfill plan;
  plan.backfill.dag_id = request.dag_id;
  plan.backfill.from_date = request.from_date;
  plan.backfill.to_date = request.to_date;
  plan.backfill.dag_run_conf = request.dag_run_conf;
  plan.backfill.reprocess_behavior = request.reprocess_behavior;
  plan.backfill.max_active_runs = request.max_active_runs;
  plan.backfill.triggering_user_name = request.triggering_user_name;
  plan.run_on_latest_version = request.run_on_latest_version;
  plan.version_number = details->record.latest_version;
  for (const RunSlot& slot : slots) {
    NewBackfill::Date date;
    date.run = NewTimetableRun(dag, plan.version_number, slot, RunType::kBackfill, now);
    date.run.conf = request.dag_run_conf;
    date.tis = NewTaskInstances(dag, date.run);
    plan.dates.push_back(std::move(date));
  }
  return plan;
}

StatusOr<BackfillRecord> SchedulerService::CreateBackfill(const BackfillRequest& request) {
  auto plan = PlanBackfill(request, false);
  if (!plan.ok()) return plan.status();
  if (plan->dates.empty()) {
    return Status::InvalidArgument("No runs to create for Dag " + request.dag_id +
                                   ": no logical date of its schedule in [from_date, to_date] "
                                   "has passed");
  }
  auto created = ForClient(store_.CreateBackfill(*plan, clock_.Now()), "backfill");
  if (!created.ok()) return created.status();
  Log()->info("backfill created dag={} backfill={} dates={}", request.dag_id, created->id,
              plan->dates.size());
  scheduler_.Wake();
  return created;
}

StatusOr<std::vector<TimePoint>> SchedulerService::DryRunBackfill(const BackfillRequest& request) {
  auto plan = PlanBackfill(request, true);
  if (!plan.ok()) return plan.status();
  std::vector<TimePoint> dates;
  for (const auto& date : plan->dates) dates.push_back(*date.run.logical_date);
  auto existing = ForClient(store_.RunStatesAt(request.dag_id, dates), "backfill");
  if (!existing.ok()) return existing.status();
  std::map<TimePoint, RunState> state_at(existing->begin(), existing->end());
  std::vector<TimePoint> out;
  for (TimePoint date : dates) {
    auto it = state_at.find(date);
    if (it == state_at.end() || !NoRunReason(it->second, request.reprocess_behavior)) {
      out.push_back(date);
    }
  }
  return out;
}

StatusOr<Listing<BackfillRecord>> SchedulerService::ListBackfills(const BackfillQuery& query) {
  return ForClient(store_.ListBackfills(query), "backfill listing");
}

StatusOr<BackfillRecord> SchedulerService::GetBackfill(int64_t id) {
  return ForClient(store_.GetBackfill(id), "backfill lookup");
}

StatusOr<BackfillRecord> SchedulerService::SetBackfillPaused(int64_t id, bool paused) {
  auto backfill = ForClient(store_.SetBackfillPaused(id, paused, clock_.Now()), "backfill");
  if (backfill.ok()) scheduler_.DagChanged(backfill->dag_id);
  return backfill;
}

StatusOr<BackfillRecord> SchedulerService::CancelBackfill(int64_t id) {
  auto backfill = ForClient(store_.CancelBackfill(id, clock_.Now()), "backfill");
  if (backfill.ok()) {
    Log()->info("backfill cancelled dag={} backfill={}", backfill->dag_id, id);
    scheduler_.DagChanged(backfill->dag_id);
  }
  return backfill;
}

}  // namespace dagd::scheduler
