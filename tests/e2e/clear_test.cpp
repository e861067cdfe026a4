// Clearing over REST on the real binary: a failed run's task instances are cleared and run
// again with new try numbers (the old tries stay listed), a running try whose task instance is
// cleared is stopped and its task runs again, and a cleared finished run is admitted again.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

// A directory the tasks (which may run as `nobody`) can look into for the files a test creates
// to change what they do.
struct Switches {
  TempDir dir;
  Switches() { ::chmod(dir.path().c_str(), 0755); }
  std::string Path(const std::string& name) const { return (dir.path() / name).string(); }
  void Set(const std::string& name) const { dir.Write(name, "on"); }
};

// a runs `command`, b follows it.
std::string Document(const std::string& dag_id, const std::string& command) {
  Json doc = {{"dag_id", dag_id},
              {"tasks",
               {{{"task_id", "a"}, {"operator", "bash"}, {"bash_command", command}},
                {{"task_id", "b"},
                 {"operator", "bash"},
                 {"bash_command", "true"},
                 {"upstream", {"a"}}}}}};
  return doc.dump();
}

Json Tries(const Daemon& d, const std::string& dag_id, const std::string& run_id,
           const std::string& task_id) {
  return GetJson(d.Url("/api/v2/dags/" + dag_id + "/dagRuns/" + run_id + "/taskInstances/" +
                       task_id + "/tries"));
}

TEST(Clear, AFailedRunsTasksClearedOverRestRunAgainWithANewTryNumber) {
  Switches switches;
  TempDir dags;
  dags.Write("clearfail.json", Document("clearfail", "test -f " + switches.Path("ok")));
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "clearfail", "c1");
  ASSERT_EQ(WaitForRun(d, "clearfail", "c1")["state"], "failed");
  auto tis = TaskInstancesById(d, "clearfail", "c1");
  ASSERT_EQ(tis["a"]["state"], "failed");
  ASSERT_EQ(tis["b"]["state"], "upstream_failed");

  // A dry run (the default) lists what would be cleared and changes nothing.
  const std::string url = d.Url("/api/v2/dags/clearfail/clearTaskInstances");
  HttpResponse r = HttpPostJson(url, R"({"dag_run_id": "c1"})");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(Json::parse(r.body)["total_entries"], 2);
  EXPECT_EQ(Json::parse(r.body)["task_instances"][0]["state"], "failed");
  EXPECT_EQ(GetJson(d.Url("/api/v2/dags/clearfail/dagRuns/c1"))["state"], "failed");

  switches.Set("ok");
  r = HttpPostJson(url, R"({"dag_run_id": "c1", "dry_run": false})");
  ASSERT_EQ(r.status, 200) << r.body;
  Json cleared = Json::parse(r.body);
  ASSERT_EQ(cleared["total_entries"], 2);
  for (const auto& ti : cleared["task_instances"]) EXPECT_TRUE(ti["state"].is_null()) << ti;

  Json run = WaitForRun(d, "clearfail", "c1", {"success"}, 30s);
  EXPECT_EQ(run["state"], "success");
  tis = TaskInstancesById(d, "clearfail", "c1");
  EXPECT_EQ(tis["a"]["state"], "success");
  EXPECT_EQ(tis["a"]["try_number"], 2) << "a cleared task's next try has the next number";
  EXPECT_EQ(tis["b"]["state"], "success");
  Json tries = Tries(d, "clearfail", "c1", "a");
  ASSERT_EQ(tries["total_entries"], 2) << tries;
  EXPECT_EQ(tries["task_instances"][0]["try_number"], 1);
  EXPECT_EQ(tries["task_instances"][0]["state"], "failed") << "the old try stays as it ended";
  EXPECT_EQ(tries["task_instances"][1]["try_number"], 2);
  EXPECT_EQ(tries["task_instances"][1]["state"], "success");
}

