#include "dagd/scheduler/timetable.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace dagd::scheduler {

namespace {

struct Preset {
  std::string_view name;
  std::string_view cron;
};

// Airflow's cron presets.
constexpr std::array<Preset, 7> kPresets = {{
    {"@hourly", "0 * * * *"},
    {"@daily", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},
    {"@monthly", "0 0 1 * *"},
    {"@quarterly", "0 0 1 */3 *"},
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
}};

constexpr std::string_view kPresetList =
    "@once, @hourly, @daily, @weekly, @monthly, @quarterly, @yearly or @annually";

// Shorter deltas would make a run storm, not a schedule.
constexpr Duration kMinDelta = std::chrono::seconds(1);

std::optional<TimePoint> Later(std::optional<TimePoint> a, std::optional<TimePoint> b) {
  if (!a) return b;
  if (!b) return a;
  return std::max(*a, *b);
}

}  // namespace

std::string_view ToString(TimetableMode mode) {
  return mode == TimetableMode::kDataInterval ? "data_interval" : "trigger";
}

std::optional<TimetableMode> ParseTimetableMode(std::string_view text) {
  if (text == "trigger") return TimetableMode::kTrigger;
  if (text == "data_interval") return TimetableMode::kDataInterval;
  return std::nullopt;
}

Timetable::Timetable(Kind kind, std::string summary, std::optional<CronExpression> cron,
                     Duration delta, TimeZone zone, TimetableMode mode)
    : kind_(kind),
      summary_(std::move(summary)),
      cron_(std::move(cron)),
      delta_(delta),
      zone_(std::move(zone)),
      mode_(mode) {}

StatusOr<TimetablePtr> Timetable::Make(const std::optional<std::string>& schedule,
                                       const TimeZone& zone, TimetableMode mode) {
  auto make = [&](Kind kind, std::string summary, std::optional<CronExpression> cron,
                  Duration delta) -> StatusOr<TimetablePtr> {
    return TimetablePtr(std::make_shared<const Timetable>(kind, std::move(summary), std::move(cron),
                                                          delta, zone, mode));
  };
  if (!schedule) return make(Kind::kNone, "None", std::nullopt, Duration::zero());
  const std::string& text = *schedule;
  if (text.size() > CronExpression::kMaxLength) {
    return Status::InvalidArgument("longer than " + std::to_string(CronExpression::kMaxLength) +
                                   " characters");
  }
  if (text == "@once") return make(Kind::kOnce, text, std::nullopt, Duration::zero());
  if (!text.empty() && text[0] == '@') {
    for (const auto& preset : kPresets) {
      if (preset.name == text) {
        auto cron = CronExpression::Parse(preset.cron);
        if (!cron.ok()) return cron.status();
        return make(Kind::kCron, text, *cron, Duration::zero());
      }
    }
    return Status::InvalidArgument("unknown preset '" + text.substr(0, 40) + "' (use " +
                                   std::string(kPresetList) + ")");
  }
  if (text.find_first_of(" \t") != std::string::npos) {
    auto cron = CronExpression::Parse(text);
    if (!cron.ok()) return cron.status();
    return make(Kind::kCron, text, *cron, Duration::zero());
  }
  if (auto delta = ParseDurationText(text)) {
    if (*delta < kMinDelta) return Status::InvalidArgument("a duration must be at least 1s");
    return make(Kind::kDelta, text, std::nullopt, *delta);
  }
  return Status::InvalidArgument("'" + text.substr(0, 40) +
                                 "' is not a cron expression (5 fields), a preset (" +
                                 std::string(kPresetList) + ") or a duration (30m, 1h, 1d)");
}

std::string Timetable::Description() const {
  switch (kind_) {
    case Kind::kNone:
      return "Never, external triggers only";
    case Kind::kOnce:
      return "Once, as soon as possible";
    case Kind::kCron:
      return cron_->Describe();
    case Kind::kDelta:
      return "Every " + summary_;
  }
  return summary_;
}

std::optional<TimePoint> Timetable::Fire(TimePoint t) const {
  if (kind_ == Kind::kDelta) return t + delta_;
  return zone_.NextFire(*cron_, t);
}

std::optional<TimePoint> Timetable::AlignNext(TimePoint t) const {
  if (kind_ == Kind::kDelta) return t;  // a delta timetable is anchored where it starts
  return zone_.NextFire(*cron_, t - Duration(1));
}

std::optional<TimePoint> Timetable::AlignPrev(TimePoint t) const {
  if (kind_ == Kind::kDelta) return t;
  return zone_.PrevFire(*cron_, t);
}

std::optional<RunSlot> Timetable::SlotAt(TimePoint logical) const {
  if (mode_ == TimetableMode::kTrigger || kind_ == Kind::kOnce) {
    return RunSlot{logical, logical, logical, logical};
  }
  auto end = Fire(logical);
  if (!end) return std::nullopt;
  return RunSlot{logical, *end, logical, *end};
}

