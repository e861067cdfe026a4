// PgStateStore::Apply as compare-and-set: conflicts per run, the finish guard, the columns each
// kind owns, and fencing by scheduler epoch; other writers are a plain SQL session.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <string>
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

using PgConditionalApplyTest = test::PgStoreTest;

TEST_F(PgConditionalApplyTest, ARowChangedByAnotherWriterExcludesItsRunAndTheOtherRunIsWritten) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis1, tis2;
  DagRun r1 = CreateRunOf(*dag, "r1", &tis1);
  DagRun r2 = CreateRunOf(*dag, "r2", &tis2);
  SqlSession other(db_.url());
  other.Exec("UPDATE task_instance SET state = 'removed' WHERE id = '" + tis1[1].id + "'");
  const int64_t events_before = Count("SELECT count(*) FROM event");

  scheduler::Transition t;
  for (auto* run : {&r1, &r2}) {
    t.runs.push_back(test::RunChange(RunKind::kStart, *run, RunState::kRunning, kT0));
  }
  for (auto* tis : {&tis1, &tis2}) {
    TaskInstance& extract = (*tis)[0];
    t.task_instances.push_back(test::Queue(extract, epoch));
    t.task_instances.push_back(test::Settle((*tis)[1], TaskState::kSkipped, kT0));
    t.xcoms.push_back({extract.run_id_key, extract.id, {"k", "v"}});
  }
  auto applied = store_->Apply(t);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(applied->conflicts, std::vector<int64_t>{r1.id});

  // r1: nothing of the batch, and the other writer's change stands.
  EXPECT_EQ(Load(r1.id).run.state, RunState::kQueued);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->state, TaskState::kNone);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "transform")->state, TaskState::kRemoved);
  EXPECT_TRUE(store_->ListXcom(tis1[0].id)->empty());
  EXPECT_TRUE(store_->ListTries("etl", "r1", "extract")->empty());
  // r2: all of it.
  EXPECT_EQ(Load(r2.id).run.state, RunState::kRunning);
  auto extract2 = store_->GetTaskInstance("etl", "r2", "extract");
  EXPECT_EQ(extract2->state, TaskState::kQueued);
  EXPECT_EQ(extract2->owner_epoch, epoch);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r2", "transform")->state, TaskState::kSkipped);
  EXPECT_EQ(store_->ListXcom(tis2[0].id)->size(), 1u);
  EXPECT_EQ(store_->ListTries("etl", "r2", "extract")->size(), 1u);
  EXPECT_EQ(Count("SELECT count(*) FROM event") - events_before, 3);
  EXPECT_EQ(Count("SELECT count(*) FROM event WHERE run_key = " + std::to_string(r1.id) +
                  " AND origin IS NOT NULL"),
            0);
}

TEST_F(PgConditionalApplyTest, ARunInAnotherStateThanExpectedIsAConflict) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  SqlSession(db_.url()).Exec("UPDATE dag_run SET state = 'failed' WHERE id = " +
                             std::to_string(run.id));
  scheduler::Transition t;
  t.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
  t.task_instances.push_back(test::Queue(tis[0], epoch));
  auto applied = store_->Apply(t);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(applied->conflicts, std::vector<int64_t>{run.id});
  EXPECT_EQ(Load(run.id).run.state, RunState::kFailed);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->state, TaskState::kNone);
}

TEST_F(PgConditionalApplyTest, ATryOwnedByAnotherEpochIsAConflict) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  scheduler::Transition queued;
  queued.task_instances.push_back(test::Queue(tis[0], epoch));
  ApplyOk(queued);
  // Another scheduler re-queued the same try meanwhile.
  SqlSession(db_.url()).Exec("UPDATE task_instance SET owner_epoch = " +
                             std::to_string(epoch + 100) + " WHERE id = '" + tis[0].id + "'");
  scheduler::Transition t;
  t.task_instances.push_back(test::Start(tis[0], kT0 + Us(1)));
  auto applied = store_->Apply(t);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(applied->conflicts, std::vector<int64_t>{run.id});
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->state, TaskState::kQueued);
}

