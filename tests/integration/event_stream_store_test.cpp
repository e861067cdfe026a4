// What the event stream needs from the store and the scheduler side, against a real PostgreSQL:
// filtered pages of the event log, its bounds, several change subscriptions on one listener, and
// the EventHub's fan-out to many watchers.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dagd/scheduler/event_hub.hpp"
#include "dagd/scheduler/event_retention.hpp"
#include "pg_store_fixture.hpp"

namespace dagd::storage {
namespace {

using namespace std::chrono_literals;
using test::MakeDag;
using test::SqlSession;

class EventStreamStoreTest : public test::PgStoreTest {
 protected:
  // Runs r1 and r2 of etl and r1 of other; then, through SQL, extract of etl/r1 queued and
  // running, load of etl/r2 queued, extract of other/r1 queued. Returns the seqs in order:
  // runs created (3), then the four task events.
  void WriteHistory() {
    r1_ = CreateRunOf(*MakeDag("etl"), "r1").id;
    r2_ = CreateRunOf(*MakeDag("etl"), "r2").id;
    other_ = CreateRunOf(*MakeDag("other"), "r1").id;
    SqlSession sql(db_.url());
    auto set = [&](int64_t run, const std::string& task, const std::string& state) {
      sql.Exec("UPDATE task_instance SET state = '" + state + "' WHERE dag_run_id = " +
               std::to_string(run) + " AND task_id = '" + task + "'");
    };
    set(r1_, "extract", "queued");
    set(r1_, "extract", "running");
    set(r2_, "load", "queued");
    set(other_, "extract", "queued");
  }

  std::vector<std::string> Describe(const scheduler::EventPage& page) {
    std::vector<std::string> out;
    for (const auto& e : page.events) {
      out.push_back(std::to_string(e.seq) + " " + e.dag_id + "/" + e.run_id + "/" +
                    (e.task_id.empty() ? "-" : e.task_id) + " " + e.state);
    }
    return out;
  }

  scheduler::EventPage Read(int64_t after, int limit, scheduler::EventFilter filter,
                            int64_t window = 1000) {
    auto page = store_->ReadEventsMatching(after, limit, filter, window);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    return page.ok() ? *page : scheduler::EventPage{};
  }

