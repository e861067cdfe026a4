// Event retention: a background thread that keeps the event log to its recent history, so that a
// daemon left running for months does not grow it without bound. Every `interval` it removes the
// events recorded more than `keep` ago, oldest first, `batch` at a time (StateStore::PruneEvents;
// what stays is always a contiguous tail of the log). A reader that asks for a removed seq is
// told the oldest one kept (the event stream answers 410 with it).
//
// Pruning is idempotent, so nothing breaks if the database is shared or briefly away: a failed
// pass is logged and the next interval tries again.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::scheduler {

struct RetentionOptions {
  Duration keep = std::chrono::hours(24 * 7);
  Duration interval = std::chrono::minutes(10);
  int64_t batch = 10000;  // events removed per statement: bounds each statement's time and locks
  int max_batches = 100;  // per pass, so that one pass never runs for long
};

class EventRetention {
 public:
  // `store` and `clock` must outlive this object.
  EventRetention(RetentionOptions options, StateStore& store, const Clock& clock);
  ~EventRetention();  // stops the thread, waiting for a statement in progress
  EventRetention(const EventRetention&) = delete;
  EventRetention& operator=(const EventRetention&) = delete;

  // Starts the thread; its first pass runs at once.
  void Start();
  // One pass on the caller's thread: how many events it removed.
  StatusOr<int64_t> PruneOnce();

  // How often to prune for a given retention: often enough that the log holds little more than
  // `keep`, never more than every second nor less than every 10 minutes.
  static Duration IntervalFor(Duration keep);

 private:
  void Run();

  const RetentionOptions options_;
  StateStore& store_;
  const Clock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace dagd::scheduler
