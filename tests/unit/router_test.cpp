// Router: every endpoint's status and shape, driven through a FakeService (no I/O).
#include "dagd/api/router.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "dagd/api/log_token.hpp"
#include "dagd/api/login_throttle.hpp"
#include "dagd/scheduler/dag_parser.hpp"
#include "dagd/scheduler/time.hpp"
#include "fake_authenticator.hpp"
#include "stub_service.hpp"

namespace dagd::api {
namespace {

using scheduler::DagRun;
using scheduler::ParseRfc3339;
using scheduler::TaskInstance;
using scheduler::TaskTry;
using scheduler::TimePoint;
using Json = nlohmann::json;

TimePoint At(const char* text) { return *ParseRfc3339(text); }

// An in-memory Service that records the last query of each kind.
class FakeService : public dagd::testing::StubService {
 public:
  FakeService() {
    auto dag = std::make_shared<scheduler::Dag>();
    dag->dag_id = "etl";
    dag->description = "Songs to a star schema";
    dag->tags = {"etl"};
    dag->owners = {"data"};
    dag->params = {{"input", "s3://raw"}};
    dag->start_date = At("2026-01-01T00:00:00Z");
    dag->catchup = true;
    scheduler::TaskSpec extract;
    extract.task_id = "extract";
    extract.operator_name = "bash";
    extract.retries = 2;
    extract.retry_delay = std::chrono::seconds(30);
    extract.execution_timeout = std::chrono::minutes(10);
    scheduler::TaskSpec load;
    load.task_id = "load";
    load.operator_name = "transform";
    load.upstream = {"extract"};
    dag->tasks = {extract, load};
    dag->upstream = {{}, {0}};
    dag->downstream = {{1}, {}};
    dag->index_ = {{"extract", 0}, {"load", 1}};
    details.dag = dag;
    details.record.dag_id = "etl";
    details.record.fileloc = "/dags/etl.json";
    details.record.tags = {"etl"};
    details.record.owners = {"data"};
    details.record.latest_version = 3;
    details.record.latest_version_created_at = At("2025-12-01T00:00:00Z");

    run.id = 7;
    run.dag_id = "etl";
    run.run_id = "manual__2026-01-01T00:00:00+00:00";
    run.version_number = 3;
    run.version_created_at = At("2025-12-01T00:00:00Z");
    run.state = scheduler::RunState::kRunning;
    run.logical_date = At("2026-01-01T00:00:00Z");
    run.run_after = At("2026-01-01T00:00:00Z");
    run.queued_at = At("2026-01-01T00:00:01Z");

    ti.id = "0190d3f6-0000-7000-8000-000000000001";
    ti.dag_id = "etl";
    ti.run_id = run.run_id;
    ti.task_id = "extract";
    ti.version_number = 3;
    ti.version_created_at = At("2025-12-01T00:00:00Z");
    ti.state = scheduler::TaskState::kFailed;
    ti.try_number = 2;
    ti.max_tries = 2;
    ti.operator_name = "bash";

    for (int n = 1; n <= 2; ++n) {
      TaskTry t;
      t.ti_id = ti.id;
      t.dag_id = "etl";
      t.run_id = run.run_id;
      t.task_id = "extract";
      t.try_number = n;
      t.state = n == 1 ? scheduler::TaskState::kUpForRetry : scheduler::TaskState::kFailed;
      tries.push_back(t);
    }
  }

  scheduler::HealthReport Health() override {
    if (throw_on_health) throw std::runtime_error("boom");
    return {true, false, At("2026-01-02T03:04:05Z")};
  }
  StatusOr<scheduler::Listing<scheduler::DagRecord>> ListDags(
      const scheduler::DagQuery& q) override {
    last_dag_query = q;
    if (next_error) return *next_error;
    return scheduler::Listing<scheduler::DagRecord>{{details.record}, 1};
  }
  StatusOr<scheduler::DagDetails> GetDag(const std::string& dag_id) override {
    ++get_dag_calls;
    if (dag_id != "etl") return Status::NotFound("DAG '" + dag_id + "' not found");
    return details;
  }
  StatusOr<scheduler::DagDetails> SetPaused(const std::string& dag_id, bool paused) override {
    if (dag_id != "etl") return Status::NotFound("DAG '" + dag_id + "' not found");
    details.record.is_paused = paused;
    return details;
  }
  StatusOr<scheduler::Listing<scheduler::DagVersionRecord>> ListDagVersions(
      const scheduler::DagVersionQuery& q) override {
    if (q.dag_id != "etl" && q.dag_id != "~") {
      return Status::NotFound("DAG with dag_id: '" + q.dag_id + "' not found");
    }
    scheduler::DagVersionRecord v{"etl", 1, "h", "", At("2026-01-01T00:00:00Z")};
    return scheduler::Listing<scheduler::DagVersionRecord>{{v}, 1};
  }
  StatusOr<scheduler::DagVersionRecord> GetDagVersion(const std::string& dag_id, int n) override {
    if (dag_id != "etl" || n != 1) return Status::NotFound("The DagVersion was not found");
    return scheduler::DagVersionRecord{"etl", 1, "h", "{}", At("2026-01-01T00:00:00Z")};
  }
  StatusOr<std::vector<scheduler::DagRunStats>> CountRunsByState(
      const std::vector<std::string>& dag_ids) override {
    last_stats_dag_ids = dag_ids;
    scheduler::DagRunStats s{"etl", {{scheduler::RunState::kSuccess, 2}}};
    return std::vector<scheduler::DagRunStats>{s};
  }
  StatusOr<scheduler::Listing<scheduler::ImportError>> ListImportErrors(
      const scheduler::Page& page) override {
    last_page = page;
    scheduler::ImportError e{4, "/dags/bad.json", "task 'b': unknown upstream 'x'",
                             At("2026-01-01T00:00:00Z")};
    return scheduler::Listing<scheduler::ImportError>{{e}, 1};
  }
  StatusOr<DagRun> Trigger(const std::string& dag_id,
                           const scheduler::TriggerRequest& request) override {
    last_trigger = request;
    ++trigger_calls;
    if (next_error) return *next_error;
    if (dag_id != "etl") return Status::NotFound("DAG '" + dag_id + "' not found");
    DagRun r = run;
    r.run_id = request.dag_run_id.value_or("manual__generated");
    r.logical_date = request.logical_date;
    r.conf = request.conf;
    r.note = request.note;
    r.state = scheduler::RunState::kQueued;
    return r;
  }
  StatusOr<scheduler::Listing<DagRun>> ListRuns(const scheduler::RunQuery& q) override {
    last_run_query = q;
    return scheduler::Listing<DagRun>{{run}, 1};
  }
  StatusOr<DagRun> GetRun(const std::string& dag_id, const std::string& run_id) override {
    if (dag_id != run.dag_id || run_id != run.run_id) {
      return Status::NotFound("DAG run '" + run_id + "' of DAG '" + dag_id + "' not found");
    }
    return run;
  }
  StatusOr<scheduler::Listing<TaskInstance>> ListTaskInstances(
      const scheduler::TaskInstanceQuery& q) override {
    last_ti_query = q;
    return scheduler::Listing<TaskInstance>{{ti}, 1};
  }
  StatusOr<TaskInstance> GetTaskInstance(const std::string& dag_id, const std::string& run_id,
                                         const std::string& task_id) override {
    if (dag_id != ti.dag_id || run_id != ti.run_id || task_id != ti.task_id) {
      return Status::NotFound("task instance '" + task_id + "' not found");
    }
    return ti;
  }
  StatusOr<std::vector<scheduler::Dependency>> ExplainTaskInstance(
      const std::string& dag_id, const std::string& run_id, const std::string& task_id) override {
    auto found = GetTaskInstance(dag_id, run_id, task_id);
    if (!found.ok()) return found.status();
    return dependencies;
  }
  StatusOr<std::vector<TaskTry>> ListTries(const std::string& dag_id, const std::string& run_id,
                                           const std::string& task_id) override {
    auto found = GetTaskInstance(dag_id, run_id, task_id);
    if (!found.ok()) return found.status();
    return tries;
  }
  // The log of try 1 is `log`, all of it (no cap, no trimming to whole lines).
  StatusOr<scheduler::LogReader> OpenLog(const std::string& dag_id, const std::string& run_id,
                                         const std::string& task_id, int try_number,
                                         const scheduler::LogRange& range) override {
    auto found = GetTaskInstance(dag_id, run_id, task_id);
    if (!found.ok()) return found.status();
    if (try_number != 1) return Status::NotFound("no log for try " + std::to_string(try_number));
    last_log_range = range;
    if (!range.try_key.empty() && range.try_key != kTryKey) {
      return Status::InvalidArgument("the token is for another try");
    }
    if (range.offset > log.size()) return Status::InvalidArgument("the token is past the end");
    auto in = std::make_unique<std::istringstream>(log);
    in->seekg(static_cast<std::streamoff>(range.offset));
    scheduler::LogOrigin origin{kTryKey, log_try_ended, range.offset, {}};
    return scheduler::LogReader(log_note, std::move(in), log.size() - range.offset, origin);
  }
  static constexpr const char* kTryKey = "0190d3f6-0000-7000-8000-000000000001/1";
  // The event stream's handlers are tested in event_stream_test.cpp; a followed log is woken.
  std::unique_ptr<scheduler::ChangeWatch> WatchChanges(std::function<void()> wake) override {
    watcher = std::move(wake);
    return std::make_unique<scheduler::ChangeWatch>();
  }
  // The document is validated by the real parser, as SchedulerService does; "fromfile" is a DAG
  // a file defines, "etl" one that exists.
  StatusOr<scheduler::DagUpload> UploadDag(const std::string& dag_id,
                                           std::string_view document) override {
    ++upload_calls;
    if (dag_id == "fromfile") {
      return Status::FailedPrecondition("DAG 'fromfile' is defined by the file /dags/f.json");
    }
    scheduler::ParseResult parsed = scheduler::ParseDag(document, scheduler::ParseOptions{});
    scheduler::DagUpload upload;
    upload.errors = parsed.errors;
    upload.error_paths = parsed.error_paths;
    if (parsed.dag) {
      upload.created = dag_id != "etl";
      upload.details = details;
      upload.details.record.dag_id = dag_id;
    }
    return upload;
  }
  Status DeleteDag(const std::string& dag_id) override {
    last_deleted = dag_id;
    if (dag_id == "busy")
      return Status::FailedPrecondition("DAG 'busy' has 1 queued or running run");
    if (dag_id != "etl") return Status::NotFound("DAG with dag_id: '" + dag_id + "' not found");
    return Status::Ok();
  }