  int64_t r1_ = 0, r2_ = 0, other_ = 0;
};

TEST_F(EventStreamStoreTest, ARunFilterReadsThatRunsEventsInOrderAndCoversUpToTheHead) {
  WriteHistory();
  auto page = Read(0, 100, {"etl", "r1", ""});
  EXPECT_EQ(Describe(page), (std::vector<std::string>{"1 etl/r1/- queued",
                                                      "4 etl/r1/extract queued",
                                                      "5 etl/r1/extract running"}));
  EXPECT_EQ(page.head, 7);
  EXPECT_EQ(page.last_seq, 7);
  // Resumed after a seq: nothing before it again.
  EXPECT_EQ(Describe(Read(4, 100, {"etl", "r1", ""})),
            (std::vector<std::string>{"5 etl/r1/extract running"}));
  // A task filter within the run.
  EXPECT_EQ(Describe(Read(0, 100, {"etl", "r1", "extract"})).size(), 2u);
  // An unknown run matches nothing, and the read still covers the log.
  page = Read(0, 100, {"etl", "nope", ""});
  EXPECT_TRUE(page.events.empty());
  EXPECT_EQ(page.last_seq, 7);
}

TEST_F(EventStreamStoreTest, AFullPageEndsAtItsLastEvent) {
  WriteHistory();
  auto page = Read(0, 2, {"etl", "r1", ""});
  EXPECT_EQ(page.events.size(), 2u);
  EXPECT_EQ(page.last_seq, 4);
  page = Read(0, 3, {});
  EXPECT_EQ(page.last_seq, 3);
  EXPECT_EQ(page.head, 7);
}

TEST_F(EventStreamStoreTest, DagRunIdAndTaskFiltersWithoutARunScanABoundedWindow) {
  WriteHistory();
  EXPECT_EQ(Describe(Read(0, 100, {"etl", "", ""})).size(), 5u);
  EXPECT_EQ(Describe(Read(0, 100, {"", "r1", ""})),
            (std::vector<std::string>{"1 etl/r1/- queued", "3 other/r1/- queued",
                                      "4 etl/r1/extract queued", "5 etl/r1/extract running",
                                      "7 other/r1/extract queued"}));
  EXPECT_EQ(Describe(Read(0, 100, {"", "", "load"})),
            (std::vector<std::string>{"6 etl/r2/load queued"}));
  // A window of 2 seqs: the read covers 3..4 only, and says so.
  auto page = Read(2, 100, {"other", "", ""}, 2);
  EXPECT_EQ(Describe(page), (std::vector<std::string>{"3 other/r1/- queued"}));
  EXPECT_EQ(page.last_seq, 4);
  page = Read(4, 100, {"other", "", ""}, 2);
  EXPECT_TRUE(page.events.empty());
  EXPECT_EQ(page.last_seq, 6);
}

TEST_F(EventStreamStoreTest, BoundsNameTheOldestKeptAndTheNewestEvent) {
  auto empty = store_->ReadEventBounds();
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->latest, 0);
  EXPECT_EQ(empty->oldest, 1);
  WriteHistory();
  auto bounds = store_->ReadEventBounds();
  ASSERT_TRUE(bounds.ok());
  EXPECT_EQ(bounds->oldest, 1);
  EXPECT_EQ(bounds->latest, 7);
  // Events removed (as retention does): the oldest kept moves.
  SqlSession(db_.url()).Exec("DELETE FROM event WHERE seq <= 2");
  bounds = store_->ReadEventBounds();
  EXPECT_EQ(bounds->oldest, 3);
  SqlSession(db_.url()).Exec("DELETE FROM event");
  bounds = store_->ReadEventBounds();
  EXPECT_EQ(bounds->oldest, 8);
  EXPECT_EQ(bounds->latest, 7);
}

TEST_F(EventStreamStoreTest, PruningRemovesOnlyTheOldestContiguousEventsRecordedBeforeTheCutoff) {
  WriteHistory();  // seqs 1..7
  SqlSession sql(db_.url());
  // Ages in hours: 1, 2 and 4 are old; 3 is young, so 4 stays although it is old (a kept part
  // with a hole would lose events that readers after 3 have not seen).
  sql.Exec("UPDATE event SET at = now() - interval '10 hours' WHERE seq IN (1, 2, 4)");
  const auto now = std::chrono::time_point_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now());
  auto removed = store_->PruneEvents(now - std::chrono::hours(5), 1000);
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(*removed, 2);
  EXPECT_EQ(store_->ReadEventBounds()->oldest, 3);
  EXPECT_EQ(store_->ReadEventBounds()->latest, 7);
  EXPECT_EQ(Read(0, 100, {}).oldest, 3);  // a reader of page after 0 learns it lost 1 and 2
  // Nothing older than the cutoff at the head any more: nothing to do.
  EXPECT_EQ(*store_->PruneEvents(now - std::chrono::hours(5), 1000), 0);
  // A batch bound, and a cutoff in the future that takes everything, one batch at a time.
  EXPECT_EQ(*store_->PruneEvents(now + std::chrono::hours(1), 2), 2);
  EXPECT_EQ(store_->ReadEventBounds()->oldest, 5);
  EXPECT_EQ(*store_->PruneEvents(now + std::chrono::hours(1), 1000), 3);
  EXPECT_EQ(store_->ReadEventBounds()->oldest, 8);
  EXPECT_EQ(*store_->PruneEvents(now + std::chrono::hours(1), 1000), 0);
  // New events after a complete prune are numbered on: no seq is reused.
  CreateRunOf(*MakeDag("etl"), "r3");
  EXPECT_EQ(store_->ReadEventBounds()->oldest, 8);
  EXPECT_EQ(store_->ReadEventBounds()->latest, 8);
}

TEST_F(EventStreamStoreTest, ARetentionPassRemovesEveryOldEventInBatches) {
  WriteHistory();
  SqlSession(db_.url()).Exec("UPDATE event SET at = now() - interval '2 days' WHERE seq <= 5");
  scheduler::SystemClock clock;
  scheduler::RetentionOptions options;
  options.keep = std::chrono::hours(24);
  options.batch = 2;  // three statements: 2 + 2 + 1
  scheduler::EventRetention retention(options, *store_, clock);
  auto removed = retention.PruneOnce();
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(*removed, 5);
  EXPECT_EQ(store_->ReadEventBounds()->oldest, 6);
  EXPECT_EQ(scheduler::EventRetention::IntervalFor(std::chrono::hours(24 * 7)),
            std::chrono::minutes(10));
  EXPECT_EQ(scheduler::EventRetention::IntervalFor(std::chrono::seconds(2)),
            std::chrono::seconds(1));
}

// Counts calls; a test waits for a number of them.
class Counter {
 public:
  void Hit() {
    {
      std::lock_guard lock(mu_);
      ++count_;
    }
    cv_.notify_all();
  }
  bool WaitFor(int n, std::chrono::milliseconds timeout = 3s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return count_ >= n; });
  }
  int count() {
    std::lock_guard lock(mu_);
    return count_;
  }

 private:
  std::mutex mu_;  // guards count_
  std::condition_variable cv_;
  int count_ = 0;
};

