// PgStateStore's backfills: what each date gets by reprocess_behavior (a new run, a re-run, or a
// recorded reason), one active backfill per DAG, cancel, pause, completion and listing.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "pg_store_fixture.hpp"

namespace dagd::storage {
namespace {

using scheduler::BackfillRecord;
using scheduler::NewBackfill;
using scheduler::ReprocessBehavior;
using test::DagRun;
using test::kT0;
using test::RunState;
using test::TimePoint;

const TimePoint kDay = kT0 - std::chrono::hours(24 * 30);

TimePoint Date(int i) { return kDay + std::chrono::hours(24 * i); }

class PgBackfillsTest : public test::PgStoreTest {
 protected:
  void SetUp() override {
    PgStoreTest::SetUp();
    if (HasFatalFailure()) return;
    dag_ = test::MakeDag("etl");
    auto version = store_->SyncDag(*dag_, "/dags/etl.json", kT0, scheduler::DagSource::kFile);
    ASSERT_TRUE(version.ok()) << version.status().ToString();
    version_ = *version;
  }

  // A run of date i in `state`, its task instances run once (try 1) when it ended.
  int64_t ExistingRun(int i, const std::string& state) {
    DagRun run = test::MakeRun("etl", "manual__" + std::to_string(i), version_);
    run.logical_date = Date(i);
    auto tis = test::MakeTis(*dag_, version_);
    auto created = store_->CreateRun(run, tis);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    const std::string key = std::to_string(created->id);
    db_.Query("UPDATE dag_run SET state = '" + state + "' WHERE id = " + key);
    if (state == "success" || state == "failed") {
      db_.Query("UPDATE task_instance SET state = '" + state +
                "', try_number = 1 WHERE dag_run_id = " + key);
    }
    return created->id;
  }

  NewBackfill Plan(std::vector<int> days, ReprocessBehavior behavior) {
    NewBackfill b;
    b.backfill.dag_id = "etl";
    b.backfill.from_date = Date(days.front());
    b.backfill.to_date = Date(days.back());
    b.backfill.reprocess_behavior = behavior;
    b.backfill.max_active_runs = 2;
    b.backfill.dag_run_conf = {{"k", "v"}};
    b.version_number = version_;
    for (int i : days) {
      NewBackfill::Date date;
      date.run = test::MakeRun("etl", "backfill__" + std::to_string(i), version_);
      date.run.logical_date = Date(i);
      date.run.run_after = Date(i);
      date.run.data_interval_start = Date(i);
      date.run.data_interval_end = Date(i);
      date.run.run_type = scheduler::RunType::kBackfill;
      date.run.triggered_by = "backfill";
      date.run.conf = b.backfill.dag_run_conf;
      date.tis = test::MakeTis(*dag_, version_);
      b.dates.push_back(std::move(date));
    }
    return b;
  }

  std::vector<std::string> Outcomes(int64_t backfill_id) {
    return db_.Query(
        "SELECT sort_ordinal || ':' || coalesce(dag_run_id::text, '-') || ':' ||"
        " coalesce(exception_reason, '-') FROM backfill_dag_run WHERE backfill_id = " +
        std::to_string(backfill_id) + " ORDER BY sort_ordinal");
  }

  scheduler::DagPtr dag_;
  int version_ = 0;
};

TEST_F(PgBackfillsTest, EachDateGetsANewRunAReRunOrTheReasonItHasNone) {
  const int64_t succeeded = ExistingRun(1, "success");
  const int64_t failed = ExistingRun(2, "failed");
  ExistingRun(3, "running");
  auto created = store_->CreateBackfill(Plan({1, 2, 3, 4}, ReprocessBehavior::kFailed), kT0);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  const std::string id = std::to_string(created->id);
  EXPECT_EQ(created->reprocess_behavior, ReprocessBehavior::kFailed);
  EXPECT_EQ(created->max_active_runs, 2);
  EXPECT_FALSE(created->completed_at.has_value());
  const std::string fresh = db_.Query("SELECT id FROM dag_run WHERE run_id = 'backfill__4'").at(0);
  EXPECT_EQ(Outcomes(created->id),
            (std::vector<std::string>{"1:-:already exists", "2:" + std::to_string(failed) + ":-",
                                      "3:-:in flight", "4:" + fresh + ":-"}));
  // The failed run is run again: queued, owned by the backfill, its tasks back to none with
  // their tries kept (the next one is try 2).
  EXPECT_EQ(db_.Query("SELECT state || run_type || triggered_by || backfill_id || conf::text"
                      " FROM dag_run WHERE id = " +
                      std::to_string(failed)),
            std::vector<std::string>{"queuedbackfillbackfill" + id + R"({"k": "v"})"});
  EXPECT_EQ(db_.Query("SELECT DISTINCT coalesce(state, 'none') || try_number || max_tries"
                      " FROM task_instance WHERE dag_run_id = " +
                      std::to_string(failed)),
            std::vector<std::string>{"none11"});
  EXPECT_EQ(db_.Query("SELECT state || coalesce(backfill_id::text, '-') FROM dag_run WHERE id = " +
                      std::to_string(succeeded)),
            std::vector<std::string>{"success-"});
  auto run = store_->GetRun("etl", "backfill__4");
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->backfill_id, created->id);
  EXPECT_EQ(run->run_type, scheduler::RunType::kBackfill);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instance WHERE dag_run_id = " + fresh), 3);