TEST_F(PgConditionalApplyTest, ARunFinishesOnlyWhenNoTaskInstanceIsUnfinishedInTheStore) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  scheduler::Transition start;
  start.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
  start.task_instances.push_back(test::Queue(tis[0], epoch));
  ApplyOk(start);

  // `load` is still none: the finish is refused, the rest of the batch is written.
  scheduler::Transition early;
  early.task_instances.push_back(test::Start(tis[0], kT0 + Us(1)));
  early.task_instances.push_back(test::Settle(tis[1], TaskState::kSkipped, kT0 + Us(1)));
  DagRun finishing = run;
  early.runs.push_back(test::RunChange(RunKind::kFinish, finishing, RunState::kSuccess, kT0));
  auto refused = store_->Apply(early);
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->conflicts, std::vector<int64_t>{run.id});
  EXPECT_EQ(Load(run.id).run.state, RunState::kRunning);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->state, TaskState::kRunning);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "transform")->state, TaskState::kSkipped);

  // The last ones finish in the same batch as the run: allowed.
  scheduler::Transition done;
  done.task_instances.push_back(test::Finish(tis[0], TaskState::kSuccess, kT0 + Us(2)));
  done.task_instances.push_back(test::Settle(tis[2], TaskState::kUpstreamFailed, kT0 + Us(2)));
  done.runs.push_back(test::RunChange(RunKind::kFinish, run, RunState::kFailed, kT0 + Us(3)));
  ApplyOk(done);
  const DagRun finished = Load(run.id).run;
  EXPECT_EQ(finished.state, RunState::kFailed);
  EXPECT_EQ(finished.end_date, kT0 + Us(3));
}

TEST_F(PgConditionalApplyTest, EachKindWritesOnlyTheColumnsItOwns) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  SqlSession other(db_.url());
  const std::string extract = "'" + tis[0].id + "'";
  other.Exec("UPDATE task_instance SET note = 'sql note', pool = 'sql_pool', unixname = 'sql', "
             "priority_weight = 7 WHERE dag_run_id = " +
             std::to_string(run.id));
  other.Exec("UPDATE dag_run SET note = 'run note', conf = '{\"x\": 1}' WHERE id = " +
             std::to_string(run.id));

  TaskInstance& ti = tis[0];
  ti.note = "cached note";  // a stale cached copy must not win
  ti.pool = "cached_pool";
  scheduler::Transition queue;
  queue.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
  queue.task_instances.push_back(test::Queue(ti, epoch, kT0 + Us(1)));
  ApplyOk(queue);
  auto got = store_->GetTaskInstance("etl", "r1", "extract");
  EXPECT_EQ(got->note, "sql note");
  EXPECT_EQ(got->pool, "sql_pool");
  EXPECT_EQ(got->unixname, "sql");
  EXPECT_EQ(got->priority_weight, 7);
  EXPECT_EQ(got->queued_when, kT0 + Us(1));
  const DagRun stored_run = Load(run.id).run;
  EXPECT_EQ(stored_run.note, "run note");
  EXPECT_EQ(stored_run.conf, (scheduler::Json{{"x", 1}}));
  EXPECT_EQ(stored_run.queued_at, kT0);

  // kStart: state, start_date, hostname, unixname, pid, process; not queued_when, not the note.
  other.Exec("UPDATE task_instance SET note = 'second', max_tries = 5 WHERE id = " + extract);
  ti.queued_when = kT0 + Us(99);
  ti.unixname = "nobody";
  scheduler::Transition start;
  start.task_instances.push_back(test::Start(ti, kT0 + Us(2), "worker-1", 77));
  ApplyOk(start);
  got = store_->GetTaskInstance("etl", "r1", "extract");
  EXPECT_EQ(got->note, "second");
  EXPECT_EQ(got->max_tries, 5);
  EXPECT_EQ(got->queued_when, kT0 + Us(1));
  EXPECT_EQ(got->hostname, "worker-1");
  EXPECT_EQ(got->unixname, "nobody");
  EXPECT_EQ(got->pid, 77);

  // kFinish: keeps the stored start_date, hostname and pid; writes max_tries.
  other.Exec("UPDATE task_instance SET hostname = 'moved' WHERE id = " + extract);
  ti.start_date = kT0 + Us(50);
  ti.max_tries = 2;
  scheduler::Transition finish;
  finish.task_instances.push_back(test::Finish(ti, TaskState::kSuccess, kT0 + Us(3)));
  ApplyOk(finish);
  got = store_->GetTaskInstance("etl", "r1", "extract");
  EXPECT_EQ(got->state, TaskState::kSuccess);
  EXPECT_EQ(got->start_date, kT0 + Us(2));
  EXPECT_EQ(got->end_date, kT0 + Us(3));
  EXPECT_EQ(got->hostname, "moved");
  EXPECT_EQ(got->pid, 77);
  EXPECT_EQ(got->max_tries, 2);
  EXPECT_EQ(got->owner_epoch, epoch);

  // kSettle: state, try_number, dates; not the pool or the note.
  scheduler::Transition settle;
  settle.task_instances.push_back(test::Settle(tis[1], TaskState::kSkipped, kT0 + Us(4)));
  ApplyOk(settle);
  auto skipped = store_->GetTaskInstance("etl", "r1", "transform");
  EXPECT_EQ(skipped->state, TaskState::kSkipped);
  EXPECT_EQ(skipped->end_date, kT0 + Us(4));
  EXPECT_EQ(skipped->pool, "sql_pool");
  EXPECT_EQ(skipped->note, "sql note");
  EXPECT_EQ(skipped->owner_epoch, std::nullopt);
}

