// Backfills over REST on the real binary: a backfill creates one run per logical date of the
// DAG's schedule and runs them oldest first within its max_active_runs; dry_run lists the dates;
// pause holds its runs (and "why not running" says so), cancel fails the queued ones;
// reprocess_behavior=failed re-runs only the failed date.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

HttpResponse Put(const Daemon& d, const std::string& path) {
  return HttpRequest("PUT", d.Url(path), "", {{"Content-Type", "application/json"}});
}

Json Body(const std::string& dag_id, const std::string& from, const std::string& to,
          Json extra = Json::object()) {
  Json body = {{"dag_id", dag_id}, {"from_date", from}, {"to_date", to}};
  body.update(extra);
  return body;
}

// The backfill runs of the DAG, oldest logical date first.
Json BackfillRuns(const Daemon& d, const std::string& dag_id) {
  return GetJson(d.Url("/api/v2/dags/" + dag_id +
                       "/dagRuns?run_type=backfill&order_by=logical_date&limit=100"))["dag_runs"];
}

int CountState(const Json& runs, const std::string& state) {
  return static_cast<int>(
      std::count_if(runs.begin(), runs.end(), [&](const Json& r) { return r["state"] == state; }));
}

TEST(Backfill, CreatesOneRunPerDateAndRunsThemOldestFirstWithinMaxActiveRuns) {
  TempDir dags;
  dags.Write("daily.json", R"({"dag_id": "daily", "schedule": "@daily",
    "start_date": "2026-01-01T00:00:00Z",
    "tasks": [{"task_id": "t", "operator": "bash", "bash_command": "sleep 0.5"}]})");
  Daemon d(dags.path().string());
  d.Start();
  const Json body =
      Body("daily", "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z", {{"max_active_runs", 2}});

  HttpResponse dry = HttpPostJson(d.Url("/api/v2/backfills/dry_run"), body.dump());
  ASSERT_EQ(dry.status, 200) << dry.body;
  Json dates = Json::parse(dry.body);
  ASSERT_EQ(dates["total_entries"], 5) << dry.body;
  EXPECT_EQ(dates["backfills"][0]["logical_date"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(dates["backfills"][4]["logical_date"], "2026-01-05T00:00:00Z");
  EXPECT_TRUE(BackfillRuns(d, "daily").empty()) << "dry_run wrote runs";

  HttpResponse created = HttpPostJson(d.Url("/api/v2/backfills"), body.dump());
  ASSERT_EQ(created.status, 200) << created.body;
  const Json backfill = Json::parse(created.body);
  EXPECT_EQ(backfill["dag_id"], "daily");
  EXPECT_EQ(backfill["max_active_runs"], 2);
  EXPECT_EQ(backfill["reprocess_behavior"], "none");
  EXPECT_EQ(backfill["is_paused"], false);
  EXPECT_TRUE(backfill["completed_at"].is_null());
  const int64_t id = backfill["id"];

  // A second one while this one is active: Airflow's 409.
  HttpResponse again = HttpPostJson(d.Url("/api/v2/backfills"), body.dump());
  EXPECT_EQ(again.status, 409) << again.body;

  int most_running = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        Json runs = BackfillRuns(d, "daily");
        most_running = std::max(most_running, CountState(runs, "running"));
        return runs.size() == 5 && CountState(runs, "success") == 5;
      },
      60s))
      << d.process->Log();
  EXPECT_LE(most_running, 2);
  Json runs = BackfillRuns(d, "daily");
  for (size_t i = 0; i < runs.size(); ++i) {
    const Json& run = runs[i];
    EXPECT_EQ(run["run_type"], "backfill");
    EXPECT_EQ(run["triggered_by"], "backfill");
    EXPECT_EQ(run["backfill_id"], id);
    const std::string logical = run["logical_date"];
    EXPECT_EQ(run["dag_run_id"], "backfill__" + logical.substr(0, logical.size() - 1) + "+00:00");
    if (i > 0) {
      EXPECT_LE(runs[i - 1]["start_date"].get<std::string>(), run["start_date"].get<std::string>())
          << "oldest first";
    }
  }
  ASSERT_TRUE(WaitUntil(
      [&] {
        return !GetJson(d.Url("/api/v2/backfills/" + std::to_string(id)))["completed_at"].is_null();
      },
      30s));
  Json listed = GetJson(d.Url("/api/v2/backfills?dag_id=daily"));
  EXPECT_EQ(listed["total_entries"], 1);
  // Every date has its run now: nothing left to create.
  dry = HttpPostJson(d.Url("/api/v2/backfills/dry_run"), body.dump());
  EXPECT_EQ(Json::parse(dry.body)["total_entries"], 0) << dry.body;
}

