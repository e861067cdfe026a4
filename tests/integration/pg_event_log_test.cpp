// The event log (gap-free, commit-ordered seq, written by triggers for every writer) and change
// notifications (Subscribe), against a real PostgreSQL.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pg_store_fixture.hpp"

namespace dagd::storage {
namespace {

using test::DagRun;
using test::kT0;
using test::MakeDag;
using test::RunState;
using test::SqlSession;
using test::TaskInstance;
using test::TaskState;
using test::Us;
using RunKind = scheduler::RunTransition::Kind;

using PgEventLogTest = test::PgStoreTest;

// Writers commit concurrently (runs created over the pool, batches applied, plain SQL from
// other sessions, some of it rolled back) while a reader follows the log from its last position:
// it must see every seq exactly once, consecutively, and in the end every event written.
TEST_F(PgEventLogTest, AReaderFollowingTheLogUnderConcurrentWritersSeesEveryEventOnceInOrder) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  const std::string sql_run = std::to_string(CreateRunOf(*dag, "sql_target").id);
  auto start_seq = store_->LatestEventSeq();
  ASSERT_TRUE(start_seq.ok()) << start_seq.status().ToString();

  constexpr int kWriters = 8;
  constexpr int kRunsPerWriter = 8;
  constexpr int kEventsPerRun = 1 + 2 + 1 + 4;  // create, start+queue, start, finish all
  std::atomic<int> failures{0};
  std::atomic<int> sql_events{0};
  std::atomic<bool> writers_done{false};

  std::vector<std::string> reader_errors;
  int64_t seen = 0;
  std::thread reader([&] {
    int64_t last = *start_seq;
    for (;;) {
      const bool done = writers_done.load();
      auto events = store_->ReadEvents(last, 50);
      if (!events.ok()) {
        reader_errors.push_back(events.status().ToString());
        return;
      }
      for (const auto& e : *events) {
        if (e.seq != last + 1) {
          reader_errors.push_back("after " + std::to_string(last) + " came " +
                                  std::to_string(e.seq));
          return;
        }
        last = e.seq;
        ++seen;
      }
      if (done && events->empty()) return;
    }
  });

  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kRunsPerWriter; ++i) {
        auto tis = test::MakeTis(*dag);
        auto created = store_->CreateRun(
            test::MakeRun("etl", "w" + std::to_string(w) + "_" + std::to_string(i)), tis);
        if (!created.ok()) {
          ++failures;
          continue;
        }
        DagRun run = *created;
        auto apply = [&](const scheduler::Transition& t) {
          auto applied = store_->Apply(t);
          if (!applied.ok() || !applied->conflicts.empty()) ++failures;
        };
        scheduler::Transition t1;
        t1.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
        t1.task_instances.push_back(test::Queue(tis[0], epoch));
        apply(t1);
        scheduler::Transition t2;
        t2.task_instances.push_back(test::Start(tis[0], kT0 + Us(1)));
        apply(t2);
        scheduler::Transition t3;
        t3.task_instances.push_back(test::Finish(tis[0], TaskState::kSuccess, kT0 + Us(2)));
        t3.task_instances.push_back(test::Settle(tis[1], TaskState::kSkipped, kT0 + Us(2)));
        t3.task_instances.push_back(test::Settle(tis[2], TaskState::kSkipped, kT0 + Us(2)));
        t3.runs.push_back(test::RunChange(RunKind::kFinish, run, RunState::kSuccess, kT0));
        apply(t3);
      }
    });
  }
  // Another writer in plain SQL: multi-statement transactions, every other one rolled back.
  std::thread sql_writer([&] {
    SqlSession sql(db_.url());
    for (int i = 0; i < 20; ++i) {
      const bool commit = i % 2 == 0;
      auto rows = sql.Exec(
          "BEGIN; UPDATE task_instance SET note = 'n' WHERE dag_run_id = " + sql_run +
          "; UPDATE dag_run SET note = 'x' WHERE id = " + sql_run +
          "; WITH u AS (UPDATE task_instance SET try_number = try_number + 1 "
          "  WHERE dag_run_id = " + sql_run + " AND task_id <> 'load' RETURNING 1) "
          "SELECT count(*) FROM u");
      sql.Exec(commit ? "COMMIT" : "ROLLBACK");
      if (commit && !rows.empty()) sql_events += std::stoi(rows[0]);
    }
  });
  for (auto& t : writers) t.join();
  sql_writer.join();
  writers_done = true;
  reader.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(reader_errors.empty()) << reader_errors.front();
  EXPECT_EQ(seen, kWriters * kRunsPerWriter * kEventsPerRun + sql_events.load());
  auto latest = store_->LatestEventSeq();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(*latest, *start_seq + seen);
  EXPECT_EQ(Count("SELECT max(seq) - min(seq) + 1 - count(*) FROM event"), 0);
}