TEST_F(PgConditionalApplyTest, AfterAnotherSchedulerTookTheLeaseApplyIsFencedAndWritesNothing) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  SqlSession(db_.url())
      .Exec("WITH e AS (INSERT INTO scheduler_epoch (hostname, pid) VALUES ('other-host', 99) "
            "RETURNING epoch) UPDATE scheduler_lease SET epoch = (SELECT epoch FROM e)");
  const int64_t events_before = Count("SELECT count(*) FROM event");
  scheduler::Transition t;
  t.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
  t.task_instances.push_back(test::Queue(tis[0], epoch));
  auto applied = store_->Apply(t);
  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(applied.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(applied.status().message(),
            "fenced: another scheduler (epoch " + std::to_string(epoch + 1) +
                ", host other-host pid 99) took over");
  EXPECT_EQ(Count("SELECT count(*) FROM event"), events_before);
  EXPECT_EQ(Load(run.id).run.state, RunState::kQueued);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->state, TaskState::kNone);
}

TEST_F(PgConditionalApplyTest, ApplyWithoutASchedulerEpochIsRefused) {
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  CreateRunOf(*dag, "r1", &tis);
  scheduler::Transition t;
  t.task_instances.push_back(test::Queue(tis[0], 1));
  EXPECT_EQ(store_->Apply(t).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->SchedulerEpoch(), std::nullopt);
}

TEST_F(PgConditionalApplyTest, ATaskInstanceTwiceInOneBatchIsAnInternalError) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  CreateRunOf(*dag, "r1", &tis);
  scheduler::Transition t;
  TaskInstance ti = tis[0];
  t.task_instances.push_back(test::Queue(ti, epoch));
  t.task_instances.push_back(test::Start(ti, kT0));
  EXPECT_EQ(store_->Apply(t).status().code(), StatusCode::kInternal);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->state, TaskState::kNone);
}