  scheduler::DagDetails details;
  DagRun run;
  TaskInstance ti;
  std::vector<TaskTry> tries;
  std::optional<Status> next_error;
  bool throw_on_health = false;
  int get_dag_calls = 0;
  int trigger_calls = 0;
  int upload_calls = 0;
  std::string last_deleted;
  std::string log = "starting\n{\"event\":\"structured\",\"level\":\"info\"}\ndone\n";
  std::string log_note;
  bool log_try_ended = true;
  std::function<void()> watcher;  // the last change watch's wake
  scheduler::LogRange last_log_range;
  scheduler::DagQuery last_dag_query;
  scheduler::RunQuery last_run_query;
  std::vector<std::string> last_stats_dag_ids;
  scheduler::TaskInstanceQuery last_ti_query;
  scheduler::Page last_page;
  scheduler::TriggerRequest last_trigger;
  std::vector<scheduler::Dependency> dependencies = {
      {"Trigger Rule", "Task's trigger rule 'all_success' requires all upstream tasks to succeed"},
      {"Dag Not Paused", "Task's DAG 'etl' is paused."}};
};

// The whole body a client receives: `body`, then every chunk of `stream`.
std::string Drain(const Response& r, size_t* chunks = nullptr, size_t* largest = nullptr) {
  std::string out = r.body;
  if (!r.stream) return out;
  while (auto chunk = r.stream()) {
    EXPECT_FALSE(chunk->empty()) << "an empty chunk would end a chunked body early";
    if (chunks) ++*chunks;
    if (largest) *largest = std::max(*largest, chunk->size());
    out += *chunk;
  }
  return out;
}

class RouterTest : public ::testing::Test {
 protected:
  // Writes carry Content-Type: application/json unless `headers` name one; every request is an
  // admin's unless `headers` carry their own Authorization.
  Response Call(const std::string& method, const std::string& target, const std::string& body = "",
                std::map<std::string, std::string> headers = {}) {
    if (method != "GET" && !headers.contains("content-type")) {
      headers["content-type"] = "application/json";
    }
    headers.try_emplace("authorization", "Bearer admin-token");
    return router_.Handle(Request{method, target, std::move(headers), body});
  }
  static nlohmann::json Body(const Response& r) { return nlohmann::json::parse(Drain(r)); }
  RouterOptions Options(std::vector<std::string> allowed_hosts = {}, int max_page_limit = 100) {
    RouterOptions options;
    options.allowed_hosts = std::move(allowed_hosts);
    options.max_page_limit = max_page_limit;
    options.authenticator = &authenticator_;
    return options;
  }

  FakeService service_;
  dagd::testing::FakeAuthenticator authenticator_;
  Router router_{service_, Options()};
};

const std::string kRun = "/api/v2/dags/etl/dagRuns/manual__2026-01-01T00%3A00%3A00%2B00%3A00";

TEST_F(RouterTest, VersionReportsVersionAndGitVersion) {
  Response r = Call("GET", "/api/v2/version");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  auto body = Body(r);
  EXPECT_EQ(body["version"], DAGD_VERSION);
  EXPECT_TRUE(body.contains("git_version"));
}

TEST_F(RouterTest, HealthHasAirflowShapeAndIsAlways200) {
  Response r = Call("GET", "/api/v2/monitor/health");
  ASSERT_EQ(r.status, 200);
  auto body = Body(r);
  EXPECT_EQ(body["metadatabase"]["status"], "healthy");
  EXPECT_EQ(body["scheduler"]["status"], "unhealthy");
  EXPECT_EQ(body["scheduler"]["latest_scheduler_heartbeat"], "2026-01-02T03:04:05Z");
  EXPECT_TRUE(body["triggerer"]["status"].is_null());
  EXPECT_TRUE(body["triggerer"].contains("latest_triggerer_heartbeat"));
  EXPECT_TRUE(body["dag_processor"].contains("latest_dag_processor_heartbeat"));
}

TEST_F(RouterTest, AServiceExceptionBecomes500WithASentenceOfOursNotItsText) {
  service_.throw_on_health = true;
  Response r = Call("GET", "/api/v2/monitor/health");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(Body(r)["detail"], "Internal error; the daemon's log has the details");
}

TEST_F(RouterTest, ListDagsForwardsPagingAndFilters) {
  Response r = Call("GET",
                    "/api/v2/dags?limit=5&offset=10&order_by=-dag_id&order_by=is_paused&tags=etl"
                    "&tags=daily&dag_id_pattern=sp%25&paused=false");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto& q = service_.last_dag_query;
  EXPECT_EQ(q.page.limit, 5);
  EXPECT_EQ(q.page.offset, 10);
  EXPECT_EQ(q.page.order_by, (std::vector<std::string>{"-dag_id", "is_paused"}));
  EXPECT_EQ(q.tags, (std::vector<std::string>{"etl", "daily"}));
  EXPECT_EQ(q.dag_id_pattern, "sp%");
  EXPECT_EQ(q.paused, false);
  auto body = Body(r);
  EXPECT_EQ(body["total_entries"], 1);
  ASSERT_EQ(body["dags"].size(), 1u);
  EXPECT_EQ(body["dags"][0]["dag_id"], "etl");
}

TEST_F(RouterTest, ListDagsUsesAirflowDefaults) {
  ASSERT_EQ(Call("GET", "/api/v2/dags").status, 200);
  EXPECT_EQ(service_.last_dag_query.page.limit, 50);
  EXPECT_EQ(service_.last_dag_query.page.offset, 0);
  EXPECT_FALSE(service_.last_dag_query.paused.has_value());
  EXPECT_FALSE(service_.last_dag_query.include_stale);
}

TEST_F(RouterTest, NegativeLimitIs422NamingTheQueryParameter) {
  Response r = Call("GET", "/api/v2/dags?limit=-1");
  ASSERT_EQ(r.status, 422);
  auto detail = Body(r)["detail"];
  ASSERT_EQ(detail.size(), 1u);
  EXPECT_EQ(detail[0]["loc"], nlohmann::json({"query", "limit"}));
  EXPECT_EQ(detail[0]["type"], "greater_than_equal");
}

TEST_F(RouterTest, NonNumericLimitIs422) {
  Response r = Call("GET", "/api/v2/dags/etl/dagRuns?limit=abc");
  ASSERT_EQ(r.status, 422);
  EXPECT_EQ(Body(r)["detail"][0]["loc"], nlohmann::json({"query", "limit"}));
  EXPECT_EQ(Body(r)["detail"][0]["type"], "int_parsing");
}

TEST_F(RouterTest, InvalidArgumentFromTheServiceIs400) {
  service_.next_error = Status::InvalidArgument("cannot order by 'nope'");
  Response r = Call("GET", "/api/v2/dags?order_by=nope");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["detail"], "cannot order by 'nope'");
}

TEST_F(RouterTest, UnavailableServiceIs503) {
  service_.next_error = Status::Unavailable("database unreachable");
  EXPECT_EQ(Call("GET", "/api/v2/dags").status, 503);
}

TEST_F(RouterTest, GetDagReturnsDagResponse) {
  Response r = Call("GET", "/api/v2/dags/etl");
  ASSERT_EQ(r.status, 200);
  auto body = Body(r);
  EXPECT_EQ(body["dag_id"], "etl");
  EXPECT_EQ(body["tags"][0]["name"], "etl");
  EXPECT_FALSE(body.contains("catchup"));
}

TEST_F(RouterTest, UnknownDagIs404WithTheServiceSentence) {
  Response r = Call("GET", "/api/v2/dags/nope");
  ASSERT_EQ(r.status, 404);
  EXPECT_EQ(Body(r)["detail"], "DAG 'nope' not found");
}

TEST_F(RouterTest, DagDetailsAddCatchupParamsAndStartDate) {
  Response r = Call("GET", "/api/v2/dags/etl/details");
  ASSERT_EQ(r.status, 200);
  auto body = Body(r);
  EXPECT_EQ(body["catchup"], true);
  EXPECT_EQ(body["start_date"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(body["params"]["input"]["value"], "s3://raw");
  EXPECT_EQ(body["timezone"], "UTC");
  EXPECT_EQ(body["latest_dag_version"]["version_number"], 3);
  EXPECT_TRUE(body.contains("dag_run_timeout"));
}

TEST_F(RouterTest, PatchDagPausesIt) {
  Response r = Call("PATCH", "/api/v2/dags/etl?update_mask=is_paused", R"({"is_paused": true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["is_paused"], true);
  EXPECT_TRUE(service_.details.record.is_paused);
}

TEST_F(RouterTest, PatchDagWithoutIsPausedIs422) {
  Response r = Call("PATCH", "/api/v2/dags/etl", R"({})");
  ASSERT_EQ(r.status, 422);
  EXPECT_EQ(Body(r)["detail"][0]["loc"], nlohmann::json({"body", "is_paused"}));
  EXPECT_EQ(Body(r)["detail"][0]["type"], "missing");
}

TEST_F(RouterTest, PatchDagWithAnotherUpdateMaskIs400) {
  EXPECT_EQ(
      Call("PATCH", "/api/v2/dags/etl?update_mask=description", R"({"is_paused":true})").status,
      400);
}

TEST_F(RouterTest, ListTasksReturnsEveryTaskWithDownstreams) {
  Response r = Call("GET", "/api/v2/dags/etl/tasks");
  ASSERT_EQ(r.status, 200);
  auto body = Body(r);
  EXPECT_EQ(body["total_entries"], 2);
  EXPECT_EQ(body["tasks"][0]["task_id"], "extract");
  EXPECT_EQ(body["tasks"][0]["downstream_task_ids"], nlohmann::json({"load"}));
  EXPECT_EQ(body["tasks"][0]["operator_name"], "BashOperator");
  EXPECT_EQ(
      body["tasks"][0]["retry_delay"],
      nlohmann::json({{"__type", "TimeDelta"}, {"days", 0}, {"seconds", 30}, {"microseconds", 0}}));
}

TEST_F(RouterTest, GetTaskFindsItOr404) {
  Response r = Call("GET", "/api/v2/dags/etl/tasks/load");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["operator_name"], "TransformOperator");
  EXPECT_EQ(Call("GET", "/api/v2/dags/etl/tasks/nope").status, 404);
}

TEST_F(RouterTest, TriggerReturnsDagRunResponse) {
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns",
                    R"({"logical_date": "2026-02-01T00:00:00Z", "dag_run_id": "my_run",
                        "conf": {"k": 1}, "note": "hi"})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = Body(r);
  EXPECT_EQ(body["dag_run_id"], "my_run");
  EXPECT_EQ(body["dag_id"], "etl");
  EXPECT_EQ(body["logical_date"], "2026-02-01T00:00:00Z");
  EXPECT_EQ(body["state"], "queued");
  EXPECT_EQ(body["run_type"], "manual");
  EXPECT_EQ(body["conf"], nlohmann::json({{"k", 1}}));
  EXPECT_EQ(body["note"], "hi");
  EXPECT_EQ(body["dag_versions"][0]["version_number"], 3);
  EXPECT_EQ(service_.last_trigger.logical_date, At("2026-02-01T00:00:00Z"));
  EXPECT_EQ(service_.last_trigger.dag_run_id, "my_run");
}

TEST_F(RouterTest, TriggerAcceptsANullLogicalDate) {
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Body(r)["logical_date"].is_null());
  EXPECT_FALSE(service_.last_trigger.logical_date.has_value());
  EXPECT_FALSE(service_.last_trigger.dag_run_id.has_value());
}

