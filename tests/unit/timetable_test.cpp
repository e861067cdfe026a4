#include "dagd/scheduler/timetable.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dagd::scheduler {
namespace {

TimePoint At(std::string_view text) {
  auto t = ParseRfc3339(text);
  EXPECT_TRUE(t.has_value()) << text;
  return t.value_or(TimePoint{});
}

TimetablePtr Make(std::optional<std::string> schedule, std::string_view zone = "UTC",
                  TimetableMode mode = TimetableMode::kTrigger) {
  auto tz = TimeZone::Find(zone);
  EXPECT_TRUE(tz.ok());
  auto timetable = Timetable::Make(schedule, *tz, mode);
  EXPECT_TRUE(timetable.ok()) << (schedule ? *schedule : "null") << ": "
                              << timetable.status().message();
  return timetable.ok() ? *timetable : nullptr;
}

std::string MakeError(std::string schedule) {
  auto timetable = Timetable::Make(schedule, *TimeZone::Find("UTC"), TimetableMode::kTrigger);
  return timetable.ok() ? "made" : timetable.status().message();
}

// "logical run_after [start, end)" in UTC, or "none".
std::string Show(const std::optional<RunSlot>& slot) {
  if (!slot) return "none";
  return FormatRfc3339(slot->logical_date) + " " + FormatRfc3339(slot->run_after) + " [" +
         FormatRfc3339(slot->data_interval_start) + ", " + FormatRfc3339(slot->data_interval_end) +
         ")";
}

// A data interval slot: logical date `start`, run after `end`, for [start, end).
std::string Interval(std::string_view start, std::string_view end) {
  const std::string s(start), e(end);
  return s + " " + e + " [" + s + ", " + e + ")";
}

std::string Point(std::string_view t) { return Interval(t, t); }  // a trigger slot: all at t

const std::optional<TimePoint> kNone;

TEST(TimetableMake, RefusesBadSchedulesWithASentence) {
  EXPECT_EQ(MakeError("61 * * * *"), "minute field: 61 is out of range 0-59");
  EXPECT_EQ(MakeError("@fortnightly"),
            "unknown preset '@fortnightly' (use @once, @hourly, @daily, @weekly, @monthly, "
            "@quarterly, @yearly or @annually)");
  EXPECT_EQ(MakeError("daily"),
            "'daily' is not a cron expression (5 fields), a preset (@once, @hourly, @daily, "
            "@weekly, @monthly, @quarterly, @yearly or @annually) or a duration (30m, 1h, 1d)");
  EXPECT_EQ(MakeError("0s"), "a duration must be at least 1s");
  EXPECT_EQ(MakeError(std::string(300, 'x')), "longer than 256 characters");
  for (std::string ok : {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly",
                         "@yearly", "@annually", "30m", "1h", "1d", "*/5 * * * *"}) {
    EXPECT_EQ(MakeError(ok), "made") << ok;
  }
}

TEST(TimetableMake, SummaryAndDescriptionAsAirflow) {
  EXPECT_EQ(Make("@daily")->Summary(), "@daily");
  EXPECT_EQ(Make("@daily")->Description(), "At 00:00");
  EXPECT_EQ(Make("*/5 * * * *")->Description(), "Every 5 minutes");
  EXPECT_EQ(Make(std::nullopt)->Summary(), "None");
  EXPECT_EQ(Make(std::nullopt)->Description(), "Never, external triggers only");
  EXPECT_FALSE(Make(std::nullopt)->Periodic());
  EXPECT_EQ(Make("@once")->Description(), "Once, as soon as possible");
  EXPECT_EQ(Make("30m")->Description(), "Every 30m");
}

TEST(TriggerTimetable, CatchupCreatesEveryMissedRunOldestFirst) {
  auto tt = Make("@daily");
  TimePoint now = At("2026-01-03T12:00:00Z");
  auto start = At("2026-01-01T00:00:00Z");
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, true, start, kNone)), Point("2026-01-01T00:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(At("2026-01-01T00:00:00Z"), now, true, start, kNone)),
            Point("2026-01-02T00:00:00Z"));
  // The next one is in the future: the caller waits for run_after.
  EXPECT_EQ(Show(tt->NextAfter(At("2026-01-03T00:00:00Z"), now, true, start, kNone)),
            Point("2026-01-04T00:00:00Z"));
}

