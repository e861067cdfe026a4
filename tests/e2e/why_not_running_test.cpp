// "Why is my task not running" over the real daemon: the task instance dependencies of a run
// held back by max_active_runs, and of a task waiting for its running upstream.
#include <gtest/gtest.h>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

// The dependency named `name` in a dependencies response; null when it is not listed.
Json Dependency(const Json& body, const std::string& name) {
  for (const auto& d : body["dependencies"]) {
    if (d["name"] == name) return d;
  }
  return nullptr;
}

Json Dependencies(const Daemon& d, const std::string& run_id, const std::string& task_id) {
  return GetJson(d.Url("/api/v2/dags/one_at_a_time/dagRuns/" + run_id + "/taskInstances/" +
                       task_id + "/dependencies"));
}

TEST(WhyNotRunning, ASecondRunWaitsForMaxActiveRunsAndADownstreamTaskForItsUpstream) {
  TempDir dags;
  dags.Write("one_at_a_time.json", R"({"dag_id": "one_at_a_time", "max_active_runs": 1,
    "tasks": [
      {"task_id": "slow", "operator": "bash", "bash_command": "sleep 30"},
      {"task_id": "after", "operator": "bash", "bash_command": "true", "upstream": ["slow"]}]})");
  // The slow task still runs at the end: it is stopped at once rather than waited for.
  Daemon d(dags.path().string(), {"--shutdown-grace", "0"});
  d.Start();
  Trigger(d, "one_at_a_time", "first");
  Trigger(d, "one_at_a_time", "second");
  WaitForRun(d, "one_at_a_time", "first", {"running"});

  // The first run's slow task runs: nothing blocks it.
  ASSERT_TRUE(WaitUntil([&] { return TaskState(d, "one_at_a_time", "first", "slow") == "running"; },
                        std::chrono::seconds(30)))
      << d.process->Log();
  EXPECT_EQ(Dependencies(d, "first", "slow"), Json::parse(R"({"dependencies": []})"));

  // Its downstream task names the running upstream and the rule it waits on.
  Json after = Dependencies(d, "first", "after");
  Json rule = Dependency(after, "Trigger Rule");
  ASSERT_FALSE(rule.is_null()) << after.dump();
  EXPECT_NE(rule["reason"].get<std::string>().find("'all_success'"), std::string::npos);
  EXPECT_NE(rule["reason"].get<std::string>().find("slow (running)"), std::string::npos)
      << rule.dump();

  // The second run is queued behind the first: max_active_runs 1, 1 running.
  EXPECT_EQ(GetJson(d.Url("/api/v2/dags/one_at_a_time/dagRuns/second"))["state"], "queued");
  Json second = Dependencies(d, "second", "slow");
  ASSERT_FALSE(Dependency(second, "Dagrun Running").is_null()) << second.dump();
  Json max_runs = Dependency(second, "Max Active Runs");
  ASSERT_FALSE(max_runs.is_null()) << second.dump();
  EXPECT_EQ(max_runs["reason"], "The DAG has reached its max_active_runs (1): 1 run is running.");

  // Mapped task instances do not exist in dagd.
  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags/one_at_a_time/dagRuns/second/taskInstances/slow/2/"
                          "dependencies"))
                .status,
            404);
  EXPECT_EQ(Dependencies(d, "second", "slow"),
            GetJson(d.Url("/api/v2/dags/one_at_a_time/dagRuns/second/taskInstances/slow/-1/"
                          "dependencies")));
}

TEST(WhyNotRunning, APausedDagAndAFinishedTaskSaySo) {
  TempDir dags;
  dags.Write("quick.json", R"({"dag_id": "quick", "tasks": [
      {"task_id": "only", "operator": "bash", "bash_command": "true"}]})");
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "quick", "done");
  ASSERT_EQ(WaitForRun(d, "quick", "done")["state"], "success");
  Json finished = GetJson(d.Url("/api/v2/dags/quick/dagRuns/done/taskInstances/only/dependencies"));
  ASSERT_EQ(finished["dependencies"].size(), 1u) << finished.dump();
  EXPECT_EQ(finished["dependencies"][0]["name"], "Task Instance State");

  HttpResponse paused = HttpPatchJson(d.Url("/api/v2/dags/quick"), R"({"is_paused": true})");
  ASSERT_EQ(paused.status, 200) << paused.body;
  Trigger(d, "quick", "held");
  Json held = GetJson(d.Url("/api/v2/dags/quick/dagRuns/held/taskInstances/only/dependencies"));
  EXPECT_FALSE(Dependency(held, "Dag Not Paused").is_null()) << held.dump();
  EXPECT_FALSE(Dependency(held, "Dagrun Running").is_null()) << held.dump();
}

}  // namespace
}  // namespace dagd::testing