TEST_F(RouterTest, TriggerWithoutLogicalDateKeyIs422) {
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns", R"({"conf": {}})");
  ASSERT_EQ(r.status, 422);
  auto detail = Body(r)["detail"];
  ASSERT_EQ(detail.size(), 1u);
  EXPECT_EQ(detail[0]["type"], "missing");
  EXPECT_EQ(detail[0]["loc"], nlohmann::json({"body", "logical_date"}));
  EXPECT_EQ(detail[0]["msg"], "Field required");
}

TEST_F(RouterTest, TriggerWithAnUnknownKeyIs422) {
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns",
                    R"({"logical_date": null, "execution_date": "2026-01-01T00:00:00Z"})");
  ASSERT_EQ(r.status, 422);
  auto detail = Body(r)["detail"];
  EXPECT_EQ(detail[0]["type"], "extra_forbidden");
  EXPECT_EQ(detail[0]["loc"], nlohmann::json({"body", "execution_date"}));
}

TEST_F(RouterTest, TriggerWithABadDateIs422) {
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": "yesterday"})");
  ASSERT_EQ(r.status, 422);
  EXPECT_EQ(Body(r)["detail"][0]["loc"], nlohmann::json({"body", "logical_date"}));
  EXPECT_EQ(Body(r)["detail"][0]["input"], "yesterday");
}

TEST_F(RouterTest, TriggerWithHalfADataIntervalIs422) {
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns",
                    R"({"logical_date": null, "data_interval_start": "2026-01-01T00:00:00Z"})");
  ASSERT_EQ(r.status, 422);
  EXPECT_EQ(Body(r)["detail"][0]["type"], "value_error");
}

TEST_F(RouterTest, TriggerWithMalformedJsonIs422JsonInvalid) {
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": )");
  ASSERT_EQ(r.status, 422);
  EXPECT_EQ(Body(r)["detail"][0]["type"], "json_invalid");
  EXPECT_EQ(Body(r)["detail"][0]["loc"][0], "body");
  EXPECT_EQ(Body(r)["detail"][0]["ctx"]["error"], "The JSON is not valid");
  EXPECT_EQ(r.body.find("json.exception"), std::string::npos) << r.body;
}

TEST_F(RouterTest, TriggerWithATakenRunIdIs409) {
  service_.next_error = Status::AlreadyExists("DAG run 'x' already exists");
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null})");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Body(r)["detail"], "DAG run 'x' already exists");
}

TEST_F(RouterTest, TriggerOfAnUnknownDagIs404WithDetail) {
  Response r = Call("POST", "/api/v2/dags/nope/dagRuns", R"({"logical_date": null})");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Body(r)["detail"], "DAG 'nope' not found");
}

TEST_F(RouterTest, ListRunsForwardsFiltersAndPaging) {
  Response r = Call("GET",
                    "/api/v2/dags/etl/dagRuns?state=failed&state=running&run_type=manual"
                    "&logical_date_gte=2026-01-01T00:00:00Z&limit=2&offset=1&order_by=-start_date");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto& q = service_.last_run_query;
  EXPECT_EQ(q.dag_id, "etl");
  EXPECT_EQ(q.states, (std::vector<scheduler::RunState>{scheduler::RunState::kFailed,
                                                        scheduler::RunState::kRunning}));
  EXPECT_EQ(q.run_types, (std::vector<scheduler::RunType>{scheduler::RunType::kManual}));
  ASSERT_EQ(q.bounds.size(), 1u);
  EXPECT_EQ(q.bounds[0].field, "logical_date");
  EXPECT_EQ(q.bounds[0].op, scheduler::Bound::Op::kGte);
  EXPECT_EQ(q.bounds[0].time, At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(q.page.limit, 2);
  EXPECT_EQ(q.page.offset, 1);
  EXPECT_EQ(q.page.order_by, std::vector<std::string>{"-start_date"});
  auto body = Body(r);
  EXPECT_EQ(body["total_entries"], 1);
  EXPECT_EQ(body["dag_runs"][0]["dag_run_id"], service_.run.run_id);
}

TEST_F(RouterTest, ListRunsOfEveryDagWithTilde) {
  ASSERT_EQ(Call("GET", "/api/v2/dags/~/dagRuns").status, 200);
  EXPECT_EQ(service_.last_run_query.dag_id, "~");
}

TEST_F(RouterTest, ListRunsOfAnUnknownDagIs404) {
  EXPECT_EQ(Call("GET", "/api/v2/dags/nope/dagRuns").status, 404);
}

TEST_F(RouterTest, BogusStateFilterIs422) {
  Response r = Call("GET", "/api/v2/dags/etl/dagRuns?state=bogus");
  ASSERT_EQ(r.status, 422);
  EXPECT_EQ(Body(r)["detail"][0]["loc"], nlohmann::json({"query", "state"}));
}

TEST_F(RouterTest, RunIdsArePercentDecoded) {
  Response r = Call("GET", kRun);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["dag_run_id"], "manual__2026-01-01T00:00:00+00:00");
}

TEST_F(RouterTest, UnknownRunIs404) {
  EXPECT_EQ(Call("GET", "/api/v2/dags/etl/dagRuns/nope").status, 404);
}

TEST_F(RouterTest, ListTaskInstancesCarriesTheRunsDates) {
  Response r = Call("GET", kRun + "/taskInstances?state=failed&state=none&task_id=extract&limit=3");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto& q = service_.last_ti_query;
  EXPECT_EQ(q.dag_id, "etl");
  EXPECT_EQ(q.run_id, service_.run.run_id);
  EXPECT_EQ(q.states, (std::vector<scheduler::TaskState>{scheduler::TaskState::kFailed,
                                                         scheduler::TaskState::kNone}));
  EXPECT_EQ(q.task_ids, std::vector<std::string>{"extract"});
  EXPECT_EQ(q.page.limit, 3);
  auto body = Body(r);
  EXPECT_EQ(body["total_entries"], 1);
  EXPECT_EQ(body["task_instances"][0]["logical_date"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(body["task_instances"][0]["run_after"], "2026-01-01T00:00:00Z");
}

TEST_F(RouterTest, TaskInstancesOfAnUnknownRunAre404) {
  EXPECT_EQ(Call("GET", "/api/v2/dags/etl/dagRuns/nope/taskInstances").status, 404);
}

TEST_F(RouterTest, GetTaskInstance) {
  Response r = Call("GET", kRun + "/taskInstances/extract");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = Body(r);
  EXPECT_EQ(body["task_id"], "extract");
  EXPECT_EQ(body["state"], "failed");
  EXPECT_EQ(body["operator"], "BashOperator");
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/nope").status, 404);
}

TEST_F(RouterTest, TriesListEveryTryAndOneTryByNumber) {
  Response r = Call("GET", kRun + "/taskInstances/extract/tries");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = Body(r);
  EXPECT_EQ(body["total_entries"], 2);
  EXPECT_EQ(body["task_instances"][0]["state"], "up_for_retry");
  EXPECT_EQ(body["task_instances"][1]["try_number"], 2);

  Response one = Call("GET", kRun + "/taskInstances/extract/tries/2");
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(Body(one)["state"], "failed");
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/tries/9").status, 404);
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/tries/x").status, 422);
}

TEST_F(RouterTest, DependenciesListEveryReasonForAViewer) {
  const std::map<std::string, std::string> viewer = {{"authorization", "Bearer viewer-token"}};
  Response r = Call("GET", kRun + "/taskInstances/extract/dependencies", "", viewer);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r), nlohmann::json::parse(R"({"dependencies": [
      {"name": "Trigger Rule",
       "reason": "Task's trigger rule 'all_success' requires all upstream tasks to succeed"},
      {"name": "Dag Not Paused", "reason": "Task's DAG 'etl' is paused."}]})"));
  EXPECT_EQ(Body(Call("GET", kRun + "/taskInstances/extract/-1/dependencies")), Body(r));
  EXPECT_EQ(Body(Call("GET", kRun + "/taskInstances/extract/dependencies?map_index=-1")), Body(r));
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/dependencies", "",
                 {{"authorization", "Bearer nobody-token"}})
                .status,
            401);
}

