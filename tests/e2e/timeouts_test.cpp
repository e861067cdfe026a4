// Timeouts over the real daemon: a run past its dagrun_timeout ends failed within seconds, its
// running command is stopped and its log says the run timed out.
#include <gtest/gtest.h>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

TEST(Timeouts, ARunWithATwoSecondDagrunTimeoutEndsFailedWhileItsTaskSleeps) {
  TempDir dags;
  dags.Write("slow.json", R"({"dag_id": "slow", "dagrun_timeout": "2s", "tasks": [
    {"task_id": "nap", "operator": "bash", "bash_command": "sleep 30"},
    {"task_id": "after", "operator": "empty", "upstream": ["nap"]}]})");
  Daemon d(dags.path().string());
  d.Start();
  const auto began = std::chrono::steady_clock::now();
  Trigger(d, "slow", "r1");
  Json run = WaitForRun(d, "slow", "r1", {"success", "failed"}, 20s);
  EXPECT_EQ(run["state"], "failed") << run.dump();
  EXPECT_LT(std::chrono::steady_clock::now() - began, 10s);
  auto tis = TaskInstancesById(d, "slow", "r1");
  EXPECT_EQ(tis["nap"]["state"], "failed");
  EXPECT_EQ(tis["after"]["state"], "skipped");
  // The try's log ends with why it was stopped (written once the command is gone).
  std::string log;
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(100ms)) {
    log = HttpGet(d.Url("/api/v2/dags/slow/dagRuns/r1/taskInstances/nap/logs/1"),
                  {{"Accept", "text/plain"}})
              .body;
    if (log.find("outcome=") != std::string::npos) break;
  }
  EXPECT_NE(log.find("the run timed out: dagrun_timeout of 2s exceeded"), std::string::npos)
      << log;
  EXPECT_NE(d.process->Log().find("run timed out dag=slow run=r1"), std::string::npos);
}

TEST(Timeouts, TheTaskCancelGraceFlagIsDescribedAndOutOfRangeValuesAreRefused) {
  CliResult help = RunDagd({"--help"}, "", 10s);
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("--task-cancel-grace"), std::string::npos) << help.out;
  for (const std::string bad : {"-1", "86401", "soon"}) {
    CliResult r = RunDagd({"--task-cancel-grace", bad}, "", 10s);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("--task-cancel-grace"), std::string::npos) << bad << ": " << r.err;
  }
}

TEST(Timeouts, TheAbandonedThreadsGaugeIsServedAndZeroWhenJobsStop) {
  Daemon d(ExampleDags(), {"--task-cancel-grace", "0"});
  d.Start();
  Trigger(d, "example_fanout", "f1");
  EXPECT_EQ(WaitForRun(d, "example_fanout", "f1", {"success", "failed"}, 60s)["state"], "success");
  const std::string metrics = HttpGet(d.Url("/metrics")).body;
  EXPECT_NE(metrics.find("dagd_executor_abandoned_threads 0"), std::string::npos) << metrics;
}

}  // namespace
}  // namespace dagd::testing
