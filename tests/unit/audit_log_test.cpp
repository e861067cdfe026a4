// The Router's audit log: which requests are recorded, with what, and what never is; the
// eventLogs endpoints' parameters and shapes. Driven through a StubService that keeps entries.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "dagd/api/router.hpp"
#include "dagd/scheduler/time.hpp"
#include "fake_authenticator.hpp"
#include "stub_service.hpp"

namespace dagd::api {
namespace {

using scheduler::AuditEntry;
using Json = nlohmann::json;

class AuditService final : public dagd::testing::StubService {
 public:
  StatusOr<scheduler::DagDetails> SetPaused(const std::string& dag_id, bool paused) override {
    if (dag_id != "etl") return Status::NotFound("DAG '" + dag_id + "' not found");
    scheduler::DagDetails d;
    d.record.dag_id = "etl";
    d.record.is_paused = paused;
    return d;
  }
  StatusOr<scheduler::DagRun> Trigger(const std::string& dag_id,
                                      const scheduler::TriggerRequest& request) override {
    if (dag_id != "etl") return Status::NotFound("DAG '" + dag_id + "' not found");
    scheduler::DagRun run;
    run.dag_id = dag_id;
    run.run_id = request.dag_run_id.value_or("manual__generated");
    run.logical_date = *scheduler::ParseRfc3339("2026-03-04T05:06:07Z");
    run.run_after = *run.logical_date;
    run.queued_at = *run.logical_date;
    return run;
  }
  StatusOr<int64_t> RecordAudit(const AuditEntry& entry) override {
    if (fail_recording) return Status::Unavailable("database is down");
    recorded.push_back(entry);
    recorded.back().id = static_cast<int64_t>(recorded.size());
    return recorded.back().id;
  }
  StatusOr<scheduler::Listing<AuditEntry>> ListAudit(const scheduler::AuditQuery& q) override {
    last_query = q;
    return scheduler::Listing<AuditEntry>{recorded, static_cast<int64_t>(recorded.size())};
  }
  StatusOr<AuditEntry> GetAudit(int64_t id) override {
    if (id < 1 || id > static_cast<int64_t>(recorded.size())) {
      return Status::NotFound("The Event Log with id: `" + std::to_string(id) + "` not found");
    }
    return recorded[static_cast<size_t>(id - 1)];
  }

  bool fail_recording = false;
  std::vector<AuditEntry> recorded;
  scheduler::AuditQuery last_query;
};

class AuditLogTest : public ::testing::Test {
 protected:
  Response Call(const std::string& method, const std::string& target, const std::string& body = "",
                const std::string& token = "admin-token",
                const std::string& type = "application/json") {
    std::map<std::string, std::string> headers;
    if (!token.empty()) headers["authorization"] = "Bearer " + token;
    if (!body.empty()) headers["content-type"] = type;
    Request req{method, target, std::move(headers), body};
    req.remote_address = "192.0.2.7";
    return router_.Handle(req);
  }
  Json Extra(const AuditEntry& e) {
    Response r = Call("GET", "/api/v2/eventLogs/" + std::to_string(e.id));
    EXPECT_EQ(r.status, 200) << r.body;
    return Json::parse(Json::parse(r.body)["extra"].get<std::string>());
  }

  AuditService service_;
  dagd::testing::FakeAuthenticator auth_;
  Router router_{service_, [this] {
                   RouterOptions o;
                   o.authenticator = &auth_;
                   return o;
                 }()};
};

TEST_F(AuditLogTest, ATriggerIsRecordedWithCallerIdsStatusAndAddress) {
  ASSERT_EQ(
      Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null})", "user-token").status,
      200);
  ASSERT_EQ(service_.recorded.size(), 1u);
  const AuditEntry& e = service_.recorded[0];
  EXPECT_EQ(e.event, "trigger_dag_run");
  EXPECT_EQ(e.owner, "user");
  EXPECT_EQ(e.via, "token:user");
  EXPECT_EQ(e.dag_id, "etl");
  // Taken from the answer: the request did not name the run.
  EXPECT_EQ(e.run_id, "manual__generated");
  EXPECT_EQ(e.logical_date, scheduler::ParseRfc3339("2026-03-04T05:06:07Z"));
  EXPECT_EQ(e.status, 200);
  EXPECT_EQ(e.method, "POST");
  EXPECT_EQ(e.path, "/api/v2/dags/etl/dagRuns");
  EXPECT_EQ(e.remote_address, "192.0.2.7");
}

