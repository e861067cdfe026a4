// The default set-up: no database URL, so dagd runs its own PostgreSQL in the state directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

TEST(EmbeddedPostgres, DaemonRunsAChainOnItsOwnDatabaseAndStopsIt) {
  TempDir state;
  // The embedded cluster may run as another account (root → postgres): let it in.
  chmod(state.path().c_str(), 0755);
  int port = FreePort();
  DagdProcess dagd(EmbeddedDaemonArgs(state.path(), port), (state.path() / "dagd.log").string(),
                   port);
  dagd.Start(std::chrono::seconds(60));
  Json health = Json::parse(HttpGet(dagd.base_url() + "/api/v2/monitor/health").body);
  EXPECT_EQ(health["metadatabase"]["status"], "healthy") << health.dump();

  Json body = {{"logical_date", nullptr}, {"dag_run_id", "e1"}};
  ASSERT_EQ(
      HttpPostJson(dagd.base_url() + "/api/v2/dags/example_chain/dagRuns", body.dump()).status,
      200);
  std::string state_seen;
  for (int i = 0; i < 600 && state_seen != "success" && state_seen != "failed"; ++i) {
    auto r = HttpGet(dagd.base_url() + "/api/v2/dags/example_chain/dagRuns/e1");
    state_seen = Json::parse(r.body, nullptr, false).value("state", "");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(state_seen, "success") << dagd.Log();

  int status = dagd.Signal(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << dagd.Log();
  EXPECT_FALSE(std::filesystem::exists(state.path() / "postgres" / "data" / "postmaster.pid"))
      << "the embedded PostgreSQL must be stopped with the daemon";
}

TEST(EmbeddedPostgres, RootWithoutPgUserIsRefusedWithAClearMessage) {
  if (geteuid() != 0) GTEST_SKIP() << "only root is refused";
  TempDir state;
  int port = FreePort();
  std::vector<std::string> args = {"--state-dir",   state.path().string(),
                                   "--dags-folder", ExampleDags(),
                                   "--listen",      "127.0.0.1:" + std::to_string(port)};
  for (auto& arg : RunAsArgs()) args.push_back(arg);
  DagdProcess dagd(args, (state.path() / "dagd.log").string(), port);
  EXPECT_THROW(dagd.Start(std::chrono::seconds(10)), std::runtime_error);
  EXPECT_NE(dagd.Log().find("--pg-user"), std::string::npos) << dagd.Log();
}

TEST(Listen, ANonLoopbackAddressIsServedWithALoudClearTextWarning) {
  const int port = FreePort();
  Daemon d(ExampleDags(), {"--listen", "0.0.0.0:" + std::to_string(port)});
  d.process = std::make_unique<DagdProcess>(d.process->args(),
                                            (d.state.path() / "dagd.log").string(), port);
  d.port = port;
  d.Start();
  EXPECT_NE(d.process->Log().find("NON-LOOPBACK ADDRESS WITHOUT TLS"), std::string::npos)
      << d.process->Log();
  EXPECT_NE(d.process->Log().find("clear text"), std::string::npos);
  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags"), {{"Authorization", "Bearer nothing"}}).status, 401);
  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags")).status, 200);  // with the test's admin token
}

}  // namespace
}  // namespace dagd::testing