int64_t Listeners(testing::TestDatabase& db) {
  return std::stoll(db.Query("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                             "'dagd-listener' AND datname = current_database()")
                        .at(0));
}

TEST_F(EventStreamStoreTest, SeveralSubscriptionsShareOneListenerAndEachIsNotified) {
  auto dag = MakeDag("etl");
  const int64_t run = CreateRunOf(*dag, "r1").id;
  Counter a, b;
  auto sub_a = store_->Subscribe([&](std::optional<int64_t>) { a.Hit(); });
  auto sub_b = store_->Subscribe([&](std::optional<int64_t>) { b.Hit(); });
  ASSERT_TRUE(sub_a.ok() && sub_b.ok());
  EXPECT_NE(*sub_a, *sub_b);
  EXPECT_EQ(Listeners(db_), 1);
  SqlSession sql(db_.url());
  sql.Exec("UPDATE task_instance SET state = 'queued' WHERE dag_run_id = " + std::to_string(run) +
           " AND task_id = 'extract'");
  EXPECT_TRUE(a.WaitFor(1));
  EXPECT_TRUE(b.WaitFor(1));
  store_->Unsubscribe(*sub_a);
  sql.Exec("UPDATE task_instance SET state = 'running' WHERE dag_run_id = " +
           std::to_string(run) + " AND task_id = 'extract'");
  EXPECT_TRUE(b.WaitFor(2));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(a.count(), 1);
  // The last one leaving closes the listening connection.
  store_->Unsubscribe(*sub_b);
  for (int i = 0; i < 100 && Listeners(db_) > 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(Listeners(db_), 0);
}

TEST_F(EventStreamStoreTest, TheHubWakesEveryWatcherAndTheSchedulersSubscriptionStillHearsChanges) {
  auto dag = MakeDag("etl");
  const int64_t run = CreateRunOf(*dag, "r1").id;
  Counter scheduler_side, first, second, gone;
  // The scheduler's own subscription, as its loop takes it.
  auto sub = store_->Subscribe([&](std::optional<int64_t>) { scheduler_side.Hit(); });
  ASSERT_TRUE(sub.ok());
  scheduler::EventHub hub(*store_, 50ms);
  auto w1 = hub.Watch([&] { first.Hit(); });
  auto w2 = hub.Watch([&] { second.Hit(); });
  auto w3 = hub.Watch([&] { gone.Hit(); });
  EXPECT_EQ(hub.WatcherCount(), 3u);
  hub.Start();
  // Once subscribed, the hub wakes everyone (what committed before may have been missed).
  ASSERT_TRUE(first.WaitFor(1));
  ASSERT_TRUE(gone.WaitFor(1));
  w3.reset();
  const int gone_before = gone.count();
  EXPECT_EQ(hub.WatcherCount(), 2u);
  EXPECT_EQ(Listeners(db_), 1);  // one LISTEN for the scheduler and the hub

  const int first_before = first.count();
  const int second_before = second.count();
  SqlSession sql(db_.url());
  sql.Exec("UPDATE task_instance SET state = 'queued' WHERE dag_run_id = " + std::to_string(run) +
           " AND task_id = 'extract'");
  EXPECT_TRUE(first.WaitFor(first_before + 1));
  EXPECT_TRUE(second.WaitFor(second_before + 1));
  EXPECT_TRUE(scheduler_side.WaitFor(1));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(gone.count(), gone_before);  // a dropped watch is never called again

  // Stopping the hub leaves the scheduler's subscription working.
  hub.Stop();
  sql.Exec("UPDATE task_instance SET state = 'running' WHERE dag_run_id = " +
           std::to_string(run) + " AND task_id = 'extract'");
  EXPECT_TRUE(scheduler_side.WaitFor(2));
  store_->Unsubscribe(*sub);
}

TEST_F(EventStreamStoreTest, AWatcherMayDropItsOwnWatchFromItsWake) {
  auto dag = MakeDag("etl");
  CreateRunOf(*dag, "r1");
  scheduler::EventHub hub(*store_, 50ms);
  std::unique_ptr<scheduler::ChangeWatch> watch;
  Counter calls;
  std::mutex mu;  // guards watch
  {
    std::lock_guard lock(mu);
    watch = hub.Watch([&] {
      calls.Hit();
      std::unique_ptr<scheduler::ChangeWatch> mine;
      {
        std::lock_guard lock2(mu);
        mine = std::move(watch);
      }
      mine.reset();  // on the hub's thread, inside this very call
    });
  }
  hub.Start();
  ASSERT_TRUE(calls.WaitFor(1));
  for (int i = 0; i < 100 && hub.WatcherCount() > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(hub.WatcherCount(), 0u);
}

}  // namespace
}  // namespace dagd::storage
