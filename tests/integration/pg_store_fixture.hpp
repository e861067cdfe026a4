// What the PgStateStore tests share: test DAGs, runs and task instances, a fixture with an open
// store on a throwaway database, transition builders, and a second SQL session (libpq) that
// plays "another writer".
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "dagd/scheduler/dag_parser.hpp"
#include "dagd/storage/pg_state_store.hpp"
#include "test_database.hpp"

namespace dagd::storage::test {

using scheduler::DagPtr;
using scheduler::DagRun;
using scheduler::RunState;
using scheduler::RunTransition;
using scheduler::TaskInstance;
using scheduler::TaskState;
using scheduler::TiTransition;
using scheduler::TimePoint;
using Us = std::chrono::microseconds;

inline TimePoint At(int64_t micros) { return TimePoint(Us(micros)); }

// 2026-01-02T03:04:05.123457Z: a time with every microsecond digit significant.
inline const TimePoint kT0 = At(1767323045123457);

inline DagPtr ParseOrThrow(const std::string& json) {
  auto parsed = scheduler::ParseDag(std::string_view(json), scheduler::ParseOptions{});
  if (!parsed.dag) {
    std::string all;
    for (const auto& e : parsed.errors) all += e + "; ";
    throw std::runtime_error("test DAG does not parse: " + all);
  }
  return parsed.dag;
}

// extract → transform → load, all `empty`.
inline DagPtr MakeDag(const std::string& dag_id, const std::string& description = "demo",
                      bool paused_upon_creation = false) {
  return ParseOrThrow(
      R"({"dag_id": ")" + dag_id + R"(", "description": ")" + description +
      R"(", "tags": ["etl", "daily"], "owners": ["ops"], "schedule": "0 * * * *",
    "max_active_runs": 3, "is_paused_upon_creation": )" +
      (paused_upon_creation ? "true" : "false") + R"(,
    "tasks": [{"task_id": "extract", "operator": "empty"},
              {"task_id": "transform", "operator": "empty", "upstream": ["extract"]},
              {"task_id": "load", "operator": "empty", "upstream": ["transform"]}]})");
}

// root → t0 … t(n-1).
inline DagPtr MakeFanOutDag(const std::string& dag_id, int n) {
  std::string json =
      R"({"dag_id": ")" + dag_id + R"(", "tasks": [{"task_id": "root", "operator": "empty"})";
  for (int i = 0; i < n; ++i) {
    json += R"(, {"task_id": "t)" + std::to_string(i) +
            R"(", "operator": "empty", "upstream": ["root"]})";
  }
  return ParseOrThrow(json + "]}");
}

// Each call gets its own logical date, one second after the previous call's (from kT0): a DAG
// has one run per logical date.
inline DagRun MakeRun(const std::string& dag_id, const std::string& run_id, int version = 1) {
  static std::atomic<int> calls{0};
  DagRun run;
  run.dag_id = dag_id;
  run.run_id = run_id;
  run.version_number = version;
  run.state = RunState::kQueued;
  run.logical_date = kT0 + std::chrono::seconds(calls++);
  run.queued_at = kT0;
  run.data_interval_start = kT0 - std::chrono::hours(1);
  run.data_interval_end = kT0;
  run.run_after = kT0;
  run.conf = {{"input", "s3://raw"}, {"n", 3}};
  run.note = "first";
  return run;
}

inline std::vector<TaskInstance> MakeTis(const scheduler::Dag& dag, int version = 1) {
  std::vector<TaskInstance> tis;
  for (const auto& task : dag.tasks) {
    TaskInstance ti;
    ti.task_id = task.task_id;
    ti.version_number = version;
    ti.operator_name = task.operator_name;
    ti.max_tries = task.retries;
    tis.push_back(ti);
  }
  return tis;
}

// A transition of `before` (its state, try and owner are the expectation) to `after`.
inline TiTransition Change(TiTransition::Kind kind, const TaskInstance& before,
                           const TaskInstance& after) {
  TiTransition t;
  t.kind = kind;
  t.after = after;
  t.expect_state = before.state;
  t.expect_try = before.try_number;
  t.expect_epoch = before.owner_epoch;
  return t;
}

// Queues the next try of `ti` (updating it as the store will), and returns the transition.
inline TiTransition Queue(TaskInstance& ti, int64_t epoch, TimePoint at = kT0) {
  TaskInstance after = ti;
  after.state = TaskState::kQueued;
  after.try_number = ti.try_number + 1;
  after.scheduled_when = at;
  after.queued_when = at;
  TiTransition t = Change(TiTransition::Kind::kQueue, ti, after);
  after.owner_epoch = epoch;
  after.start_date.reset();
  after.end_date.reset();
  after.duration.reset();
  after.hostname.clear();
  after.pid.reset();
  after.process.reset();
  ti = after;
  return t;
}

