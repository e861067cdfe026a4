// GroupCommit: concurrent calls share one write (leader/follower). A caller that finds no write in
// flight writes its own request at once, so an idle store adds no latency. Callers arriving while
// a write is in flight queue up; when it ends, the first of them becomes the leader and writes
// everything queued (up to the limits, in arrival order) in one call of `write`, then hands every
// caller its own result. One write at a time: a queue forms only while the database is busy with
// the previous one, which is exactly when sharing a commit pays.
//
// `write` gets the requests of one group (never empty) and returns one result per request, in
// order; it runs on the leader's thread, one call at a time. If it throws, every caller of the
// group gets internal. Thread-safe; the requests live on their callers' stacks until they return.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dagd/scheduler/status.hpp"

namespace dagd::storage::pg {

template <typename Request, typename T>
class GroupCommit {
 public:
  struct Limits {
    size_t max_requests = 1;  // per write, at least 1
    size_t max_weight = 0;    // sum of the requests' weights per write (a first request that
                              // alone weighs more is still written, alone)
  };
  using WriteFn = std::function<std::vector<StatusOr<T>>(const std::vector<Request*>&)>;

  GroupCommit(Limits limits, WriteFn write) : limits_(limits), write_(std::move(write)) {}
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Writes `request` (alone or with others) and returns its own result.
  StatusOr<T> Submit(Request& request, size_t weight) {
    Waiter self{&request, weight, false, std::nullopt};
    std::unique_lock lock(mu_);
    queue_.push_back(&self);
    if (!busy_) {
      busy_ = true;
      self.lead = true;
    }
    while (!self.lead && !self.result) done_.wait(lock);
    if (self.result) return std::move(*self.result);

    // The leader is at the head of the queue: take it and whoever follows, within the limits.
    std::vector<Waiter*> group;
    size_t weight_sum = 0;
    while (!queue_.empty() && group.size() < std::max<size_t>(limits_.max_requests, 1)) {
      Waiter* next = queue_.front();
      if (!group.empty() && weight_sum + next->weight > limits_.max_weight) break;
      group.push_back(next);
      weight_sum += next->weight;
      queue_.pop_front();
    }
    lock.unlock();

    std::vector<Request*> requests;
    requests.reserve(group.size());
    for (Waiter* w : group) requests.push_back(w->request);
    std::vector<StatusOr<T>> results;
    try {
      results = write_(requests);
    } catch (const std::exception& e) {
      results.clear();
      results.resize(group.size(), Status::Internal(std::string("group write: ") + e.what()));
    }
    if (results.size() != group.size()) {
      results.assign(group.size(), Status::Internal("group write: wrong number of results"));
    }

    lock.lock();
    for (size_t i = 0; i < group.size(); ++i) group[i]->result = std::move(results[i]);
    // Hand the lead on to the oldest caller still queued, or stand down.
    if (queue_.empty()) {
      busy_ = false;
    } else {
      queue_.front()->lead = true;
    }
    StatusOr<T> own = std::move(*self.result);
    lock.unlock();
    done_.notify_all();
    return own;
  }

 private:
  struct Waiter {
    Request* request;
    size_t weight;
    bool lead = false;
    std::optional<StatusOr<T>> result;
  };

  const Limits limits_;
  const WriteFn write_;
  std::mutex mu_;  // guards queue_, busy_, and the lead and result of every queued Waiter
  std::condition_variable done_;
  std::deque<Waiter*> queue_;  // callers not yet taken into a write, oldest first
  bool busy_ = false;          // a leader is writing (or about to)
};

}  // namespace dagd::storage::pg