TEST_F(PgEventLogTest, ARolledBackTransactionLeavesNoGap) {
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  CreateRunOf(*dag, "r1", &tis);
  const int64_t before = *store_->LatestEventSeq();
  SqlSession sql(db_.url());
  sql.Exec("BEGIN; UPDATE task_instance SET state = 'queued' WHERE task_id = 'extract'");
  sql.Exec("ROLLBACK");
  sql.Exec("UPDATE task_instance SET state = 'removed' WHERE task_id = 'load'");
  auto events = store_->ReadEvents(before, 10);
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].seq, before + 1);
  EXPECT_EQ((*events)[0].state, "removed");
  EXPECT_EQ(*store_->LatestEventSeq(), before + 1);
}

TEST_F(PgEventLogTest, APlainSqlUpdateOfATaskStateIsAnEventWithoutOrigin) {
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  const int64_t before = *store_->LatestEventSeq();
  SqlSession sql(db_.url());
  sql.Exec("UPDATE task_instance SET note = 'only a note' WHERE dag_run_id = " +
           std::to_string(run.id));  // no state change: no event
  sql.Exec("UPDATE task_instance SET state = 'failed', hostname = 'psql' WHERE task_id = 'load'");
  auto events = store_->ReadEvents(before, 10);
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  ASSERT_EQ(events->size(), 1u);
  const scheduler::EventRecord& e = (*events)[0];
  EXPECT_EQ(e.kind, "task_instance");
  EXPECT_EQ(e.run_key, run.id);
  EXPECT_EQ(e.dag_id, "etl");
  EXPECT_EQ(e.run_id, "r1");
  EXPECT_EQ(e.task_id, "load");
  EXPECT_EQ(e.ti_id, tis[2].id);
  EXPECT_EQ(e.try_number, 0);
  EXPECT_EQ(e.state, "failed");
  EXPECT_EQ(e.origin, std::nullopt);
  EXPECT_EQ(e.payload["ti_id"], tis[2].id);
  EXPECT_EQ(e.payload["hostname"], "psql");
  EXPECT_LT(std::chrono::abs(e.at - std::chrono::system_clock::now()), std::chrono::minutes(5));

  auto run_events = store_->ReadEvents(0, 1);
  ASSERT_EQ(run_events->size(), 1u);
  EXPECT_EQ((*run_events)[0].kind, "dag_run");
  EXPECT_EQ((*run_events)[0].state, "queued");
  EXPECT_EQ((*run_events)[0].task_id, "");
  EXPECT_EQ((*run_events)[0].try_number, std::nullopt);
  EXPECT_EQ((*run_events)[0].payload["run_type"], "manual");
}

// The update triggers pair old and new rows by id. A trigger's plan is made once per session,
// sized by the transition tables of its first call: after a first update of no row (dagd_apply
// sends such statements), the planner paired the rows of every later update by nested loop, and
// a 1,000-row batch cost a million comparisons (80 ms of a 100 ms dagd_apply), growing with the
// square of the batch. The pairing must be a hash or merge join, and no plan JIT-compiled.
TEST_F(PgEventLogTest, UpdateTriggersPairOldAndNewRowsByHashOrMergeJoinNotNestedLoop) {
  auto dag = MakeDag("etl");
  CreateRunOf(*dag, "r1");
  SqlSession sql(db_.url());
  sql.Exec("LOAD 'auto_explain'");
  sql.Exec("SET auto_explain.log_min_duration = 0");
  sql.Exec("SET auto_explain.log_nested_statements = on");
  sql.Exec("SET client_min_messages = log");
  sql.Exec("UPDATE task_instance SET state = 'removed' WHERE false");
  sql.Exec("UPDATE dag_run SET state = 'failed' WHERE false");
  sql.Exec("UPDATE task_instance SET state = 'removed'");
  sql.Exec("UPDATE dag_run SET state = 'failed'");
  int pairings = 0;
  for (const auto& notice : sql.TakeNotices()) {
    if (notice.find("dagd_old") == std::string::npos) continue;
    ++pairings;
    const bool hash = notice.find("Hash Cond: (n.id = o.id)") != std::string::npos;
    const bool merge = notice.find("Merge Cond: (n.id = o.id)") != std::string::npos;
    EXPECT_TRUE(hash || merge) << notice;
    EXPECT_EQ(notice.find("Join Filter: ((n.id = o.id)"), std::string::npos) << notice;
    EXPECT_EQ(notice.find("JIT:"), std::string::npos) << notice;
  }
  EXPECT_EQ(pairings, 4);  // two statements per table
  EXPECT_EQ(Count("SELECT count(*) FROM event WHERE state IN ('removed', 'failed')"), 4);
}

