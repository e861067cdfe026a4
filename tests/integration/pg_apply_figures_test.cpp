// Figures for dagd_apply, the scheduler's hot statement, on a database holding 100,000 task
// instances: server time (EXPLAIN ANALYZE) and round trip through PgStateStore::Apply, for a
// 2-row and a 1,000-row batch. Prints figures and checks the plans use the primary keys; it
// asserts no timing. Disabled by default (it builds the 100,000 rows): run with
//   tests/with-postgres.sh build-dev/tests/dagd_store_tests --gtest_also_run_disabled_tests
//     --gtest_filter='PgApplyFigures*'
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "pg_store_fixture.hpp"

namespace dagd::storage {
namespace {

using test::SqlSession;
using test::TaskInstance;

using PgApplyFigures = test::PgStoreTest;

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// "Execution Time: 0.123 ms" from EXPLAIN ANALYZE output.
double ExecutionMs(const std::vector<std::string>& plan) {
  for (const auto& line : plan) {
    const auto at = line.find("Execution Time: ");
    if (at != std::string::npos) return std::stod(line.substr(at + 16));
  }
  return -1;
}

TEST_F(PgApplyFigures, DISABLED_ServerTimeOfDagdApplyOnAHundredThousandTaskInstances) {
  const int64_t epoch = Epoch();
  ASSERT_TRUE(store_
                  ->SyncDag(*test::MakeFanOutDag("fan", 999), "/dags/fan.json", test::kT0,
                            scheduler::DagSource::kFile)
                  .ok());
  constexpr int kRuns = 100;
  SqlSession setup(db_.url());
  setup.Exec("INSERT INTO dag_run (dag_id, run_id, version_number, state, run_type) "
            "SELECT 'fan', 'r' || i, 1, 'queued', 'manual' FROM generate_series(1, " +
            std::to_string(kRuns) +
            ") AS i; "
            "INSERT INTO task_instance (dag_run_id, dag_id, run_id, task_id, version_number) "
            "SELECT r.id, 'fan', r.run_id, 't' || j, 1 FROM dag_run r, generate_series(1, 1000) "
            "AS j");
  setup.Exec("VACUUM ANALYZE");
  std::vector<std::vector<TaskInstance>> runs;
  for (const auto& key : db_.Query("SELECT id FROM dag_run ORDER BY id")) {
    runs.push_back(Load(std::stoll(key)).task_instances);
  }
  ASSERT_EQ(runs.size(), static_cast<size_t>(kRuns));
  ASSERT_EQ(Count("SELECT count(*) FROM task_instance"), 100000);

  // Round trips through the store: 2-row batches (one run each), then 1,000-row batches.
  std::vector<double> two_ms, thousand_ms;
  for (int i = 0; i < 300; ++i) {
    auto& tis = runs[static_cast<size_t>(i % 50)];
    scheduler::Transition t;
    for (size_t k = 0; k < 2; ++k) {
      t.task_instances.push_back(test::Queue(tis[static_cast<size_t>(i / 50) * 2 + k], epoch));
    }
    const auto start = std::chrono::steady_clock::now();
    ApplyOk(t);
    two_ms.push_back(std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - start)
                         .count());
  }
  for (int i = 50; i < 60; ++i) {
    scheduler::Transition t;
    for (auto& ti : runs[static_cast<size_t>(i)]) {
      if (t.task_instances.size() < 1000) t.task_instances.push_back(test::Queue(ti, epoch));
    }
    const auto start = std::chrono::steady_clock::now();
    ApplyOk(t);
    thousand_ms.push_back(std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - start)
                              .count());
  }

  // 1,000 settles (skipped: no try rows).
  std::vector<double> settle_ms;
  for (int i = 92; i < 98; ++i) {
    scheduler::Transition t;
    for (auto& ti : runs[static_cast<size_t>(i)]) {
      if (t.task_instances.size() < 1000) {
        t.task_instances.push_back(test::Settle(ti, scheduler::TaskState::kSkipped, test::kT0));
      }
    }
    const auto start = std::chrono::steady_clock::now();
    ApplyOk(t);
    settle_ms.push_back(std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - start)
                            .count());
  }

  // Server time (EXPLAIN ANALYZE of the call, no commit), then every plan inside dagd_apply
  // (auto_explain, sent to this client).
  SqlSession sql(db_.url());
  auto batch_json = [&](int run, int n) {
    return sql.Exec(
        "SELECT json_agg(json_build_object('kind', 'queue', 'id', id, 'run_key', dag_run_id,"
        "  'expect_state', state, 'expect_try', try_number, 'expect_epoch', owner_epoch,"
        "  'state', 'queued', 'try_number', try_number + 1, 'scheduled_when', 0,"
        "  'queued_when', 0))::text "
        "FROM (SELECT * FROM task_instance WHERE dag_run_id = " +
        std::to_string(runs[static_cast<size_t>(run)][0].run_id_key) +
        " AND state IS NULL ORDER BY id LIMIT " + std::to_string(n) + ") t")[0];
  };
  auto explain = [&](const std::string& tis) {
    return sql.Exec("EXPLAIN (ANALYZE, TIMING OFF) SELECT dagd_apply(" + std::to_string(epoch) +
                    ", '[]', '" + tis + "', '[]')");
  };
  std::vector<double> server_two, server_thousand;
  for (int i = 0; i < 200; ++i) server_two.push_back(ExecutionMs(explain(batch_json(60 + i % 20, 2))));
  for (int i = 80; i < 90; ++i) server_thousand.push_back(ExecutionMs(explain(batch_json(i, 1000))));
  sql.Exec("LOAD 'auto_explain'");
  sql.Exec("SET auto_explain.log_min_duration = 0");
  sql.Exec("SET auto_explain.log_nested_statements = on");
  sql.Exec("SET client_min_messages = log");
  explain(batch_json(90, 2));
  explain(batch_json(91, 1000));

  int seq_scans = 0;
  for (const auto& notice : sql.TakeNotices()) {
    if (notice.find("Seq Scan on task_instance") != std::string::npos ||
        notice.find("Seq Scan on event ") != std::string::npos) {
      ++seq_scans;
      if (seq_scans == 1) std::printf("first plan with a sequential scan:\n%s\n", notice.c_str());
    }
  }
  EXPECT_EQ(seq_scans, 0);

  std::printf(
      "dagd_apply on %lld task instances\n"
      "  2 rows:     server p50 %.3f ms p99 %.3f ms; round trip p50 %.3f ms p99 %.3f ms\n"
      "  1,000 rows: server p50 %.3f ms max %.3f ms; round trip p50 %.3f ms max %.3f ms\n"
      "  1,000 settles: round trip p50 %.3f ms max %.3f ms\n",
      static_cast<long long>(Count("SELECT count(*) FROM task_instance")),
      Percentile(server_two, 0.5), Percentile(server_two, 0.99), Percentile(two_ms, 0.5),
      Percentile(two_ms, 0.99), Percentile(server_thousand, 0.5),
      Percentile(server_thousand, 1.0), Percentile(thousand_ms, 0.5),
      Percentile(thousand_ms, 1.0), Percentile(settle_ms, 0.5), Percentile(settle_ms, 1.0));
}

}  // namespace
}  // namespace dagd::storage