  auto again = store_->CreateBackfill(Plan({5}, ReprocessBehavior::kNone), kT0);
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().message(), "There is already a running backfill for dag etl");
  auto gates = store_->ListBackfillGates("etl");
  ASSERT_TRUE(gates.ok());
  ASSERT_EQ(gates->size(), 1u);
  EXPECT_EQ(gates->at(0).max_active_runs, 2);
  EXPECT_FALSE(gates->at(0).is_paused);
}

TEST_F(PgBackfillsTest, CompletedReRunsEveryEndedRunAndNoneKeepsThem) {
  ExistingRun(1, "success");
  ExistingRun(2, "failed");
  auto none = store_->CreateBackfill(Plan({1, 2}, ReprocessBehavior::kNone), kT0);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->completed_at.has_value()) << "every date kept its run: nothing to wait for";
  auto completed = store_->CreateBackfill(Plan({1, 2}, ReprocessBehavior::kCompleted), kT0);
  ASSERT_TRUE(completed.ok()) << completed.status().ToString();
  EXPECT_EQ(Count("SELECT count(*) FROM dag_run WHERE state = 'queued' AND backfill_id = " +
                  std::to_string(completed->id)),
            2);
}

TEST_F(PgBackfillsTest, CancelFailsTheQueuedRunsAndCompletesTheBackfill) {
  auto created = store_->CreateBackfill(Plan({1, 2, 3}, ReprocessBehavior::kNone), kT0);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  db_.Query("UPDATE dag_run SET state = 'running' WHERE run_id = 'backfill__1'");
  auto paused = store_->SetBackfillPaused(created->id, true, kT0 + std::chrono::seconds(1));
  ASSERT_TRUE(paused.ok());
  EXPECT_TRUE(paused->is_paused);
  EXPECT_EQ(paused->updated_at, kT0 + std::chrono::seconds(1));
  auto cancelled = store_->CancelBackfill(created->id, kT0 + std::chrono::seconds(2));
  ASSERT_TRUE(cancelled.ok()) << cancelled.status().ToString();
  EXPECT_EQ(cancelled->completed_at, kT0 + std::chrono::seconds(2));
  EXPECT_TRUE(cancelled->is_paused);
  EXPECT_EQ(db_.Query("SELECT run_id || ':' || state FROM dag_run WHERE backfill_id = " +
                      std::to_string(created->id) + " ORDER BY run_id"),
            (std::vector<std::string>{"backfill__1:running", "backfill__2:failed",
                                      "backfill__3:failed"}));
  EXPECT_EQ(store_->CancelBackfill(created->id, kT0).status().code(),
            StatusCode::kFailedPrecondition);
  auto unpause = store_->SetBackfillPaused(created->id, false, kT0);
  EXPECT_EQ(unpause.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(unpause.status().message(), "Backfill is already completed.");
  EXPECT_EQ(store_->SetBackfillPaused(999, true, kT0).status().message(),
            "Could not find backfill with id 999");
  EXPECT_EQ(store_->GetBackfill(999).status().code(), StatusCode::kNotFound);
  // Its running run still holds a gate, closed.
  auto gates = store_->ListBackfillGates("etl");
  ASSERT_TRUE(gates.ok());
  ASSERT_EQ(gates->size(), 1u);
  EXPECT_TRUE(gates->at(0).completed);
}

TEST_F(PgBackfillsTest, ABackfillCompletesOnceAllItsRunsEnded) {
  auto created = store_->CreateBackfill(Plan({1, 2}, ReprocessBehavior::kNone), kT0);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  db_.Query("UPDATE dag_run SET state = 'success' WHERE run_id = 'backfill__1'");
  EXPECT_EQ(*store_->CompleteEndedBackfills(kT0), 0);
  db_.Query("UPDATE dag_run SET state = 'failed' WHERE run_id = 'backfill__2'");
  EXPECT_EQ(*store_->CompleteEndedBackfills(kT0 + std::chrono::seconds(3)), 1);
  EXPECT_EQ(store_->GetBackfill(created->id)->completed_at, kT0 + std::chrono::seconds(3));
  // A new one may start now.
  EXPECT_TRUE(store_->CreateBackfill(Plan({3}, ReprocessBehavior::kNone), kT0).ok());
}

TEST_F(PgBackfillsTest, ListingPagesByIdAndRefusesOtherOrderings) {
  for (int i = 1; i <= 3; ++i) {
    auto created = store_->CreateBackfill(Plan({i}, ReprocessBehavior::kNone), kT0);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    ASSERT_TRUE(store_->CancelBackfill(created->id, kT0).ok());
  }
  scheduler::BackfillQuery q;
  q.dag_id = "etl";
  q.page.limit = 2;
  q.page.order_by = {"-id"};
  auto listed = store_->ListBackfills(q);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(listed->total_entries, 3);
  ASSERT_EQ(listed->items.size(), 2u);
  EXPECT_GT(listed->items[0].id, listed->items[1].id);
  EXPECT_EQ(listed->items[0].dag_run_conf, scheduler::Json({{"k", "v"}}));
  q.page.order_by = {"dag_id"};
  EXPECT_EQ(store_->ListBackfills(q).status().code(), StatusCode::kInvalidArgument);
  auto states = store_->RunStatesAt("etl", {Date(1), Date(9)});
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ(states->at(0).first, Date(1));
  EXPECT_EQ(states->at(0).second, RunState::kFailed) << "cancelled while queued";
}

}  // namespace
}  // namespace dagd::storage