TEST_F(RouterTest, DependenciesOfAnUnknownTaskOrMapIndexAre404) {
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/nope/dependencies").status, 404);
  Response mapped = Call("GET", kRun + "/taskInstances/extract/0/dependencies");
  EXPECT_EQ(mapped.status, 404);
  EXPECT_THAT(Body(mapped)["detail"].get<std::string>(),
              ::testing::HasSubstr("task_id: `extract` and map_index: `0` was not found"));
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/dependencies?map_index=3").status, 404);
}

TEST_F(RouterTest, DependenciesWithABadMapIndexOrAnUnknownParameterAre422) {
  Response path = Call("GET", kRun + "/taskInstances/extract/x/dependencies");
  ASSERT_EQ(path.status, 422);
  EXPECT_EQ(Body(path)["detail"][0]["loc"], nlohmann::json::parse(R"(["path", "map_index"])"));
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/dependencies?map_index=x").status, 422);
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/dependencies?verbose=1").status, 422);
}

TEST_F(RouterTest, LogIsPlainTextWhenAskedFor) {
  Response r = Call("GET", kRun + "/taskInstances/extract/logs/1", "", {{"accept", "text/plain"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type.rfind("text/plain", 0), 0u);
  EXPECT_EQ(Drain(r), "starting\n{\"event\":\"structured\",\"level\":\"info\"}\ndone\n");
}

TEST_F(RouterTest, LogIsStructuredJsonByDefault) {
  Response r = Call("GET", kRun + "/taskInstances/extract/logs/1");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  auto body = Body(r);
  ASSERT_EQ(body["content"].size(), 3u);
  EXPECT_EQ(body["content"][0]["event"], "starting");
  EXPECT_EQ(body["content"][1]["level"], "info");
  EXPECT_TRUE(body["continuation_token"].is_null());
}

TEST_F(RouterTest, LogParametersAirflowDoesNotHaveAre422) {
  Response r = Call("GET", kRun + "/taskInstances/extract/logs/1?since=3");
  ASSERT_EQ(r.status, 422);
  EXPECT_EQ(Body(r)["detail"][0]["loc"], nlohmann::json({"query", "since"}));
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/logs/1?full_content=maybe").status, 422);
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/logs/1?follow=maybe").status, 422);
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/logs/1?map_index=x").status, 422);
}

TEST_F(RouterTest, LogOfAMapIndexOtherThanMinusOneIs404) {
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/logs/1?map_index=-1").status, 200);
  Response r = Call("GET", kRun + "/taskInstances/extract/logs/1?map_index=0");
  ASSERT_EQ(r.status, 404);
  EXPECT_EQ(Body(r)["detail"], "TaskInstance not found");
}

TEST_F(RouterTest, LogOfARunningTryCarriesATokenThatReadsOnlyWhatCameAfter) {
  service_.log_try_ended = false;
  service_.log = "one\n";
  auto first = Body(Call("GET", kRun + "/taskInstances/extract/logs/1"));
  ASSERT_EQ(first["content"].size(), 1u);
  ASSERT_TRUE(first["continuation_token"].is_string()) << first;
  const std::string token = first["continuation_token"];
  EXPECT_EQ(DecodeLogToken(token)->offset, 4u);

  service_.log = "one\ntwo\nthree\n";
  auto second = Body(Call("GET", kRun + "/taskInstances/extract/logs/1?token=" + token));
  EXPECT_EQ(service_.last_log_range.offset, 4u);
  EXPECT_EQ(service_.last_log_range.try_key, FakeService::kTryKey);
  EXPECT_TRUE(service_.last_log_range.whole_lines);
  ASSERT_EQ(second["content"].size(), 2u) << second;
  EXPECT_EQ(second["content"][0]["event"], "two");
  EXPECT_EQ(DecodeLogToken(second["continuation_token"].get<std::string>())->offset, 14u);

  // The try ended: the rest, then no token (Airflow's end of log).
  service_.log_try_ended = true;
  auto last = Body(Call("GET", kRun + "/taskInstances/extract/logs/1?token=" +
                                   second["continuation_token"].get<std::string>()));
  EXPECT_TRUE(last["content"].empty());
  EXPECT_TRUE(last["continuation_token"].is_null());
  // An empty token is no token, as in Airflow.
  Call("GET", kRun + "/taskInstances/extract/logs/1?token=");
  EXPECT_EQ(service_.last_log_range.offset, 0u);
  EXPECT_TRUE(service_.last_log_range.try_key.empty());
}

TEST_F(RouterTest, FullContentReadsFromTheStartWhateverTheToken) {
  const std::string token = EncodeLogToken({FakeService::kTryKey, 9});
  auto body =
      Body(Call("GET", kRun + "/taskInstances/extract/logs/1?full_content=true&token=" + token));
  EXPECT_EQ(body["content"].size(), 3u);
  EXPECT_EQ(service_.last_log_range.offset, 0u);
  EXPECT_TRUE(service_.last_log_range.uncapped);
  EXPECT_EQ(service_.last_log_range.try_key, FakeService::kTryKey);
}

TEST_F(RouterTest, RawAndNdjsonLogsOfARunningTryCarryTheTokenInAHeader) {
  service_.log_try_ended = false;
  for (const char* accept : {"text/plain", "application/x-ndjson"}) {
    Response r = Call("GET", kRun + "/taskInstances/extract/logs/1", "", {{"accept", accept}});
    ASSERT_EQ(r.headers.size(), 1u) << accept;
    EXPECT_EQ(r.headers[0].first, "Airflow-Continuation-Token");
    EXPECT_EQ(DecodeLogToken(r.headers[0].second)->offset, service_.log.size());
  }
  service_.log_try_ended = true;
  EXPECT_TRUE(Call("GET", kRun + "/taskInstances/extract/logs/1", "", {{"accept", "text/plain"}})
                  .headers.empty());
}

TEST_F(RouterTest, ALogTokenNotGivenOutOrForAnotherTryOrPastTheEndIs400) {
  Response forged = Call("GET", kRun + "/taskInstances/extract/logs/1?token=abc%2B");
  ASSERT_EQ(forged.status, 400);
  EXPECT_EQ(Body(forged)["detail"],
            "The continuation token is not one this server gave out; pass the "
            "continuation_token of a previous response unchanged");
  const std::string other = EncodeLogToken({"another-ti/1", 0});
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/logs/1?token=" + other).status, 400);
  const std::string past = EncodeLogToken({FakeService::kTryKey, 1000});
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/logs/1?token=" + past).status, 400);
}

TEST_F(RouterTest, AFollowedLogGrowsUntilTheTryEndsAndClosesItsJsonDocument) {
  service_.ti.try_number = 1;
  service_.ti.state = scheduler::TaskState::kRunning;
  service_.log_try_ended = false;
  service_.log = "one\n";
  Response r = Call("GET", kRun + "/taskInstances/extract/logs/1?follow=true");
  ASSERT_EQ(r.status, 200);
  ASSERT_TRUE(r.live);
  EXPECT_FALSE(service_.last_log_range.whole_lines);
  int wakes = 0;
  r.live->arm([&wakes] { ++wakes; });
  ASSERT_TRUE(service_.watcher);
  std::string body;
  auto poll = [&] {
    auto piece = r.live->poll();
    if (piece) body += *piece;
    return piece.has_value();
  };
  EXPECT_TRUE(poll());
  EXPECT_TRUE(poll());
  EXPECT_EQ(body, R"({"content":[{"event":"one"})");
  // The try ends; the watch wakes the body, which polls its state (at most every 250 ms).
  service_.ti.state = scheduler::TaskState::kSuccess;
  service_.watcher();
  EXPECT_GE(wakes, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  bool ended = false;
  for (int i = 0; i < 20 && !ended; ++i) ended = !poll();
  ASSERT_TRUE(ended) << "the body did not end with the try: " << body;
  auto json = nlohmann::json::parse(body);
  EXPECT_EQ(json["content"].size(), 1u);
  EXPECT_TRUE(json["continuation_token"].is_null());
}

TEST_F(RouterTest, LogOfAnUnknownTryIs404) {
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/extract/logs/5").status, 404);
  EXPECT_EQ(Call("GET", kRun + "/taskInstances/nope/logs/1").status, 404);
}

TEST_F(RouterTest, ImportErrorsAreListedWithPaging) {
  Response r = Call("GET", "/api/v2/importErrors?limit=10&offset=0");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(service_.last_page.limit, 10);
  auto body = Body(r);
  EXPECT_EQ(body["total_entries"], 1);
  EXPECT_EQ(body["import_errors"][0]["filename"], "/dags/bad.json");
  EXPECT_EQ(body["import_errors"][0]["stack_trace"], "task 'b': unknown upstream 'x'");
}

TEST_F(RouterTest, UnknownPathIs404NotFound) {
  for (const char* target : {"/", "/api/v1/dags", "/api/v2/nothing", "/api/v2/dags/etl/nothing"}) {
    Response r = Call("GET", target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(Body(r)["detail"], "Not Found") << target;
  }
}

TEST_F(RouterTest, WrongMethodOnAKnownPathIs405) {
  Response r = Call("DELETE", "/api/v2/version");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Body(r)["detail"], "Method Not Allowed");
  EXPECT_EQ(Call("POST", "/api/v2/dags/etl").status, 405);
}

// --- Hostile bodies -----------------------------------------------------------------------------

std::string Nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST_F(RouterTest, ADeeplyNestedBodyIs422NotACrash) {
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns", Nested(100000));
  ASSERT_EQ(r.status, 422);
  auto detail = Body(r)["detail"];
  EXPECT_EQ(detail[0]["type"], "json_invalid");
  EXPECT_EQ(detail[0]["ctx"]["error"], "The JSON nests deeper than 64 levels");
  EXPECT_LT(r.body.size(), 1000u);
  EXPECT_EQ(service_.trigger_calls, 0);
}

TEST_F(RouterTest, DeepConfInsideAValidBodyIs422NotACrash) {
  for (size_t depth : {15000, 80000}) {
    Response r = Call("POST", "/api/v2/dags/etl/dagRuns",
                      R"({"logical_date": null, "conf": {"a": )" + Nested(depth) + "}}");
    ASSERT_EQ(r.status, 422) << depth;
    EXPECT_EQ(Body(r)["detail"][0]["ctx"]["error"], "The JSON nests deeper than 64 levels");
  }
  EXPECT_EQ(service_.trigger_calls, 0);
}

TEST_F(RouterTest, ConfNestedWithinTheLimitIsAccepted) {
  // The body is level 1 and conf level 2: 62 more levels of arrays make 64.
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns",
                    R"({"logical_date": null, "conf": {"a": )" + Nested(62) + "}}");
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(RouterTest, ANumberTooLargeIs422WithOurSentence) {
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns",
                    R"({"logical_date": null, "conf": {"x": 1e999999}})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["ctx"]["error"], "The JSON holds a number too large to represent");
  EXPECT_EQ(r.body.find("json.exception"), std::string::npos) << r.body;
}

TEST_F(RouterTest, ALongInputIsNotEchoedWholeIn422) {
  const std::string long_date(100000, '9');
  Response r =
      Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": ")" + long_date + R"("})");
  ASSERT_EQ(r.status, 422);
  EXPECT_LT(r.body.size(), 1000u);
  const std::string input = Body(r)["detail"][0]["input"];
  EXPECT_EQ(input.rfind(std::string(50, '9'), 0), 0u) << input;
  EXPECT_NE(input.find("(100000 bytes)"), std::string::npos) << input;
}

TEST_F(RouterTest, ALargeObjectIsSummarisedIn422) {
  // logical_date is missing: Pydantic would echo the whole body as `input`.
  std::string conf;
  for (int i = 0; i < 5000; ++i)
    conf += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\":1";
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns", R"({"conf": {)" + conf + "}}");
  ASSERT_EQ(r.status, 422);
  EXPECT_LT(r.body.size(), 1000u);
  EXPECT_EQ(Body(r)["detail"][0]["input"], "an object of 1 key (too large to show)");
}

TEST_F(RouterTest, ManyErrorsAreCappedAt20) {
  std::string extra;
  for (int i = 0; i < 10000; ++i) extra += ",\"x" + std::to_string(i) + "\":1";
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null)" + extra + "}");
  ASSERT_EQ(r.status, 422);
  EXPECT_EQ(Body(r)["detail"].size(), 20u);
}

