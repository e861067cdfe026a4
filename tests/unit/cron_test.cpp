#include "dagd/scheduler/cron.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dagd/scheduler/time.hpp"
#include "dagd/scheduler/time_zone.hpp"

namespace dagd::scheduler {
namespace {

std::string ParseError(std::string_view text) {
  auto cron = CronExpression::Parse(text);
  return cron.ok() ? "parsed" : cron.status().message();
}

CronExpression Cron(std::string_view text) {
  auto cron = CronExpression::Parse(text);
  EXPECT_TRUE(cron.ok()) << text << ": " << cron.status().message();
  return *cron;
}

TimePoint At(std::string_view text) {
  auto t = ParseRfc3339(text);
  EXPECT_TRUE(t.has_value()) << text;
  return t.value_or(TimePoint{});
}

LocalMinutes Local(std::string_view text) {  // a wall-clock time written as if UTC
  return std::chrono::floor<std::chrono::minutes>(At(text).time_since_epoch());
}

TimeZone Zone(std::string_view name) {
  auto zone = TimeZone::Find(name);
  EXPECT_TRUE(zone.ok()) << name;
  return *zone;
}

// The next n fire times after `after`, as RFC 3339 UTC text.
std::vector<std::string> Fires(std::string_view zone, std::string_view cron, std::string_view after,
                               int n) {
  TimeZone tz = Zone(zone);
  CronExpression expression = Cron(cron);
  std::vector<std::string> out;
  TimePoint t = At(after);
  for (int i = 0; i < n; ++i) {
    auto next = tz.NextFire(expression, t);
    if (!next) break;
    out.push_back(FormatRfc3339(*next));
    t = *next;
  }
  return out;
}

using Strings = std::vector<std::string>;

TEST(CronParse, ErrorsNameTheFieldAndTheToken) {
  EXPECT_EQ(ParseError("61 * * * *"), "minute field: 61 is out of range 0-59");
  EXPECT_EQ(ParseError("* 24 * * *"), "hour field: 24 is out of range 0-23");
  EXPECT_EQ(ParseError("* * 0 * *"), "day-of-month field: 0 is out of range 1-31");
  EXPECT_EQ(ParseError("* * * 13 *"), "month field: 13 is out of range 1-12");
  EXPECT_EQ(ParseError("* * * * 8"), "day-of-week field: 8 is out of range 0-7");
  EXPECT_EQ(ParseError("*/0 * * * *"), "minute field: step 0 is out of range 1-59");
  EXPECT_EQ(ParseError("40-10 * * * *"), "minute field: range 40-10 runs backwards");
  EXPECT_EQ(ParseError("x * * * *"), "minute field: 'x' is not a number");
  EXPECT_EQ(ParseError("* * * FOO *"), "month field: 'FOO' is not a number or a name");
  EXPECT_EQ(ParseError("1,,2 * * * *"), "minute field: an empty list item in '1,,2'");
  EXPECT_EQ(ParseError("* * L * *"),
            "day-of-month field: 'L' is not supported (L, W, # and ? are not part of dagd's cron)");
  EXPECT_EQ(
      ParseError("* * * * 5#3"),
      "day-of-week field: '5#3' is not supported (L, W, # and ? are not part of dagd's cron)");
  EXPECT_EQ(ParseError("* * * *"),
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week), got 4");
  EXPECT_EQ(
      ParseError("* * * * * *"),
      "a cron expression has 5 fields (minute hour day-of-month month day-of-week), got more");
  EXPECT_EQ(ParseError(""),
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week), got 0");
  EXPECT_EQ(ParseError("0 0 30 2 *"),
            "day-of-month field: no selected month has day 30, so it never fires");
  EXPECT_EQ(ParseError("99999 * * * *"), "minute field: 99999 is out of range");
  EXPECT_EQ(ParseError(std::string(300, '*')), "the cron expression is longer than 256 characters");
}

TEST(CronParse, AcceptsNamesListsRangesAndSteps) {
  EXPECT_EQ(ParseError("0 0 * jan,Feb mon-FRI"), "parsed");
  EXPECT_EQ(ParseError("10-40/10 */2 1,15 * *"), "parsed");
  EXPECT_EQ(ParseError("  0   0 29 2 *  "), "parsed");
  EXPECT_EQ(ParseError("5/15 * * * sun"), "parsed");
}

TEST(CronMatch, ZeroAndSevenAreBothSunday) {
  // 2026-03-01 is a Sunday.
  EXPECT_TRUE(Cron("0 0 * * 0").Matches(Local("2026-03-01T00:00:00Z")));
  EXPECT_TRUE(Cron("0 0 * * 7").Matches(Local("2026-03-01T00:00:00Z")));
  EXPECT_TRUE(Cron("0 0 * * SUN").Matches(Local("2026-03-01T00:00:00Z")));
  EXPECT_FALSE(Cron("0 0 * * 7").Matches(Local("2026-03-02T00:00:00Z")));
}

TEST(CronMatch, RestrictedDayOfMonthAndDayOfWeekMatchEither) {
  CronExpression cron = Cron("0 0 13 * FRI");
  EXPECT_TRUE(cron.Matches(Local("2026-03-13T00:00:00Z")));   // Friday 13th
  EXPECT_TRUE(cron.Matches(Local("2026-03-06T00:00:00Z")));   // a Friday
  EXPECT_TRUE(cron.Matches(Local("2026-04-13T00:00:00Z")));   // a Monday, the 13th
  EXPECT_FALSE(cron.Matches(Local("2026-04-14T00:00:00Z")));  // neither
  // Only one restricted: it alone decides.
  EXPECT_FALSE(Cron("0 0 * * FRI").Matches(Local("2026-04-13T00:00:00Z")));
  EXPECT_FALSE(Cron("0 0 13 * *").Matches(Local("2026-03-06T00:00:00Z")));
}

TEST(CronMatch, NextMatchStepsAndRanges) {
  CronExpression cron = Cron("10-40/10 9 * * *");
  EXPECT_EQ(cron.NextMatch(Local("2026-01-01T09:11:00Z")), Local("2026-01-01T09:20:00Z"));
  EXPECT_EQ(cron.NextMatch(Local("2026-01-01T09:41:00Z")), Local("2026-01-02T09:10:00Z"));
  EXPECT_EQ(cron.NextMatch(Local("2026-01-01T09:10:00Z")), Local("2026-01-01T09:10:00Z"));
  EXPECT_EQ(Cron("0 0 29 2 *").NextMatch(Local("2026-03-01T00:00:00Z")),
            Local("2028-02-29T00:00:00Z"));
  EXPECT_EQ(Cron("0 12 * DEC *").NextMatch(Local("2026-01-05T00:00:00Z")),
            Local("2026-12-01T12:00:00Z"));
  EXPECT_EQ(Cron("59 23 31 12 *").NextMatch(Local("2026-12-31T23:59:00Z")),
            Local("2026-12-31T23:59:00Z"));
}

TEST(CronDescribe, ReadsAsEnglish) {
  EXPECT_EQ(Cron("0 0 * * *").Describe(), "At 00:00");
  EXPECT_EQ(Cron("30 14 * * *").Describe(), "At 14:30");
  EXPECT_EQ(Cron("*/5 * * * *").Describe(), "Every 5 minutes");
  EXPECT_EQ(Cron("* * * * *").Describe(), "Every minute");
  EXPECT_EQ(Cron("0 * * * *").Describe(), "At 0 minutes past the hour");
  EXPECT_EQ(Cron("0 0 * * 0").Describe(), "At 00:00, only on Sunday");
  EXPECT_EQ(Cron("0 0 1 * *").Describe(), "At 00:00, on day 1 of the month");
  EXPECT_EQ(Cron("0 0 1 1 *").Describe(), "At 00:00, on day 1 of the month, only in January");
}

TEST(TimeZoneFind, UnknownNamesAreASentence) {
  auto zone = TimeZone::Find("Mars/Olympus");
  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.status().message(),
            "unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/London or UTC)");
  EXPECT_FALSE(TimeZone::Find("").ok());
  EXPECT_FALSE(TimeZone::Find(std::string(1000, 'a')).ok());
  EXPECT_EQ(Zone("Europe/London").name(), "Europe/London");
}

TEST(CronInZone, NoDstZoneFiresDaily) {
  EXPECT_EQ(Fires("Asia/Kolkata", "30 5 * * *", "2026-03-07T12:00:00Z", 2),
            (Strings{"2026-03-08T00:00:00Z", "2026-03-09T00:00:00Z"}));
  EXPECT_EQ(Fires("UTC", "0 0 * * *", "2026-03-07T00:00:00Z", 1),
            (Strings{"2026-03-08T00:00:00Z"}));
}

TEST(CronInZone, NewYorkSpringForwardSkippedTimeShiftsForwardByTheGap) {
  // 2026-03-08 02:00 EST becomes 03:00 EDT: 02:30 does not exist and fires at 03:30 EDT.
  EXPECT_EQ(Fires("America/New_York", "30 2 * * *", "2026-03-07T00:00:00Z", 3),
            (Strings{"2026-03-07T07:30:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"}));
}

TEST(CronInZone, NewYorkFallBackRepeatedTimeFiresOnce) {
  // 2026-11-01 02:00 EDT becomes 01:00 EST: 01:30 happens twice, the run happens once.
  EXPECT_EQ(Fires("America/New_York", "30 1 * * *", "2026-10-31T12:00:00Z", 2),
            (Strings{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}));
  // Starting between the two 01:30s does not fire the second one.
  EXPECT_EQ(Fires("America/New_York", "30 1 * * *", "2026-11-01T06:10:00Z", 1),
            (Strings{"2026-11-02T06:30:00Z"}));
}

TEST(CronInZone, HourlyKeepsFiringEveryRealHourAcrossDst) {
  EXPECT_EQ(Fires("America/New_York", "0 * * * *", "2026-11-01T03:30:00Z", 4),
            (Strings{"2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z",
                     "2026-11-01T07:00:00Z"}));
  EXPECT_EQ(Fires("America/New_York", "0 * * * *", "2026-03-08T05:30:00Z", 3),
            (Strings{"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"}));
  EXPECT_EQ(Fires("Europe/London", "*/30 * * * *", "2026-10-25T00:10:00Z", 4),
            (Strings{"2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z",
                     "2026-10-25T02:00:00Z"}));
  EXPECT_EQ(Fires("Europe/London", "*/30 * * * *", "2026-03-29T00:10:00Z", 4),
            (Strings{"2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z",
                     "2026-03-29T02:00:00Z"}));
}

TEST(CronInZone, LondonDailyAcrossBothChanges) {
  // 2026-03-29 01:00 GMT becomes 02:00 BST; 2026-10-25 02:00 BST becomes 01:00 GMT.
  EXPECT_EQ(Fires("Europe/London", "30 1 * * *", "2026-03-28T12:00:00Z", 2),
            (Strings{"2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"}));
  EXPECT_EQ(Fires("Europe/London", "30 1 * * *", "2026-10-24T12:00:00Z", 2),
            (Strings{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}));
  EXPECT_EQ(Fires("Europe/London", "0 9 * * MON-FRI", "2026-03-27T12:00:00Z", 2),
            (Strings{"2026-03-30T08:00:00Z", "2026-03-31T08:00:00Z"}));
}

TEST(CronInZone, LordHoweHalfHourShifts) {
  // 2026-10-04 02:00 (+10:30) becomes 02:30 (+11): 02:15 fires at 02:45 (+11).
  EXPECT_EQ(Fires("Australia/Lord_Howe", "15 2 * * *", "2026-10-03T00:00:00Z", 2),
            (Strings{"2026-10-03T15:45:00Z", "2026-10-04T15:15:00Z"}));
  EXPECT_EQ(Fires("Australia/Lord_Howe", "0 * * * *", "2026-10-03T14:00:00Z", 3),
            (Strings{"2026-10-03T14:30:00Z", "2026-10-03T15:30:00Z", "2026-10-03T16:00:00Z"}));
  // 2026-04-05 02:00 (+11) becomes 01:30 (+10:30): 01:45 happens twice, fires once.
  EXPECT_EQ(Fires("Australia/Lord_Howe", "45 1 * * *", "2026-04-04T00:00:00Z", 2),
            (Strings{"2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"}));
}

TEST(CronInZone, PrevFireIsTheLastAtOrBefore) {
  TimeZone ny = Zone("America/New_York");
  EXPECT_EQ(ny.PrevFire(Cron("30 2 * * *"), At("2026-03-08T12:00:00Z")),
            At("2026-03-08T07:30:00Z"));
  EXPECT_EQ(ny.PrevFire(Cron("30 2 * * *"), At("2026-03-08T07:30:00Z")),
            At("2026-03-08T07:30:00Z"));
  EXPECT_EQ(ny.PrevFire(Cron("0 0 1 1 *"), At("2026-06-01T00:00:00Z")), At("2026-01-01T05:00:00Z"));
  EXPECT_EQ(ny.PrevFire(Cron("*/5 * * * *"), At("2026-06-01T00:07:00Z")),
            At("2026-06-01T00:05:00Z"));
}

TEST(TimeZoneLocal, WallTimesBecomeInstants) {
  TimeZone ny = Zone("America/New_York");
  auto local = [](std::string_view text) { return At(text).time_since_epoch(); };
  EXPECT_EQ(ny.FromLocal(local("2026-03-08T02:30:00Z")), At("2026-03-08T07:30:00Z"));
  EXPECT_EQ(ny.FromLocal(local("2026-11-01T01:30:00Z")), At("2026-11-01T05:30:00Z"));
  EXPECT_EQ(ny.FromLocal(local("2026-01-01T00:00:00Z")), At("2026-01-01T05:00:00Z"));
  EXPECT_EQ(ny.FormatLocal(At("2026-01-01T05:00:00Z")), "2026-01-01T00:00:00-05:00");
  EXPECT_EQ(Zone("Australia/Lord_Howe").FormatLocal(At("2026-10-03T15:45:00Z")),
            "2026-10-04T02:45:00+11:00");
  EXPECT_EQ(Zone("Asia/Kolkata").FormatLocal(At("2026-03-08T00:00:00Z")),
            "2026-03-08T05:30:00+05:30");
}

}  // namespace
}  // namespace dagd::scheduler