TEST_F(AuditLogTest, WritesAreRecordedWhateverTheirOutcome) {
  EXPECT_EQ(Call("PATCH", "/api/v2/dags/nope", R"({"is_paused": true})").status, 404);
  EXPECT_EQ(Call("PATCH", "/api/v2/dags/etl", R"({"is_paused": "yes"})").status, 422);
  EXPECT_EQ(Call("PATCH", "/api/v2/dags/etl", R"({"is_paused": true})", "viewer-token").status,
            403);
  EXPECT_EQ(Call("PATCH", "/api/v2/dags/etl", R"({"is_paused": true})", "").status, 401);
  EXPECT_EQ(Call("PATCH", "/api/v2/dags/etl", R"({"is_paused": true})", "bogus").status, 401);
  ASSERT_EQ(service_.recorded.size(), 5u);
  std::vector<int> statuses;
  for (const auto& e : service_.recorded) {
    EXPECT_EQ(e.event, "patch_dag");
    statuses.push_back(e.status);
  }
  EXPECT_EQ(statuses, (std::vector<int>{404, 422, 403, 401, 401}));
  EXPECT_EQ(service_.recorded[0].dag_id, "nope");
  EXPECT_EQ(service_.recorded[2].owner, "viewer");  // refused, but known
  EXPECT_FALSE(service_.recorded[3].owner.has_value());
  EXPECT_FALSE(service_.recorded[4].owner.has_value());
}

TEST_F(AuditLogTest, ReadsAreNeverRecorded) {
  Call("GET", "/api/v2/dags");
  Call("GET", "/api/v2/dags/etl");
  Call("GET", "/api/v2/dags/etl/dagRuns");
  Call("POST", "/api/v2/dags/~/dagRuns/list", "{}");
  Call("POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list", "{}");
  Call("GET", "/api/v2/eventLogs");
  Call("GET", "/api/v2/version", "", "");
  EXPECT_TRUE(service_.recorded.empty());
}

TEST_F(AuditLogTest, UnknownPathsAndForeignOriginsAreNotRecorded) {
  Call("POST", "/api/v2/nothing/here", "{}");
  Call("DELETE", "/api/v2/dags/etl/dagRuns");  // 405: no route
  EXPECT_TRUE(service_.recorded.empty());
}

TEST_F(AuditLogTest, ConfValuesAndSecretsAreNeverStored) {
  ASSERT_EQ(Call("POST", "/api/v2/dags/etl/dagRuns",
                 R"({"logical_date": null, "dag_run_id": "r1", "note": "by hand",
                     "conf": {"db_password": "hunter2", "x": 1}})")
                .status,
            200);
  ASSERT_EQ(service_.recorded.size(), 1u);
  const AuditEntry& e = service_.recorded[0];
  EXPECT_EQ(e.run_id, "r1");  // from the body
  EXPECT_EQ(e.body["conf"], "***");
  EXPECT_EQ(e.body["note"], "by hand");
  EXPECT_EQ(e.body["logical_date"], nullptr);
  const std::string extra = Extra(e).dump();
  EXPECT_EQ(extra.find("hunter2"), std::string::npos) << extra;
  EXPECT_EQ(extra.find("db_password"), std::string::npos) << extra;
}

