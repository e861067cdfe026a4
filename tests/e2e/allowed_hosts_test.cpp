// --allowed-hosts on the real daemon: a listed name is served through the Host and Origin checks,
// any other name is refused, and a malformed entry stops dagd at start with a sentence.
#include <gtest/gtest.h>

#include "e2e_support.hpp"
#include "raw_http.hpp"

namespace dagd::testing {
namespace {

std::string GetDags(int port, const std::string& host, const std::string& origin = "") {
  std::string request = "GET /api/v2/dags HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n" +
                        AuthorizationLine(port);
  if (!origin.empty()) request += "Origin: " + origin + "\r\n";
  return request + "\r\n";
}

TEST(AllowedHosts, AListedNameIsServedAndAnyOtherIsRefused) {
  Daemon d(ExampleDags(), {"--allowed-hosts", "dagd.internal,10.0.0.5"});
  d.Start();
  EXPECT_EQ(RawExchange(d.port, GetDags(d.port, "dagd.internal:8080")).status, 200);
  EXPECT_EQ(RawExchange(d.port, GetDags(d.port, "10.0.0.5", "https://dagd.internal")).status, 200);
  EXPECT_EQ(RawExchange(d.port, GetDags(d.port, "localhost:8080")).status, 200);
  EXPECT_EQ(RawExchange(d.port, GetDags(d.port, "evil.example")).status, 403);
  EXPECT_EQ(RawExchange(d.port, GetDags(d.port, "dagd.internal", "http://evil.example")).status,
            403);
}

TEST(AllowedHosts, AnEntryWithAPortOrSchemeIsRefusedAtStart) {
  Daemon d(ExampleDags(), {"--allowed-hosts", "http://dagd.internal:8080"});
  EXPECT_THROW(d.process->Start(std::chrono::seconds(10)), std::runtime_error);
  EXPECT_NE(d.process->Log().find("is not a host name"), std::string::npos) << d.process->Log();
}

}  // namespace
}  // namespace dagd::testing