TEST(TriggerTimetable, WithoutCatchupOnlyTheLatestMissedRun) {
  auto tt = Make("@daily");
  TimePoint now = At("2026-01-03T12:00:00Z");
  auto start = At("2026-01-01T00:00:00Z");
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, start, kNone)), Point("2026-01-03T00:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(At("2026-01-01T00:00:00Z"), now, false, start, kNone)),
            Point("2026-01-03T00:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(At("2026-01-03T00:00:00Z"), now, false, start, kNone)),
            Point("2026-01-04T00:00:00Z"));
  // No start_date: the first run is the next fire time.
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, kNone, kNone)), Point("2026-01-04T00:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, true, kNone, kNone)), Point("2026-01-04T00:00:00Z"));
}

TEST(TriggerTimetable, StartDateIsAlignedToTheSchedule) {
  auto tt = Make("@daily");
  TimePoint now = At("2026-01-03T12:00:00Z");
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, At("2026-02-01T06:00:00Z"), kNone)),
            Point("2026-02-02T00:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, true, At("2026-01-02T06:00:00Z"), kNone)),
            Point("2026-01-03T00:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, true, At("2026-01-02T00:00:00Z"), kNone)),
            Point("2026-01-02T00:00:00Z"));
}

TEST(TriggerTimetable, EndDateStopsRuns) {
  auto tt = Make("@daily");
  TimePoint now = At("2026-01-03T12:00:00Z");
  auto start = At("2026-01-01T00:00:00Z");
  auto end = At("2026-01-02T00:00:00Z");
  EXPECT_EQ(Show(tt->NextAfter(At("2026-01-01T00:00:00Z"), now, true, start, end)),
            Point("2026-01-02T00:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(At("2026-01-02T00:00:00Z"), now, true, start, end)), "none");
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, start, end)), "none");
}

TEST(TriggerTimetable, FireTimesFollowTheZone) {
  auto tt = Make("30 2 * * *", "America/New_York");
  // 02:30 does not exist on 2026-03-08: that run fires at 03:30 EDT, once.
  EXPECT_EQ(Show(tt->NextAfter(At("2026-03-07T07:30:00Z"), At("2026-03-08T12:00:00Z"), true, kNone,
                               kNone)),
            Point("2026-03-08T07:30:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(At("2026-03-08T07:30:00Z"), At("2026-03-08T12:00:00Z"), true, kNone,
                               kNone)),
            Point("2026-03-09T06:30:00Z"));
}

TEST(OnceTimetable, RunsOnceAtStartDate) {
  auto tt = Make("@once");
  TimePoint now = At("2026-01-03T12:00:00Z");
  auto start = At("2026-01-01T05:00:00Z");
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, start, kNone)), Point("2026-01-01T05:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, true, start, kNone)), Point("2026-01-01T05:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(start, now, false, start, kNone)), "none");
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, kNone, kNone)), Point("2026-01-03T12:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, start, At("2026-01-01T00:00:00Z"))), "none");
  EXPECT_EQ(tt->Upcoming(now, 5, start, kNone).size(), 1u);
}

TEST(NullTimetable, NeverSchedules) {
  auto tt = Make(std::nullopt);
  EXPECT_EQ(Show(tt->NextAfter(kNone, At("2026-01-03T12:00:00Z"), true, At("2026-01-01T00:00:00Z"),
                               kNone)),
            "none");
  EXPECT_TRUE(tt->Upcoming(At("2026-01-03T12:00:00Z"), 5, kNone, kNone).empty());
}

TEST(DataIntervalTimetable, RunForAnIntervalFiresAtItsEnd) {
  auto tt = Make("@daily", "UTC", TimetableMode::kDataInterval);
  TimePoint now = At("2026-01-03T12:00:00Z");
  auto start = At("2026-01-01T00:00:00Z");
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, true, start, kNone)),
            Interval("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(At("2026-01-01T00:00:00Z"), now, true, start, kNone)),
            Interval("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"));
  // Without catchup: the latest complete interval.
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, start, kNone)),
            Interval("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, kNone, kNone)),
            Interval("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"));
  // With catchup and no start_date there is nothing to catch up from (as Airflow).
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, true, kNone, kNone)), "none");
  // end_date bounds the interval's start.
  EXPECT_EQ(
      Show(tt->NextAfter(At("2026-01-01T00:00:00Z"), now, true, start, At("2026-01-01T12:00:00Z"))),
      "none");
}

