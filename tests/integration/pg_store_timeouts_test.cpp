// Database timeouts: a call that finds no free pooled connection in time, and a statement that
// runs past statement_timeout, both answer unavailable instead of hanging.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "pg_store_fixture.hpp"

namespace dagd::storage {
namespace {

using test::kT0;
using test::MakeDag;
using test::SqlSession;

class PgStoreTimeoutsTest : public test::PgStoreTest {
 protected:
  PgOptions Options() const override {
    PgOptions options = test::PgStoreTest::Options();
    options.pool_size = 1;
    options.pool_wait_timeout = std::chrono::milliseconds(200);
    options.statement_timeout = std::chrono::milliseconds(1500);
    return options;
  }

  // Waits until a dagd connection waits for a lock.
  void WaitForALockWaiter() {
    for (int i = 0; i < 200; ++i) {
      if (Count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'dagd' AND wait_event_type = 'Lock'") > 0) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "no dagd connection started waiting for the lock";
  }
};

TEST_F(PgStoreTimeoutsTest, ACallFindingNoFreeConnectionInTimeIsUnavailable) {
  ASSERT_TRUE(
      store_->SyncDag(*MakeDag("etl"), "/dags/etl.json", kT0, scheduler::DagSource::kFile).ok());
  SqlSession holder(db_.url());
  holder.Exec("BEGIN; SELECT 1 FROM dag WHERE dag_id = 'etl' FOR UPDATE");
  Status blocked;
  std::thread waiter([&] { blocked = store_->SetPaused("etl", true); });  // holds the one slot
  WaitForALockWaiter();

  const auto start = std::chrono::steady_clock::now();
  Status busy = store_->Ping();
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable) << busy.ToString();
  EXPECT_EQ(busy.message(), "the database is busy: no connection became free within 200 ms");
  EXPECT_GE(waited, std::chrono::milliseconds(190));
  EXPECT_LT(waited, std::chrono::milliseconds(1400));

  holder.Exec("ROLLBACK");
  waiter.join();
  EXPECT_TRUE(blocked.ok()) << blocked.ToString();
  EXPECT_TRUE(store_->Ping().ok());
}

TEST_F(PgStoreTimeoutsTest, AStatementPastStatementTimeoutIsUnavailableAndTheStoreCarriesOn) {
  const int64_t epoch = Epoch();
  std::vector<test::TaskInstance> tis;
  CreateRunOf(*MakeDag("etl"), "r1", &tis);
  SqlSession holder(db_.url());
  holder.Exec("BEGIN; SELECT 1 FROM task_instance WHERE task_id = 'extract' FOR UPDATE");
  scheduler::Transition t;
  t.task_instances.push_back(test::Queue(tis[0], epoch));
  auto applied = store_->Apply(t);
  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(applied.status().code(), StatusCode::kUnavailable) << applied.status().ToString();
  EXPECT_NE(applied.status().message().find("statement_timeout"), std::string::npos)
      << applied.status().message();
  holder.Exec("ROLLBACK");
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->state, test::TaskState::kNone);
  ApplyOk(t);  // same connection, still usable
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->state, test::TaskState::kQueued);
}

}  // namespace
}  // namespace dagd::storage
