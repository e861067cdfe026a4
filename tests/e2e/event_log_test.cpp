// The event log is gap-free and in commit order while HTTP triggers and the scheduling loop
// commit concurrently: a reader that always asks for "everything after the last seq I saw" sees
// every event exactly once, in order. This is what a resumable event stream serves.
#include <gtest/gtest.h>

#include <atomic>
#include <map>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

TEST(EventLog, AReaderResumingFromItsLastSeqSeesEveryEventOnceInOrder) {
  TempDir dags;
  dags.Write("ev.json", R"({"dag_id": "ev", "max_active_runs": 1000, "tasks": [
    {"task_id": "t0", "operator": "bash", "bash_command": "true"},
    {"task_id": "t1", "operator": "empty", "upstream": ["t0"]},
    {"task_id": "t2", "operator": "bash", "bash_command": "true", "upstream": ["t1"]}]})");
  Daemon d(dags.path().string(), {"--parallelism", "8"});
  d.Start();

  std::atomic<bool> writers_done{false};
  std::vector<int64_t> seen;
  std::string reader_error;
  std::thread reader([&] {
    int64_t last = 0;
    auto read = [&] {
      auto rows = d.db.Query("SELECT seq FROM event WHERE seq > " + std::to_string(last) +
                             " ORDER BY seq LIMIT 500");
      for (const auto& row : rows) {
        const int64_t seq = std::stoll(row);
        if (seq != last + 1 && reader_error.empty()) {
          reader_error = "after seq " + std::to_string(last) + " the next visible was " + row;
        }
        seen.push_back(seq);
        last = seq;
      }
      return rows.size();
    };
    while (!writers_done) {
      read();
      std::this_thread::sleep_for(1ms);
    }
    while (read() > 0) {
    }
  });

  constexpr int kThreads = 8;
  constexpr int kRunsPerThread = 25;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kRunsPerThread; ++i) {
        Trigger(d, "ev", "r_" + std::to_string(t) + "_" + std::to_string(i));
      }
    });
  }
  for (auto& w : writers) w.join();
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (std::chrono::steady_clock::now() < deadline &&
         d.db.Query("SELECT count(*) FROM dag_run WHERE state IN ('queued', 'running')")[0] !=
             "0") {
    std::this_thread::sleep_for(50ms);
  }
  writers_done = true;
  reader.join();

  EXPECT_EQ(reader_error, "") << "a later reader could miss an event";
  const auto total = std::stoll(d.db.Query("SELECT count(*) FROM event")[0]);
  EXPECT_EQ(static_cast<int64_t>(seen.size()), total);
  EXPECT_EQ(d.db.Query("SELECT count(*) FROM dag_run WHERE state = 'success'")[0],
            std::to_string(kThreads * kRunsPerThread))
      << d.process->Log();
  // Each run: created queued, then running, then success; each task instance: created, then its
  // transitions; never a repeated transition (a commit applied twice).
  const auto dup = d.db.Query(
      "SELECT count(*) FROM (SELECT run_id, task_id, try_number, state, count(*) FROM event "
      "GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) AS x");
  EXPECT_EQ(dup, std::vector<std::string>{"0"});
  const auto run_events = d.db.Query(
      "SELECT string_agg(state, ',' ORDER BY seq) FROM event WHERE kind = 'dag_run' "
      "GROUP BY run_id HAVING string_agg(state, ',' ORDER BY seq) <> 'queued,running,success'");
  EXPECT_TRUE(run_events.empty()) << run_events.front();
}

}  // namespace
}  // namespace dagd::testing