TEST_F(AuditLogTest, SecretLookingFieldsAreRedactedWhateverTheirType) {
  Call("PATCH", "/api/v2/dags/etl",
       R"({"is_paused": true, "api_token": "t0k", "Password": 12, "client_secret": ["a"]})");
  ASSERT_EQ(service_.recorded.size(), 1u);
  const Json& body = service_.recorded[0].body;
  EXPECT_EQ(body["is_paused"], true);
  EXPECT_EQ(body["api_token"], "***");
  EXPECT_EQ(body["Password"], "***");
  EXPECT_EQ(body["client_secret"], "***");
}

TEST_F(AuditLogTest, ALargeBodyIsSummarisedWithinBounds) {
  Json big = Json::object();
  for (int i = 0; i < 100; ++i) big["field" + std::to_string(i)] = std::string(300, 'x');
  Call("PATCH", "/api/v2/dags/etl", big.dump());
  ASSERT_EQ(service_.recorded.size(), 1u);
  const Json& body = service_.recorded[0].body;
  EXPECT_LE(body.dump().size(), 4096u + 1024u) << body.dump().size();
  EXPECT_TRUE(body.contains("_keys"));
  EXPECT_EQ(body["_keys"].size(), 32u);

  Call("PATCH", "/api/v2/dags/etl", "[1, 2, 3]");
  EXPECT_EQ(service_.recorded.back().body, Json({{"_bytes", 9}}));
}

TEST_F(AuditLogTest, LoginsAreRecordedWithTheUsernameTriedAndNeverThePassword) {
  EXPECT_EQ(
      Call("POST", "/auth/token", R"({"username": "admin", "password": "pw-admin"})", "").status,
      201);
  EXPECT_EQ(
      Call("POST", "/auth/token", R"({"username": "mallory", "password": "guess1"})", "").status,
      401);
  EXPECT_EQ(Call("POST", "/auth/token", "username=eve&password=guess2", "",
                 "application/x-www-form-urlencoded")
                .status,
            401);
  ASSERT_EQ(service_.recorded.size(), 3u);
  EXPECT_EQ(service_.recorded[0].event, "login");
  EXPECT_EQ(service_.recorded[0].owner, "admin");
  EXPECT_EQ(service_.recorded[0].status, 201);
  EXPECT_EQ(service_.recorded[1].event, "login_failed");
  EXPECT_EQ(service_.recorded[1].owner, "mallory");
  EXPECT_EQ(service_.recorded[2].event, "login_failed");
  EXPECT_EQ(service_.recorded[2].owner, "eve");
  for (const AuditEntry& e : service_.recorded) {
    EXPECT_EQ(e.remote_address, "192.0.2.7");
    const std::string all = Extra(e).dump() + e.body.dump();
    EXPECT_EQ(all.find("pw-admin"), std::string::npos);
    EXPECT_EQ(all.find("guess"), std::string::npos);
  }
}