TEST(DataIntervalTimetable, IntervalsFollowLocalMidnightAcrossDst) {
  auto tt = Make("@daily", "America/New_York", TimetableMode::kDataInterval);
  auto slots = tt->Upcoming(At("2026-03-07T12:00:00Z"), 2, kNone, kNone);
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(Show(slots[0]), Interval("2026-03-07T05:00:00Z", "2026-03-08T05:00:00Z"));
  EXPECT_EQ(Show(slots[1]),  // a 23-hour day
            Interval("2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"));
}

TEST(DeltaTimetable, TriggerRunsFromStartDateEveryDelta) {
  auto tt = Make("1h");
  TimePoint now = At("2026-01-01T03:30:00Z");
  auto start = At("2026-01-01T00:00:00Z");
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, true, start, kNone)), Point("2026-01-01T00:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(start, now, true, start, kNone)), Point("2026-01-01T01:00:00Z"));
  // Without catchup a late DAG runs the latest missed time in phase with its last run (or
  // start_date), then every delta from there.
  EXPECT_EQ(Show(tt->NextAfter(start, now, false, start, kNone)), Point("2026-01-01T03:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, start, kNone)), Point("2026-01-01T03:00:00Z"));
  const TimePoint three = At("2026-01-01T03:00:00Z");
  EXPECT_EQ(Show(tt->NextAfter(three, now, false, start, kNone)), Point("2026-01-01T04:00:00Z"));
  // A round that comes a little late does not move the schedule.
  EXPECT_EQ(Show(tt->NextAfter(three, At("2026-01-01T04:00:00.005Z"), false, start, kNone)),
            Point("2026-01-01T04:00:00Z"));
}

TEST(DeltaTimetable, WithoutStartDateOrCatchupTheFirstRunIsOneDeltaFromNow) {
  auto tt = Make("30m");
  TimePoint now = At("2026-01-01T03:30:00Z");
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, kNone, kNone)), Point("2026-01-01T04:00:00Z"));
}

TEST(DeltaTimetable, DataIntervalCoversTheDeltaBeforeItsRun) {
  auto tt = Make("1d", "UTC", TimetableMode::kDataInterval);
  TimePoint now = At("2026-01-03T12:00:00Z");
  auto start = At("2026-01-01T00:00:00Z");
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, true, start, kNone)),
            Interval("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"));
  EXPECT_EQ(Show(tt->NextAfter(kNone, now, false, start, kNone)),
            Interval("2026-01-02T12:00:00Z", "2026-01-03T12:00:00Z"));
}

TEST(TimetableUpcoming, ListsFutureRunsWithinStartAndEnd) {
  auto london = Make("@daily", "Europe/London");
  std::vector<std::string> shown;
  for (const auto& slot : london->Upcoming(At("2026-03-28T12:00:00Z"), 3, kNone, kNone)) {
    shown.push_back(FormatRfc3339(slot.run_after));
  }
  EXPECT_EQ(shown, (std::vector<std::string>{"2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z",
                                             "2026-03-30T23:00:00Z"}));
  EXPECT_EQ(
      london->Upcoming(At("2026-03-28T12:00:00Z"), 10, kNone, At("2026-03-30T00:00:00Z")).size(),
      2u);
  auto delta = Make("1h");
  auto slots = delta->Upcoming(At("2026-01-01T03:30:00Z"), 2, At("2026-01-01T00:10:00Z"), kNone);
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(Show(slots[0]), Point("2026-01-01T04:10:00Z"));
  EXPECT_EQ(Show(slots[1]), Point("2026-01-01T05:10:00Z"));
  auto future =
      Make("@daily")->Upcoming(At("2026-01-01T03:30:00Z"), 1, At("2026-02-01T03:00:00Z"), kNone);
  ASSERT_EQ(future.size(), 1u);
  EXPECT_EQ(Show(future[0]), Point("2026-02-02T00:00:00Z"));
  EXPECT_TRUE(Make("@daily")->Upcoming(At("2026-01-01T03:30:00Z"), 0, kNone, kNone).empty());
}

}  // namespace
}  // namespace dagd::scheduler