TEST(Backfill, PauseHoldsRunsCancelFailsTheQueuedOnesAndFailedIsReprocessed) {
  TempDir dags;
  dags.Write("slow.json", R"({"dag_id": "slow", "schedule": "@daily",
    "start_date": "2026-01-01T00:00:00Z",
    "tasks": [{"task_id": "t", "operator": "bash", "bash_command": "sleep 1"}]})");
  dags.Write("quick.json", R"({"dag_id": "quick", "schedule": "@daily",
    "start_date": "2026-01-01T00:00:00Z", "tasks": [{"task_id": "t", "operator": "empty"}]})");
  dags.Write("manual.json", R"({"dag_id": "manual", "schedule": null,
    "tasks": [{"task_id": "t", "operator": "empty"}]})");
  Daemon d(dags.path().string());
  d.Start();

  // Refusals: unknown DAG, no schedule, unknown field.
  EXPECT_EQ(HttpPostJson(d.Url("/api/v2/backfills"),
                         Body("nope", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").dump())
                .status,
            404);
  HttpResponse manual =
      HttpPostJson(d.Url("/api/v2/backfills"),
                   Body("manual", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").dump());
  EXPECT_EQ(manual.status, 422) << manual.body;
  EXPECT_NE(manual.body.find("non-periodic schedule"), std::string::npos) << manual.body;
  HttpResponse extra = HttpPostJson(
      d.Url("/api/v2/backfills"),
      Body("quick", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", {{"bogus", 1}}).dump());
  EXPECT_EQ(extra.status, 422) << extra.body;
  EXPECT_NE(extra.body.find("extra_forbidden"), std::string::npos) << extra.body;

  // Pause: the running run ends, no other starts; unpause resumes; cancel fails the queued ones.
  HttpResponse created = HttpPostJson(
      d.Url("/api/v2/backfills"),
      Body("slow", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z", {{"max_active_runs", 1}})
          .dump());
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string id = std::to_string(Json::parse(created.body)["id"].get<int64_t>());
  HttpResponse paused = Put(d, "/api/v2/backfills/" + id + "/pause");
  ASSERT_EQ(paused.status, 200) << paused.body;
  EXPECT_EQ(Json::parse(paused.body)["is_paused"], true);
  ASSERT_TRUE(WaitUntil([&] { return CountState(BackfillRuns(d, "slow"), "running") == 0; }, 20s));
  std::this_thread::sleep_for(1500ms);
  Json runs = BackfillRuns(d, "slow");
  EXPECT_GE(CountState(runs, "queued"), 3) << runs.dump();
  EXPECT_EQ(CountState(runs, "running"), 0) << runs.dump();
  // "Why is my task not running" names the paused backfill of its newest, still queued run.
  const Json why = GetJson(
      d.Url("/api/v2/dags/slow/dagRuns/backfill__2026-01-04T00%3A00%3A00%2B00%3A00/taskInstances/t/"
            "dependencies"));
  ASSERT_EQ(why["dependencies"].size(), 2u) << why.dump();
  EXPECT_EQ(why["dependencies"][1]["name"], "Backfill Not Paused") << why.dump();
  EXPECT_NE(why["dependencies"][1]["reason"].get<std::string>().find("backfill " + id),
            std::string::npos)
      << why.dump();
  ASSERT_EQ(Put(d, "/api/v2/backfills/" + id + "/unpause").status, 200);
  ASSERT_TRUE(WaitUntil([&] { return CountState(BackfillRuns(d, "slow"), "queued") <= 2; }, 20s))
      << d.process->Log();
  HttpResponse cancelled = Put(d, "/api/v2/backfills/" + id + "/cancel");
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_FALSE(Json::parse(cancelled.body)["completed_at"].is_null());
  runs = BackfillRuns(d, "slow");
  EXPECT_EQ(CountState(runs, "queued"), 0) << runs.dump();
  EXPECT_GE(CountState(runs, "failed"), 1) << runs.dump();
  EXPECT_EQ(Put(d, "/api/v2/backfills/" + id + "/pause").status, 409);

  // reprocess_behavior=failed: only the failed date is run again.
  const Json quick = Body("quick", "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z");
  ASSERT_EQ(HttpPostJson(d.Url("/api/v2/backfills"), quick.dump()).status, 200);
  ASSERT_TRUE(WaitUntil([&] { return CountState(BackfillRuns(d, "quick"), "success") == 3; }, 30s));
  ASSERT_TRUE(WaitUntil(
      [&] {
        return GetJson(d.Url("/api/v2/backfills?dag_id=quick"))["backfills"][0]["completed_at"]
            .is_string();
      },
      30s));
  const std::string failed_run = "backfill__2026-01-02T00:00:00+00:00";
  ASSERT_EQ(
      HttpPatchJson(d.Url("/api/v2/dags/quick/dagRuns/" + failed_run), R"({"state": "failed"})")
          .status,
      200);
  Json reprocess = quick;
  reprocess["reprocess_behavior"] = "failed";
  HttpResponse dry = HttpPostJson(d.Url("/api/v2/backfills/dry_run"), reprocess.dump());
  ASSERT_EQ(dry.status, 200) << dry.body;
  Json dates = Json::parse(dry.body);
  ASSERT_EQ(dates["total_entries"], 1) << dry.body;
  EXPECT_EQ(dates["backfills"][0]["logical_date"], "2026-01-02T00:00:00Z");
  const Json before = BackfillRuns(d, "quick");
  HttpResponse second = HttpPostJson(d.Url("/api/v2/backfills"), reprocess.dump());
  ASSERT_EQ(second.status, 200) << second.body;
  const int64_t second_id = Json::parse(second.body)["id"];
  Json rerun = WaitForRun(d, "quick", failed_run, {"success"});
  EXPECT_EQ(rerun["backfill_id"], second_id);
  EXPECT_EQ(TaskInstancesById(d, "quick", failed_run)["t"]["try_number"], 2) << "a new try";
  const Json after = BackfillRuns(d, "quick");
  ASSERT_EQ(after.size(), 3u);
  for (size_t i : {0, 2}) {
    EXPECT_EQ(after[i]["end_date"], before[i]["end_date"]) << "re-ran " << after[i].dump();
    EXPECT_NE(after[i]["backfill_id"], second_id);
  }
  EXPECT_EQ(d.db.Query("SELECT count(*) FROM backfill_dag_run WHERE backfill_id = " +
                       std::to_string(second_id) + " AND exception_reason = 'already exists'")
                .front(),
            "2");
}

}  // namespace
}  // namespace dagd::testing
