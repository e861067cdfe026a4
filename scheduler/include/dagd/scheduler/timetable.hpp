// A DAG's timetable: when its scheduled runs fire and which logical date and data interval each
// run gets (Airflow's timetables; README "Schedules and time zones").
//
// `schedule` is a cron expression, a preset (@once @hourly @daily @weekly @monthly @quarterly
// @yearly @annually), a duration ("30m", "1h", "1d": a delta timetable), or null (manual runs
// only). The DAG field `timetable` picks the meaning of cron and delta schedules:
// - "trigger" (default, Airflow 3's CronTriggerTimetable / DeltaTriggerTimetable): a run fires at
//   each fire time t; logical_date = run_after = t and its data interval is [t, t].
// - "data_interval" (Airflow 2's CronDataIntervalTimetable / DeltaDataIntervalTimetable): the
//   run for [start, end) between two consecutive fire times has logical_date = start and fires at
//   run_after = end.
// Cron fire times are evaluated in the DAG's time zone (DST rules in time_zone.hpp); durations are
// real elapsed time. A Timetable is immutable and thread-safe; it holds no clock: every question
// passes `now`.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dagd/scheduler/cron.hpp"
#include "dagd/scheduler/status.hpp"
#include "dagd/scheduler/time.hpp"
#include "dagd/scheduler/time_zone.hpp"

namespace dagd::scheduler {

enum class TimetableMode { kTrigger, kDataInterval };
// "trigger" | "data_interval".
std::string_view ToString(TimetableMode mode);
std::optional<TimetableMode> ParseTimetableMode(std::string_view text);

struct RunSlot {
  TimePoint logical_date;
  TimePoint run_after;  // the run is due when now >= run_after
  TimePoint data_interval_start;
  TimePoint data_interval_end;
  bool operator==(const RunSlot&) const = default;
};

class Timetable {
 public:
  // Errors are sentences naming the problem but not the field ("minute field: 61 is out of range
  // 0-59", "'xyz' is not a cron expression, a preset or a duration ..."); the DAG parser prefixes
  // "schedule: ".
  static StatusOr<std::shared_ptr<const Timetable>> Make(const std::optional<std::string>& schedule,
                                                         const TimeZone& zone, TimetableMode mode);

  // The next scheduled run to create, given the logical date of the DAG's latest scheduled run
  // (nullopt: none yet). It may lie in the future (create it once now >= run_after). With catchup
  // it is the oldest missed run; without, only the latest missed one (or the next future one).
  // start_date: no run before it (aligned to the schedule); end_date: no run whose logical date
  // (data interval start) is after it. nullopt when no run is left: null schedule, @once already
  // run, end_date passed, or a data-interval timetable with catchup but no start_date.
  std::optional<RunSlot> NextAfter(std::optional<TimePoint> last_logical_date, TimePoint now,
                                   bool catchup, std::optional<TimePoint> start_date,
                                   std::optional<TimePoint> end_date) const;
  // The next n runs whose run_after is after `after`, within start_date and end_date, in order
  // (for `dagd dags next-runs`). @once: its single run (at start_date, or `after` without one).
  std::vector<RunSlot> Upcoming(TimePoint after, int n, std::optional<TimePoint> start_date,
                                std::optional<TimePoint> end_date) const;

  // Airflow's timetable_summary: the schedule as written, "None" for manual only.
  const std::string& Summary() const { return summary_; }
  // Airflow's timetable_description: "At 00:00", "Every 30m", "Once, as soon as possible",
  // "Never, external triggers only".
  std::string Description() const;
  // Whether the scheduler creates runs at all (false for a null schedule).
  bool Periodic() const { return kind_ != Kind::kNone; }
  TimetableMode mode() const { return mode_; }
  const TimeZone& zone() const { return zone_; }

  enum class Kind { kNone, kOnce, kCron, kDelta };
  Timetable(Kind kind, std::string summary, std::optional<CronExpression> cron, Duration delta,
            TimeZone zone, TimetableMode mode);

 private:
  std::optional<TimePoint> Fire(TimePoint t) const;       // the first fire time after t
  std::optional<TimePoint> AlignNext(TimePoint t) const;  // t if it is a fire time, else Fire(t)
  std::optional<TimePoint> AlignPrev(TimePoint t) const;  // the last fire time at or before t
  std::optional<RunSlot> SlotAt(TimePoint logical) const;
  std::optional<RunSlot> NextTrigger(std::optional<TimePoint> last, TimePoint now, bool catchup,
                                     std::optional<TimePoint> start) const;
  std::optional<TimePoint> NextIntervalStart(std::optional<TimePoint> last, TimePoint now,
                                             bool catchup, std::optional<TimePoint> start) const;

  Kind kind_;
  std::string summary_;
  std::optional<CronExpression> cron_;
  Duration delta_;
  TimeZone zone_;
  TimetableMode mode_;
};

using TimetablePtr = std::shared_ptr<const Timetable>;

}  // namespace dagd::scheduler
