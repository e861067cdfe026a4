// The rows of a new run, as every creator of runs builds them (a trigger over the API, the
// timetable, a backfill): the run of a DAG version and one task instance per task, state none.
#pragma once

#include <vector>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/timetable.hpp"

namespace dagd::scheduler {

// One task instance per task of `dag`, for `run` (its dag_id, run_id and version).
std::vector<TaskInstance> NewTaskInstances(const Dag& dag, const DagRun& run);

// A queued run of `dag` (version `version_number`) for a slot of its timetable, queued at `now`,
// with Airflow's run id "<run_type>__<logical date>" ("scheduled__2026-12-02T10:00:00+00:00")
// and triggered_by "timetable" (scheduled) or "backfill".
DagRun NewTimetableRun(const Dag& dag, int version_number, const RunSlot& slot, RunType type,
                       TimePoint now);

}  // namespace dagd::scheduler
