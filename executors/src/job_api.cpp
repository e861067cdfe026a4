#include "dagd/executors/job_api.hpp"

#include <algorithm>
#include <thread>
#include <utility>

namespace dagd::executors {

JobContext::JobContext(JobInfo info, LogSink log,
                       std::shared_ptr<const std::atomic<bool>> cancelled)
    : info_(std::move(info)), log_(std::move(log)), cancelled_(std::move(cancelled)) {}

void JobContext::Log(std::string_view line) {
  if (log_) log_(line);
}

bool JobContext::cancelled() const {
  return cancelled_ && cancelled_->load(std::memory_order_acquire);
}

bool JobContext::WaitFor(std::chrono::milliseconds duration) const {
  // Steps of at most 10 ms: a cancelled job notices within that.
  const auto deadline = std::chrono::steady_clock::now() + duration;
  while (!cancelled()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        deadline - now, std::chrono::milliseconds(10)));
  }
  return false;
}

void JobContext::XcomPush(std::string key, Json value) {
  std::lock_guard lock(xcom_mu_);
  auto it = std::find_if(xcom_.begin(), xcom_.end(),
                         [&](const scheduler::XcomEntry& e) { return e.key == key; });
  if (it != xcom_.end()) {
    it->value = std::move(value);
  } else {
    xcom_.push_back({std::move(key), std::move(value)});
  }
}

std::vector<scheduler::XcomEntry> JobContext::TakeXcom() {
  std::lock_guard lock(xcom_mu_);
  return std::exchange(xcom_, {});
}

}  // namespace dagd::executors
