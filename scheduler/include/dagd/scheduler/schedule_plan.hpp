// Which scheduled runs of a DAG to create now (pure: no store, no clock).
//
// Runs are created oldest first, each slot of the timetable once: the next slot always follows
// the latest scheduled run's logical date (Timetable::NextAfter, with the DAG's catchup,
// start_date and end_date). A slot is created once it is due (run_after <= now) while the DAG is
// not paused and has fewer than max_active_runs active runs, as Airflow's scheduler does. What
// is not created is `next`: what next_dagrun_* show, and when to plan again.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/time.hpp"
#include "dagd/scheduler/timetable.hpp"

namespace dagd::scheduler {

struct ScheduleState {
  std::optional<TimePoint> last_logical_date;  // of the DAG's latest scheduled run
  int active_runs = 0;                         // queued and running, backfills aside
  bool paused = false;
};

struct SchedulePlan {
  std::vector<RunSlot> create;  // due now, oldest first
  // The first slot not created; none when the timetable has no run left.
  std::optional<RunSlot> next;
  // `next` is due but max_active_runs is reached: plan again when one of its runs ends.
  bool blocked = false;
};

// At most `max_create` slots are returned; when more are due, `next` is due too and not blocked:
// plan again at once.
SchedulePlan PlanScheduledRuns(const Dag& dag, const ScheduleState& state, TimePoint now,
                               size_t max_create);

}  // namespace dagd::scheduler
