// PATCH of runs and task instances (marking, notes): bodies as Airflow's Pydantic models check
// them, update_mask, the 422s dagd adds for what it does not support, roles and audit events.
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

class MarkService : public dagd::testing::StubService {
 public:
  StatusOr<scheduler::DagRun> GetRun(const std::string& dag_id,
                                     const std::string& run_id) override {
    if (dag_id != "etl" || run_id != "r1") return Status::NotFound("no run");
    return run;
  }
  StatusOr<scheduler::DagRun> PatchRun(const std::string& dag_id, const std::string& run_id,
                                       const scheduler::RunPatch& patch) override {
    ++patch_calls;
    last_run_patch = patch;
    auto found = GetRun(dag_id, run_id);
    if (!found.ok()) return found.status();
    if (patch.state) run.state = *patch.state;
    if (patch.note) run.note = *patch.note;
    return run;
  }
  StatusOr<std::vector<scheduler::TaskInstance>> PatchTaskInstance(
      const std::string&, const std::string&, const std::string& task_id,
      const scheduler::TaskInstanceMark& mark) override {
    ++patch_calls;
    last_mark = mark;
    scheduler::TaskInstance ti;
    ti.id = "0190d3f6-0000-7000-8000-000000000001";
    ti.dag_id = "etl";
    ti.run_id = "r1";
    ti.task_id = task_id;
    if (mark.new_state) ti.state = *mark.new_state;
    if (mark.note) ti.note = *mark.note;
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
    r.state = RunState::kRunning;
    return r;
  }();
  int patch_calls = 0;
  scheduler::RunPatch last_run_patch;
  scheduler::TaskInstanceMark last_mark;
  std::vector<std::string> events;
};

class MarkRoutesTest : public dagd::testing::RouteTest<MarkService> {};

constexpr const char* kRun = "/api/v2/dags/etl/dagRuns/r1";
constexpr const char* kTi = "/api/v2/dags/etl/dagRuns/r1/taskInstances/load";

TEST_F(MarkRoutesTest, PatchingARunsStateAndNoteAnswersTheRun) {
  Response r = Call("PATCH", kRun, R"({"state": "failed", "note": "stopped by hand"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["state"], "failed");
  EXPECT_EQ(Body(r)["note"], "stopped by hand");
  EXPECT_EQ(service_.last_run_patch.state, RunState::kFailed);
  EXPECT_EQ(service_.events, std::vector<std::string>{"patch_dag_run"});
}

TEST_F(MarkRoutesTest, UpdateMaskLimitsARunPatchToTheFieldsItNames) {
  Response r = Call("PATCH", std::string(kRun) + "?update_mask=note",
                    R"({"state": "success", "note": "only this"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(service_.last_run_patch.state.has_value());
  EXPECT_EQ(service_.last_run_patch.note, std::optional<std::string>("only this"));
}

TEST_F(MarkRoutesTest, AnUpdateMaskNamingNoFieldIs400NotIgnored) {
  Response r = Call("PATCH", std::string(kRun) + "?update_mask=conf", R"({"note": "x"})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(service_.patch_calls, 0);
}

TEST_F(MarkRoutesTest, ARunStateOutsideQueuedSuccessFailedIs422) {
  Response r = Call("PATCH", kRun, R"({"state": "running"})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["type"], "enum");
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"body", "state"}));
}

TEST_F(MarkRoutesTest, UnknownBodyFieldsAreExtraForbidden) {
  Response r = Call("PATCH", kRun, R"({"state": "failed", "conf": {}})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["type"], "extra_forbidden");
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"body", "conf"}));
  r = Call("PATCH", kTi, R"({"new_state": "failed", "dry_run": true})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"body", "dry_run"}));
  EXPECT_EQ(service_.patch_calls, 0);
}

TEST_F(MarkRoutesTest, ANoteOverAThousandCharactersIs422) {
  const std::string note(1001, 'n');
  Response r = Call("PATCH", kRun, R"({"note": ")" + note + R"("})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["type"], "string_too_long");
  EXPECT_EQ(Call("PATCH", kRun, R"({"note": ")" + std::string(1000, 'n') + R"("})").status, 200);
}

TEST_F(MarkRoutesTest, AViewerCannotMarkAndAUserCan) {
  EXPECT_EQ(Call("PATCH", kRun, R"({"state": "failed"})", "viewer").status, 403);
  EXPECT_EQ(Call("PATCH", kTi, R"({"new_state": "failed"})", "viewer").status, 403);
  EXPECT_EQ(service_.patch_calls, 0);
  EXPECT_EQ(Call("PATCH", kTi, R"({"new_state": "failed"})", "user").status, 200);
}

TEST_F(MarkRoutesTest, PatchingATaskInstanceAnswersACollection) {
  Response r =
      Call("PATCH", kTi, R"({"new_state": "skipped", "note": "n", "include_downstream": true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["total_entries"], 1);
  EXPECT_EQ(Body(r)["task_instances"][0]["state"], "skipped");
  EXPECT_EQ(service_.last_mark.new_state, TaskState::kSkipped);
  EXPECT_TRUE(service_.last_mark.include_downstream);
  EXPECT_FALSE(service_.last_mark.include_upstream);
  EXPECT_FALSE(service_.last_mark.dry_run);
  EXPECT_EQ(service_.events, std::vector<std::string>{"patch_task_instance"});
}

TEST_F(MarkRoutesTest, TheDryRunVariantChangesNothingAndIsNotAudited) {
  Response r = Call("PATCH", std::string(kTi) + "/dry_run", R"({"new_state": "failed"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(service_.last_mark.dry_run);
  EXPECT_TRUE(service_.events.empty());
}

TEST_F(MarkRoutesTest, ATaskStateOtherThanSuccessFailedSkippedIs422) {
  Response r = Call("PATCH", kTi, R"({"new_state": "running"})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["msg"],
            "Value error, 'running' is not one of ['success', 'failed', 'skipped']");
}

TEST_F(MarkRoutesTest, IncludeFutureAndPastAreRefusedNotIgnored) {
  for (const char* field : {"include_future", "include_past"}) {
    Response r =
        Call("PATCH", kTi, std::string(R"({"new_state": "failed", ")") + field + R"(": true})");
    ASSERT_EQ(r.status, 422) << r.body;
    EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"body", field}));
  }
  EXPECT_EQ(service_.patch_calls, 0);
  EXPECT_EQ(Call("PATCH", kTi, R"({"new_state": "failed", "include_past": false})").status, 200);
}

TEST_F(MarkRoutesTest, AMapIndexOtherThanMinusOneIsNotFound) {
  EXPECT_EQ(Call("PATCH", std::string(kTi) + "?map_index=-1", R"({"note": "x"})").status, 200);
  EXPECT_EQ(Call("PATCH", std::string(kTi) + "?map_index=2", R"({"note": "x"})").status, 404);
  EXPECT_EQ(Call("PATCH", std::string(kTi) + "?map_index=x", R"({"note": "x"})").status, 422);
  EXPECT_EQ(Call("PATCH", std::string(kTi) + "?limit=2", R"({"note": "x"})").status, 422);
}

}  // namespace
}  // namespace dagd::api
