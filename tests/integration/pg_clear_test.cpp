// PgStateStore::ClearTaskInstances: Airflow's selection options, what clearing does to task
// instances, tries and runs, dry runs, and conditional writes against the scheduler's commits.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pg_store_fixture.hpp"

namespace dagd::storage {
namespace {

using test::DagRun;
using test::kT0;
using test::MakeDag;
using test::RunState;
using test::TaskInstance;
using test::TaskState;
using RunKind = scheduler::RunTransition::Kind;
using std::chrono::hours;
using std::chrono::seconds;

// Every test starts with two runs of etl (extract → transform → load):
// r1 (logical date kT0) failed: extract success, transform failed (try 1), load upstream_failed;
// r2 (kT0 + 1h) running: extract success, transform running (try 1), load not started.
class PgClearFixture : public test::PgStoreTest {
 protected:
  void SetUp() override {
    PgStoreTest::SetUp();
    if (HasFatalFailure()) return;
    epoch_ = Epoch();
    dag_ = MakeDag("etl");
    auto version =
        store_->SyncDag(*dag_, "/dags/etl.json", kT0, scheduler::DagSource::kFile);
    ASSERT_TRUE(version.ok()) << version.status().ToString();
    version_ = *version;
    r1_ = Create("r1", kT0, &r1_tis_);
    r2_ = Create("r2", kT0 + hours(1), &r2_tis_);

    scheduler::Transition start;
    start.runs.push_back(test::RunChange(RunKind::kStart, r1_, RunState::kRunning, kT0));
    start.runs.push_back(test::RunChange(RunKind::kStart, r2_, RunState::kRunning, kT0));
    for (auto* tis : {&r1_tis_, &r2_tis_}) {
      start.task_instances.push_back(test::Queue((*tis)[0], epoch_));
    }
    ApplyOk(start);
    Step([&](scheduler::Transition& t) {
      for (auto* tis : {&r1_tis_, &r2_tis_}) t.task_instances.push_back(test::Start((*tis)[0], kT0));
    });
    Step([&](scheduler::Transition& t) {
      for (auto* tis : {&r1_tis_, &r2_tis_}) {
        t.task_instances.push_back(test::Finish((*tis)[0], TaskState::kSuccess, kT0));
      }
    });
    Step([&](scheduler::Transition& t) {
      for (auto* tis : {&r1_tis_, &r2_tis_}) t.task_instances.push_back(test::Queue((*tis)[1], epoch_));
    });
    Step([&](scheduler::Transition& t) {
      for (auto* tis : {&r1_tis_, &r2_tis_}) t.task_instances.push_back(test::Start((*tis)[1], kT0));
    });
    Step([&](scheduler::Transition& t) {
      t.task_instances.push_back(test::Finish(r1_tis_[1], TaskState::kFailed, kT0));
    });
    Step([&](scheduler::Transition& t) {
      t.task_instances.push_back(test::Settle(r1_tis_[2], TaskState::kUpstreamFailed, kT0));
    });
    Step([&](scheduler::Transition& t) {
      t.runs.push_back(test::RunChange(RunKind::kFinish, r1_, RunState::kFailed, kT0));
    });
  }

  DagRun Create(const std::string& run_id, scheduler::TimePoint logical_date,
                std::vector<TaskInstance>* tis) {
    DagRun run = test::MakeRun("etl", run_id, version_);
    run.logical_date = logical_date;
    *tis = test::MakeTis(*dag_, version_);
    auto created = store_->CreateRun(run, *tis);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? *created : run;
  }

  template <typename F>
  void Step(F fill) {
    scheduler::Transition t;
    fill(t);
    ApplyOk(t);
  }

  scheduler::TaskInstanceClear Clear() const {
    scheduler::TaskInstanceClear clear;
    clear.dag_id = "etl";
    clear.retries = {{{version_, "extract"}, 1}, {{version_, "transform"}, 2},
                     {{version_, "load"}, 0}};
    return clear;
  }

