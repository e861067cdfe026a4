// Fuzz target: the HTTP request path short of the socket. Arbitrary bytes go through Beast's
// request parser with the server's limits, then through the Router (query strings, path
// decoding, JSON bodies, validation, codecs) against a Service that answers every call with
// plausible data; streamed bodies are drained. Nothing may crash, hang or leak, and every
// answer must be a status the API documents. Authorization headers go through the daemon's
// own TokenAuthenticator (Bearer parsing, JWT decoding with libjwt, API-token lookup in a store
// with no tokens), except the test bearers "<role>-token" of FakeAuthenticator, which the seed
// corpus carries so that mutations reach the handlers.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>

#include "dagd/api/router.hpp"
#include "dagd/scheduler/dag_parser.hpp"
#include "dagd/scheduler/token_authenticator.hpp"
#include "fake_authenticator.hpp"
#include "stub_service.hpp"

namespace {

namespace http = boost::beast::http;
using namespace dagd;
using namespace dagd::scheduler;

constexpr std::string_view kDag = R"({"dag_id": "etl", "tags": ["etl"], "params": {"x": 1},
  "tasks": [{"task_id": "extract", "operator": "bash", "bash_command": "echo {{ ds }}"},
            {"task_id": "load", "operator": "empty", "upstream": ["extract"]}]})";

class ServiceForFuzzing : public dagd::testing::StubService {
 public:
  ServiceForFuzzing() {
    details_.dag = ParseDag(kDag, ParseOptions{}).dag;
    details_.record.dag_id = "etl";
    details_.record.tags = {"etl"};
    run_.id = 1;
    run_.dag_id = "etl";
    run_.run_id = "r1";
    run_.conf = {{"who", "me"}};
    ti_.id = "0190d3f6-0000-7000-8000-000000000001";
    ti_.dag_id = "etl";
    ti_.run_id = "r1";
    ti_.task_id = "extract";
    ti_.try_number = 1;
    try_.ti_id = ti_.id;
    try_.dag_id = "etl";
    try_.run_id = "r1";
    try_.task_id = "extract";
    try_.try_number = 1;
  }
  HealthReport Health() override { return HealthReport{true, true, std::nullopt}; }
  StatusOr<Listing<DagRecord>> ListDags(const DagQuery&) override {
    return Listing<DagRecord>{{details_.record}, 1};
  }
  StatusOr<DagDetails> GetDag(const std::string& dag_id) override { return Known(dag_id); }
  StatusOr<DagDetails> SetPaused(const std::string& dag_id, bool) override { return Known(dag_id); }
  StatusOr<Listing<ImportError>> ListImportErrors(const Page&) override {
    return Listing<ImportError>{{ImportError{1, "/dags/bad.json", "bad\n", TimePoint{}}}, 1};
  }
  StatusOr<DagRun> Trigger(const std::string& dag_id, const TriggerRequest& request) override {
    if (dag_id != "etl") return Status::NotFound("DAG with dag_id: '" + dag_id + "' not found");
    DagRun run = run_;
    run.conf = request.conf;
    return run;
  }
  StatusOr<Listing<DagRun>> ListRuns(const RunQuery&) override {
    return Listing<DagRun>{{run_}, 1};
  }
  StatusOr<DagRun> GetRun(const std::string& dag_id, const std::string& run_id) override {
    if (dag_id != "etl" || run_id != "r1") return Status::NotFound("run not found");
    return run_;
  }
  StatusOr<Listing<TaskInstance>> ListTaskInstances(const TaskInstanceQuery&) override {
    return Listing<TaskInstance>{{ti_}, 1};
  }
  StatusOr<TaskInstance> GetTaskInstance(const std::string& dag_id, const std::string& run_id,
                                         const std::string& task_id) override {
    if (dag_id != "etl" || run_id != "r1" || task_id != "extract") {
      return Status::NotFound("task instance not found");
    }
    return ti_;
  }
  StatusOr<std::vector<TaskTry>> ListTries(const std::string&, const std::string&,
                                           const std::string&) override {
    return std::vector<TaskTry>{try_};
  }
  StatusOr<LogReader> OpenLog(const std::string&, const std::string&, const std::string&,
                              int try_number, const scheduler::LogRange&) override {
    if (try_number != 1) return Status::NotFound("no such try");
    const std::string text = "[2026-01-01T00:00:00Z] dagd: started\nhello \"world\"\n\xff\xfe\n";
    return LogReader("", std::make_unique<std::istringstream>(text), text.size());
  }

