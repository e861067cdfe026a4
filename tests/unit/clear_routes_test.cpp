// POST .../clearTaskInstances and .../dagRuns/{dag_run_id}/clear: bodies as Airflow's Pydantic
// models check them (defaults, extra_forbidden, the model checks), the 422s dagd adds for what
// it does not support, the answers' shapes, roles and audit events.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "dagd/api/router.hpp"
#include "fake_authenticator.hpp"
#include "route_test.hpp"
#include "stub_service.hpp"

namespace dagd::api {
namespace {

using Json = nlohmann::json;
using scheduler::RunState;
using scheduler::TaskState;

class ClearService : public dagd::testing::StubService {
 public:
  StatusOr<scheduler::DagRun> GetRun(const std::string& dag_id,
                                     const std::string& run_id) override {
    if (dag_id != "etl" || run_id != "r1") return Status::NotFound("no run");
    return run;
  }
  StatusOr<std::vector<scheduler::TaskInstance>> ClearTaskInstances(
      const std::string&, const scheduler::ClearRequest& request) override {
    ++clear_calls;
    last = request;
    if (!answer.ok()) return answer;
    scheduler::TaskInstance ti;
    ti.id = "0190d3f6-0000-7000-8000-000000000001";
    ti.dag_id = "etl";
    ti.run_id = "r1";
    ti.task_id = "load";
    ti.state = request.dry_run ? TaskState::kFailed : TaskState::kNone;
    if (!request.dry_run) run.state = RunState::kQueued;
    return std::vector<scheduler::TaskInstance>{ti};
  }
  StatusOr<int64_t> RecordAudit(const scheduler::AuditEntry& entry) override {
    events.push_back(entry.event);
    return static_cast<int64_t>(events.size());
  }

  scheduler::DagRun run = [] {
    scheduler::DagRun r;
    r.id = 1;
    r.dag_id = "etl";
    r.run_id = "r1";
    r.state = RunState::kFailed;
    return r;
  }();
  int clear_calls = 0;
  scheduler::ClearRequest last;
  Status answer = Status::Ok();
  std::vector<std::string> events;
};

class ClearRoutesTest : public dagd::testing::RouteTest<ClearService> {
 protected:
  // Every clear route is a POST.
  Response Call(const std::string& target, const std::string& body,
                const std::string& role = "user") {
    return RouteTest::Call("POST", target, body, role);
  }
  // The 422's first error's loc, after checking it is a 422 and nothing was cleared.
  Json RefusedAt(const std::string& target, const std::string& body) {
    Response r = Call(target, body);
    EXPECT_EQ(r.status, 422) << body << " → " << r.body;
    EXPECT_EQ(service_.clear_calls, 0) << body;
    if (r.status != 422) return nullptr;
    return Body(r)["detail"][0]["loc"];
  }
};

constexpr const char* kClear = "/api/v2/dags/etl/clearTaskInstances";
constexpr const char* kClearRun = "/api/v2/dags/etl/dagRuns/r1/clear";

TEST_F(ClearRoutesTest, AnEmptyBodyIsADryRunOfFailedTasksWithAirflowsDefaults) {
  Response r = Call(kClear, "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["total_entries"], 1);
  EXPECT_EQ(Body(r)["task_instances"][0]["task_id"], "load");
  EXPECT_TRUE(service_.last.dry_run);
  EXPECT_TRUE(service_.last.only_failed);
  EXPECT_FALSE(service_.last.only_running);
  EXPECT_TRUE(service_.last.reset_dag_runs);
  EXPECT_FALSE(service_.last.task_ids.has_value());
  EXPECT_FALSE(service_.last.dag_run_id.has_value());
  EXPECT_EQ(service_.events, std::vector<std::string>{"post_clear_task_instances"});
}

TEST_F(ClearRoutesTest, EveryFieldReachesTheService) {
  Response r = Call(kClear, R"({"dry_run": false, "only_failed": false, "reset_dag_runs": false,
      "task_ids": ["extract", ["load", -1]], "dag_run_id": "r1", "include_upstream": true,
      "include_downstream": true, "include_past": true, "include_future": true,
      "prevent_running_task": true, "run_on_latest_version": false})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(service_.last.dry_run);
  EXPECT_FALSE(service_.last.only_failed);
  EXPECT_FALSE(service_.last.reset_dag_runs);
  EXPECT_EQ(service_.last.task_ids, (std::vector<std::string>{"extract", "load"}));
  EXPECT_EQ(service_.last.dag_run_id, std::optional<std::string>("r1"));
  EXPECT_TRUE(service_.last.include_upstream && service_.last.include_downstream);
  EXPECT_TRUE(service_.last.include_past && service_.last.include_future);
  EXPECT_TRUE(service_.last.prevent_running_task);
  r = Call(kClear, R"({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-01-02T00:00:00Z",
      "only_failed": false, "only_running": true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(service_.last.only_running);
  ASSERT_TRUE(service_.last.start_date && service_.last.end_date);
  EXPECT_EQ(*service_.last.end_date - *service_.last.start_date, std::chrono::hours(24));
}

TEST_F(ClearRoutesTest, UnknownFieldsAreExtraForbidden) {
  Response r = Call(kClear, R"({"dry_run": true, "bogus": 1})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["type"], "extra_forbidden");
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"body", "bogus"}));
  EXPECT_EQ(RefusedAt(kClearRun, R"({"task_ids": ["a"]})"), Json({"body", "task_ids"}));
}

TEST_F(ClearRoutesTest, BadlyTypedFieldsAre422AtTheirLoc) {
  EXPECT_EQ(RefusedAt(kClear, R"({"dry_run": "yes"})"), Json({"body", "dry_run"}));
  EXPECT_EQ(RefusedAt(kClear, R"({"only_failed": null})"), Json({"body", "only_failed"}));
  EXPECT_EQ(RefusedAt(kClear, R"({"start_date": "yesterday"})"), Json({"body", "start_date"}));
  EXPECT_EQ(RefusedAt(kClear, R"({"end_date": 5})"), Json({"body", "end_date"}));
  EXPECT_EQ(RefusedAt(kClear, R"({"dag_run_id": 5})"), Json({"body", "dag_run_id"}));
  EXPECT_EQ(RefusedAt(kClear, R"({"task_ids": "load"})"), Json({"body", "task_ids"}));
  EXPECT_EQ(RefusedAt(kClear, R"({"task_ids": ["a", 7]})"), Json({"body", "task_ids", 1, "str"}));
  EXPECT_EQ(RefusedAt(kClearRun, R"({"dry_run": 0})"), Json({"body", "dry_run"}));
  EXPECT_EQ(Call(kClear, "[]").status, 422);
}

TEST_F(ClearRoutesTest, AMapIndexOtherThanMinusOneIsRefused) {
  Response r = Call(kClear, R"({"task_ids": [["load", 2]]})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"body", "task_ids", 0}));
  EXPECT_NE(Body(r)["detail"][0]["msg"].get<std::string>().find("mapped"), std::string::npos);
  EXPECT_EQ(service_.clear_calls, 0);
}

TEST_F(ClearRoutesTest, TheModelChecksAreAirflows) {
  const std::map<std::string, std::string> refused = {
      {R"({"only_failed": true, "only_running": true})",
       "Value error, only_failed and only_running both are set to True"},
      {R"({"start_date": "2026-01-02T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"})",
       "Value error, end_date is sooner than start_date"},
      {R"({"dag_run_id": "r1", "start_date": "2026-01-01T00:00:00Z",
           "end_date": "2026-01-02T00:00:00Z"})",
       "Value error, Exactly one of dag_run_id or (start_date and end_date) must be provided"},
      {R"({"dag_run_id": "r1", "start_date": "2026-01-01T00:00:00Z"})",
       "Value error, Exactly one of dag_run_id or start_date must be provided"},
      {R"({"dag_run_id": "r1", "end_date": "2026-01-01T00:00:00Z"})",
       "Value error, Exactly one of dag_run_id or end_date must be provided"},
      {R"({"task_ids": []})", "Value error, task_ids list should have at least 1 element."},
  };
  for (const auto& [body, msg] : refused) {
    Response r = Call(kClear, body);
    ASSERT_EQ(r.status, 422) << body << " → " << r.body;
    EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"body"})) << body;
    EXPECT_EQ(Body(r)["detail"][0]["msg"], msg) << body;
  }
  EXPECT_EQ(service_.clear_calls, 0);
}

