// Hostile and careless requests against the real daemon, as a table: each case is sent over a
// raw loopback socket and must get its expected status, and the daemon must still answer
// /monitor/health with 200 afterwards (nothing crashed, hung or stopped serving).
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "e2e_support.hpp"
#include "raw_http.hpp"

namespace dagd::testing {
namespace {

struct HostileCase {
  std::string name;
  std::string request;        // sent verbatim
  std::vector<int> expected;  // any of these statuses
};

// gtest prints the case by name rather than as bytes.
void PrintTo(const HostileCase& c, std::ostream* os) { *os << c.name; }

std::string Nested(size_t depth, const std::string& inner = "1") {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

std::string NestedObjects(size_t depth) {
  std::string s;
  for (size_t i = 0; i < depth; ++i) s += "{\"a\":";
  return s + "1" + std::string(depth, '}');
}

// A complete request with Host, Connection: close and (for a body) its Content-Length.
std::string Req(const std::string& method, const std::string& target, const std::string& body = "",
                const std::string& extra_headers = "Content-Type: application/json\r\n") {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  r += extra_headers;
  if (!body.empty() || method == "POST" || method == "PATCH") {
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return r + "\r\n" + body;
}

std::string TriggerBody(const std::string& conf_json) {
  return R"({"logical_date": null, "conf": )" + conf_json + "}";
}

const std::string kRuns = "/api/v2/dags/example_chain/dagRuns";

std::vector<HostileCase> Cases() {
  const std::string json = "Content-Type: application/json\r\n";
  std::vector<HostileCase> c = {
      // JSON bodies: depth, numbers, types, framing of the body itself.
      {"BodyNested100000Deep", Req("POST", kRuns, Nested(100000)), {422}},
      {"ConfNested80000Deep",
       Req("POST", kRuns, TriggerBody("{\"a\": " + Nested(80000) + "}")),
       {422}},
      {"ConfNested15000Deep",
       Req("POST", kRuns, TriggerBody("{\"a\": " + Nested(15000) + "}")),
       {422}},
      {"ObjectsNested20000Deep", Req("POST", kRuns, TriggerBody(NestedObjects(20000))), {422}},
      {"NumberOverflow1e999999", Req("POST", kRuns, TriggerBody(R"({"n": 1e999999})")), {422}},
      {"NulInConfString", Req("POST", kRuns, TriggerBody(R"({"who": "a\u0000b"})")), {422}},
      {"InvalidJson", Req("POST", kRuns, "{\"logical_date\": null,"), {422}},
      {"BodyIsArray", Req("POST", kRuns, "[1, 2]"), {422}},
      {"BodyEmpty", Req("POST", kRuns, ""), {422}},
      {"UnknownField", Req("POST", kRuns, R"({"logical_date": null, "bogus": 1})"), {422}},
      {"LogicalDateWrongType", Req("POST", kRuns, R"({"logical_date": 5})"), {422}},
      {"LogicalDateGarbage", Req("POST", kRuns, R"({"logical_date": "yesterday"})"), {422}},
      {"ConfNotObject", Req("POST", kRuns, TriggerBody("[1]")), {422}},
      {"RunIdShellCode",
       Req("POST", kRuns, R"x({"logical_date": null, "dag_run_id": "$(id>/tmp/y)"})x"),
       {400, 422}},
      {"RunIdWithNul",
       Req("POST", kRuns, R"({"logical_date": null, "dag_run_id": "a\u0000b"})"),
       {400, 422}},
      {"RunIdTooLong",
       Req("POST", kRuns,
           R"({"logical_date": null, "dag_run_id": ")" + std::string(300, 'r') + "\"}"),
       {400, 422}},
      {"InvalidUtf8InBody", Req("POST", kRuns, TriggerBody("{\"who\": \"\xff\xfe\"}")), {422}},
      {"BodyOverTheLimit",
       Req("POST", kRuns, TriggerBody("{\"x\": \"" + std::string(2 << 20, 'x') + "\"}")),
       {413}},
      // Content type and origin: what a web page could make a browser send.
      {"PostTextPlain",
       Req("POST", kRuns, TriggerBody("{}"), "Content-Type: text/plain\r\n"),
       {415}},
      {"PostFormEncoded",
       Req("POST", kRuns, TriggerBody("{}"), "Content-Type: application/x-www-form-urlencoded\r\n"),
       {415}},
      {"PostWithoutContentType", Req("POST", kRuns, TriggerBody("{}"), ""), {415}},
      {"PatchTextPlain",
       Req("PATCH", "/api/v2/dags/example_chain", R"({"is_paused": false})",
           "Content-Type: text/plain\r\n"),
       {415}},
      {"PostFromForeignOrigin",
       Req("POST", kRuns, TriggerBody("{}"), json + "Origin: http://evil.example\r\n"),
       {403}},
      {"GetFromForeignOrigin",
       Req("GET", "/api/v2/dags", "", "Origin: https://evil.example\r\n"),
       {403}},
      {"NullOrigin", Req("POST", kRuns, TriggerBody("{}"), json + "Origin: null\r\n"), {403}},
      {"DnsRebindingHost",
       "GET /api/v2/dags HTTP/1.1\r\nHost: rebind.evil.example:8080\r\nConnection: close\r\n\r\n",
       {403}},
      {"JsonWithCharsetIsFine",
       Req("PATCH", "/api/v2/dags/example_chain", R"({"is_paused": false})",
           "Content-Type: application/json; charset=utf-8\r\n"),
       {200}},
      {"LocalOriginIsFine",
       Req("GET", "/api/v2/dags", "", "Origin: http://localhost:8080\r\n"),
       {200}},
      // Paths and ids.
      {"IdCutAtNul", Req("GET", "/api/v2/dags/example_chain%00xyz"), {404}},
      {"InvalidUtf8Id", Req("GET", "/api/v2/dags/%FF"), {404}},
      {"InvalidUtf8RunId", Req("GET", "/api/v2/dags/example_chain/dagRuns/%FF%FE"), {404}},
      {"DotDotInPath", Req("GET", "/api/v2/dags/../../../etc/passwd"), {404}},
      {"EncodedTraversalInLog",
       Req("GET", "/api/v2/dags/example_chain/dagRuns/%2e%2e%2f%2e%2e/taskInstances/a/logs/1"),
       {404}},
      {"VeryLongId", Req("GET", "/api/v2/dags/" + std::string(6000, 'd')), {404}},
      {"TryNumberZero",
       Req("GET", "/api/v2/dags/example_chain/dagRuns/x/taskInstances/a/logs/0"),
       {422}},
      {"TryNumberHuge",
       Req("GET", "/api/v2/dags/example_chain/dagRuns/x/taskInstances/a/logs/99999999999999"),
       {422}},
      {"UnknownPath", Req("GET", "/api/v2/nope"), {404}},
      {"OutsideTheApi", Req("GET", "/etc/passwd"), {404}},
      {"WrongMethod", Req("DELETE", "/api/v2/version", "", ""), {405}},
      // Query strings.
      {"LimitHuge", Req("GET", "/api/v2/dags?limit=1000000"), {200}},
      {"LimitNegative", Req("GET", "/api/v2/dags?limit=-1"), {422}},
      {"LimitNotANumber", Req("GET", "/api/v2/dags?limit=abc"), {422}},
      {"LimitOverflow", Req("GET", "/api/v2/dags?limit=99999999999999999999"), {422}},
      {"OffsetNegative", Req("GET", "/api/v2/dags?offset=-5"), {422}},
      {"OrderBySqlInjection", Req("GET", "/api/v2/dags?order_by=dag_id;DROP%20TABLE%20dag"), {400}},
      {"PatternWithSqlWildcards", Req("GET", "/api/v2/dags?dag_id_pattern=%25%27%3B--"), {200}},
      {"StateNotAnEnum", Req("GET", kRuns + "?state=bogus"), {422}},
      {"NulInQueryValue", Req("GET", "/api/v2/dags?tags=etl%00x"), {200, 400, 422}},
      // HTTP framing.
      {"TransferEncodingXchunked",
       "POST " + kRuns +
           " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /api/v2/version "
           "HTTP/1.1\r\n"
           "Host: 127.0.0.1\r\nConnection: close\r\n\r\n",
       {400}},
      {"ContentLengthAndTransferEncoding",
       "POST " + kRuns +
           " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
       {400}},
      {"NegativeContentLength",
       "POST " + kRuns + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
       {400}},
      {"HugeContentLength",
       "POST " + kRuns +
           " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "Content-Length: 1000000000000\r\n\r\n{}",
       {413}},
      {"GarbageRequestLine", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", {400}},
      {"Http2Preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400}},
      {"HeaderTooLarge",
       "GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(64 * 1024, 'a') +
           "\r\nConnection: close\r\n\r\n",
       {431}},
      {"NulInTarget",
       std::string("GET /api/v2/dags/example_chain") + '\0' +
           "x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
       {400, 404}},
  };
  return c;
}

class HostileRequests : public ::testing::TestWithParam<HostileCase> {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new Daemon();
    daemon_->Start();
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }
  static Daemon* daemon_;
};

Daemon* HostileRequests::daemon_ = nullptr;

TEST_P(HostileRequests, GetsItsStatusAndTheDaemonStaysHealthy) {
  const HostileCase& c = GetParam();
  if (HttpGet(daemon_->Url("/api/v2/monitor/health")).status != 200) {
    // An earlier case knocked the daemon over (and failed): give this case a fresh one.
    TearDownTestSuite();
    SetUpTestSuite();
  }
  // Each case is an authenticated caller's: its credential goes right after the request line.
  std::string request = c.request;
  if (const size_t line_end = request.find("\r\n"); line_end != std::string::npos) {
    request.insert(line_end + 2, AuthorizationLine(daemon_->port));
  }
  RawResponse r = RawExchange(daemon_->port, request);
  EXPECT_NE(std::find(c.expected.begin(), c.expected.end(), r.status), c.expected.end())
      << c.name << ": got " << r.status << " " << r.error << "\n"
      << r.head << "\n"
      << r.body.substr(0, 400);
  if (r.status >= 400 && r.status != 431 && !r.body.empty() && r.body.front() == '{') {
    // Errors are ours: a JSON detail, bounded, with no library text.
    EXPECT_LT(r.body.size(), 16u * 1024) << c.name;
    EXPECT_EQ(r.body.find("parse_error"), std::string::npos) << c.name << ": " << r.body;
    EXPECT_EQ(r.body.find("ERROR:"), std::string::npos) << c.name << ": " << r.body;
  }
  HttpResponse health = HttpGet(daemon_->Url("/api/v2/monitor/health"));
  ASSERT_EQ(health.status, 200) << "after " << c.name << ": " << health.error << "\n"
                                << daemon_->process->Log();
}

INSTANTIATE_TEST_SUITE_P(Table, HostileRequests, ::testing::ValuesIn(Cases()),
                         [](const auto& test) { return test.param.name; });

}  // namespace
}  // namespace dagd::testing