// Airflow's _TriggerTimetable.next_dagrun_info; without a start_date the first run is the next
// fire time after now.
std::optional<RunSlot> Timetable::NextTrigger(std::optional<TimePoint> last, TimePoint now,
                                              bool catchup, std::optional<TimePoint> start) const {
  std::optional<TimePoint> next;
  if (catchup) {
    if (last) {
      next = Fire(*last);
    } else if (start) {
      next = AlignNext(*start);
    } else {
      next = Fire(now);
    }
  } else {
    next = AlignPrev(now);
    // A delta keeps its phase: the latest anchor + k·delta at or before now, anchored at the
    // last run or else start_date. (Airflow re-anchors at now, which makes a delta schedule
    // drift by the scheduler's latency at every run.)
    if (const auto anchor = last ? last : start; kind_ == Kind::kDelta && anchor && *anchor <= now) {
      next = *anchor + ((now - *anchor) / delta_) * delta_;
    }
    if (last) {
      next = Later(next, Fire(*last));
    } else if (!start) {
      next = Later(next, Fire(now));
    }
    if (start) next = Later(next, AlignNext(*start));
  }
  if (!next) return std::nullopt;
  return SlotAt(*next);
}

// Airflow's CronDataIntervalTimetable / DeltaDataIntervalTimetable next_dagrun_info: the start of
// the next data interval.
std::optional<TimePoint> Timetable::NextIntervalStart(std::optional<TimePoint> last, TimePoint now,
                                                      bool catchup,
                                                      std::optional<TimePoint> start) const {
  std::optional<TimePoint> earliest;
  if (start) earliest = AlignNext(*start);
  if (!catchup) {
    // The latest complete interval: the one that ends at the last fire time at or before now.
    std::optional<TimePoint> latest_start;
    if (kind_ == Kind::kDelta) {
      latest_start = now - delta_;
    } else if (auto end = AlignPrev(now)) {
      latest_start = zone_.PrevFire(*cron_, *end - Duration(1));
    }
    earliest = Later(earliest, latest_start);
  }
  if (!last) return earliest;
  auto last_end = Fire(*last);
  if (!last_end) return std::nullopt;
  return Later(last_end, earliest);
}

std::optional<RunSlot> Timetable::NextAfter(std::optional<TimePoint> last_logical_date,
                                            TimePoint now, bool catchup,
                                            std::optional<TimePoint> start_date,
                                            std::optional<TimePoint> end_date) const {
  std::optional<RunSlot> slot;
  switch (kind_) {
    case Kind::kNone:
      return std::nullopt;
    case Kind::kOnce:
      // At start_date whatever catchup says (as Airflow); without one, now (Airflow never runs
      // it, which would leave the schedule silently ignored).
      if (last_logical_date) return std::nullopt;
      slot = SlotAt(start_date.value_or(now));
      break;
    case Kind::kCron:
    case Kind::kDelta:
      if (mode_ == TimetableMode::kTrigger) {
        slot = NextTrigger(last_logical_date, now, catchup, start_date);
      } else if (auto begin = NextIntervalStart(last_logical_date, now, catchup, start_date)) {
        slot = SlotAt(*begin);
      }
      break;
  }
  if (slot && end_date && slot->logical_date > *end_date) return std::nullopt;
  return slot;
}

std::vector<RunSlot> Timetable::Upcoming(TimePoint after, int n,
                                         std::optional<TimePoint> start_date,
                                         std::optional<TimePoint> end_date) const {
  std::vector<RunSlot> out;
  if (n <= 0 || kind_ == Kind::kNone) return out;
  std::optional<TimePoint> logical;
  if (kind_ == Kind::kOnce) {
    logical = start_date.value_or(after);
  } else if (kind_ == Kind::kDelta && start_date && *start_date <= after) {
    // Runs keep the start_date's phase: start + k·delta.
    auto periods = (after - *start_date) / delta_;
    logical = *start_date + delta_ * (mode_ == TimetableMode::kTrigger ? periods + 1 : periods);
  } else if (start_date && *start_date > after) {
    logical = AlignNext(*start_date);
  } else if (kind_ == Kind::kDelta) {
    logical = mode_ == TimetableMode::kTrigger ? after + delta_ : after;
  } else if (mode_ == TimetableMode::kTrigger) {
    logical = Fire(after);
  } else if (auto end = Fire(after)) {
    logical = zone_.PrevFire(*cron_, *end - Duration(1));
    if (start_date) logical = Later(logical, AlignNext(*start_date));
  }
  while (logical && static_cast<int>(out.size()) < n) {
    if (end_date && *logical > *end_date) break;
    auto slot = SlotAt(*logical);
    if (!slot) break;
    out.push_back(*slot);
    if (kind_ == Kind::kOnce) break;
    logical = Fire(*logical);
  }
  return out;
}

}  // namespace dagd::scheduler
