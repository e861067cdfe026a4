#include "dagd/executors/job_api.hpp"

#include <algorithm>
#include <stdexcept>
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

namespace {

// PostgreSQL cannot store U+0000 in text or jsonb; say so where the job can still be fixed.
bool HoldsNul(const Json& value) {
  if (value.is_string()) return value.get_ref<const std::string&>().find('\0') != std::string::npos;
  if (value.is_object()) {
    for (const auto& [k, v] : value.items()) {
      if (k.find('\0') != std::string::npos || HoldsNul(v)) return true;
    }
  }
  if (value.is_array()) {
    for (const auto& v : value) {
      if (HoldsNul(v)) return true;
    }
  }
  return false;
}

}  // namespace

void JobContext::XcomPush(std::string key, Json value) {
  if (key.empty() || key.find('\0') != std::string::npos || HoldsNul(value)) {
    throw std::invalid_argument("XCom '" + key.substr(0, key.find('\0')) +
                                "': keys must be non-empty and neither key nor value may contain "
                                "a NUL character (U+0000)");
  }
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
