// An Authenticator for tests that build a Router directly: the bearer "<role>-token" (e.g.
// "admin-token") is a caller named after its role; user "<role>" with password "pw-<role>" gets
// that token from IssueToken. Everything else is refused as the real one refuses it. Header-only
// (the suites link dagd_scheduler); thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "dagd/scheduler/auth.hpp"

namespace dagd::testing {

class FakeAuthenticator final : public scheduler::Authenticator {
 public:
  StatusOr<std::string> IssueToken(const std::string& username,
                                   const std::string& password) override {
    if (!scheduler::ParseRole(username) || password != "pw-" + username) {
      return Status::InvalidArgument("Invalid username or password");
    }
    return username + "-token";
  }

  StatusOr<scheduler::Principal> Authenticate(std::string_view bearer) override {
    constexpr std::string_view kSuffix = "-token";
    if (bearer.ends_with(kSuffix)) {
      const std::string name(bearer.substr(0, bearer.size() - kSuffix.size()));
      if (auto role = scheduler::ParseRole(name)) {
        return scheduler::Principal{name, *role, "token:" + name};
      }
    }
    return Status::InvalidArgument("Invalid or expired token");
  }
};

}  // namespace dagd::testing
