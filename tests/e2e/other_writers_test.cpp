// PostgreSQL is the truth: what other writers commit (another process, an operator in psql)
// reaches the running daemon at once through LISTEN/NOTIFY and the event log, and the daemon acts
// on it instead of overwriting it from memory.
#include <gtest/gtest.h>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

// How long a notified change may take to reach the loop. The target is 50 ms; sanitizer builds
// run several times slower.
#if defined(__SANITIZE_ADDRESS__)
constexpr double kStartBudgetMs = 250;
#else
constexpr double kStartBudgetMs = 50;
#endif

std::string Scalar(const TestDatabase& db, const std::string& sql) {
  auto rows = db.Query(sql);
  return rows.empty() ? std::string() : rows[0];
}

// Polls `sql` (one value) until it equals `want`.
bool WaitFor(const TestDatabase& db, const std::string& sql, const std::string& want,
             std::chrono::milliseconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (Scalar(db, sql) == want) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

TEST(OtherWriters, ARunInsertedWithPlainSqlStartsWithinFiftyMilliseconds) {
  TempDir dags;
  dags.Write("ext.json", R"({"dag_id": "ext", "tasks": [
    {"task_id": "only", "operator": "bash", "bash_command": "true"}]})");
  Daemon d(dags.path().string());
  d.Start();
  // Let the start-up catch-up and the first heartbeat pass: what follows is notified, not polled.
  std::this_thread::sleep_for(500ms);
  // The documented contract: a queued dag_run and one task_instance per task of the version it
  // names, committed together.
  d.db.Query(
      "WITH r AS (INSERT INTO dag_run (dag_id, run_id, version_number, state, run_type, "
      "queued_at) SELECT dag_id, 'from_sql', latest_version, 'queued', 'manual', "
      "clock_timestamp() FROM dag WHERE dag_id = 'ext' RETURNING id, dag_id, run_id, "
      "version_number) "
      "INSERT INTO task_instance (dag_run_id, dag_id, run_id, task_id, version_number, operator) "
      "SELECT id, dag_id, run_id, 'only', version_number, 'bash' FROM r RETURNING task_id");
  ASSERT_TRUE(WaitFor(d.db, "SELECT state FROM dag_run WHERE run_id = 'from_sql'", "success"))
      << d.process->Log();
  const double started_ms = std::stod(Scalar(
      d.db,
      "SELECT extract(epoch FROM start_date - queued_at) * 1000 FROM dag_run "
      "WHERE run_id = 'from_sql'"));
  RecordProperty("start_ms", std::to_string(started_ms));
  EXPECT_LT(started_ms, kStartBudgetMs) << "the run started " << started_ms << " ms after it was "
                                        << "inserted\n"
                                        << d.process->Log();
}

TEST(OtherWriters, ATaskInstanceMarkedInTheDatabaseIsActedOnNotReverted) {
  TempDir dags;
  dags.Write("marked.json", R"({"dag_id": "marked", "tasks": [
    {"task_id": "a", "operator": "bash", "bash_command": "sleep 2"},
    {"task_id": "b", "operator": "bash", "bash_command": "exit 1", "upstream": ["a"]},
    {"task_id": "c", "operator": "bash", "bash_command": "true", "upstream": ["b"]}]})");
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "marked", "m1");
  ASSERT_TRUE(WaitFor(d.db, "SELECT state FROM task_instance WHERE task_id = 'a'", "running"))
      << d.process->Log();
  // An operator marks b as done while a still runs: b must never run (it would fail), c must.
  d.db.Query(
      "UPDATE task_instance SET state = 'success', start_date = now(), end_date = now() "
      "WHERE run_id = 'm1' AND task_id = 'b' RETURNING task_id");
  Json run = WaitForRun(d, "marked", "m1");
  EXPECT_EQ(run["state"], "success") << d.process->Log();
  auto tis = TaskInstancesById(d, "marked", "m1");
  EXPECT_EQ(tis["b"]["state"], "success");
  EXPECT_EQ(tis["b"]["try_number"], 0) << "b was run although it had been marked success";
  EXPECT_EQ(tis["c"]["state"], "success");
  EXPECT_EQ(tis["c"]["try_number"], 1);
}

TEST(OtherWriters, ARunFailedInTheDatabaseStaysFailed) {
  TempDir dags;
  dags.Write("stopped.json", R"({"dag_id": "stopped", "tasks": [
    {"task_id": "a", "operator": "bash", "bash_command": "sleep 1"},
    {"task_id": "b", "operator": "bash", "bash_command": "true", "upstream": ["a"]}]})");
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "stopped", "s1");
  ASSERT_TRUE(WaitFor(d.db, "SELECT state FROM task_instance WHERE task_id = 'a'", "running"))
      << d.process->Log();
  d.db.Query("UPDATE dag_run SET state = 'failed', end_date = now() WHERE run_id = 's1' "
             "RETURNING run_id");
  // a ends a second later; its result must not bring the run back, and b must not start.
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(Scalar(d.db, "SELECT state FROM dag_run WHERE run_id = 's1'"), "failed")
      << d.process->Log();
  EXPECT_EQ(Scalar(d.db, "SELECT coalesce(state, 'none') FROM task_instance "
                         "WHERE run_id = 's1' AND task_id = 'b'"),
            "none");
}

}  // namespace
}  // namespace dagd::testing
