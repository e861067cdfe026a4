// Stopping the daemon in the middle of a run loses nothing: after a restart the run completes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

// Waits until at least `n` task instances of the run are running.
void WaitForRunning(const Daemon& d, const std::string& dag, const std::string& run, size_t n) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    size_t running = 0;
    for (const auto& [id, ti] : TaskInstancesById(d, dag, run)) {
      if (ti["state"] == "running") ++running;
    }
    if (running >= n) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL() << "tasks never ran\n" << d.process->Log();
}

TEST(Restart, SigtermDuringFanoutThenRestartCompletesTheRun) {
  // No grace: running transform tasks are cancelled at once and marked up_for_retry.
  Daemon d(ExampleDags(), {"--shutdown-grace", "0", "--parallelism", "4"});
  d.Start();
  Trigger(d, "example_fanout", "f1");
  WaitForRunning(d, "example_fanout", "f1", 2);

  int status = d.process->Signal(SIGTERM);
  ASSERT_NE(status, -1) << "dagd did not stop on SIGTERM\n" << d.process->Log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << d.process->Log();
  auto states = d.db.Query(
      "SELECT count(*) FROM task_instance ti JOIN dag_run r ON r.id = ti.dag_run_id "
      "WHERE r.run_id = 'f1' AND ti.state = 'up_for_retry'");
  ASSERT_EQ(states.size(), 1u);
  EXPECT_GE(std::stoi(states[0]), 1) << "interrupted tries should wait for a retry";

  d.Start();
  Json run = WaitForRun(d, "example_fanout", "f1");
  ASSERT_EQ(run["state"], "success") << run.dump() << d.process->Log();
  auto tis = TaskInstancesById(d, "example_fanout", "f1");
  EXPECT_EQ(tis.size(), 12u);
  for (const auto& [id, ti] : tis) EXPECT_EQ(ti["state"], "success") << id;
}

TEST(Restart, GracefulSigtermLetsRunningTasksFinish) {
  Daemon d(ExampleDags(), {"--shutdown-grace", "30", "--parallelism", "2"});
  d.Start();
  Trigger(d, "example_fanout", "f2");
  WaitForRunning(d, "example_fanout", "f2", 2);
  int status = d.process->Signal(SIGTERM, std::chrono::seconds(40));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << d.process->Log();
  // The two running tries finished as success during the grace period; nothing was interrupted.
  auto interrupted = d.db.Query(
      "SELECT count(*) FROM task_instance ti JOIN dag_run r ON r.id = ti.dag_run_id "
      "WHERE r.run_id = 'f2' AND ti.state IN ('running', 'up_for_retry', 'failed')");
  EXPECT_EQ(interrupted, std::vector<std::string>{"0"});
  d.Start();
  EXPECT_EQ(WaitForRun(d, "example_fanout", "f2")["state"], "success");
}

TEST(Restart, KillNineMidRunIsRecoveredAfterRestart) {
  Daemon d(ExampleDags(), {"--parallelism", "4"});
  d.Start();
  Trigger(d, "example_fanout", "f3");
  WaitForRunning(d, "example_fanout", "f3", 2);
  d.process->Kill9();
  d.Start();
  Json run = WaitForRun(d, "example_fanout", "f3");
  EXPECT_EQ(run["state"], "success") << d.process->Log();
}

TEST(Restart, ASecondDaemonOnTheSameDatabaseIsRefusedAndTouchesNoRunningTask) {
  Daemon first(ExampleDags(), {"--parallelism", "4"});
  first.Start();
  Trigger(first, "example_fanout", "f4");
  WaitForRunning(first, "example_fanout", "f4", 2);

  TempDir state;
  int port = FreePort();
  std::vector<std::string> args = {
      "--database-url", first.db.url(), "--state-dir", state.path().string(),
      "--dags-folder",  ExampleDags(),  "--listen",    "127.0.0.1:" + std::to_string(port)};
  for (auto& arg : RunAsArgs()) args.push_back(arg);
  DagdProcess second(args, (state.path() / "dagd.log").string(), port);
  EXPECT_THROW(second.Start(std::chrono::seconds(20)), std::runtime_error);
  EXPECT_NE(second.Log().find("another dagd scheduler already runs on this database"),
            std::string::npos)
      << second.Log();

  EXPECT_EQ(WaitForRun(first, "example_fanout", "f4")["state"], "success");
  for (const auto& [id, ti] : TaskInstancesById(first, "example_fanout", "f4")) {
    EXPECT_EQ(ti["try_number"], 1) << id << " ran twice";
  }
}

}  // namespace
}  // namespace dagd::testing
