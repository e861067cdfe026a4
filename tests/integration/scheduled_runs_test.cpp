// Scheduled runs on a real PostgreSQL with the real loop and executor, under a clock the test
// sets: catchup after a simulated downtime, exactly once across restarts, next_dagrun_* on the
// DAG row, a logical date another run holds.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "dagd/executors/job_registry.hpp"
#include "dagd/executors/thread_pool_executor.hpp"
#include "dagd/scheduler/dag_parser.hpp"
#include "dagd/scheduler/scheduler.hpp"
#include "dagd/scheduler/scheduler_service.hpp"
#include "dagd/storage/pg_state_store.hpp"
#include "test_database.hpp"

namespace dagd::scheduler {
namespace {

using namespace std::chrono_literals;

class SetClock final : public Clock {
 public:
  explicit SetClock(TimePoint t) : us_(t.time_since_epoch().count()) {}
  TimePoint Now() const override { return TimePoint(Duration(us_.load())); }
  void Set(TimePoint t) { us_ = t.time_since_epoch().count(); }

 private:
  std::atomic<int64_t> us_;
};

TimePoint At(std::string_view text) { return ParseRfc3339(text).value(); }

class ScheduledRunsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::PgOptions options;
    options.url = db_.url();
    auto store = storage::PgStateStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    pg_ = std::move(store).value();
    logs_ = std::filesystem::temp_directory_path() / ("dagd-scheduled-" + db_.name());
    executor_ = std::make_unique<executors::ThreadPoolExecutor>(executors::ExecutorOptions{},
                                                                jobs_, clock_);
    ASSERT_TRUE(pg_->AcquireSchedulerLock().ok());
  }
  void TearDown() override {
    if (scheduler_) scheduler_->Shutdown(5s);
    std::filesystem::remove_all(logs_);
  }

  void AddDag(const std::string& fields) {
    ParseResult parsed = ParseDag(R"({"dag_id": "hourly", )" + fields +
                                      R"(, "tasks": [{"task_id": "t", "operator": "empty"}]})",
                                  ParseOptions{});
    ASSERT_TRUE(parsed.dag) << parsed.errors.front();
    ASSERT_TRUE(pg_->SyncDag(*parsed.dag, "/dags/hourly.json", clock_.Now(), DagSource::kFile)
                    .ok());
  }

  void StartScheduler() {
    if (scheduler_) scheduler_->Shutdown(5s);
    SchedulerOptions options;
    options.logs_root = logs_;
    options.heartbeat = 60s;  // rounds come from the test's Poke, not from time passing
    scheduler_ = std::make_unique<Scheduler>(options, *pg_, *executor_, clock_);
    ASSERT_TRUE(scheduler_->Start().ok());
  }

  // The logical dates of the DAG's runs of `type`, oldest first.
  std::vector<std::string> Runs(const std::string& type = "scheduled") {
    return db_.Query("SELECT run_id FROM dag_run WHERE dag_id = 'hourly' AND run_type = '" +
                     type + "' ORDER BY logical_date");
  }
  // Waits until the DAG has `n` scheduled runs, all of them ended.
  void WaitForEndedRuns(size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto counts = db_.Query(
          "SELECT count(*) || ' ' || count(*) FILTER (WHERE state IN ('success', 'failed')) "
          "FROM dag_run WHERE dag_id = 'hourly' AND run_type = 'scheduled'");
      if (counts[0] == std::to_string(n) + " " + std::to_string(n)) return;
      scheduler_->DagChanged("hourly");  // a round, in case the last one ran before a run ended
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "expected " << n << " ended scheduled runs, have " << Runs().size();
  }