TEST_F(AuditLogTest, AFailedRecordingLeavesTheAnswerAsItIsAndLogsTheEntry) {
  auto log = std::make_shared<std::ostringstream>();
  auto logger = std::make_shared<spdlog::logger>(
      "api", std::make_shared<spdlog::sinks::ostream_sink_mt>(*log));
  spdlog::drop("api");
  spdlog::register_logger(logger);
  struct DropLogger {
    ~DropLogger() { spdlog::drop("api"); }
  } drop_logger;

  service_.fail_recording = true;
  Response r = Call("PATCH", "/api/v2/dags/etl", R"({"is_paused": true})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["is_paused"], true);
  const std::string logged = log->str();
  EXPECT_NE(logged.find("audit log entry not stored"), std::string::npos) << logged;
  EXPECT_NE(logged.find("database is down"), std::string::npos) << logged;
  EXPECT_NE(logged.find("patch_dag"), std::string::npos) << logged;
  EXPECT_NE(logged.find("192.0.2.7"), std::string::npos) << logged;
}

TEST_F(AuditLogTest, EventLogsHaveAirflowsShape) {
  Call("PATCH", "/api/v2/dags/etl", R"({"is_paused": true})", "op-token");
  Response r = Call("GET", "/api/v2/eventLogs", "", "viewer-token");
  ASSERT_EQ(r.status, 200) << r.body;
  const Json body = Json::parse(r.body);
  EXPECT_EQ(body["total_entries"], 1);
  const Json& e = body["event_logs"][0];
  for (const char* key :
       {"event_log_id", "when", "dag_id", "dag_display_name", "task_id", "task_display_name",
        "run_id", "map_index", "try_number", "event", "logical_date", "owner", "extra"}) {
    EXPECT_TRUE(e.contains(key)) << key;
  }
  EXPECT_EQ(e["event"], "patch_dag");
  EXPECT_EQ(e["owner"], "op");
  EXPECT_EQ(e["dag_id"], "etl");
  EXPECT_EQ(e["task_id"], nullptr);
  const Json extra = Json::parse(e["extra"].get<std::string>());
  EXPECT_EQ(extra["remote_address"], "192.0.2.7");
  EXPECT_EQ(extra["status"], 200);
  EXPECT_EQ(extra["via"], "token:op");
  EXPECT_EQ(extra["method"], "PATCH");
}

TEST_F(AuditLogTest, EventLogFiltersReachTheQuery) {
  Response r = Call("GET",
                    "/api/v2/eventLogs?dag_id=etl&task_id=t&run_id=r&map_index=-1&try_number=2"
                    "&owner=admin&event=patch_dag&excluded_events=a&excluded_events=b"
                    "&included_events=c&before=2026-01-02T00:00:00Z&after=2026-01-01T00:00:00Z"
                    "&dag_id_pattern=e%25&task_id_pattern=x&run_id_pattern=y&owner_pattern=ad"
                    "&event_pattern=pat&limit=5&offset=1&order_by=-when",
                    "", "viewer-token");
  ASSERT_EQ(r.status, 200) << r.body;
  const scheduler::AuditQuery& q = service_.last_query;
  EXPECT_EQ(q.dag_id, "etl");
  EXPECT_EQ(q.task_id, "t");
  EXPECT_EQ(q.run_id, "r");
  EXPECT_EQ(q.map_index, -1);
  EXPECT_EQ(q.try_number, 2);
  EXPECT_EQ(q.owner, "admin");
  EXPECT_EQ(q.event, "patch_dag");
  EXPECT_EQ(q.excluded_events, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(q.included_events, (std::vector<std::string>{"c"}));
  EXPECT_EQ(q.before, scheduler::ParseRfc3339("2026-01-02T00:00:00Z"));
  EXPECT_EQ(q.after, scheduler::ParseRfc3339("2026-01-01T00:00:00Z"));
  EXPECT_EQ(q.dag_id_pattern, "e%");
  EXPECT_EQ(q.task_id_pattern, "x");
  EXPECT_EQ(q.run_id_pattern, "y");
  EXPECT_EQ(q.owner_pattern, "ad");
  EXPECT_EQ(q.event_pattern, "pat");
  EXPECT_EQ(q.page.limit, 5);
  EXPECT_EQ(q.page.offset, 1);
  EXPECT_EQ(q.page.order_by, (std::vector<std::string>{"-when"}));
}

TEST_F(AuditLogTest, EventLogsRefuseUnknownAndMalformedParameters) {
  EXPECT_EQ(Call("GET", "/api/v2/eventLogs?colour=red").status, 422);
  EXPECT_EQ(Call("GET", "/api/v2/eventLogs?try_number=two").status, 422);
  EXPECT_EQ(Call("GET", "/api/v2/eventLogs?before=yesterday").status, 422);
  EXPECT_EQ(Call("GET", "/api/v2/eventLogs/abc").status, 422);
  EXPECT_EQ(Call("GET", "/api/v2/eventLogs/99").status, 404);
  EXPECT_EQ(Call("GET", "/api/v2/eventLogs", "", "").status, 401);
}

}  // namespace
}  // namespace dagd::api