TEST_F(ClearRoutesTest, RunOnLatestVersionReachesTheService) {
  EXPECT_EQ(RefusedAt(kClearRun, R"({"run_on_latest_version": "yes"})"),
            Json({"body", "run_on_latest_version"}));
  ASSERT_EQ(Call(kClear, R"({"run_on_latest_version": true})").status, 200);
  EXPECT_TRUE(service_.last.run_on_latest_version);
  ASSERT_EQ(Call(kClearRun, R"({"run_on_latest_version": true, "dry_run": false})").status, 200);
  EXPECT_TRUE(service_.last.run_on_latest_version);
  ASSERT_EQ(Call(kClearRun, R"({})").status, 200);
  EXPECT_FALSE(service_.last.run_on_latest_version);
}

TEST_F(ClearRoutesTest, ARunningTaskWithPreventRunningTaskIs409) {
  service_.answer = Status::FailedPrecondition("it runs");
  EXPECT_EQ(Call(kClear, R"({"prevent_running_task": true, "dry_run": false})").status, 409);
}

TEST_F(ClearRoutesTest, ClearingARunDryAnswersTheTaskInstancesAndForRealTheRun) {
  Response r = Call(kClearRun, "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["total_entries"], 1);
  EXPECT_TRUE(service_.last.dry_run);
  EXPECT_FALSE(service_.last.only_failed) << "DAGRunClearBody's only_failed defaults to false";
  EXPECT_EQ(service_.last.dag_run_id, std::optional<std::string>("r1"));
  EXPECT_FALSE(service_.last.task_ids.has_value());
  EXPECT_TRUE(service_.last.reset_dag_runs);
  r = Call(kClearRun, R"({"dry_run": false, "only_failed": true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["dag_run_id"], "r1");
  EXPECT_EQ(Body(r)["state"], "queued");
  EXPECT_TRUE(service_.last.only_failed);
  EXPECT_EQ(service_.events, (std::vector<std::string>{"clear_dag_run", "clear_dag_run"}));
}

TEST_F(ClearRoutesTest, ClearingAnUnknownRunIs404) {
  EXPECT_EQ(Call("/api/v2/dags/etl/dagRuns/nope/clear", R"({"dry_run": false})").status, 404);
  EXPECT_EQ(service_.clear_calls, 0);
}

TEST_F(ClearRoutesTest, AViewerCannotClearAndAUserCan) {
  EXPECT_EQ(Call(kClear, "{}", "viewer").status, 403);
  EXPECT_EQ(Call(kClearRun, "{}", "viewer").status, 403);
  EXPECT_EQ(service_.clear_calls, 0);
  EXPECT_EQ(Call(kClear, "{}", "user").status, 200);
}

TEST_F(ClearRoutesTest, QueryParametersAreRefused) {
  EXPECT_EQ(Call(std::string(kClear) + "?dry_run=false", "{}").status, 422);
  EXPECT_EQ(service_.clear_calls, 0);
}

}  // namespace
}  // namespace dagd::api