  static std::vector<std::string> Keys(const std::vector<TaskInstance>& tis) {
    std::vector<std::string> out;
    for (const auto& ti : tis) out.push_back(ti.run_id + "/" + ti.task_id);
    return out;
  }

  TaskState State(const std::string& run_id, const std::string& task_id) {
    return store_->GetTaskInstance("etl", run_id, task_id)->state;
  }

  int64_t epoch_ = 0;
  int version_ = 0;
  scheduler::DagPtr dag_;
  DagRun r1_, r2_;
  std::vector<TaskInstance> r1_tis_, r2_tis_;
};

TEST_F(PgClearFixture, ADryRunListsTheFailedTaskInstancesAndWritesNothing) {
  const int64_t events = Count("SELECT count(*) FROM event");
  auto clear = Clear();
  clear.only_failed = true;
  clear.dry_run = true;
  auto would = store_->ClearTaskInstances(clear, kT0 + seconds(9));
  ASSERT_TRUE(would.ok()) << would.status().ToString();
  EXPECT_EQ(Keys(*would), (std::vector<std::string>{"r1/load", "r1/transform"}));
  EXPECT_EQ(would->at(1).state, TaskState::kFailed) << "answered as it is";
  EXPECT_EQ(Count("SELECT count(*) FROM event"), events);
  EXPECT_EQ(State("r1", "transform"), TaskState::kFailed);
  EXPECT_EQ(store_->GetRun("etl", "r1")->state, RunState::kFailed);
}

TEST_F(PgClearFixture, ClearingFailedTasksResetsThemWithFullRetriesAndQueuesTheirRun) {
  const std::string queued_events =
      "SELECT count(*) FROM event WHERE kind = 'dag_run' AND run_id = 'r1' AND state = 'queued' "
      "AND origin IS NULL";
  const int64_t queued_before = Count(queued_events);
  auto clear = Clear();
  clear.only_failed = true;
  auto cleared = store_->ClearTaskInstances(clear, kT0 + seconds(9));
  ASSERT_TRUE(cleared.ok()) << cleared.status().ToString();
  ASSERT_EQ(Keys(*cleared), (std::vector<std::string>{"r1/load", "r1/transform"}));
  const TaskInstance& transform = cleared->at(1);
  EXPECT_EQ(transform.state, TaskState::kNone);
  EXPECT_EQ(transform.try_number, 1) << "the next try gets the next number";
  EXPECT_EQ(transform.max_tries, 1 + 2) << "try_number + retries";
  EXPECT_EQ(cleared->at(0).max_tries, 0);
  EXPECT_EQ(State("r1", "extract"), TaskState::kSuccess);
  EXPECT_EQ(State("r2", "transform"), TaskState::kRunning);

  auto run = store_->GetRun("etl", "r1");
  EXPECT_EQ(run->state, RunState::kQueued);
  EXPECT_EQ(run->queued_at, kT0 + seconds(9));
  EXPECT_FALSE(run->start_date.has_value());
  EXPECT_FALSE(run->end_date.has_value());
  EXPECT_EQ(store_->GetRun("etl", "r2")->state, RunState::kRunning);
  // The event log shows it, so that the scheduler loads the run again.
  EXPECT_EQ(Count(queued_events), queued_before + 1);
  EXPECT_EQ(Count("SELECT count(*) FROM event WHERE kind = 'task_instance' AND run_id = 'r1' "
                  "AND state IS NULL AND origin IS NULL"),
            2);

  // The old try stays in the history; the next one is a new row.
  auto tries = store_->ListTries("etl", "r1", "transform");
  ASSERT_TRUE(tries.ok());
  ASSERT_EQ(tries->size(), 1u);
  EXPECT_EQ(tries->at(0).state, TaskState::kFailed);
  TaskInstance again = transform;
  scheduler::Transition requeue;
  requeue.task_instances.push_back(test::Queue(again, epoch_));
  ApplyOk(requeue);
  tries = store_->ListTries("etl", "r1", "transform");
  ASSERT_EQ(tries->size(), 2u);
  EXPECT_EQ(tries->at(0).try_number, 1);
  EXPECT_EQ(tries->at(0).state, TaskState::kFailed);
  EXPECT_EQ(tries->at(1).try_number, 2);
}

TEST_F(PgClearFixture, ARunningTaskInstanceGoesToRestartingAndItsRunKeepsRunning) {
  auto clear = Clear();
  clear.only_failed = false;
  clear.only_running = true;
  auto cleared = store_->ClearTaskInstances(clear, kT0);
  ASSERT_TRUE(cleared.ok()) << cleared.status().ToString();
  ASSERT_EQ(Keys(*cleared), (std::vector<std::string>{"r2/transform"}));
  EXPECT_EQ(cleared->at(0).state, TaskState::kRestarting);
  EXPECT_EQ(cleared->at(0).try_number, 1);
  EXPECT_EQ(store_->GetRun("etl", "r2")->state, RunState::kRunning);
  // The scheduler, which had not seen the clear, commits the try's end: rejected, it reloads.
  scheduler::Transition late;
  late.task_instances.push_back(test::Finish(r2_tis_[1], TaskState::kSuccess, kT0));
  auto applied = store_->Apply(late);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(applied->conflicts.size(), 1u);
  EXPECT_EQ(State("r2", "transform"), TaskState::kRestarting);
}

TEST_F(PgClearFixture, OnlyFailedAndOnlyRunningTogetherSelectEither) {
  auto clear = Clear();
  clear.only_failed = true;
  clear.only_running = true;
  clear.dry_run = true;
  auto would = store_->ClearTaskInstances(clear, kT0);
  ASSERT_TRUE(would.ok());
  EXPECT_EQ(Keys(*would), (std::vector<std::string>{"r1/load", "r1/transform", "r2/transform"}));
}

TEST_F(PgClearFixture, WithoutResetDagRunsAFinishedRunKeepsItsState) {
  auto clear = Clear();
  clear.only_failed = true;
  clear.reset_dag_runs = false;
  ASSERT_TRUE(store_->ClearTaskInstances(clear, kT0).ok());
  EXPECT_EQ(State("r1", "transform"), TaskState::kNone);
  EXPECT_EQ(store_->GetRun("etl", "r1")->state, RunState::kFailed);
}

TEST_F(PgClearFixture, ARunIdAndTaskIdsNarrowTheSelection) {
  auto clear = Clear();
  clear.run_id = "r2";
  clear.task_ids = std::vector<std::string>{"extract", "load"};
  auto cleared = store_->ClearTaskInstances(clear, kT0);
  ASSERT_TRUE(cleared.ok()) << cleared.status().ToString();
  EXPECT_EQ(Keys(*cleared), (std::vector<std::string>{"r2/extract", "r2/load"}));
  EXPECT_EQ(State("r2", "extract"), TaskState::kNone);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r2", "extract")->max_tries, 1 + 1);
  EXPECT_EQ(State("r2", "transform"), TaskState::kRunning);
  EXPECT_EQ(State("r1", "extract"), TaskState::kSuccess);
}

TEST_F(PgClearFixture, LogicalDateBoundsAreInclusive) {
  auto clear = Clear();
  clear.dry_run = true;
  clear.start_date = kT0 + hours(1);
  auto later = store_->ClearTaskInstances(clear, kT0);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(Keys(*later), (std::vector<std::string>{"r2/extract", "r2/load", "r2/transform"}));
  clear.start_date.reset();
  clear.end_date = kT0;
  auto earlier = store_->ClearTaskInstances(clear, kT0);
  ASSERT_TRUE(earlier.ok());
  EXPECT_EQ(Keys(*earlier), (std::vector<std::string>{"r1/extract", "r1/load", "r1/transform"}));
}

TEST_F(PgClearFixture, TaskInstancesOfAVersionWithoutRetriesKeepTheirMaxTriesAtLeast) {
  auto clear = Clear();
  clear.retries.clear();
  clear.only_failed = true;
  ASSERT_TRUE(store_->ClearTaskInstances(clear, kT0).ok());
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "transform")->max_tries, 1)
      << "max(max_tries, try_number)";
}