inline TiTransition Start(TaskInstance& ti, TimePoint at, const std::string& host = "host-a",
                          int pid = 4242) {
  TaskInstance after = ti;
  after.state = TaskState::kRunning;
  after.start_date = at;
  after.hostname = host;
  after.pid = pid;
  TiTransition t = Change(TiTransition::Kind::kStart, ti, after);
  ti = after;
  return t;
}

inline TiTransition Finish(TaskInstance& ti, TaskState state, TimePoint at) {
  TaskInstance after = ti;
  after.state = state;
  after.end_date = at;
  if (ti.start_date) after.duration = std::chrono::duration<double>(at - *ti.start_date).count();
  TiTransition t = Change(TiTransition::Kind::kFinish, ti, after);
  ti = after;
  return t;
}

inline TiTransition Settle(TaskInstance& ti, TaskState state, TimePoint at) {
  TaskInstance after = ti;
  after.state = state;
  after.start_date = at;
  after.end_date = at;
  after.duration = 0;
  TiTransition t = Change(TiTransition::Kind::kSettle, ti, after);
  ti = after;
  return t;
}

inline RunTransition RunChange(RunTransition::Kind kind, DagRun& run, RunState state,
                               TimePoint at) {
  RunTransition t;
  t.kind = kind;
  t.expect_state = run.state;
  run.state = state;
  if (kind == RunTransition::Kind::kStart) {
    run.start_date = at;
  } else {
    run.end_date = at;
  }
  run.last_scheduling_decision = at;
  t.after = run;
  return t;
}

// A libpq session of its own: another writer, a holder of row locks, a plain SQL client.
class SqlSession {
 public:
  explicit SqlSession(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) {
      throw std::runtime_error(std::string("cannot connect: ") + PQerrorMessage(conn_));
    }
    PQsetNoticeReceiver(
        conn_,
        [](void* self, const PGresult* res) {
          static_cast<SqlSession*>(self)->notices_.emplace_back(PQresultErrorMessage(res));
        },
        this);
  }
  ~SqlSession() { PQfinish(conn_); }
  SqlSession(const SqlSession&) = delete;
  SqlSession& operator=(const SqlSession&) = delete;

  // Runs `sql` (one or more statements); returns the first column of the last result's rows.
  // Throws with the server's message on failure.
  std::vector<std::string> Exec(const std::string& sql) {
    PGresult* res = PQexec(conn_, sql.c_str());
    const auto status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      const std::string error = PQerrorMessage(conn_);
      PQclear(res);
      throw std::runtime_error("SQL failed: " + sql + ": " + error);
    }
    std::vector<std::string> rows;
    for (int i = 0; i < PQntuples(res); ++i) {
      rows.emplace_back(PQgetisnull(res, i, 0) ? "" : PQgetvalue(res, i, 0));
    }
    PQclear(res);
    return rows;
  }

  // Notices and messages the server sent (client_min_messages), oldest first; cleared by take.
  std::vector<std::string> TakeNotices() { return std::exchange(notices_, {}); }

 private:
  PGconn* conn_;
  std::vector<std::string> notices_;
};

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = PgStateStore::Open(Options());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
  }

  virtual PgOptions Options() const {
    PgOptions options;
    options.url = db_.url();
    options.pool_size = 4;
    return options;
  }

  int64_t Count(const std::string& sql) { return std::stoll(db_.Query(sql).at(0)); }

  // Takes the scheduler lock; returns the store's epoch.
  int64_t Epoch() {
    Status s = store_->AcquireSchedulerLock();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return store_->SchedulerEpoch().value_or(0);
  }

  // Syncs `dag` and creates a run with all its task instances; returns the run.
  DagRun CreateRunOf(const scheduler::Dag& dag, const std::string& run_id,
                     std::vector<TaskInstance>* tis_out = nullptr) {
    auto version =
        store_->SyncDag(dag, "/dags/" + dag.dag_id + ".json", kT0, scheduler::DagSource::kFile);
    EXPECT_TRUE(version.ok()) << version.status().ToString();
    auto tis = MakeTis(dag, *version);
    auto run = store_->CreateRun(MakeRun(dag.dag_id, run_id, *version), tis);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    if (tis_out != nullptr) *tis_out = tis;
    return *run;
  }

  // One run and its task instances, as the scheduler loads them.
  scheduler::RunRows Load(int64_t run_key) {
    auto rows = store_->LoadRuns({run_key});
    EXPECT_TRUE(rows.ok() && rows->size() == 1) << "run " << run_key << " not loaded";
    return rows.ok() && rows->size() == 1 ? rows->front() : scheduler::RunRows{};
  }

  // Applies `t` and expects it to be written whole (no conflicts).
  void ApplyOk(const scheduler::Transition& t) {
    auto applied = store_->Apply(t);
    ASSERT_TRUE(applied.ok()) << applied.status().ToString();
    EXPECT_TRUE(applied->conflicts.empty()) << "conflicts: " << applied->conflicts.size();
  }

  testing::TestDatabase db_;
  std::unique_ptr<PgStateStore> store_;
};

}  // namespace dagd::storage::test
