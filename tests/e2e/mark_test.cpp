// Marking over REST on the real binary: a running bash try whose task instance a user marks is
// stopped (its process group ends), and the run ends as Airflow's would.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

// a sleeps (a unique duration, to find its process), b follows it.
std::string Document(const std::string& dag_id, const std::string& sleep) {
  return R"({"dag_id": ")" + dag_id + R"(", "tasks": [
    {"task_id": "a", "operator": "bash", "bash_command": "sleep )" +
         sleep + R"("},
    {"task_id": "b", "operator": "bash", "bash_command": "true", "upstream": ["a"]}]})";
}

TEST(Mark, ARunningTaskMarkedFailedIsStoppedAndItsRunFails) {
  TempDir dags;
  dags.Write("markti.json", Document("markti", "41.731"));
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "markti", "m1");
  ASSERT_TRUE(WaitUntil([&] { return ProcessRunning("sleep 41.731"); })) << d.process->Log();
  HttpResponse r = HttpPatchJson(d.Url("/api/v2/dags/markti/dagRuns/m1/taskInstances/a"),
                                 R"({"new_state": "failed", "note": "hung"})");
  ASSERT_EQ(r.status, 200) << r.body;
  Json body = Json::parse(r.body);
  ASSERT_EQ(body["total_entries"], 1);
  EXPECT_EQ(body["task_instances"][0]["state"], "failed");
  EXPECT_EQ(body["task_instances"][0]["note"], "hung");

  EXPECT_TRUE(WaitUntil([&] { return !ProcessRunning("sleep 41.731"); }))
      << "the marked try still runs\n"
      << d.process->Log();
  Json run = WaitForRun(d, "markti", "m1", {"success", "failed"}, 20s);
  EXPECT_EQ(run["state"], "failed");
  auto tis = TaskInstancesById(d, "markti", "m1");
  EXPECT_EQ(tis["a"]["state"], "failed");
  EXPECT_EQ(tis["a"]["try_number"], 1) << "a marked try is not retried";
  EXPECT_EQ(tis["b"]["state"], "upstream_failed");
  Json tries = GetJson(d.Url("/api/v2/dags/markti/dagRuns/m1/taskInstances/a/tries"));
  ASSERT_EQ(tries["total_entries"], 1);
  EXPECT_EQ(tries["task_instances"][0]["state"], "failed");
  // The stopped try's own report (interrupted) does not overwrite the mark.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(TaskState(d, "markti", "m1", "a"), "failed");
}

TEST(Mark, ARunMarkedFailedStopsItsTriesAndSkipsWhatHasNotRun) {
  TempDir dags;
  dags.Write("markrun.json", Document("markrun", "42.731"));
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "markrun", "m1");
  ASSERT_TRUE(WaitUntil([&] { return ProcessRunning("sleep 42.731"); })) << d.process->Log();
  // The process starts a little before its try's `running` commits (start_grace); a task still
  // queued in the database would be skipped by the mark, not failed.
  ASSERT_TRUE(WaitUntil([&] { return TaskState(d, "markrun", "m1", "a") == "running"; }));
  HttpResponse r =
      HttpPatchJson(d.Url("/api/v2/dags/markrun/dagRuns/m1"), R"({"state": "failed"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["state"], "failed");
  EXPECT_TRUE(WaitUntil([&] { return !ProcessRunning("sleep 42.731"); }))
      << "the run's try still runs\n"
      << d.process->Log();
  std::this_thread::sleep_for(300ms);
  auto tis = TaskInstancesById(d, "markrun", "m1");
  EXPECT_EQ(tis["a"]["state"], "failed");
  EXPECT_EQ(tis["b"]["state"], "skipped");
  EXPECT_EQ(GetJson(d.Url("/api/v2/dags/markrun/dagRuns/m1"))["state"], "failed");
}

TEST(Mark, ARunMarkedSuccessStaysSuccessAndANoteShowsOnIt) {
  TempDir dags;
  dags.Write("markok.json", Document("markok", "43.731"));
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "markok", "m1");
  ASSERT_TRUE(WaitUntil([&] { return ProcessRunning("sleep 43.731"); })) << d.process->Log();
  HttpResponse r = HttpPatchJson(d.Url("/api/v2/dags/markok/dagRuns/m1"),
                                 R"({"state": "success", "note": "good enough"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(WaitUntil([&] { return !ProcessRunning("sleep 43.731"); })) << d.process->Log();
  std::this_thread::sleep_for(300ms);
  Json run = GetJson(d.Url("/api/v2/dags/markok/dagRuns/m1"));
  EXPECT_EQ(run["state"], "success");
  EXPECT_EQ(run["note"], "good enough");
  auto tis = TaskInstancesById(d, "markok", "m1");
  EXPECT_EQ(tis["a"]["state"], "success");
  EXPECT_EQ(tis["b"]["state"], "success");
  EXPECT_EQ(tis["b"]["try_number"], 0) << "b was run although its run was marked success";
}

}  // namespace
}  // namespace dagd::testing