TEST(Clear, ClearingARunningTaskStopsItsTryAndRunsItAgain) {
  Switches switches;
  TempDir dags;
  dags.Write("clearrun.json",
             Document("clearrun", "test -f " + switches.Path("fast") + " || sleep 44.731"));
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "clearrun", "c1");
  ASSERT_TRUE(WaitUntil([&] { return ProcessRunning("sleep 44.731"); })) << d.process->Log();
  ASSERT_TRUE(WaitUntil([&] { return TaskState(d, "clearrun", "c1", "a") == "running"; }));

  switches.Set("fast");
  HttpResponse r = HttpPostJson(d.Url("/api/v2/dags/clearrun/clearTaskInstances"),
                                R"({"dag_run_id": "c1", "dry_run": false, "only_failed": false,
                                    "task_ids": ["a"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  Json cleared = Json::parse(r.body);
  ASSERT_EQ(cleared["total_entries"], 1) << r.body;
  EXPECT_EQ(cleared["task_instances"][0]["state"], "restarting");

  EXPECT_TRUE(WaitUntil([&] { return !ProcessRunning("sleep 44.731"); }))
      << "the cleared try still runs\n"
      << d.process->Log();
  Json run = WaitForRun(d, "clearrun", "c1", {"success", "failed"}, 30s);
  EXPECT_EQ(run["state"], "success");
  auto tis = TaskInstancesById(d, "clearrun", "c1");
  EXPECT_EQ(tis["a"]["state"], "success");
  EXPECT_EQ(tis["a"]["try_number"], 2);
  EXPECT_EQ(tis["b"]["state"], "success");
  Json tries = Tries(d, "clearrun", "c1", "a");
  ASSERT_EQ(tries["total_entries"], 2) << tries;
  EXPECT_EQ(tries["task_instances"][0]["try_number"], 1);
  EXPECT_EQ(tries["task_instances"][1]["state"], "success");
}

TEST(Clear, AClearedSuccessfulRunIsQueuedAndRunsAgain) {
  TempDir dags;
  dags.Write("clearok.json", Document("clearok", "true"));
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "clearok", "c1");
  ASSERT_EQ(WaitForRun(d, "clearok", "c1")["state"], "success");

  const std::string url = d.Url("/api/v2/dags/clearok/dagRuns/c1/clear");
  HttpResponse r = HttpPostJson(url, "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["total_entries"], 2) << "a dry run answers the task instances";
  r = HttpPostJson(url, R"({"dry_run": false})");
  ASSERT_EQ(r.status, 200) << r.body;
  Json body = Json::parse(r.body);
  EXPECT_EQ(body["dag_run_id"], "c1");
  EXPECT_NE(body["state"], "success") << "the run goes back to the scheduler";

  ASSERT_TRUE(WaitUntil(
      [&] { return TaskInstancesById(d, "clearok", "c1")["b"].value("try_number", 0) == 2; },
      30s))
      << d.process->Log();
  Json run = WaitForRun(d, "clearok", "c1", {"success"}, 30s);
  EXPECT_EQ(run["state"], "success");
  EXPECT_EQ(TaskInstancesById(d, "clearok", "c1")["a"]["try_number"], 2);
}

TEST(Clear, RunOnLatestVersionRunsTheClearedRunWithTheDagsLatestVersion) {
  TempDir dags;
  Daemon d(dags.path().string());
  d.Start();
  auto upload = [&](const std::string& document) {
    return HttpRequest("PUT", d.Url("/api/v2/dags/clearlatest"), document,
                       {{"Content-Type", "application/json"}});
  };
  ASSERT_EQ(upload(Document("clearlatest", "false")).status, 201);
  Trigger(d, "clearlatest", "c1");
  ASSERT_EQ(WaitForRun(d, "clearlatest", "c1")["state"], "failed");
  // Version 2: a succeeds, and c replaces b.
  const Json v2 = {{"dag_id", "clearlatest"},
                   {"tasks",
                    {{{"task_id", "a"}, {"operator", "bash"}, {"bash_command", "true"}},
                     {{"task_id", "c"},
                      {"operator", "bash"},
                      {"bash_command", "true"},
                      {"upstream", {"a"}}}}}};
  ASSERT_EQ(upload(v2.dump()).status, 200);
  HttpResponse r = HttpPostJson(d.Url("/api/v2/dags/clearlatest/dagRuns/c1/clear"),
                                R"({"dry_run": false, "run_on_latest_version": true})");
  ASSERT_EQ(r.status, 200) << r.body;
  Json run = WaitForRun(d, "clearlatest", "c1", {"success"}, 30s);
  EXPECT_EQ(run["state"], "success");
  auto tis = TaskInstancesById(d, "clearlatest", "c1");
  EXPECT_EQ(tis["a"]["state"], "success");
  EXPECT_EQ(tis["a"]["try_number"], 2);
  EXPECT_EQ(tis["c"]["state"], "success");
  EXPECT_EQ(tis["b"]["state"], "removed");
}

}  // namespace
}  // namespace dagd::testing