TEST_F(RouterTest, ALongUnknownKeyIsShortenedInItsLoc) {
  const std::string key(10000, 'k');
  Response r =
      Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null, ")" + key + R"(": 1})");
  ASSERT_EQ(r.status, 422);
  EXPECT_LT(r.body.size(), 1000u);
  EXPECT_EQ(Body(r)["detail"][0]["type"], "extra_forbidden");
}

TEST_F(RouterTest, ANulInABodyStringIs422NotCutShort) {
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns",
                    R"({"logical_date": null, "dag_run_id": "a\u0000b"})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["loc"], nlohmann::json({"body", "dag_run_id"}));
  Response in_conf = Call("POST", "/api/v2/dags/etl/dagRuns",
                          R"({"logical_date": null, "conf": {"k": ["ok", "x\u0000"]}})");
  ASSERT_EQ(in_conf.status, 422) << in_conf.body;
  EXPECT_EQ(Body(in_conf)["detail"][0]["loc"], nlohmann::json({"body", "conf", "k", 1}));
  Response key =
      Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null, "conf": {"\u0000": 1}})");
  EXPECT_EQ(key.status, 422) << key.body;
  EXPECT_EQ(service_.trigger_calls, 0);
}

// --- Content type, Host and Origin ---------------------------------------------------------------

TEST_F(RouterTest, AWriteWithTextPlainIs415) {
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null})",
                    {{"content-type", "text/plain"}});
  ASSERT_EQ(r.status, 415);
  EXPECT_EQ(Body(r)["detail"],
            "Request bodies must be JSON sent with Content-Type: application/json");
  EXPECT_EQ(Call("PATCH", "/api/v2/dags/etl", R"({"is_paused": true})",
                 {{"content-type", "application/x-www-form-urlencoded"}})
                .status,
            415);
  EXPECT_EQ(service_.trigger_calls, 0);
  EXPECT_FALSE(service_.details.record.is_paused);
}

TEST_F(RouterTest, AWriteWithABodyAndNoContentTypeIs415) {
  Response r = router_.Handle(Request{"POST",
                                      "/api/v2/dags/etl/dagRuns",
                                      {{"authorization", "Bearer admin-token"}},
                                      R"({"logical_date": null})"});
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(service_.trigger_calls, 0);
}

TEST_F(RouterTest, JsonWithParametersIsAcceptedUnlessTheCharsetIsNotUtf8) {
  for (const char* type : {"application/json; charset=utf-8", "Application/JSON;charset=\"UTF-8\"",
                           "application/json ; foo=bar"}) {
    EXPECT_EQ(Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null})",
                   {{"content-type", type}})
                  .status,
              200)
        << type;
  }
  for (const char* type : {"application/json; charset=latin1", "application/jsonx", "json", ""}) {
    EXPECT_EQ(Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null})",
                   {{"content-type", type}})
                  .status,
              415)
        << type;
  }
}

TEST_F(RouterTest, AForeignOriginIs403) {
  for (const char* origin : {"http://evil.example", "https://evil.example:8080", "null",
                             "http://localhost.evil.example", "file://", "localhost"}) {
    Response r =
        Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null})", {{"origin", origin}});
    EXPECT_EQ(r.status, 403) << origin;
    EXPECT_EQ(Call("GET", "/api/v2/dags", "", {{"origin", origin}}).status, 403) << origin;
  }
  EXPECT_EQ(service_.trigger_calls, 0);
}

TEST_F(RouterTest, LoopbackOriginsAreAccepted) {
  for (const char* origin :
       {"http://localhost:8080", "http://127.0.0.1", "https://[::1]:9", "HTTP://LOCALHOST"}) {
    EXPECT_EQ(
        Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null})", {{"origin", origin}})
            .status,
        200)
        << origin;
  }
}

TEST_F(RouterTest, AForeignHostIs403SoDnsRebindingFails) {
  for (const char* host : {"evil.example", "evil.example:8080", "127.0.0.1.evil.example", "",
                           "localhost:80x", "[::1", "[::1]x"}) {
    Response r = Call("GET", "/api/v2/dags", "", {{"host", host}});
    EXPECT_EQ(r.status, 403) << host;
    EXPECT_NE(Body(r)["detail"].get<std::string>().find("Host"), std::string::npos);
  }
  EXPECT_EQ(Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null})",
                 {{"host", "evil.example:8080"}})
                .status,
            403);
  EXPECT_EQ(service_.trigger_calls, 0);
}

TEST_F(RouterTest, LoopbackHostsAreAccepted) {
  for (const char* host :
       {"localhost", "LocalHost:8080", "127.0.0.1:8080", "[::1]:8080", "[::1]", "::1"}) {
    EXPECT_EQ(Call("GET", "/api/v2/dags", "", {{"host", host}}).status, 200) << host;
  }
}

TEST_F(RouterTest, ConfiguredHostsAreAcceptedAndAStarAcceptsAny) {
  Router named(service_, Options({"dagd.internal", "[fd00::1]"}));
  auto get = [](const Router& router, std::map<std::string, std::string> headers) {
    headers["authorization"] = "Bearer viewer-token";
    return router.Handle(Request{"GET", "/api/v2/dags", std::move(headers), ""}).status;
  };
  EXPECT_EQ(get(named, {{"host", "dagd.internal:8080"}}), 200);
  EXPECT_EQ(get(named, {{"host", "[fd00::1]:8080"}, {"origin", "http://dagd.internal"}}), 200);
  EXPECT_EQ(get(named, {{"host", "localhost"}}), 200);
  EXPECT_EQ(get(named, {{"host", "other.internal"}}), 403);
  Router any(service_, Options({"*"}));
  EXPECT_EQ(get(any, {{"host", "other.internal"}, {"origin", "https://other.internal"}}), 200);
  EXPECT_EQ(get(any, {{"origin", "null"}}), 403);  // not a host at all
}

// --- Paths and queries -------------------------------------------------------------------------

