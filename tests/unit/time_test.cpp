#include "dagd/scheduler/time.hpp"

#include <gtest/gtest.h>

#include <string>

namespace dagd::scheduler {
namespace {

using namespace std::chrono_literals;

// 2026-01-02T03:04:05Z: 20455 days after the epoch.
constexpr TimePoint kSample{std::chrono::seconds(1767323045)};

TEST(Rfc3339, FormatsUtcWithZAndOmitsZeroMicroseconds) {
  EXPECT_EQ(FormatRfc3339(kSample), "2026-01-02T03:04:05Z");
  EXPECT_EQ(FormatRfc3339(kSample + 123456us), "2026-01-02T03:04:05.123456Z");
  EXPECT_EQ(FormatRfc3339(kSample + 5us), "2026-01-02T03:04:05.000005Z");
  EXPECT_EQ(FormatRfc3339(TimePoint{}), "1970-01-01T00:00:00Z");
}

TEST(Rfc3339, FormatsTimesBeforeTheEpoch) {
  EXPECT_EQ(FormatRfc3339(TimePoint{} - 1us), "1969-12-31T23:59:59.999999Z");
}

TEST(Rfc3339, RoundTripsFormattedTimes) {
  for (TimePoint t : {kSample, kSample + 1us, kSample + 999999us, TimePoint{},
                      TimePoint{std::chrono::seconds(253402300799)} /* 9999-12-31T23:59:59 */,
                      TimePoint{std::chrono::seconds(951782400)} /* 2000-02-29 */}) {
    auto parsed = ParseRfc3339(FormatRfc3339(t));
    ASSERT_TRUE(parsed.has_value()) << FormatRfc3339(t);
    EXPECT_EQ(*parsed, t) << FormatRfc3339(t);
  }
}

TEST(Rfc3339, ConvertsOffsetsToUtc) {
  EXPECT_EQ(ParseRfc3339("2026-01-02T05:04:05+02:00"), kSample);
  EXPECT_EQ(ParseRfc3339("2026-01-01T22:34:05-04:30"), kSample);
  EXPECT_EQ(ParseRfc3339("2026-01-02T03:04:05+00:00"), kSample);
  EXPECT_EQ(ParseRfc3339("2026-01-02T03:04:05-00:00"), kSample);
}

TEST(Rfc3339, ParsesFractionalSecondsToMicroseconds) {
  EXPECT_EQ(ParseRfc3339("2026-01-02T03:04:05.5Z"), kSample + 500ms);
  EXPECT_EQ(ParseRfc3339("2026-01-02T03:04:05.123Z"), kSample + 123ms);
  EXPECT_EQ(ParseRfc3339("2026-01-02T03:04:05.123456Z"), kSample + 123456us);
  // Nanosecond clients: digits past microseconds are truncated.
  EXPECT_EQ(ParseRfc3339("2026-01-02T03:04:05.123456789Z"), kSample + 123456us);
}

TEST(Rfc3339, DateOnlyMeansMidnightUtc) {
  EXPECT_EQ(ParseRfc3339("2026-01-02"), kSample - 3h - 4min - 5s);
}

TEST(Rfc3339, AcceptsLowercaseAndSpaceSeparators) {
  EXPECT_EQ(ParseRfc3339("2026-01-02t03:04:05z"), kSample);
  EXPECT_EQ(ParseRfc3339("2026-01-02 03:04:05Z"), kSample);
}

TEST(Rfc3339, RejectsGarbageAndOutOfRangeFields) {
  for (const char* text : {"",
                           "x",
                           "2026",
                           "2026-01",
                           "2026-1-02",
                           "2026-01-02T",
                           "2026-01-02T03:04",
                           "2026-01-02T03:04:05",
                           "2026-01-02T03:04:05ZZ",
                           "2026-01-02T03:04:05+0200",
                           "2026-01-02T03:04:05+2:00",
                           "2026-13-01",
                           "2026-00-01",
                           "2026-02-29",
                           "2026-04-31",
                           "2026-01-32",
                           "2026-01-02T24:00:00Z",
                           "2026-01-02T03:60:00Z",
                           "2026-01-02T03:04:60Z",
                           "2026-01-02T03:04:05.Z",
                           "2026-01-02T03:04:05.1234567890Z",
                           "2026-01-02T03:04:05+24:00",
                           "2026-01-02T03:04:05+02:60",
                           " 2026-01-02",
                           "2026-01-02 ",
                           "2026-01-02T03:04:05Z ",
                           "+2026-01-02",
                           "２０２６-01-02"}) {
    EXPECT_EQ(ParseRfc3339(text), std::nullopt) << '"' << text << '"';
  }
}

TEST(Durations, ParsesUnitSuffixes) {
  EXPECT_EQ(ParseDurationText("250ms"), Duration(250ms));
  EXPECT_EQ(ParseDurationText("30s"), Duration(30s));
  EXPECT_EQ(ParseDurationText("10m"), Duration(10min));
  EXPECT_EQ(ParseDurationText("2h"), Duration(2h));
  EXPECT_EQ(ParseDurationText("1d"), Duration(24h));
  EXPECT_EQ(ParseDurationText("15us"), Duration(15us));
  EXPECT_EQ(ParseDurationText("0s"), Duration(0s));
}

TEST(Durations, ParsesCombinedUnits) {
  EXPECT_EQ(ParseDurationText("1h30m"), Duration(90min));
  EXPECT_EQ(ParseDurationText("1m30s500ms"), Duration(90500ms));
}

TEST(Durations, ParsesFractions) {
  EXPECT_EQ(ParseDurationText("1.5s"), Duration(1500ms));
  EXPECT_EQ(ParseDurationText("0.1h"), Duration(6min));
  EXPECT_EQ(ParseDurationText("1.5"), Duration(1500ms));
  EXPECT_EQ(ParseDurationText("0.000001"), Duration(1us));
}

TEST(Durations, PlainNumbersAreSeconds) {
  EXPECT_EQ(ParseDurationText("30"), Duration(30s));
  EXPECT_EQ(ParseDurationText("0"), Duration(0s));
}

TEST(Durations, ParsesClockForm) {
  EXPECT_EQ(ParseDurationText("00:00:30"), Duration(30s));
  EXPECT_EQ(ParseDurationText("01:30:00"), Duration(90min));
  EXPECT_EQ(ParseDurationText("36:00:00"), Duration(36h));
  EXPECT_EQ(ParseDurationText("0:00:01.25"), Duration(1250ms));
}

TEST(Durations, RejectsNegativeAndGarbage) {
  for (const char* text : {"",
                           "-5",
                           "-5s",
                           "5 minutes",
                           "5 s",
                           "s",
                           "5x",
                           "5mins",
                           "1h30",
                           "1.2.3s",
                           ".",
                           "1.",
                           "00:60:00",
                           "00:00:60",
                           "1:2:3",
                           "01:00",
                           "1.5:00:00",
                           "00:00:30s",
                           "+5s",
                           " 5s",
                           "5s ",
                           "1e3",
                           "99999999999999999999s",
                           "1000000d"}) {
    EXPECT_EQ(ParseDurationText(text), std::nullopt) << '"' << text << '"';
  }
}

TEST(SystemClock, NowIsCloseToTheSystemTime) {
  SystemClock clock;
  auto before = std::chrono::system_clock::now();
  TimePoint now = clock.Now();
  auto after = std::chrono::system_clock::now();
  EXPECT_GE(now, std::chrono::time_point_cast<std::chrono::microseconds>(before));
  EXPECT_LE(now, std::chrono::time_point_cast<std::chrono::microseconds>(after) + 1us);
}

}  // namespace
}  // namespace dagd::scheduler
