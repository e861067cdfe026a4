#include "dagd/api/login_throttle.hpp"

#include <algorithm>
#include <iterator>

namespace dagd::api {

void LoginThrottle::Expire(std::deque<Clock::time_point>& fails, Clock::time_point now) const {
  while (!fails.empty() && now - fails.front() >= window_) fails.pop_front();
}

std::optional<std::chrono::seconds> LoginThrottle::RetryAfter(const std::string& address,
                                                              Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(address);
  if (it == failures_.end()) return std::nullopt;
  Expire(it->second, now);
  if (static_cast<int>(it->second.size()) < max_failures_) return std::nullopt;
  // Rounded up: a client that waits as told is let through.
  const auto left = it->second.front() + window_ - now;
  return std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(left));
}

void LoginThrottle::Failed(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(address);
  if (it == failures_.end()) {
    if (failures_.size() >= max_addresses_) {
      // Forget first the addresses with nothing left in the window, then the longest quiet one.
      for (auto entry = failures_.begin(); entry != failures_.end();) {
        Expire(entry->second, now);
        entry = entry->second.empty() ? failures_.erase(entry) : std::next(entry);
      }
      if (failures_.size() >= max_addresses_) {
        auto quietest = std::min_element(
            failures_.begin(), failures_.end(),
            [](const auto& a, const auto& b) { return a.second.back() < b.second.back(); });
        failures_.erase(quietest);
      }
    }
    it = failures_.emplace(address, std::deque<Clock::time_point>{}).first;
  }
  Expire(it->second, now);
  it->second.push_back(now);
  // No more than the limit is kept (attempts that raced past the check): memory stays bounded.
  while (static_cast<int>(it->second.size()) > max_failures_) it->second.pop_front();
}

void LoginThrottle::Succeeded(const std::string& address) {
  std::lock_guard lock(mu_);
  failures_.erase(address);
}

}  // namespace dagd::api