  testing::TestDatabase db_;
  SetClock clock_{At("2026-03-08T00:30:00Z")};
  executors::JobRegistry jobs_;
  std::unique_ptr<storage::PgStateStore> pg_;
  std::filesystem::path logs_;
  std::unique_ptr<executors::ThreadPoolExecutor> executor_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(ScheduledRunsTest, CatchupCreatesEveryMissedRunOnceOldestFirstWithinMaxActiveRuns) {
  AddDag(R"("schedule": "0 */6 * * *", "start_date": "2026-03-06T00:00:00Z", "catchup": true,
            "max_active_runs": 2)");
  StartScheduler();
  WaitForEndedRuns(9);  // 03-06 00:00 to 03-08 00:00, every 6 hours
  const auto runs = Runs();
  ASSERT_EQ(runs.size(), 9u);
  EXPECT_EQ(runs.front(), "scheduled__2026-03-06T00:00:00+00:00");
  EXPECT_EQ(runs.back(), "scheduled__2026-03-08T00:00:00+00:00");
  // Never more than max_active_runs at once: each run started after the one two before ended.
  EXPECT_EQ(db_.Query("SELECT count(*) FROM dag_run a JOIN dag_run b ON b.dag_id = a.dag_id "
                      "AND b.logical_date = a.logical_date + interval '12 hours' "
                      "WHERE a.dag_id = 'hourly' AND b.start_date < a.end_date")[0],
            "0");
  // What the API shows next: 06:00, with its data interval and run_after.
  auto dag = pg_->GetDag("hourly");
  ASSERT_TRUE(dag.ok());
  ASSERT_TRUE(dag->next_dagrun);
  EXPECT_EQ(FormatRfc3339(dag->next_dagrun->logical_date), "2026-03-08T06:00:00Z");
  EXPECT_EQ(FormatRfc3339(dag->next_dagrun->run_after), "2026-03-08T06:00:00Z");
  EXPECT_EQ(dag->timetable_description, "At 0 minutes past the hour, every 6 hours");
}

TEST_F(ScheduledRunsTest, ARestartAtTheSameTimeCreatesNothingAndTheNextFireTimeCreatesOneRun) {
  AddDag(R"("schedule": "@hourly", "start_date": "2026-03-01T00:00:00Z")");
  StartScheduler();
  WaitForEndedRuns(1);  // without catchup: only the latest missed run, 00:00
  EXPECT_EQ(Runs(), std::vector<std::string>{"scheduled__2026-03-08T00:00:00+00:00"});

  StartScheduler();  // a restart, same time
  scheduler_->DagChanged("hourly");
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(Runs().size(), 1u);

  clock_.Set(At("2026-03-08T01:00:00Z"));  // the clock reaches the next fire time
  WaitForEndedRuns(2);
  clock_.Set(At("2026-03-08T01:30:00Z"));
  StartScheduler();
  scheduler_->DagChanged("hourly");
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(Runs(), (std::vector<std::string>{"scheduled__2026-03-08T00:00:00+00:00",
                                              "scheduled__2026-03-08T01:00:00+00:00"}));
}

TEST_F(ScheduledRunsTest, APausedDagGetsNoRunsAndResumesWhenUnpaused) {
  AddDag(R"("schedule": "@hourly", "start_date": "2026-03-01T00:00:00Z")");
  ASSERT_TRUE(pg_->SetPaused("hourly", true).ok());
  StartScheduler();
  scheduler_->DagChanged("hourly");
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(Runs().empty());
  auto dag = pg_->GetDag("hourly");  // the next run is still shown while paused
  ASSERT_TRUE(dag.ok() && dag->next_dagrun);
  EXPECT_EQ(FormatRfc3339(dag->next_dagrun->logical_date), "2026-03-08T00:00:00Z");

  ASSERT_TRUE(pg_->SetPaused("hourly", false).ok());
  scheduler_->DagChanged("hourly");
  WaitForEndedRuns(1);
}

TEST_F(ScheduledRunsTest, ALogicalDateAnotherRunHoldsIsSkippedNotRetriedForever) {
  AddDag(R"("schedule": "@hourly", "start_date": "2026-03-08T00:00:00Z", "catchup": true)");
  // A manual run already holds 00:00.
  SchedulerOptions options;
  options.logs_root = logs_;
  Scheduler unused(options, *pg_, *executor_, clock_);
  SchedulerService service(ServiceOptions{}, *pg_, unused, clock_);
  TriggerRequest request;
  request.dag_run_id = "by_hand";
  request.logical_date = At("2026-03-08T00:00:00Z");
  ASSERT_TRUE(service.Trigger("hourly", request).ok());
  // A second manual run at the same logical date is refused with a sentence.
  request.dag_run_id = "by_hand_again";
  auto again = service.Trigger("hourly", request);
  ASSERT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().message(),
            "DAG 'hourly' already has a run with logical date 2026-03-08T00:00:00Z (a DAG has "
            "one run per logical date)");

  StartScheduler();
  clock_.Set(At("2026-03-08T01:00:00Z"));
  WaitForEndedRuns(1);
  EXPECT_EQ(Runs(), std::vector<std::string>{"scheduled__2026-03-08T01:00:00+00:00"});
  EXPECT_EQ(Runs("manual"), std::vector<std::string>{"by_hand"});
}

}  // namespace
}  // namespace dagd::scheduler
