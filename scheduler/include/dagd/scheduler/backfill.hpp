// Backfills (Airflow 3's /api/v2/backfills): the records the store keeps and the API shows, and
// the pure decisions a backfill takes per logical date (reprocess_behavior).
//
// A backfill owns one run per logical date of its DAG's timetable in [from_date, to_date]
// (run_type backfill, run id backfill__<logical date>). A date that already has a run keeps it
// unless reprocess_behavior says to re-run it: "none" never, "failed" when it failed,
// "completed" when it ended (success or failed); a run not ended ("in flight") is never touched.
// Its runs start in sort order (oldest first, newest first with run_backwards) within its own
// max_active_runs and the DAG's; pausing stops new ones from starting; cancelling fails its
// queued runs and completes it. It is completed (completed_at) once all its runs ended.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/states.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::scheduler {

enum class ReprocessBehavior { kNone, kFailed, kCompleted };
std::string_view ToString(ReprocessBehavior b);  // "none" | "failed" | "completed"
std::optional<ReprocessBehavior> ParseReprocessBehavior(std::string_view text);

// Airflow's BackfillDagRunExceptionReason: why a date got no run of the backfill.
inline constexpr std::string_view kInFlight = "in flight";
inline constexpr std::string_view kAlreadyExists = "already exists";

// Why a date whose existing run is in `state` gets no run of the backfill; none when the run is
// to be re-run (cleared and queued again).
std::optional<std::string_view> NoRunReason(RunState state, ReprocessBehavior behavior);

struct BackfillRecord {
  int64_t id = 0;
  std::string dag_id;
  TimePoint from_date;
  TimePoint to_date;
  Json dag_run_conf = Json::object();
  bool is_paused = false;
  ReprocessBehavior reprocess_behavior = ReprocessBehavior::kNone;
  int max_active_runs = 10;
  TimePoint created_at;
  std::optional<TimePoint> completed_at;
  TimePoint updated_at;
  std::optional<std::string> triggering_user_name;
};

// What the scheduler loop needs to admit a backfill's queued runs.
struct BackfillGate {
  int64_t id = 0;
  bool is_paused = false;
  bool completed = false;
  int max_active_runs = 10;
};

// How many more of a backfill's runs may start, `running` of them running: none while it is
// paused or over, else what its own max_active_runs leaves (never below 0). The loop admits by
// it and "why not running" explains by it.
int BackfillFreeSlots(const BackfillGate& gate, int running);

// A new backfill and, in sort order, one entry per logical date: the run to create when the
// date has none (NewTimetableRun, backfill_id left 0) with its task instances.
struct NewBackfill {
  BackfillRecord backfill;            // id, created_at, updated_at, completed_at are the store's
  bool run_on_latest_version = true;  // a re-run moves to `version_number` when its tasks match
  int version_number = 0;             // the DAG's latest version
  struct Date {
    DagRun run;
    std::vector<TaskInstance> tis;  // their max_tries are the tasks' retries
  };
  std::vector<Date> dates;
};

// POST /backfills and /backfills/dry_run (Airflow's BackfillPostBody).
struct BackfillRequest {
  std::string dag_id;
  TimePoint from_date;
  TimePoint to_date;
  bool run_backwards = false;
  Json dag_run_conf = Json::object();
  ReprocessBehavior reprocess_behavior = ReprocessBehavior::kNone;
  int max_active_runs = 10;
  bool run_on_latest_version = true;
  std::optional<std::string> triggering_user_name;
};

struct BackfillQuery {
  Page page;  // order_by: id
  std::string dag_id;
};

}  // namespace dagd::scheduler