// Events are transitions: a task instance inserted without a state (as every run creates its
// own) has none, one inserted with a state has one.
TEST_F(PgEventLogTest, ATaskInstanceInsertedWithoutAStateIsNoEventAndOneWithAStateIs) {
  auto dag = MakeDag("etl");
  ASSERT_TRUE(store_->SyncDag(*dag, "/dags/etl.json", kT0, scheduler::DagSource::kFile).ok());
  SqlSession sql(db_.url());
  sql.Exec(
      "WITH r AS (INSERT INTO dag_run (dag_id, run_id, version_number, state, run_type) "
      "VALUES ('etl', 'from_sql', 1, 'queued', 'manual') RETURNING id) "
      "INSERT INTO task_instance (dag_run_id, dag_id, run_id, task_id, version_number, state) "
      "SELECT r.id, 'etl', 'from_sql', t.task_id, 1, t.state FROM r, "
      "(VALUES ('extract', NULL), ('transform', 'skipped'), ('load', NULL)) AS t(task_id, state)");
  EXPECT_EQ(db_.Query("SELECT string_agg(kind || ':' || coalesce(task_id, '-') || ':' || "
                      "coalesce(state, 'none'), ',' ORDER BY seq) FROM event"),
            std::vector<std::string>{"dag_run:-:queued,task_instance:transform:skipped"});
  EXPECT_EQ(Count("SELECT max(seq) - min(seq) + 1 - count(*) FROM event"), 0);
}

// --- ReadOtherEvents ---------------------------------------------------------------------------

// A scheduler reads what others wrote: its own events are left out, yet the page covers them, so
// it resumes after them instead of reading them again.
TEST_F(PgEventLogTest, ReadOtherEventsSkipsAnOriginAndStillAdvancesPastItsEvents) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);  // 1 event (the run's), no origin
  const int64_t created = *store_->LatestEventSeq();
  SqlSession(db_.url()).Exec("UPDATE task_instance SET state = 'removed' WHERE task_id = 'load'");
  scheduler::Transition t;  // 2 events of our own, the last ones of the log
  t.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
  t.task_instances.push_back(test::Queue(tis[0], epoch));
  ApplyOk(t);
  const int64_t latest = *store_->LatestEventSeq();
  ASSERT_EQ(latest, created + 3);

  auto page = store_->ReadOtherEvents(0, 100, epoch);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->events.size(), 2u);
  for (size_t i = 0; i < page->events.size(); ++i) {
    EXPECT_EQ(page->events[i].seq, static_cast<int64_t>(i) + 1);
    EXPECT_EQ(page->events[i].origin, std::nullopt);
  }
  EXPECT_EQ(page->events.back().state, "removed");
  EXPECT_EQ(page->last_seq, latest);

  // Only our own events after the position: nothing returned, the position still advances.
  auto own = store_->ReadOtherEvents(created + 1, 100, epoch);
  ASSERT_TRUE(own.ok()) << own.status().ToString();
  EXPECT_TRUE(own->events.empty());
  EXPECT_EQ(own->last_seq, latest);

  // Another origin skipped: our own events come back, the others' do not.
  auto theirs = store_->ReadOtherEvents(0, 100, epoch + 1);
  ASSERT_TRUE(theirs.ok());
  ASSERT_EQ(theirs->events.size(), 4u);
  EXPECT_EQ(theirs->events[1].origin, std::nullopt);
  EXPECT_EQ(theirs->events[2].origin, epoch);
  EXPECT_EQ(theirs->last_seq, latest);

  // Nothing new: the position stays.
  auto idle = store_->ReadOtherEvents(latest, 100, epoch);
  ASSERT_TRUE(idle.ok());
  EXPECT_TRUE(idle->events.empty());
  EXPECT_EQ(idle->last_seq, latest);
}

