// A fixture for router unit tests of one group of routes: a Router over `ServiceT` (a StubService
// subclass the test shapes) with the fake authenticator ("<role>-token"), and Call, which sends a
// JSON request as that role.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>

#include "dagd/api/router.hpp"
#include "fake_authenticator.hpp"

namespace dagd::testing {

template <typename ServiceT>
class RouteTest : public ::testing::Test {
 protected:
  api::Response Call(const std::string& method, const std::string& target,
                     const std::string& body, const std::string& role = "user") {
    std::map<std::string, std::string> headers = {{"content-type", "application/json"},
                                                  {"authorization", "Bearer " + role + "-token"}};
    return router_.Handle(api::Request{method, target, std::move(headers), body});
  }
  static nlohmann::json Body(const api::Response& r) { return nlohmann::json::parse(r.body); }

  ServiceT service_;
  FakeAuthenticator authenticator_;
  api::Router router_{service_, Options()};

 private:
  api::RouterOptions Options() {
    api::RouterOptions options;
    options.authenticator = &authenticator_;
    return options;
  }
};

}  // namespace dagd::testing
