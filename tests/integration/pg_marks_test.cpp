// PgStateStore::PatchRun and PatchTaskInstances: Airflow's mark semantics, notes, try rows, and
// conditional writes against the scheduler's commits.
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

// Every test starts with etl/r1 running: extract succeeded, transform running (try 1), load not
// started.
class PgMarksFixture : public test::PgStoreTest {
 protected:
  void SetUp() override {
    PgStoreTest::SetUp();
    if (HasFatalFailure()) return;
    const int64_t epoch = Epoch();
    DagRun run = CreateRunOf(*MakeDag("etl"), "r1", &tis_);
    scheduler::Transition start;
    start.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
    start.task_instances.push_back(test::Queue(tis_[0], epoch));
    start.task_instances.push_back(test::Queue(tis_[1], epoch));
    ApplyOk(start);
    scheduler::Transition progress;
    progress.task_instances.push_back(test::Start(tis_[0], kT0));
    progress.task_instances.push_back(test::Start(tis_[1], kT0));
    ApplyOk(progress);
    scheduler::Transition done;
    done.task_instances.push_back(test::Finish(tis_[0], TaskState::kSuccess, kT0));
    ApplyOk(done);
  }

  std::vector<TaskInstance> tis_;  // extract, transform, load as last written
};

TEST_F(PgMarksFixture, MarkingARunFailedFailsRunningTasksAndSkipsTheUnstartedOnes) {
  scheduler::RunPatch patch;
  patch.state = RunState::kFailed;
  auto run = store_->PatchRun("etl", "r1", patch, kT0 + std::chrono::seconds(5));
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->state, RunState::kFailed);
  EXPECT_EQ(run->end_date, kT0 + std::chrono::seconds(5));
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->state, TaskState::kSuccess);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "transform")->state, TaskState::kFailed);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "load")->state, TaskState::kSkipped);
  auto tries = store_->ListTries("etl", "r1", "transform");
  ASSERT_EQ(tries->size(), 1u);
  EXPECT_EQ(tries->at(0).state, TaskState::kFailed) << "the try row follows the mark";
}

TEST_F(PgMarksFixture, MarkingARunSuccessMarksEveryTaskInstanceSuccess) {
  scheduler::RunPatch patch;
  patch.state = RunState::kSuccess;
  auto run = store_->PatchRun("etl", "r1", patch, kT0);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->state, RunState::kSuccess);
  for (const char* task : {"extract", "transform", "load"}) {
    EXPECT_EQ(store_->GetTaskInstance("etl", "r1", task)->state, TaskState::kSuccess) << task;
  }
}

TEST_F(PgMarksFixture, MarkingARunQueuedLeavesItsTaskInstancesAndClearsItsDates) {
  scheduler::RunPatch fail;
  fail.state = RunState::kFailed;
  ASSERT_TRUE(store_->PatchRun("etl", "r1", fail, kT0).ok());
  scheduler::RunPatch queue;
  queue.state = RunState::kQueued;
  auto run = store_->PatchRun("etl", "r1", queue, kT0 + std::chrono::seconds(9));
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->state, RunState::kQueued);
  EXPECT_EQ(run->queued_at, kT0 + std::chrono::seconds(9));
  EXPECT_FALSE(run->end_date.has_value());
  EXPECT_FALSE(run->start_date.has_value());
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "transform")->state, TaskState::kFailed);
}

TEST_F(PgMarksFixture, ANoteIsStoredAndRemovedWithoutTouchingTheState) {
  scheduler::RunPatch patch;
  patch.note = std::optional<std::string>("looked at it");
  auto run = store_->PatchRun("etl", "r1", patch, kT0);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->note, "looked at it");
  EXPECT_EQ(run->state, RunState::kRunning);
  patch.note = std::optional<std::string>();
  EXPECT_FALSE(store_->PatchRun("etl", "r1", patch, kT0)->note.has_value());

  scheduler::TaskInstancePatch ti_patch;
  ti_patch.task_id = "load";
  ti_patch.note = std::optional<std::string>("waits for the vendor");
  auto changed = store_->PatchTaskInstances("etl", "r1", ti_patch, kT0);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  ASSERT_EQ(changed->size(), 1u);
  EXPECT_EQ(changed->at(0).note, "waits for the vendor");
  EXPECT_EQ(changed->at(0).state, TaskState::kNone);
}

TEST_F(PgMarksFixture, MarkingATaskInstanceChangesOnlyTheNamedTasksNotAlreadyInThatState) {
  scheduler::TaskInstancePatch patch;
  patch.task_id = "transform";
  patch.state_tasks = {"transform", "extract"};
  patch.new_state = TaskState::kSuccess;
  patch.note = std::optional<std::string>("done by hand");
  auto changed = store_->PatchTaskInstances("etl", "r1", patch, kT0);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  ASSERT_EQ(changed->size(), 1u) << "extract was success already";
  EXPECT_EQ(changed->at(0).task_id, "transform");
  EXPECT_EQ(changed->at(0).state, TaskState::kSuccess);
  EXPECT_EQ(changed->at(0).note, "done by hand");
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "load")->state, TaskState::kNone);

  // Again: nothing to change is Airflow's 409, and the note is not written either.
  patch.note = std::optional<std::string>("other");
  auto again = store_->PatchTaskInstances("etl", "r1", patch, kT0);
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().message(), "Task id transform is already in success state");
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "transform")->note, "done by hand");
}

TEST_F(PgMarksFixture, ADryRunListsWhatWouldChangeAndWritesNothing) {
  const int64_t events = Count("SELECT count(*) FROM event");
  scheduler::TaskInstancePatch patch;
  patch.task_id = "transform";
  patch.state_tasks = {"transform", "load"};
  patch.new_state = TaskState::kSkipped;
  patch.dry_run = true;
  auto would = store_->PatchTaskInstances("etl", "r1", patch, kT0);
  ASSERT_TRUE(would.ok()) << would.status().ToString();
  ASSERT_EQ(would->size(), 2u);
  EXPECT_EQ(would->at(0).task_id, "load");
  EXPECT_EQ(would->at(1).task_id, "transform");
  EXPECT_EQ(would->at(1).state, TaskState::kRunning) << "unchanged";
  EXPECT_EQ(Count("SELECT count(*) FROM event"), events);
}

TEST_F(PgMarksFixture, TheSchedulersLaterCommitOfAMarkedTryConflictsInsteadOfOverwriting) {
  scheduler::TaskInstancePatch patch;
  patch.task_id = "transform";
  patch.state_tasks = {"transform"};
  patch.new_state = TaskState::kFailed;
  ASSERT_TRUE(store_->PatchTaskInstances("etl", "r1", patch, kT0).ok());
  // The try ends and the scheduler, which had not seen the mark, commits its success.
  scheduler::Transition late;
  late.task_instances.push_back(test::Finish(tis_[1], TaskState::kSuccess, kT0));
  auto applied = store_->Apply(late);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(applied->conflicts.size(), 1u);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "transform")->state, TaskState::kFailed);
}

TEST_F(PgMarksFixture, UnknownRunsAndTaskInstancesAreNotFound) {
  scheduler::RunPatch patch;
  patch.state = RunState::kFailed;
  EXPECT_EQ(store_->PatchRun("etl", "nope", patch, kT0).status().code(), StatusCode::kNotFound);
  scheduler::TaskInstancePatch ti_patch;
  ti_patch.task_id = "nope";
  ti_patch.state_tasks = {"nope"};
  ti_patch.new_state = TaskState::kFailed;
  EXPECT_EQ(store_->PatchTaskInstances("etl", "r1", ti_patch, kT0).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace dagd::storage