TEST_F(RouterTest, AnIdWithANulByteIs404NotCutShort) {
  for (const char* target :
       {"/api/v2/dags/etl%00xyz", "/api/v2/dags/etl%00", "/api/v2/dags/etl/dagRuns/x%00y"}) {
    Response r = Call("GET", target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(Body(r)["detail"],
              "Not Found: the path holds a NUL byte or text that is not valid UTF-8");
  }
  EXPECT_EQ(service_.get_dag_calls, 0);
}

TEST_F(RouterTest, AnIdThatIsNotUtf8Is404WithOurSentence) {
  for (const char* target : {"/api/v2/dags/%FF", "/api/v2/dags/%C0%AF", "/api/v2/dags/%ED%A0%80",
                             "/api/v2/dags/a%E2%82"}) {
    Response r = Call("GET", target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(Body(r)["detail"],
              "Not Found: the path holds a NUL byte or text that is not valid UTF-8");
  }
  EXPECT_EQ(service_.get_dag_calls, 0);
  Response r = Call("GET", "/api/v2/dags/%C3%A9t%F0%9F%98%80");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Body(r)["detail"], "DAG '\xC3\xA9t\xF0\x9F\x98\x80' not found");
}

TEST_F(RouterTest, AQueryValueWithNulOrNotUtf8Is422) {
  for (const char* query : {"dag_id_pattern=a%00b", "tags=%FF", "dag_id_pattern=%C3"}) {
    Response r = Call("GET", std::string("/api/v2/dags?") + query);
    ASSERT_EQ(r.status, 422) << query;
    EXPECT_EQ(Body(r)["detail"][0]["type"], "string_unicode");
    EXPECT_EQ(Body(r)["detail"][0]["loc"][0], "query");
  }
  EXPECT_EQ(Call("GET", "/api/v2/dags?%FF=1").status, 422);
}

TEST_F(RouterTest, ALimitAboveTheMaximumIsReducedToIt) {
  ASSERT_EQ(Call("GET", "/api/v2/dags?limit=1000000").status, 200);
  EXPECT_EQ(service_.last_dag_query.page.limit, 100);
  ASSERT_EQ(Call("GET", "/api/v2/dags/etl/dagRuns?limit=101").status, 200);
  EXPECT_EQ(service_.last_run_query.page.limit, 100);
  ASSERT_EQ(Call("GET", kRun + "/taskInstances?limit=2147483647").status, 200);
  EXPECT_EQ(service_.last_ti_query.page.limit, 100);
  ASSERT_EQ(Call("GET", "/api/v2/importErrors?limit=500").status, 200);
  EXPECT_EQ(service_.last_page.limit, 100);
  ASSERT_EQ(Call("GET", "/api/v2/dags?limit=100").status, 200);
  EXPECT_EQ(service_.last_dag_query.page.limit, 100);
}

TEST_F(RouterTest, TheMaximumPageLimitIsConfigurable) {
  Router small(service_, Options({}, 10));
  const std::map<std::string, std::string> viewer = {{"authorization", "Bearer viewer-token"}};
  ASSERT_EQ(small.Handle(Request{"GET", "/api/v2/dags", viewer, ""}).status, 200);
  EXPECT_EQ(service_.last_dag_query.page.limit, 10);  // the default 50 is reduced too
  ASSERT_EQ(small.Handle(Request{"GET", "/api/v2/dags?limit=3", viewer, ""}).status, 200);
  EXPECT_EQ(service_.last_dag_query.page.limit, 3);
}

// --- Service errors ----------------------------------------------------------------------------

TEST_F(RouterTest, LibraryTextInServiceErrorsStaysOutOfResponses) {
  const std::string raw = "database unavailable: pqxx::broken_connection: server closed";
  struct Case {
    Status status;
    int http;
    const char* sentence;
  };
  for (const Case& c :
       {Case{Status::Unavailable(raw), 503, "The database is unavailable; retry later"},
        Case{Status::Internal(raw), 500, "Internal error; the daemon's log has the details"},
        Case{Status::Aborted(raw), 409,
             "The request conflicted with a concurrent change; retry it"},
        Case{Status::DeadlineExceeded(raw), 504, "The request took too long; retry later"}}) {
    service_.next_error = c.status;
    Response r = Call("GET", "/api/v2/dags");
    EXPECT_EQ(r.status, c.http);
    EXPECT_EQ(Body(r)["detail"], c.sentence);
  }
}

// --- Logs ---------------------------------------------------------------------------------------

TEST_F(RouterTest, NdjsonLogHasEveryLine) {
  Response r =
      Call("GET", kRun + "/taskInstances/extract/logs/1", "", {{"accept", "application/x-ndjson"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/x-ndjson");
  EXPECT_EQ(Drain(r),
            "{\"event\":\"starting\"}\n{\"event\":\"structured\",\"level\":\"info\"}\n"
            "{\"event\":\"done\"}\n");
}

TEST_F(RouterTest, LogsOfEveryFormatAreStreamedInBoundedChunks) {
  // 4 MiB of lines, one of them 1 MiB long: no chunk holds more than about one read.
  std::string line(1000, 'x');
  std::string log;
  while (log.size() < (3u << 20)) log += line + "\n";
  log += std::string(1 << 20, 'y') + "\n" + "{\"event\":\"last\"}\n";
  service_.log = log;
  for (const char* accept : {"text/plain", "application/json", "application/x-ndjson"}) {
    Response r = Call("GET", kRun + "/taskInstances/extract/logs/1", "", {{"accept", accept}});
    ASSERT_EQ(r.status, 200) << accept;
    ASSERT_TRUE(r.stream) << accept;
    EXPECT_LT(r.body.size(), 100u) << accept;
    size_t chunks = 0;
    size_t largest = 0;
    const std::string body = Drain(r, &chunks, &largest);
    EXPECT_GT(chunks, 40u) << accept;
    EXPECT_LE(largest, 200u << 10) << accept;
    if (std::string(accept) == "text/plain") {
      EXPECT_EQ(body, log);
    } else if (std::string(accept) == "application/json") {
      auto json = nlohmann::json::parse(body);
      EXPECT_EQ(json["content"].back()["event"], "last");
      EXPECT_EQ(json["content"][json["content"].size() - 2]["event"], std::string(1 << 20, 'y'));
    } else {
      EXPECT_TRUE(body.ends_with("\n{\"event\":\"last\"}\n")) << body.substr(body.size() - 50);
    }
  }
}

TEST_F(RouterTest, ALogOfEmptyLinesGrowsNoChunkPastItsBound) {
  // Each empty line becomes a JSON object about 13 times its size: chunks are bounded by what
  // they hold after encoding, not by what was read.
  service_.log = std::string(1 << 20, '\n');
  for (const char* accept : {"application/json", "application/x-ndjson"}) {
    Response r = Call("GET", kRun + "/taskInstances/extract/logs/1", "", {{"accept", accept}});
    ASSERT_TRUE(r.stream) << accept;
    size_t chunks = 0;
    size_t largest = 0;
    const std::string body = Drain(r, &chunks, &largest);
    EXPECT_GT(body.size(), 10u << 20) << accept;
    EXPECT_LE(largest, 128u << 10) << accept;
  }
}

TEST_F(RouterTest, ALogsNoteComesFirstInEveryFormat) {
  service_.log_note = "[dagd: this log has 9 bytes; showing the last 3]\n";
  service_.log = "end\n";
  auto get = [&](const char* accept) {
    return Drain(Call("GET", kRun + "/taskInstances/extract/logs/1", "", {{"accept", accept}}));
  };
  EXPECT_EQ(get("text/plain"), service_.log_note + "end\n");
  auto json = nlohmann::json::parse(get("application/json"));
  ASSERT_EQ(json["content"].size(), 2u);
  EXPECT_EQ(json["content"][0]["event"], "[dagd: this log has 9 bytes; showing the last 3]");
  EXPECT_EQ(get("application/x-ndjson").find("{\"event\":\"[dagd: this log"), 0u);
}

TEST_F(RouterTest, AnEmptyLogIsAnEmptyDocumentInEveryFormat) {
  service_.log = "";
  auto get = [&](const char* accept) {
    return Drain(Call("GET", kRun + "/taskInstances/extract/logs/1", "", {{"accept", accept}}));
  };
  EXPECT_EQ(get("text/plain"), "");
  EXPECT_EQ(get("application/json"), R"({"content":[],"continuation_token":null})");
  EXPECT_EQ(get("application/x-ndjson"), "");
}

TEST_F(RouterTest, AFilterDagdDoesNotSupportIsA422NotIgnored) {
  for (const char* target :
       {"/api/v2/dags?owners=me", "/api/v2/dags/etl/dagRuns?conf_contains=x",
        "/api/v2/dags/etl/dagRuns/r1/taskInstances?executor=x", "/api/v2/dags/etl?fields=x",
        "/api/v2/importErrors?filename_pattern=x", "/api/v2/plugins?bogus=1"}) {
    Response r = Call("GET", target);
    EXPECT_EQ(r.status, 422) << target << ": " << r.body;
    EXPECT_NE(Body(r)["detail"][0]["msg"].get<std::string>().find("does not support"),
              std::string::npos)
        << r.body;
  }
}

TEST_F(RouterTest, ListRunsTakesEveryTimeAndDurationBound) {
  Response r = Call("GET",
                    "/api/v2/dags/~/dagRuns?run_after_gt=2026-01-01T00:00:00Z"
                    "&end_date_lt=2026-01-02T00:00:00Z&duration_gte=1.5&dag_version=2");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto& q = service_.last_run_query;
  ASSERT_EQ(q.bounds.size(), 3u);
  EXPECT_EQ(q.bounds[0].field, "run_after");
  EXPECT_EQ(q.bounds[0].op, scheduler::Bound::Op::kGt);
  EXPECT_EQ(q.bounds[1].field, "end_date");
  EXPECT_EQ(q.bounds[2].number, 1.5);
  EXPECT_EQ(q.version_numbers, std::vector<int>{2});
  EXPECT_EQ(Call("GET", "/api/v2/dags/~/dagRuns?duration_gte=abc").status, 422);
}

TEST_F(RouterTest, BatchRunListingReadsItsBodyAndRefusesWhatItCannotFilterOn) {
  Response r = Call("POST", "/api/v2/dags/~/dagRuns/list",
                    R"({"dag_ids":["etl"],"states":["success"],"page_limit":5,"page_offset":1,)"
                    R"("order_by":"-start_date,dag_id","start_date_gte":"2026-01-01T00:00:00Z"})");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto& q = service_.last_run_query;
  EXPECT_EQ(q.dag_ids, std::vector<std::string>{"etl"});
  EXPECT_EQ(q.page.limit, 5);
  EXPECT_EQ(q.page.offset, 1);
  EXPECT_EQ(q.page.order_by, (std::vector<std::string>{"-start_date", "dag_id"}));
  ASSERT_EQ(q.bounds.size(), 1u);
  Response unsupported = Call("POST", "/api/v2/dags/~/dagRuns/list", R"({"conf_contains":"x"})");
  EXPECT_EQ(unsupported.status, 422) << unsupported.body;
  EXPECT_EQ(Body(unsupported)["detail"][0]["loc"], Json({"body", "conf_contains"}));
  EXPECT_EQ(Call("POST", "/api/v2/dags/etl/dagRuns/list", "{}").status, 422);
  EXPECT_EQ(Call("POST", "/api/v2/dags/~/dagRuns/list", R"({"states":["bogus"]})").status, 422);
}

TEST_F(RouterTest, BatchTaskInstanceListingReadsItsBody) {
  Response r = Call("POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list",
                    R"({"dag_ids":["etl"],"dag_run_ids":["r1"],"task_ids":["a"],)"
                    R"("state":["success"],"pool":["default_pool"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto& q = service_.last_ti_query;
  EXPECT_EQ(q.run_ids, std::vector<std::string>{"r1"});
  EXPECT_EQ(q.pools, std::vector<std::string>{"default_pool"});
  // The page's runs (for logical_date and run_after) are read in one listing, not one by one.
  EXPECT_EQ(service_.last_run_query.run_ids, std::vector<std::string>{service_.run.run_id});
  EXPECT_EQ(service_.last_run_query.dag_ids, std::vector<std::string>{service_.run.dag_id});
  EXPECT_EQ(
      Call("POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list", R"({"queue":["x"]})").status,
      422);
}

TEST_F(RouterTest, DagVersionsAreListedAndFetchedWithTheirCreationTime) {
  Response list = Call("GET", "/api/v2/dags/etl/dagVersions");
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(Body(list)["dag_versions"][0]["created_at"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(Body(list)["total_entries"], 1);
  EXPECT_EQ(Body(Call("GET", "/api/v2/dags/etl/dagVersions?bundle_name=other"))["total_entries"],
            0);
  Response one = Call("GET", "/api/v2/dags/etl/dagVersions/1");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(Body(one)["version_number"], 1);
  EXPECT_EQ(Call("GET", "/api/v2/dags/etl/dagVersions/9").status, 404);
  EXPECT_EQ(Call("GET", "/api/v2/dags/etl/dagVersions/x").status, 422);
  EXPECT_EQ(Call("GET", "/api/v2/dags/nope/dagVersions").status, 404);
}

TEST_F(RouterTest, DagStatsCountEveryRunStateAndSplitCommaLists) {
  Response r = Call("GET", "/api/v2/dagStats?dag_ids=etl,other&dag_ids=third");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(service_.last_stats_dag_ids, (std::vector<std::string>{"etl", "other", "third"}));
  const Json stats = Body(r)["dags"][0]["stats"];
  ASSERT_EQ(stats.size(), 4u);
  EXPECT_EQ(stats[2], Json::parse(R"({"state":"success","count":2})"));
  EXPECT_EQ(stats[0]["count"], 0);
}

TEST_F(RouterTest, ConfigShowsSectionsAndOptionsAndFiltersBySection) {
  RouterOptions options = Options();
  options.config = {{"core", "executor", "dagd"}, {"core", "parallelism", "8"}};
  Router router(service_, options);
  auto get = [&](const std::string& target, std::map<std::string, std::string> headers = {}) {
    headers["authorization"] = "Bearer viewer-token";
    return router.Handle(Request{"GET", target, std::move(headers), ""});
  };
  Response all = get("/api/v2/config");
  ASSERT_EQ(all.status, 200) << all.body;
  const Json sections = Json::parse(all.body)["sections"];
  ASSERT_EQ(sections.size(), 2u);
  EXPECT_EQ(sections[0]["name"], "api");
  EXPECT_EQ(sections[1]["options"][1], Json::parse(R"({"key":"parallelism","value":"8"})"));
  Response core = get("/api/v2/config?section=core");
  EXPECT_EQ(Json::parse(core.body)["sections"].size(), 1u);
  EXPECT_EQ(get("/api/v2/config?section=nope").status, 404);
  Response text = get("/api/v2/config", {{"accept", "text/plain"}});
  EXPECT_EQ(text.content_type, "text/plain; charset=utf-8");
  EXPECT_NE(text.body.find("[core]\nexecutor = dagd\n"), std::string::npos) << text.body;
  EXPECT_EQ(get("/api/v2/config", {{"accept", "image/png"}}).status, 406);
}

TEST_F(RouterTest, PluginsAndProvidersAreEmptyCollections) {
  EXPECT_EQ(Body(Call("GET", "/api/v2/plugins")),
            Json::parse(R"({"plugins":[],"total_entries":0})"));
  EXPECT_EQ(Body(Call("GET", "/api/v2/providers?limit=5")),
            Json::parse(R"({"providers":[],"total_entries":0})"));
}

TEST_F(RouterTest, TheOpenApiDocumentIsServedAndDescribesItself) {
  Response r = Call("GET", "/api/v2/openapi.json");
  ASSERT_EQ(r.status, 200);
  const Json doc = Body(r);
  EXPECT_TRUE(doc["paths"].contains("/api/v2/openapi.json"));
  EXPECT_TRUE(doc["paths"].contains("/api/v2/dags/{dag_id}/dagVersions"));
  EXPECT_TRUE(doc["components"]["schemas"].contains("DAGRunResponse"));
}

// --- Authentication and roles ------------------------------------------------------------------

namespace auth {

// One request per route of the table, as a caller of any role would send it.
const std::vector<std::pair<std::string, std::string>> kProtected = {
    {"GET", "/api/v2/dags"},
    {"GET", "/api/v2/dags/etl"},
    {"PATCH", "/api/v2/dags/etl"},
    {"GET", "/api/v2/dags/etl/details"},
    {"GET", "/api/v2/dags/etl/tasks"},
    {"GET", "/api/v2/dags/etl/tasks/extract"},
    {"GET", "/api/v2/dags/etl/dagRuns"},
    {"POST", "/api/v2/dags/etl/dagRuns"},
    {"GET", kRun},
    {"GET", kRun + "/taskInstances"},
    {"GET", kRun + "/taskInstances/extract"},
    {"GET", kRun + "/taskInstances/extract/tries"},
    {"GET", kRun + "/taskInstances/extract/tries/1"},
    {"GET", kRun + "/taskInstances/extract/logs/1"},
    {"GET", "/api/v2/importErrors"},
    {"GET", "/api/v2/dags/etl/dagVersions"},
    {"GET", "/api/v2/dags/etl/dagVersions/1"},
    {"POST", "/api/v2/dags/~/dagRuns/list"},
    {"POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list"},
    {"GET", "/api/v2/dagStats"},
    {"GET", "/api/v2/config"},
    {"GET", "/api/v2/plugins"},
    {"GET", "/api/v2/providers"},
    {"GET", "/api/v2/events"},
    {"GET", kRun + "/wait"},
    {"PUT", "/api/v2/dags/etl"},
    {"DELETE", "/api/v2/dags/etl"},
};

bool SaysBearer(const Response& r) {
  return std::find(r.headers.begin(), r.headers.end(),
                   std::pair<std::string, std::string>{"WWW-Authenticate", "Bearer"}) !=
         r.headers.end();
}

}  // namespace auth

TEST_F(RouterTest, EveryRouteButVersionAndHealthAnswers401WithoutABearer) {
  for (const auto& [method, target] : auth::kProtected) {
    Response r = router_.Handle(Request{
        method, target, {{"content-type", "application/json"}}, method == "GET" ? "" : "{}"});
    EXPECT_EQ(r.status, 401) << method << " " << target;
    EXPECT_EQ(Body(r)["detail"], "Not authenticated") << method << " " << target;
    EXPECT_TRUE(auth::SaysBearer(r)) << method << " " << target;
  }
  EXPECT_EQ(service_.trigger_calls, 0);
  EXPECT_EQ(router_.Handle(Request{"GET", "/api/v2/version", {}, ""}).status, 200);
  EXPECT_EQ(router_.Handle(Request{"GET", "/api/v2/monitor/health", {}, ""}).status, 200);
}

TEST_F(RouterTest, ABadBearerIs401InvalidOrExpiredAndAnotherSchemeIsNotAuthenticated) {
  for (const char* value : {"Bearer nobody-token", "Bearer a.b.c", "bearer   ", "Bearer"}) {
    Response r = Call("GET", "/api/v2/dags", "", {{"authorization", value}});
    EXPECT_EQ(r.status, 401) << value;
    EXPECT_TRUE(auth::SaysBearer(r)) << value;
  }
  EXPECT_EQ(
      Body(Call("GET", "/api/v2/dags", "", {{"authorization", "Bearer nobody-token"}}))["detail"],
      "Invalid or expired token");
  EXPECT_EQ(
      Body(Call("GET", "/api/v2/dags", "", {{"authorization", "Basic YWRtaW46cHc="}}))["detail"],
      "Not authenticated");
  EXPECT_EQ(Call("GET", "/api/v2/dags", "", {{"authorization", "BEARER viewer-token"}}).status,
            200);
}

TEST_F(RouterTest, AViewerMayReadButNotTriggerNorPause) {
  const std::map<std::string, std::string> viewer = {{"authorization", "Bearer viewer-token"}};
  EXPECT_EQ(Call("GET", "/api/v2/dags", "", viewer).status, 200);
  Response r = Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null})", viewer);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Body(r)["detail"], "viewer role cannot trigger DAG runs; it needs user");
  EXPECT_EQ(service_.trigger_calls, 0);
  r = Call("PATCH", "/api/v2/dags/etl", R"({"is_paused": true})", viewer);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Body(r)["detail"], "viewer role cannot pause or unpause DAGs; it needs user");
}

TEST_F(RouterTest, AUserMayTriggerAndEveryHigherRoleToo) {
  for (const char* role : {"user", "op", "admin"}) {
    Response r = Call("POST", "/api/v2/dags/etl/dagRuns", R"({"logical_date": null})",
                      {{"authorization", std::string("Bearer ") + role + "-token"}});
    EXPECT_EQ(r.status, 200) << role;
  }
  EXPECT_EQ(service_.trigger_calls, 3);
}

TEST_F(RouterTest, WithoutAnAuthenticatorNothingProtectedIsServed) {
  Router bare(service_);
  EXPECT_EQ(
      bare.Handle(Request{"GET", "/api/v2/dags", {{"authorization", "Bearer admin-token"}}, ""})
          .status,
      401);
  EXPECT_EQ(bare.Handle(Request{"POST",
                                "/auth/token",
                                {{"content-type", "application/json"}},
                                R"({"username": "admin", "password": "pw-admin"})"})
                .status,
            503);
}

TEST_F(RouterTest, TheTokenEndpointTakesJsonOrAFormAndAnswers201) {
  Response r = router_.Handle(Request{"POST",
                                      "/auth/token",
                                      {{"content-type", "application/json"}},
                                      R"({"username": "user", "password": "pw-user"})"});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Body(r)["access_token"], "user-token");
  r = router_.Handle(Request{"POST",
                             "/auth/token",
                             {{"content-type", "application/x-www-form-urlencoded"}},
                             "grant_type=password&username=op&password=pw%2Dop"});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Body(r)["access_token"], "op-token");
}

TEST_F(RouterTest, AnAddressWithTooManyFailedLoginsGets429WhateverItSendsAndOthersDoNot) {
  auto login = [&](const std::string& address, const std::string& password) {
    Request req{"POST", "/auth/token", {{"content-type", "application/json"}},
                R"({"username": "user", "password": ")" + password + R"("})"};
    req.remote_address = address;
    return router_.Handle(req);
  };
  // A success clears the count: 9 failures, a success, then 10 more are still answered 401.
  for (int i = 0; i < 9; ++i) ASSERT_EQ(login("10.0.0.1", "wrong").status, 401);
  ASSERT_EQ(login("10.0.0.1", "pw-user").status, 201);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(login("10.0.0.1", "wrong").status, 401) << i;
  Response refused = login("10.0.0.1", "pw-user");  // the right password, but too late
  ASSERT_EQ(refused.status, 429) << refused.body;
  EXPECT_TRUE(Body(refused)["detail"].get<std::string>().starts_with(
      "Too many failed logins from this address (10 within 60 s)"))
      << refused.body;
  ASSERT_EQ(refused.headers.size(), 1u);
  EXPECT_EQ(refused.headers[0].first, "Retry-After");
  const int wait = std::stoi(refused.headers[0].second);
  EXPECT_GE(wait, 59);
  EXPECT_LE(wait, 60);
  // Another address is not held back.
  EXPECT_EQ(login("10.0.0.2", "pw-user").status, 201);
}

TEST(LoginThrottle, AnAddressMayTryAgainOnceItsOldestFailureLeavesTheWindow) {
  LoginThrottle throttle(3, std::chrono::seconds(60), 2);
  const auto t0 = LoginThrottle::Clock::time_point{} + std::chrono::hours(1);
  throttle.Failed("a", t0);
  throttle.Failed("a", t0 + std::chrono::seconds(10));
  throttle.Failed("a", t0 + std::chrono::seconds(20));
  EXPECT_EQ(throttle.RetryAfter("a", t0 + std::chrono::seconds(30)), std::chrono::seconds(30));
  EXPECT_EQ(throttle.RetryAfter("a", t0 + std::chrono::seconds(60)), std::nullopt);
  // At most 2 addresses: a third makes the quietest one forgotten.
  throttle.Failed("b", t0 + std::chrono::seconds(61));
  throttle.Failed("c", t0 + std::chrono::seconds(62));
  for (int i = 0; i < 3; ++i) throttle.Failed("c", t0 + std::chrono::seconds(63));
  EXPECT_NE(throttle.RetryAfter("c", t0 + std::chrono::seconds(64)), std::nullopt);
  throttle.Succeeded("c");
  EXPECT_EQ(throttle.RetryAfter("c", t0 + std::chrono::seconds(64)), std::nullopt);
}

TEST_F(RouterTest, TheTokenEndpointRefusesBadCredentialsAndBadBodies) {
  auto post = [&](const std::string& type, const std::string& body) {
    return router_.Handle(Request{"POST", "/auth/token", {{"content-type", type}}, body});
  };
  Response r = post("application/json", R"({"username": "user", "password": "wrong"})");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Body(r)["detail"], "Invalid username or password");
  r = post("application/json", R"({"username": "nobody", "password": "pw-nobody"})");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Body(r)["detail"], "Invalid username or password");
  r = post("application/json", R"({"username": "user"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(Body(r)["detail"][0]["loc"], nlohmann::json({"body", "password"}));
  EXPECT_EQ(post("application/json", R"({"username": 1, "password": "x"})").status, 422);
  EXPECT_EQ(
      post("application/json", R"({"username": "u", "password": "x", "role": "admin"})").status,
      422);
  EXPECT_EQ(post("application/x-www-form-urlencoded", "username=a&username=b&password=x").status,
            422);
  EXPECT_EQ(post("application/x-www-form-urlencoded", "username=a%00&password=x").status, 422);
  EXPECT_EQ(post("text/plain", R"({"username": "user", "password": "pw-user"})").status, 415);
  EXPECT_EQ(router_.Handle(Request{"GET", "/auth/token", {}, ""}).status, 405);
  // Elsewhere a form is still refused.
  EXPECT_EQ(Call("POST", "/api/v2/dags/etl/dagRuns",
                 "logical_date=", {{"content-type", "application/x-www-form-urlencoded"}})
                .status,
            415);
}

// --- DAG upload and deletion ---------------------------------------------------------------------

constexpr const char* kDocument = R"({"dag_id": "fresh", "tasks": [
  {"task_id": "a", "operator": "empty"}, {"task_id": "b", "operator": "empty", "upstream": ["a"]}]})";

