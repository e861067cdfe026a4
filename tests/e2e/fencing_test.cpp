// Fencing: once another scheduler holds the database's lease, this dagd writes nothing more and
// exits non-zero (so that its service manager shows and restarts it); no run starts under it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

TEST(Fencing, ADaemonWhoseLeaseWasTakenOverStopsWritingAndExitsNonZero) {
  TempDir dags;
  dags.Write("f.json", R"({"dag_id": "f", "tasks": [
    {"task_id": "a", "operator": "bash", "bash_command": "true"}]})");
  Daemon d(dags.path().string());
  d.Start();
  // Another scheduler takes over: a new epoch in the lease, and this daemon's lock session gone.
  d.db.Query(
      "WITH e AS (INSERT INTO scheduler_epoch (hostname, pid) VALUES ('elsewhere', 1) "
      "RETURNING epoch) UPDATE scheduler_lease SET epoch = (SELECT epoch FROM e) "
      "RETURNING epoch");
  d.db.Query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE application_name = 'dagd-scheduler'");
  HttpResponse r = HttpPostJson(d.Url("/api/v2/dags/f/dagRuns"),
                                R"({"logical_date": null, "dag_run_id": "after_takeover"})");
  EXPECT_TRUE(r.status == 200 || r.status == 503) << r.status << " " << r.body;

  const int status = d.process->Signal(0, 30s);  // just wait for it to go
  ASSERT_NE(status, -1) << "dagd kept running after losing its lease\n" << d.process->Log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << "\n"
                                                             << d.process->Log();
  EXPECT_NE(d.process->Log().find("another dagd took over"), std::string::npos)
      << d.process->Log();
  EXPECT_EQ(d.db.Query("SELECT count(*) FROM dag_run WHERE state <> 'queued'"),
            std::vector<std::string>{"0"})
      << "a run was started under a lease this daemon no longer held";
}

}  // namespace
}  // namespace dagd::testing
