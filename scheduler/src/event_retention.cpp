#include "dagd/scheduler/event_retention.hpp"

#include <algorithm>

#include "logger.hpp"

namespace dagd::scheduler {

EventRetention::EventRetention(RetentionOptions options, StateStore& store, const Clock& clock)
    : options_(options), store_(store), clock_(clock) {}

EventRetention::~EventRetention() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void EventRetention::Start() { thread_ = std::thread([this] { Run(); }); }

Duration EventRetention::IntervalFor(Duration keep) {
  return std::clamp<Duration>(keep / 4, std::chrono::seconds(1), std::chrono::minutes(10));
}

StatusOr<int64_t> EventRetention::PruneOnce() {
  const TimePoint before = clock_.Now() - options_.keep;
  int64_t removed = 0;
  for (int i = 0; i < options_.max_batches; ++i) {
    auto n = store_.PruneEvents(before, options_.batch);
    if (!n.ok()) return n.status();
    removed += *n;
    if (*n < options_.batch) break;  // reached the events to keep
    std::lock_guard lock(mu_);
    if (stop_) break;
  }
  return removed;
}

void EventRetention::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    auto removed = PruneOnce();
    if (!removed.ok()) {
      Log()->warn("event retention pass failed; retried in interval_s={} error=\"{}\"",
                  std::chrono::duration_cast<std::chrono::seconds>(options_.interval).count(),
                  removed.status().message());
    } else if (*removed > 0) {
      Log()->info("event log pruned removed={} keep_s={}", *removed,
                  std::chrono::duration_cast<std::chrono::seconds>(options_.keep).count());
    }
    lock.lock();
    cv_.wait_for(lock, options_.interval, [this] { return stop_; });
  }
}

}  // namespace dagd::scheduler