TEST_F(RouterTest, UploadingANewDagIs201WithItsDetailsAndANewVersionOfAnOldOne200) {
  Response r = Call("PUT", "/api/v2/dags/fresh", kDocument);
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Body(r)["dag_id"], "fresh");
  EXPECT_TRUE(Body(r).contains("latest_dag_version")) << "the body of GET .../details";
  r = Call("PUT", "/api/v2/dags/etl", R"({"dag_id": "etl", "tasks": [
    {"task_id": "x", "operator": "empty"}]})");
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(RouterTest, AnInvalidUploadIs422AtTheFieldsPathInTheBody) {
  Response r = Call("PUT", "/api/v2/dags/fresh", R"({"dag_id": "fresh", "tasks": [
    {"task_id": "a", "operator": "empty"},
    {"task_id": "b", "operator": "empty", "retries": -1, "colour": "red"}]})");
  ASSERT_EQ(r.status, 422) << r.body;
  const Json detail = Body(r)["detail"];
  ASSERT_EQ(detail.size(), 2u) << detail.dump();
  std::map<std::string, Json> by_loc;
  for (const Json& e : detail) by_loc[e["loc"].dump()] = e;
  const Json& retries = by_loc[R"(["body","tasks",1,"retries"])"];
  EXPECT_EQ(retries["type"], "value_error") << detail.dump();
  EXPECT_EQ(retries["input"], -1);
  EXPECT_NE(retries["msg"].get<std::string>().find("task 'b' field 'retries'"), std::string::npos);
  EXPECT_EQ(by_loc[R"(["body","tasks",1,"colour"])"]["input"], "red") << detail.dump();
}