TEST_F(PgClearFixture, RunOnLatestVersionMovesTheRunAndItsTaskInstancesToThatVersion) {
  // The latest version drops load, adds report, and gives transform retries.
  auto latest = test::ParseOrThrow(R"({"dag_id": "etl", "tasks": [
      {"task_id": "extract", "operator": "empty"},
      {"task_id": "transform", "operator": "empty", "upstream": ["extract"], "retries": 4},
      {"task_id": "report", "operator": "empty", "upstream": ["transform"]}]})");
  auto version = store_->SyncDag(*latest, "/dags/etl.json", kT0, scheduler::DagSource::kFile);
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  ASSERT_GT(*version, version_);
  auto clear = Clear();
  clear.only_failed = true;
  clear.run_id = "r1";
  clear.latest_version = *version;
  clear.latest_tasks = latest->tasks;
  clear.retries = {{{*version, "extract"}, 0}, {{*version, "transform"}, 4},
                   {{*version, "report"}, 0}};
  auto cleared = store_->ClearTaskInstances(clear, kT0 + seconds(9));
  ASSERT_TRUE(cleared.ok()) << cleared.status().ToString();

  EXPECT_EQ(store_->GetRun("etl", "r1")->version_number, *version);
  EXPECT_EQ(store_->GetRun("etl", "r1")->state, RunState::kQueued);
  auto transform = store_->GetTaskInstance("etl", "r1", "transform");
  EXPECT_EQ(transform->version_number, *version);
  EXPECT_EQ(transform->state, TaskState::kNone);
  EXPECT_EQ(transform->max_tries, 1 + 4) << "the latest version's retries";
  EXPECT_EQ(State("r1", "load"), TaskState::kRemoved) << "its task is not in the version";
  auto report = store_->GetTaskInstance("etl", "r1", "report");
  ASSERT_TRUE(report.ok()) << "the version's new task gets its task instance";
  EXPECT_EQ(report->state, TaskState::kNone);
  EXPECT_EQ(report->version_number, *version);
  EXPECT_EQ(report->try_number, 0);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->version_number, version_)
      << "a task instance not cleared keeps the version it ran with";
  EXPECT_EQ(store_->GetRun("etl", "r2")->version_number, version_) << "r2 was not cleared";
}

TEST_F(PgClearFixture, PreventRunningTaskRefusesAndWritesNothing) {
  const int64_t events = Count("SELECT count(*) FROM event");
  auto clear = Clear();
  clear.only_failed = false;
  clear.prevent_running_task = true;
  auto refused = store_->ClearTaskInstances(clear, kT0);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Count("SELECT count(*) FROM event"), events);
  EXPECT_EQ(State("r1", "transform"), TaskState::kFailed);
}

TEST_F(PgClearFixture, UnknownDagsAndRunsAreNotFoundAndNoMatchIsEmpty) {
  auto clear = Clear();
  clear.dag_id = "nope";
  EXPECT_EQ(store_->ClearTaskInstances(clear, kT0).status().code(), StatusCode::kNotFound);
  clear = Clear();
  clear.run_id = "nope";
  auto missing = store_->ClearTaskInstances(clear, kT0);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "Dag Run id nope not found in dag etl");
  clear = Clear();
  clear.task_ids = std::vector<std::string>{"no_such_task"};
  auto none = store_->ClearTaskInstances(clear, kT0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace dagd::storage
