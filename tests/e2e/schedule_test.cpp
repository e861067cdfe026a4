// A schedule on the real binary: a two-second delta timetable creates scheduled runs by itself,
// each logical date once, the DAG shows its next run, and after a downtime without catchup only
// the latest missed run is created.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <thread>
#include <string>
#include <vector>

#include "dagd/scheduler/time.hpp"
#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

// The DAG's scheduled runs, oldest first.
Json ScheduledRuns(const Daemon& d) {
  Json page =
      GetJson(d.Url("/api/v2/dags/every2s/dagRuns?run_type=scheduled&order_by=logical_date"));
  if (!page.contains("dag_runs")) {
    ADD_FAILURE() << page.dump();
    return Json::array();
  }
  return page["dag_runs"];
}

int64_t Micros(const Json& time) {
  auto t = dagd::scheduler::ParseRfc3339(time.get<std::string>());
  EXPECT_TRUE(t.has_value()) << time;
  return t ? t->time_since_epoch().count() : 0;
}

int64_t Seconds(const Json& time) { return Micros(time) / 1000000; }

TEST(Schedule, ATwoSecondScheduleRunsByItselfOncePerLogicalDateAndSkipsDowntime) {
  TempDir dags;
  dags.Write("every2s.json", R"({"dag_id": "every2s", "schedule": "2s",
    "start_date": "2026-01-01T00:00:00Z",
    "tasks": [{"task_id": "a", "operator": "empty"}]})");
  Daemon d(dags.path().string());
  d.Start();
  ASSERT_TRUE(WaitUntil([&] { return ScheduledRuns(d).size() >= 3; }, 20s)) << d.process->Log();
  Json runs = ScheduledRuns(d);
  for (size_t i = 0; i < runs.size(); ++i) {
    const Json& run = runs[i];
    const std::string logical = run["logical_date"].get<std::string>();
    EXPECT_EQ(run["dag_run_id"], "scheduled__" + logical.substr(0, logical.size() - 1) + "+00:00");
    EXPECT_EQ(run["run_type"], "scheduled");
    EXPECT_EQ(run["triggered_by"], "timetable");
    EXPECT_EQ(run["data_interval_start"], run["logical_date"]);
    if (i > 0) {  // every 2 s in phase with the first, whatever the scheduler's latency
      EXPECT_EQ(Micros(run["logical_date"]) - Micros(runs[i - 1]["logical_date"]), 2000000);
    }
  }
  Json dag = GetJson(d.Url("/api/v2/dags/every2s"));
  EXPECT_EQ(dag["timetable_summary"], "2s");
  EXPECT_EQ(dag["timetable_description"], "Every 2s");
  ASSERT_TRUE(dag["next_dagrun_run_after"].is_string()) << dag.dump();
  EXPECT_GT(Seconds(dag["next_dagrun_run_after"]), Seconds(runs.back()["logical_date"]));
  EXPECT_EQ(dag["next_dagrun_logical_date"], dag["next_dagrun_run_after"]);

  // Down for about 7 seconds: three or four fire times are missed; catchup is false.
  ASSERT_EQ(d.process->Signal(SIGTERM), 0);
  const size_t before = std::stoul(
      d.db.Query("SELECT count(*) FROM dag_run WHERE run_type = 'scheduled'").front());
  std::this_thread::sleep_for(7s);
  const int64_t restarted = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  d.Start();
  ASSERT_TRUE(WaitUntil([&] { return ScheduledRuns(d).size() > before; }, 20s));
  runs = ScheduledRuns(d);
  const Json& first_after = runs[before];
  EXPECT_GE(Seconds(first_after["logical_date"]), restarted - 2)
      << "the missed runs before the latest were created: " << runs.dump();
}

}  // namespace
}  // namespace dagd::testing
