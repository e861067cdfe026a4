#include "dagd/scheduler/schedule_plan.hpp"

namespace dagd::scheduler {

SchedulePlan PlanScheduledRuns(const Dag& dag, const ScheduleState& state, TimePoint now,
                               size_t max_create) {
  SchedulePlan plan;
  if (!dag.timetable) return plan;
  std::optional<TimePoint> last = state.last_logical_date;
  int active = state.active_runs;
  while (true) {
    std::optional<RunSlot> slot =
        dag.timetable->NextAfter(last, now, dag.catchup, dag.start_date, dag.end_date);
    if (!slot) return plan;
    const bool due = slot->run_after <= now;
    if (!due || state.paused || plan.create.size() >= max_create) {
      plan.next = slot;
      return plan;
    }
    if (active >= dag.max_active_runs) {
      plan.next = slot;
      plan.blocked = true;
      return plan;
    }
    last = slot->logical_date;
    ++active;
    plan.create.push_back(*std::move(slot));
  }
}

}  // namespace dagd::scheduler
