// dagd's cron fire times (TimeZone::NextFire of a parsed CronExpression) against an independent
// cron implementation: cron-parser on Node, which evaluates time zones with Luxon and Node's own
// time zone database (tests/contract/cron_compare.mjs; npm packages pinned by
// tests/contract/package-lock.json and installed by the ctest fixture contract.install).
// The next 20 fire times must be equal, except in the listed cases where dagd's documented DST
// rules (README "Schedules and time zones") differ from cron-parser's: there dagd's documented
// fire times and exactly cron-parser's other ones are asserted.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dagd/scheduler/cron.hpp"
#include "dagd/scheduler/time.hpp"
#include "dagd/scheduler/time_zone.hpp"

namespace dagd::testing {
namespace {

using Json = nlohmann::json;
using Strings = std::vector<std::string>;
using scheduler::CronExpression;
using scheduler::TimeZone;

constexpr int kFires = 20;

struct CronCase {
  std::string expression;
  std::string zone;
  std::string start;  // an instant; fire times are strictly after it
};

void PrintTo(const CronCase& c, std::ostream* out) {
  *out << "'" << c.expression << "' in " << c.zone << " after " << c.start;
}

// dagd's next kFires fire times, RFC 3339 in UTC; one "error: ..." entry when dagd refuses.
Strings DagdFires(const CronCase& c) {
  auto zone = TimeZone::Find(c.zone);
  if (!zone.ok()) return {"error: " + zone.status().message()};
  auto cron = CronExpression::Parse(c.expression);
  if (!cron.ok()) return {"error: " + cron.status().message()};
  std::optional<scheduler::TimePoint> t = scheduler::ParseRfc3339(c.start);
  if (!t) return {"error: bad start " + c.start};
  Strings out;
  for (int i = 0; i < kFires && (t = zone->NextFire(*cron, *t)); ++i) {
    out.push_back(scheduler::FormatRfc3339(*t));
  }
  return out;
}

bool CheckerInstalled() {
  return std::filesystem::exists(std::string(DAGD_CONTRACT_NODE_DIR) + "/node_modules/.dagd-lock");
}

// cron-parser's next kFires fire times for each case (one "error: ..." entry when it refuses).
// Fails the test (and returns no lists) when the script cannot be run or answers nonsense.
std::vector<Strings> CronParserFires(const std::vector<CronCase>& cases) {
  Json input = Json::array();
  for (const CronCase& c : cases) {
    input.push_back(
        {{"expression", c.expression}, {"zone", c.zone}, {"start", c.start}, {"count", kFires}});
  }
  const std::filesystem::path in = std::filesystem::temp_directory_path() /
                                   ("dagd_cron_cases_" + std::to_string(getpid()) + ".json");
  std::ofstream(in) << input.dump();
  const std::string command = "node " + std::string(DAGD_CONTRACT_NODE_DIR) +
                              "/cron_compare.mjs < " + in.string();  // stderr: the test's
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe != nullptr) {
    std::array<char, 4096> buffer;
    size_t n;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  }
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  std::filesystem::remove(in);
  Json answer = Json::parse(output, nullptr, false);
  if (status != 0 || answer.is_discarded() || !answer.contains("results") ||
      answer["results"].size() != cases.size()) {
    ADD_FAILURE() << command << " failed (status " << status << "): " << output;
    return {};
  }
  std::cout << "cron-parser with time zone database " << answer.value("tz", "?") << "\n";
  std::vector<Strings> out;
  for (const Json& result : answer["results"]) {
    if (result.contains("error")) {
      out.push_back({"error: " + result["error"].get<std::string>()});
    } else {
      out.push_back(result["fires"].get<Strings>());
    }
  }
  return out;
}

// Expressions and zones where dagd and cron-parser agree on every fire time: lists, ranges, steps,
// names, day-of-month OR day-of-week (Vixie), 29 February, and schedules crossing both DST
// changes of 2026 where no wall time they name is skipped or repeated, or where both
// implementations resolve it alike.
const std::vector<CronCase> kAgreeing = {
    // Fields, in UTC.
    {"* * * * *", "UTC", "2026-01-01T00:00:00Z"},
    {"*/5 * * * *", "UTC", "2026-05-05T10:07:30.500Z"},
    {"0 * * * *", "UTC", "2026-01-01T00:00:00Z"},
    {"15,45 * * * *", "UTC", "2026-01-01T00:00:00Z"},
    {"10-20/5 * * * *", "UTC", "2026-01-01T00:00:00Z"},
    {"*/7 */5 * * *", "UTC", "2026-01-01T00:00:00Z"},
    {"23 0-20/2 * * *", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 * * *", "UTC", "2026-01-01T00:00:00Z"},
    {"30 6 * * 1-5", "UTC", "2026-01-01T00:00:00Z"},
    {"0 9 * * MON,WED,FRI", "UTC", "2026-01-01T00:00:00Z"},
    {"5 4 * * sun", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 * * 7", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 * * 0", "UTC", "2026-01-01T00:00:00Z"},
    {"0 22 * * 1-5", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 1 * *", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 1 JAN,JUL *", "UTC", "2026-01-01T00:00:00Z"},
    {"0 12 15 */2 *", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0,12 1 */2 *", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 31 * *", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 30 * *", "UTC", "2026-01-01T00:00:00Z"},
    {"0 4 8-14 * *", "UTC", "2026-01-01T00:00:00Z"},
    {"59 23 31 12 *", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 * feb-Apr MON", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z"},    // to 2104: 2100 is no leap year
    {"0 0 1-31 * 1", "UTC", "2026-01-01T00:00:00Z"},  // every day of the month: unrestricted
    {"0 12 * * 1-7", "Asia/Kolkata", "2026-01-01T00:00:00Z"},
    // Day-of-month and day-of-week both restricted: either matches (Vixie cron).
    {"0 0 29 2 1", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 13 * 5", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 1,15 * 0", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 */10 * 6", "UTC", "2026-01-01T00:00:00Z"},
    {"0 0 1-7 * 1", "UTC", "2026-01-01T00:00:00Z"},
    {"30 8 29 FEB SAT", "UTC", "2026-01-01T00:00:00Z"},
    // Europe/London: 29 March 01:00 GMT -> 02:00 BST, 25 October 02:00 BST -> 01:00 GMT.
    {"0 * * * *", "Europe/London", "2026-03-28T20:00:00Z"},
    {"0 * * * *", "Europe/London", "2026-10-24T20:00:00Z"},
    {"*/15 * * * *", "Europe/London", "2026-03-29T00:00:00Z"},
    {"*/15 * * * *", "Europe/London", "2026-10-25T00:00:00Z"},
    {"30 1 * * *", "Europe/London", "2026-03-20T00:00:00Z"},
    {"30 1 * * *", "Europe/London", "2026-10-15T00:00:00Z"},
    {"0 3 * * *", "Europe/London", "2026-03-20T00:00:00Z"},
    {"0 9 * * MON-FRI", "Europe/London", "2026-03-20T00:00:00Z"},
    {"0 0 * * *", "Europe/London", "2026-10-20T00:00:00Z"},
    // America/New_York: 8 March 02:00 EST -> 03:00 EDT, 1 November 02:00 EDT -> 01:00 EST.
    {"30 2 * * *", "America/New_York", "2026-03-01T00:00:00Z"},
    // Both fire the repeated 01:30 of 1 November once, at 01:30 EDT. (Airflow 3 fires it once
    // too, but at 01:30 EST: its make_aware picks the second occurrence, fold=1.)
    {"30 1 * * *", "America/New_York", "2026-10-25T00:00:00Z"},
    {"0 * * * *", "America/New_York", "2026-03-08T03:00:00Z"},
    {"0 * * * *", "America/New_York", "2026-11-01T02:00:00Z"},
    {"*/20 1-3 * * *", "America/New_York", "2026-03-07T00:00:00Z"},
    {"0 2 * * 0", "America/New_York", "2026-02-20T00:00:00Z"},
    {"0 0 1 * *", "America/New_York", "2026-01-01T00:00:00Z"},
    // Australia/Lord_Howe, a 30-minute change: 5 April 02:00 -> 01:30, 4 October 02:00 -> 02:30.
    {"45 2 * * *", "Australia/Lord_Howe", "2026-09-28T00:00:00Z"},
    {"30 1 * * *", "Australia/Lord_Howe", "2026-09-28T00:00:00Z"},
    {"*/30 * * * *", "Australia/Lord_Howe", "2026-10-03T13:00:00Z"},
    {"*/30 * * * *", "Australia/Lord_Howe", "2026-04-04T13:00:00Z"},
    {"0 * * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00Z"},
    // Asia/Kolkata: +05:30 all year.
    {"30 9 * * *", "Asia/Kolkata", "2026-03-01T00:00:00Z"},
    {"*/45 * * * *", "Asia/Kolkata", "2026-03-01T00:00:00Z"},
    {"0 0 29 2 *", "Asia/Kolkata", "2026-01-01T00:00:00Z"},
    // Pacific/Chatham, +12:45/+13:45: 5 April 03:45 -> 02:45, 27 September 02:45 -> 03:45.
    {"0 3 * * *", "Pacific/Chatham", "2026-09-20T00:00:00Z"},
    {"0 * * * *", "Pacific/Chatham", "2026-09-26T10:00:00Z"},
    {"0 * * * *", "Pacific/Chatham", "2026-04-04T10:00:00Z"},
    {"*/30 2-4 * * *", "Pacific/Chatham", "2026-09-26T00:00:00Z"},
};

TEST(CronCompare, DagdsFireTimesMatchAnIndependentCronImplementation) {
  if (!CheckerInstalled()) {
    GTEST_SKIP() << "cron-parser is not installed (contract.install could not reach the npm "
                    "registry): fire times were not compared";
  }
  const std::vector<Strings> theirs = CronParserFires(kAgreeing);
  ASSERT_EQ(theirs.size(), kAgreeing.size());
  for (size_t i = 0; i < kAgreeing.size(); ++i) {
    const CronCase& c = kAgreeing[i];
    EXPECT_EQ(DagdFires(c), theirs[i]) << ::testing::PrintToString(c);
  }
}

// The fire times of `from` missing from `in`, up to `until` (RFC 3339 UTC text sorts by time).
Strings Missing(const Strings& from, const Strings& in, const std::string& until) {
  Strings out;
  for (const std::string& t : from) {
    if (t <= until && std::find(in.begin(), in.end(), t) == in.end()) out.push_back(t);
  }
  return out;
}

// A case where dagd deliberately differs from cron-parser: dagd's fire times are its documented
// behaviour (README "Schedules and time zones"), cron-parser's are pinned so that the comparison
// still covers every other fire time of the case.
struct DifferingCase {
  CronCase c;
  Strings dagd_only;         // what dagd documents, and cron-parser does not do
  Strings cron_parser_only;  // what cron-parser does instead
};

const std::vector<DifferingCase> kDiffering = {
    // Spring-forward, a 30-minute gap: Lord Howe's 4 October 02:00 (+10:30) becomes 02:30 (+11).
    // dagd shifts the skipped 02:00 and 02:15 forward by the gap, to 02:30 and 02:45 (+11), as
    // Airflow (pendulum) does; cron-parser fires neither on that day.
    {{"0 2 * * *", "Australia/Lord_Howe", "2026-09-28T00:00:00Z"}, {"2026-10-03T15:30:00Z"}, {}},
    {{"15 2 * * *", "Australia/Lord_Howe", "2026-09-28T00:00:00Z"}, {"2026-10-03T15:45:00Z"}, {}},
    // Spring-forward, Chatham's 27 September 02:45 (+12:45) becomes 03:45 (+13:45): dagd fires
    // the skipped 02:45 at 03:45 (+13:45); cron-parser skips the day.
    {{"45 2 * * *", "Pacific/Chatham", "2026-09-20T00:00:00Z"}, {"2026-09-26T14:00:00Z"}, {}},
    // Fall-back, a 30-minute fold: Lord Howe's 5 April 02:00 (+11) becomes 01:30 (+10:30), so
    // 01:45 happens twice. dagd fires a one-time-of-day schedule once, at the first 01:45 (+11,
    // 14:45Z); cron-parser fires at both, the second (+10:30) at 15:15Z.
    {{"45 1 * * *", "Australia/Lord_Howe", "2026-03-30T00:00:00Z"}, {}, {"2026-04-04T15:15:00Z"}},
    // Fall-back, Chatham's 5 April 03:45 (+13:45) becomes 02:45 (+12:45): 03:00 happens twice.
    // dagd fires once, at the first (13:15Z); cron-parser at both, the second at 14:15Z.
    // (Airflow 3 fires such a time once, but at its second occurrence: make_aware sets fold=1.)
    {{"0 3 * * *", "Pacific/Chatham", "2026-03-30T00:00:00Z"}, {}, {"2026-04-04T14:15:00Z"}},
    // Fall-back in New York (1 November 02:00 EDT becomes 01:00 EST) for a schedule that fires
    // several times a day: dagd fires at both occurrences of 01:00, 01:20 and 01:40, so that it
    // keeps firing every 20 real minutes; cron-parser fires only at the first (EDT) ones.
    // (Airflow 3 fires only the second, EST ones: its hour field is not "*", so it localizes
    // each naive fire time with fold=1.)
    {{"*/20 1-3 * * *", "America/New_York", "2026-10-31T00:00:00Z"},
     {"2026-11-01T06:00:00Z", "2026-11-01T06:20:00Z", "2026-11-01T06:40:00Z"},
     {}},
    // Not DST: a day-of-week field that selects every day ("0-6") is unrestricted for dagd, as for
    // croniter (Airflow's cron library), so "0 0 1 * 0-6" fires on the 1st only; cron-parser
    // counts only 8 values (0-7) as unrestricted and fires every day (day 1 OR any weekday).
    {{"0 0 1 * 0-6", "UTC", "2026-01-01T00:00:00Z"},
     {},
     {"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z",
      "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z",
      "2026-01-08T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-10T00:00:00Z",
      "2026-01-11T00:00:00Z", "2026-01-12T00:00:00Z", "2026-01-13T00:00:00Z",
      "2026-01-14T00:00:00Z", "2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z",
      "2026-01-17T00:00:00Z", "2026-01-18T00:00:00Z", "2026-01-19T00:00:00Z",
      "2026-01-20T00:00:00Z", "2026-01-21T00:00:00Z"}},
};

TEST(CronCompare, DagdDiffersFromCronParserOnlyWhereItsDocumentedRulesSay) {
  if (!CheckerInstalled()) {
    GTEST_SKIP() << "cron-parser is not installed (contract.install could not reach the npm "
                    "registry): fire times were not compared";
  }
  std::vector<CronCase> cases;
  for (const DifferingCase& d : kDiffering) cases.push_back(d.c);
  const std::vector<Strings> theirs = CronParserFires(cases);
  ASSERT_EQ(theirs.size(), kDiffering.size());
  for (size_t i = 0; i < kDiffering.size(); ++i) {
    const DifferingCase& d = kDiffering[i];
    const Strings ours = DagdFires(d.c);
    ASSERT_EQ(ours.size(), size_t{kFires})
        << ::testing::PrintToString(d.c) << ": " << ::testing::PrintToString(ours);
    ASSERT_EQ(theirs[i].size(), size_t{kFires})
        << ::testing::PrintToString(d.c) << ": " << ::testing::PrintToString(theirs[i]);
    for (const std::string& t : d.dagd_only) {
      EXPECT_NE(std::find(ours.begin(), ours.end(), t), ours.end())
          << ::testing::PrintToString(d.c) << ": dagd does not fire at " << t;
    }
    const std::string until = std::min(ours.back(), theirs[i].back());
    EXPECT_EQ(Missing(ours, theirs[i], until), d.dagd_only) << ::testing::PrintToString(d.c);
    EXPECT_EQ(Missing(theirs[i], ours, until), d.cron_parser_only) << ::testing::PrintToString(d.c);
  }
}

}  // namespace
}  // namespace dagd::testing