// A full page may stop short of the counter: the reader resumes after its last row, and the
// events after it (other writers' and skipped ones alike) are covered by the next pages.
TEST_F(PgEventLogTest, AFullPageOfOtherEventsStopsAtItsLastRow) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);  // seq 1 (one event per created run)
  for (const char* id : {"r2", "r3", "r4"}) CreateRunOf(*dag, id);  // seq 2-4
  scheduler::Transition t;                                            // seq 5-6, ours
  t.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
  t.task_instances.push_back(test::Queue(tis[0], epoch));
  ApplyOk(t);
  for (const char* id : {"r5", "r6", "r7", "r8"}) CreateRunOf(*dag, id);  // seq 7-10

  auto first = store_->ReadOtherEvents(0, 3, epoch);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->events.size(), 3u);
  EXPECT_EQ(first->last_seq, 3);
  auto second = store_->ReadOtherEvents(first->last_seq, 3, epoch);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->events.size(), 3u);
  EXPECT_EQ(second->events[0].seq, 4);
  EXPECT_EQ(second->events[1].seq, 7);  // 5 and 6 skipped
  EXPECT_EQ(second->events[2].seq, 8);
  EXPECT_EQ(second->last_seq, 8);
  auto third = store_->ReadOtherEvents(second->last_seq, 3, epoch);
  ASSERT_TRUE(third.ok());
  ASSERT_EQ(third->events.size(), 2u);
  EXPECT_EQ(third->events[1].seq, 10);
  EXPECT_EQ(third->last_seq, 10);
}

// --- Subscribe ---------------------------------------------------------------------------------

// Collects on_change calls for a test to wait on.
class Changes {
 public:
  scheduler::StateStore::ChangeCallback Callback() {
    return [this](std::optional<int64_t> origin) {
      {
        std::lock_guard lock(mu_);
        origins_.push_back(origin);
      }
      cv_.notify_all();
    };
  }
  // The next call's origin, or a failure after `timeout`.
  ::testing::AssertionResult Next(std::optional<int64_t>* origin,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !origins_.empty(); })) {
      return ::testing::AssertionFailure() << "no change reported within " << timeout.count()
                                           << " ms";
    }
    *origin = origins_.front();
    origins_.pop_front();
    return ::testing::AssertionSuccess();
  }
  size_t Pending() {
    std::lock_guard lock(mu_);
    return origins_.size();
  }

 private:
  std::mutex mu_;  // guards origins_
  std::condition_variable cv_;
  std::deque<std::optional<int64_t>> origins_;
};

TEST_F(PgEventLogTest, ARunInsertedByAnotherWriterIsReportedAtOnce) {
  auto dag = MakeDag("etl");
  ASSERT_TRUE(store_->SyncDag(*dag, "/dags/etl.json", kT0, scheduler::DagSource::kFile).ok());
  Changes changes;
  ASSERT_TRUE(store_->Subscribe(changes.Callback()).ok());
  SqlSession sql(db_.url());
  const auto start = std::chrono::steady_clock::now();
  sql.Exec(
      "INSERT INTO dag_run (dag_id, run_id, version_number, state, run_type) "
      "VALUES ('etl', 'from_sql', 1, 'queued', 'manual')");
  std::optional<int64_t> origin = 42;
  ASSERT_TRUE(changes.Next(&origin));
  const auto latency = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(origin, std::nullopt);
  std::printf("notification latency: %.2f ms\n",
              std::chrono::duration<double, std::milli>(latency).count());
  // A change without a state change (a note) wakes no one.
  sql.Exec("UPDATE dag_run SET note = 'x'");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(changes.Pending(), 0u);
}

TEST_F(PgEventLogTest, OurOwnApplyIsReportedWithOurEpochAsOrigin) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  Changes changes;
  auto subscription = store_->Subscribe(changes.Callback());
  ASSERT_TRUE(subscription.ok());
  scheduler::Transition t;
  t.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
  t.task_instances.push_back(test::Queue(tis[0], epoch));
  ApplyOk(t);
  std::optional<int64_t> origin;
  ASSERT_TRUE(changes.Next(&origin));
  EXPECT_EQ(origin, epoch);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(changes.Pending(), 0u);  // one commit, one notification
  store_->Unsubscribe(*subscription);
  SqlSession(db_.url()).Exec("UPDATE task_instance SET state = 'removed' WHERE task_id = 'load'");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(changes.Pending(), 0u);
}

TEST_F(PgEventLogTest, AfterLosingItsConnectionTheListenerReconnectsAndAsksForACatchUp) {
  auto dag = MakeDag("etl");
  CreateRunOf(*dag, "r1");
  Changes changes;
  ASSERT_TRUE(store_->Subscribe(changes.Callback()).ok());
  SqlSession sql(db_.url());
  sql.Exec(
      "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
      "WHERE datname = current_database() AND application_name = 'dagd-listener'");
  std::optional<int64_t> origin = 1;
  ASSERT_TRUE(changes.Next(&origin, std::chrono::seconds(5)));
  EXPECT_EQ(origin, std::nullopt);
  // Listening again.
  sql.Exec("UPDATE task_instance SET state = 'removed' WHERE task_id = 'load'");
  origin = 1;
  ASSERT_TRUE(changes.Next(&origin));
  EXPECT_EQ(origin, std::nullopt);
}

}  // namespace
}  // namespace dagd::storage
