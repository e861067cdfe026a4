// Failed logins per client address: after `max_failures` failed POST /auth/token from one address
// within `window`, that address is refused (429 with Retry-After) until the oldest of those
// failures leaves the window, whatever password it then sends, so that guessing passwords from
// one address goes at most max_failures per window. A successful login clears the address's
// count. At most `max_addresses` addresses are tracked; beyond that the one whose last failure is
// oldest is forgotten first. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace dagd::api {

class LoginThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  LoginThrottle(int max_failures, std::chrono::seconds window, size_t max_addresses = 4096)
      : max_failures_(max_failures), window_(window), max_addresses_(max_addresses) {}

  // How long `address` must wait before it may try again; nullopt when it may try now.
  std::optional<std::chrono::seconds> RetryAfter(const std::string& address, Clock::time_point now);
  void Failed(const std::string& address, Clock::time_point now);
  void Succeeded(const std::string& address);

 private:
  // Drops the failures of `fails` that have left the window.
  void Expire(std::deque<Clock::time_point>& fails, Clock::time_point now) const;

  const int max_failures_;
  const std::chrono::seconds window_;
  const size_t max_addresses_;
  std::mutex mu_;
  std::map<std::string, std::deque<Clock::time_point>> failures_;  // oldest first
};

}  // namespace dagd::api
