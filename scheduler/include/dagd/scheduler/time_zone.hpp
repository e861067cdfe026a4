// IANA time zones (the system's tz database) and cron fire times evaluated in one.
//
// DST rules (README "Schedules and time zones"):
// - A wall-clock time skipped by a spring-forward gap fires at the same real instant it would
//   have had before the change, that is shifted forward by the gap (02:30 in New York on the
//   spring-forward day fires at 03:30 EDT), as Airflow (pendulum) does. Repeats are dropped.
// - A wall-clock time repeated by a fall-back fires once, at its first occurrence, when the
//   expression fires at one time of day (CronExpression::FixedTimeOfDay); otherwise at both
//   occurrences, so that hourly and minutely schedules keep firing every real hour.
// TimeZone is a cheap immutable value (a pointer into the process-wide database); thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "dagd/scheduler/cron.hpp"
#include "dagd/scheduler/status.hpp"
#include "dagd/scheduler/time.hpp"

namespace date {
class time_zone;
}

namespace dagd::scheduler {

class TimeZone {
 public:
  // "Europe/London", "UTC". Unknown names: "unknown time zone 'X' (use an IANA name such as
  // Europe/London)".
  static StatusOr<TimeZone> Find(std::string_view name);

  std::string name() const;
  // The first fire time of `cron` strictly after `after`, or nullopt when it never fires again.
  std::optional<TimePoint> NextFire(const CronExpression& cron, TimePoint after) const;
  // The last fire time at or before `at`, or nullopt when none within 9 years.
  std::optional<TimePoint> PrevFire(const CronExpression& cron, TimePoint at) const;
  // A wall-clock time in this zone as an instant: a repeated time is its first occurrence, a
  // skipped one is shifted forward by the gap (as fire times are).
  TimePoint FromLocal(std::chrono::microseconds local_since_epoch) const;
  // RFC 3339 with this zone's offset: "2026-03-29T03:00:00+01:00".
  std::string FormatLocal(TimePoint t) const;

 private:
  explicit TimeZone(const date::time_zone* zone) : zone_(zone) {}
  std::optional<TimePoint> FirstInWindow(const CronExpression& cron, TimePoint after) const;
  const date::time_zone* zone_;
};

}  // namespace dagd::scheduler