TEST_F(RouterTest, AnUploadWithoutADagIdNamesTheFieldAndACycleNamesTheTasks) {
  Response r =
      Call("PUT", "/api/v2/dags/fresh", R"({"tasks": [{"task_id": "a", "operator": "empty"}]})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json::parse(R"(["body","dag_id"])"));
  EXPECT_EQ(Body(r)["detail"][0]["msg"], "missing required field 'dag_id'");
  r = Call("PUT", "/api/v2/dags/fresh", R"({"dag_id": "fresh", "tasks": [
    {"task_id": "a", "operator": "empty", "upstream": ["b"]},
    {"task_id": "b", "operator": "empty", "upstream": ["a"]}]})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json::parse(R"(["body","tasks"])"));
  EXPECT_EQ(Body(r)["detail"][0]["msg"], "cycle: a → b → a");
}

TEST_F(RouterTest, AnUploadThatIsNotAJsonObjectIs422AndNeverReachesTheService) {
  for (const char* body : {"", "not json", "[1, 2]", R"({"dag_id": "a\u0000b"})"}) {
    Response r = Call("PUT", "/api/v2/dags/fresh", body);
    EXPECT_EQ(r.status, 422) << body << ": " << r.body;
  }
  EXPECT_EQ(Call("PUT", "/api/v2/dags/fresh", kDocument, {{"content-type", "text/plain"}}).status,
            415);
  EXPECT_EQ(Call("PUT", "/api/v2/dags/fresh?overwrite=true", kDocument).status, 422);
  EXPECT_EQ(service_.upload_calls, 0);
}

TEST_F(RouterTest, UploadingADagAFileDefinesIs409WithTheServicesSentence) {
  Response r = Call("PUT", "/api/v2/dags/fromfile", R"({"dag_id": "fromfile", "tasks": [
    {"task_id": "a", "operator": "empty"}]})");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(Body(r)["detail"], "DAG 'fromfile' is defined by the file /dags/f.json");
}

TEST_F(RouterTest, DeletingADagIs200ThenUnknown404AndBusy409) {
  Response r = Call("DELETE", "/api/v2/dags/etl");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["dag_id"], "etl");
  EXPECT_EQ(service_.last_deleted, "etl");
  EXPECT_EQ(Call("DELETE", "/api/v2/dags/nope").status, 404);
  r = Call("DELETE", "/api/v2/dags/busy");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Body(r)["detail"], "DAG 'busy' has 1 queued or running run");
  service_.last_deleted.clear();
  EXPECT_EQ(Call("DELETE", "/api/v2/dags/etl?cascade=true").status, 422);
  EXPECT_EQ(Call("DELETE", "/api/v2/dags/etl", "{}").status, 422);
  EXPECT_EQ(service_.last_deleted, "") << "a refused request never reaches the service";
}

TEST_F(RouterTest, UploadAndDeleteNeedTheAdminRole) {
  for (const char* role : {"viewer", "user", "op"}) {
    const std::map<std::string, std::string> who = {
        {"authorization", std::string("Bearer ") + role + "-token"}};
    Response r = Call("PUT", "/api/v2/dags/fresh", kDocument, who);
    EXPECT_EQ(r.status, 403) << role;
    EXPECT_EQ(Body(r)["detail"], std::string(role) + " role cannot upload DAGs; it needs admin");
    r = Call("DELETE", "/api/v2/dags/etl", "", who);
    EXPECT_EQ(r.status, 403) << role;
    EXPECT_EQ(Body(r)["detail"], std::string(role) + " role cannot delete DAGs; it needs admin");
  }
  EXPECT_EQ(service_.upload_calls, 0);
  EXPECT_EQ(service_.last_deleted, "");
}

}  // namespace
}  // namespace dagd::api
