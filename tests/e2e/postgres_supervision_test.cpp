// Faults of the embedded PostgreSQL (killed, unrecoverable) and the privacy of the state directory,
// on the real binary.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

// dagd with its own PostgreSQL in `state` (as root: run as the postgres account).
std::unique_ptr<DagdProcess> EmbeddedDagd(const TempDir& state, int port) {
  return std::make_unique<DagdProcess>(EmbeddedDaemonArgs(state.path(), port),
                                       (state.path() / "dagd.log").string(), port);
}

pid_t PostmasterPid(const TempDir& state) {
  std::ifstream in(state.path() / "postgres" / "data" / "postmaster.pid");
  pid_t pid = 0;
  in >> pid;
  return pid;
}

// Triggers a run, retrying while the API answers 503 (the database is coming back), and waits
// for it to end; returns its final state.
std::string TriggerAndWait(const DagdProcess& dagd, const std::string& run_id) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  Json body = {{"logical_date", nullptr}, {"dag_run_id", run_id}};
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    status =
        HttpPostJson(dagd.base_url() + "/api/v2/dags/example_chain/dagRuns", body.dump()).status;
    if (status != 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (status != 200) return "trigger answered " + std::to_string(status);
  std::string state_seen;
  while (std::chrono::steady_clock::now() < deadline && state_seen != "success" &&
         state_seen != "failed") {
    auto r = HttpGet(dagd.base_url() + "/api/v2/dags/example_chain/dagRuns/" + run_id);
    state_seen = Json::parse(r.body, nullptr, false).value("state", "");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return state_seen;
}

// Regression: kill -9 of the embedded postmaster left a zombie, every call answered 503 for good
// and dagd never exited.
TEST(EmbeddedPostgres, AKilledPostmasterIsRestartedAndNothingStoredIsLost) {
  TempDir state;
  auto dagd = EmbeddedDagd(state, FreePort());
  dagd->Start(std::chrono::seconds(60));
  ASSERT_EQ(TriggerAndWait(*dagd, "before"), "success") << dagd->Log();

  const pid_t killed = PostmasterPid(state);
  ASSERT_GT(killed, 0);
  ASSERT_EQ(kill(killed, SIGKILL), 0);
  pid_t restarted = 0;
  for (int i = 0; i < 600 && (restarted == 0 || restarted == killed); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    restarted = PostmasterPid(state);
  }
  ASSERT_NE(restarted, killed) << "the postmaster was not restarted\n" << dagd->Log();

  EXPECT_EQ(TriggerAndWait(*dagd, "after"), "success") << dagd->Log();
  Json before = Json::parse(
      HttpGet(dagd->base_url() + "/api/v2/dags/example_chain/dagRuns/before").body, nullptr, false);
  EXPECT_EQ(before.value("state", ""), "success") << before.dump();
  EXPECT_NE(dagd->Log().find("embedded postgres restarted"), std::string::npos) << dagd->Log();
  Json health = Json::parse(HttpGet(dagd->base_url() + "/api/v2/monitor/health").body);
  EXPECT_EQ(health["metadatabase"]["status"], "healthy") << health.dump();

  const int status = dagd->Signal(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << dagd->Log();
}

TEST(EmbeddedPostgres, APostmasterThatCannotBeRestartedMakesDagdExitNonZero) {
  TempDir state;
  auto dagd = EmbeddedDagd(state, FreePort());
  dagd->Start(std::chrono::seconds(60));
  // The data directory goes away under the running server; every restart must then fail (and
  // must not quietly initdb an empty cluster in its place).
  const auto data = state.path() / "postgres" / "data";
  const pid_t postmaster = PostmasterPid(state);
  ASSERT_GT(postmaster, 0);
  std::filesystem::rename(data, state.path() / "postgres" / "data.moved");
  ASSERT_EQ(kill(postmaster, SIGKILL), 0);

  const int status = dagd->Signal(0, std::chrono::seconds(90));  // just wait for the exit
  ASSERT_NE(status, -1) << "dagd kept running without its database\n" << dagd->Log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << dagd->Log();
  EXPECT_NE(dagd->Log().find("could not be restarted"), std::string::npos) << dagd->Log();
  EXPECT_FALSE(std::filesystem::exists(data)) << "no empty cluster may replace the lost one";
}

// Task logs hold whatever tasks print: the state and logs directories are private, and a looser
// existing state directory is tightened.
TEST(StateDirectory, IsPrivateAndALooserOneIsTightenedWithAWarning) {
  Daemon d(ExampleDags());
  ASSERT_EQ(chmod(d.state.path().c_str(), 0755), 0);
  d.Start();
  struct stat st {};
  ASSERT_EQ(stat(d.state.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(stat((d.state.path() / "logs").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_NE(d.process->Log().find("tightened"), std::string::npos) << d.process->Log();
}

TEST(StateDirectory, AsRootOnlyThePostgresAccountsGroupMayPassThrough) {
  if (geteuid() != 0)
    GTEST_SKIP() << "the embedded PostgreSQL runs as another account only as root";
  TempDir state;
  ASSERT_EQ(chmod(state.path().c_str(), 0755), 0);
  auto dagd = EmbeddedDagd(state, FreePort());
  dagd->Start(std::chrono::seconds(60));
  struct stat st {};
  ASSERT_EQ(stat(state.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0710u);
  struct stat pg {};
  ASSERT_EQ(stat((state.path() / "postgres").c_str(), &pg), 0);
  EXPECT_EQ(st.st_gid, pg.st_gid) << "the group is the PostgreSQL account's";
  ASSERT_EQ(stat((state.path() / "logs").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

}  // namespace
}  // namespace dagd::testing
