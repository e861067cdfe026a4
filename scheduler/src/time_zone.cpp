#include "dagd/scheduler/time_zone.hpp"

#include <date/tz.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

namespace dagd::scheduler {

namespace {

using std::chrono::floor;
using std::chrono::minutes;
using std::chrono::seconds;

}  // namespace

StatusOr<TimeZone> TimeZone::Find(std::string_view name) {
  constexpr size_t kMaxName = 64;
  std::string shown(name.substr(0, kMaxName));
  auto unknown = Status::InvalidArgument("unknown time zone '" + shown +
                                         "' (use an IANA name such as Europe/London or UTC)");
  if (name.empty() || name.size() > kMaxName) return unknown;
  try {
    return TimeZone(date::locate_zone(name));
  } catch (const std::exception&) {
    return unknown;  // locate_zone throws std::runtime_error for names it does not know
  }
}

std::string TimeZone::name() const { return std::string(zone_->name()); }

std::optional<TimePoint> TimeZone::NextFire(const CronExpression& cron, TimePoint after) const {
  const date::sys_seconds after_s = floor<seconds>(after);
  const date::sys_seconds limit = after_s + CronExpression::kSearchHorizon;
  // A fire time lies in one of the zone's offset intervals; walk them from the one holding
  // `after`. Within an interval wall-clock time and real time move together.
  std::optional<TimePoint> gap_candidate;  // a skipped wall time mapped past a spring-forward
  date::sys_info info = zone_->get_info(after_s);
  for (bool first = true;; first = false) {
    const seconds off = info.offset;
    LocalMinutes from = first ? floor<minutes>((after + off).time_since_epoch()) + minutes(1)
                              : std::chrono::ceil<minutes>((info.begin + off).time_since_epoch());
    const bool last_interval = info.end > limit;
    const date::sys_info next = last_interval ? info : zone_->get_info(info.end);
    const LocalMinutes end_local = floor<minutes>((info.end + off).time_since_epoch());
    const LocalMinutes gap_end_local =
        (!last_interval && next.offset > off)
            ? floor<minutes>((info.end + next.offset).time_since_epoch())
            : end_local;
    // Wall times before this local time were also shown by the previous interval (fall-back).
    LocalMinutes repeated_until = from;
    if (info.begin > date::sys_days(date::year(1800) / 1 / 1)) {  // not the open first interval
      const date::sys_info prev = zone_->get_info(info.begin - seconds(1));
      if (prev.offset > off) {
        repeated_until = floor<minutes>((info.begin + prev.offset).time_since_epoch());
      }
    }
    for (auto local = cron.NextMatch(from); local && (last_interval || *local < gap_end_local);
         local = cron.NextMatch(*local + minutes(1))) {
      TimePoint candidate = TimePoint(*local - off);
      if (!last_interval && *local >= end_local) {  // skipped by the gap: shifted forward
        if (!gap_candidate || candidate < *gap_candidate) gap_candidate = candidate;
        break;
      }
      if (cron.FixedTimeOfDay() && *local < repeated_until) continue;  // fired at the first
      if (gap_candidate && *gap_candidate < candidate) return gap_candidate;
      return candidate;
    }
    if (gap_candidate && (last_interval || *gap_candidate <= TimePoint(info.end))) {
      return gap_candidate;
    }
    if (last_interval) return std::nullopt;
    info = next;
  }
}

std::optional<TimePoint> TimeZone::PrevFire(const CronExpression& cron, TimePoint at) const {
  // Search forward from ever earlier starts: cheaper than a backward cron search, and it shares
  // the DST rules of NextFire exactly.
  using std::chrono::hours;
  for (auto span :
       {hours(1), hours(24), hours(24 * 32), hours(24 * 367), CronExpression::kSearchHorizon}) {
    std::optional<TimePoint> last;
    for (auto fire = NextFire(cron, at - span - Duration(1)); fire && *fire <= at;
         fire = NextFire(cron, *fire)) {
      last = fire;
    }
    if (last) return last;
  }
  return std::nullopt;
}

TimePoint TimeZone::FromLocal(std::chrono::microseconds local_since_epoch) const {
  date::local_seconds local{floor<seconds>(local_since_epoch)};
  // first: the only interval, the earlier of two, or the one before a gap (shifts forward).
  date::local_info info = zone_->get_info(local);
  return TimePoint(local_since_epoch - info.first.offset);
}

std::string TimeZone::FormatLocal(TimePoint t) const {
  const seconds off = zone_->get_info(floor<seconds>(t)).offset;
  std::string text = FormatRfc3339(t + off);
  text.pop_back();  // the "Z"
  const auto total = std::abs(off.count()) / 60;
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "%c%02d:%02d", off.count() < 0 ? '-' : '+',
                static_cast<int>(total / 60), static_cast<int>(total % 60));
  return text + buffer;
}

}  // namespace dagd::scheduler