TEST_F(PgConditionalApplyTest, EachLockAcquisitionIsANewEpochThatTakesTheLease) {
  const int64_t first = Epoch();
  EXPECT_GT(first, 0);
  EXPECT_EQ(Epoch(), first);  // idempotent while the lock is held
  store_.reset();
  auto opened = PgStateStore::Open(Options());
  ASSERT_TRUE(opened.ok());
  store_ = std::move(opened).value();
  const int64_t second = Epoch();
  EXPECT_GT(second, first);
  EXPECT_EQ(db_.Query("SELECT epoch FROM scheduler_lease"),
            std::vector<std::string>{std::to_string(second)});
  EXPECT_EQ(Count("SELECT count(*) FROM scheduler_epoch WHERE pid = pg_backend_pid()"), 0);
}

// A scheduler that lost its lock connection while another one ran must not come back.
TEST_F(PgConditionalApplyTest, RetakingALostLockAfterAnotherSchedulerTookTheLeaseIsFenced) {
  const int64_t epoch = Epoch();
  SqlSession other(db_.url());
  other.Exec(
      "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
      "WHERE datname = current_database() AND application_name = 'dagd-scheduler'");
  other.Exec(
      "WITH e AS (INSERT INTO scheduler_epoch (hostname, pid) VALUES ('h2', 5) RETURNING epoch) "
      "UPDATE scheduler_lease SET epoch = (SELECT epoch FROM e)");
  Status again = store_->AcquireSchedulerLock();
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition) << again.ToString();
  EXPECT_EQ(again.message(), "fenced: another scheduler (epoch " + std::to_string(epoch + 1) +
                                 ", host h2 pid 5) took over");
  // And it released the lock it took to find out (its session ends after the client closed it:
  // give the server a moment).
  int64_t held = 1;
  for (int i = 0; i < 100 && held != 0; ++i) {
    held = Count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'");
    if (held != 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(held, 0);
}

// A try that started and ended within one batch is one kFinish from queued: it writes the
// start's columns too, and the event log still shows it running before it ended. A try cut off
// before it started (no start) shows no running state.
TEST_F(PgConditionalApplyTest, AFinishFromQueuedWritesTheStartAndLogsRunningFirst) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  CreateRunOf(*dag, "r1", &tis);
  scheduler::Transition queue;
  queue.task_instances.push_back(test::Queue(tis[0], epoch));
  queue.task_instances.push_back(test::Queue(tis[1], epoch));
  ApplyOk(queue);

  TaskInstance started = tis[0];
  started.state = TaskState::kRunning;
  started.start_date = kT0 + Us(1);
  started.hostname = "host-b";
  started.pid = 77;
  TaskInstance ended = started;
  ended.state = TaskState::kSuccess;
  ended.end_date = kT0 + Us(2);
  TaskInstance cut_off = tis[1];
  cut_off.state = TaskState::kUpForRetry;
  cut_off.end_date = kT0 + Us(2);
  scheduler::Transition finish;
  finish.task_instances.push_back(test::Change(scheduler::TiTransition::Kind::kFinish, tis[0], ended));
  finish.task_instances.push_back(test::Change(scheduler::TiTransition::Kind::kFinish, tis[1], cut_off));
  ApplyOk(finish);

  auto got = store_->GetTaskInstance("etl", "r1", tis[0].task_id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, TaskState::kSuccess);
  EXPECT_EQ(got->hostname, "host-b");
  EXPECT_EQ(got->pid, 77);
  EXPECT_EQ(got->start_date, kT0 + Us(1));
  EXPECT_EQ(db_.Query("SELECT string_agg(coalesce(state, 'none'), ',' ORDER BY seq) FROM event "
                      "WHERE task_id = '" + tis[0].task_id + "'"),
            std::vector<std::string>{"queued,running,success"});
  EXPECT_EQ(db_.Query("SELECT string_agg(coalesce(state, 'none'), ',' ORDER BY seq) FROM event "
                      "WHERE task_id = '" + tis[1].task_id + "'"),
            std::vector<std::string>{"queued,up_for_retry"});
}

}  // namespace
}  // namespace dagd::storage