 private:
  StatusOr<DagDetails> Known(const std::string& dag_id) {
    if (dag_id != "etl") return Status::NotFound("DAG with dag_id: '" + dag_id + "' not found");
    return details_;
  }
  DagDetails details_;
  DagRun run_;
  TaskInstance ti_;
  TaskTry try_;
};

// A store with no users and no tokens: every lookup is not_found.
class EmptyUserStore : public UserStore {
 public:
  Status AddUser(const UserRecord&) override { return Status::Internal("read-only"); }
  StatusOr<UserRecord> GetUser(const std::string& name) override {
    return Status::NotFound("no user '" + name + "'");
  }
  StatusOr<std::vector<UserRecord>> ListUsers() override { return std::vector<UserRecord>{}; }
  Status DeleteUser(const std::string&) override { return Status::NotFound("no user"); }
  Status SetRole(const std::string&, Role) override { return Status::NotFound("no user"); }
  Status SetPassword(const std::string&, const std::string&) override {
    return Status::NotFound("no user");
  }
  Status AddToken(const ApiTokenRecord&) override { return Status::Internal("read-only"); }
  StatusOr<std::vector<ApiTokenRecord>> ListTokens() override {
    return std::vector<ApiTokenRecord>{};
  }
  Status RevokeToken(const std::string&) override { return Status::NotFound("no token"); }
  StatusOr<ApiTokenRecord> FindToken(const std::string&) override {
    return Status::NotFound("no such API token");
  }
  Status TouchToken(const std::string&, TimePoint) override { return Status::NotFound("no token"); }
};

// The test bearers ("admin-token") and the /auth/token check go to the fake (an Argon2 hash per
// input would slow the fuzzer a hundredfold); every other bearer to the real authenticator.
class FuzzAuthenticator : public Authenticator {
 public:
  FuzzAuthenticator() {
    JwtOptions options;
    options.secret = std::string(32, 'k');
    real_ = TokenAuthenticator::Create(options, users_, clock_).value();
  }
  StatusOr<std::string> IssueToken(const std::string& username,
                                   const std::string& password) override {
    return fake_.IssueToken(username, password);
  }
  StatusOr<Principal> Authenticate(std::string_view bearer) override {
    if (bearer.ends_with("-token")) return fake_.Authenticate(bearer);
    return real_->Authenticate(bearer);
  }

 private:
  EmptyUserStore users_;
  SystemClock clock_;
  dagd::testing::FakeAuthenticator fake_;
  std::unique_ptr<TokenAuthenticator> real_;
};

api::RouterOptions FuzzOptions() {
  static FuzzAuthenticator authenticator;
  api::RouterOptions options;
  options.authenticator = &authenticator;
  return options;
}

// 429 is reachable: the fuzzer repeats failed logins from one address until the throttle answers.
bool Documented(int status) {
  switch (status) {
    case 200:
    case 201:
    case 204:
    case 400:
    case 401:
    case 403:
    case 404:
    case 405:
    case 409:
    case 410:
    case 413:
    case 415:
    case 422:
    case 429:
    case 431:
    case 503:
    case 504:
      return true;
    default:
      return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ServiceForFuzzing service;
  static const api::Router router(service, FuzzOptions());
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(1 << 20);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_done()) return 0;  // the server answers these itself (400, 413, 431)
  const auto& msg = parser.get();
  api::Request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers[name] = std::string(field.value());
  }
  req.body = msg.body();
  api::Response res = router.Handle(req);
  if (!Documented(res.status)) std::abort();
  if (res.stream) {
    for (int chunks = 0; res.stream(); ++chunks) {
      if (chunks > 100000) std::abort();  // a body source that never ends
    }
  }
  return 0;
}
