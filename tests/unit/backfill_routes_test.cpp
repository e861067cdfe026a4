// /api/v2/backfills: bodies as Airflow's BackfillPostBody checks them, the service's refusals as
// Airflow answers them (422 with its sentence, 404, 409), roles and audit events.
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
using scheduler::BackfillRecord;
using scheduler::ReprocessBehavior;

class BackfillService : public dagd::testing::StubService {
 public:
  StatusOr<BackfillRecord> CreateBackfill(const scheduler::BackfillRequest& request) override {
    ++calls;
    last = request;
    if (request.dag_id == "manual") {
      return Status::InvalidArgument(
          "manual has a non-periodic schedule that does not support backfills");
    }
    if (request.dag_id == "busy") {
      return Status::AlreadyExists("There is already a running backfill for dag busy");
    }
    return Record(request.dag_id);
  }
  StatusOr<std::vector<scheduler::TimePoint>> DryRunBackfill(
      const scheduler::BackfillRequest& request) override {
    ++calls;
    last = request;
    return std::vector<scheduler::TimePoint>{request.from_date};
  }
  StatusOr<scheduler::Listing<BackfillRecord>> ListBackfills(
      const scheduler::BackfillQuery& query) override {
    last_query = query;
    return scheduler::Listing<BackfillRecord>{{Record(query.dag_id)}, 1};
  }
  StatusOr<BackfillRecord> GetBackfill(int64_t id) override {
    if (id != 7) return Status::NotFound("Backfill not found");
    return Record("etl");
  }
  StatusOr<BackfillRecord> SetBackfillPaused(int64_t id, bool paused) override {
    if (id == 8) return Status::FailedPrecondition("Backfill is already completed.");
    BackfillRecord b = Record("etl");
    b.id = id;
    b.is_paused = paused;
    return b;
  }
  StatusOr<BackfillRecord> CancelBackfill(int64_t id) override {
    BackfillRecord b = Record("etl");
    b.id = id;
    b.completed_at = b.created_at;
    return b;
  }
  StatusOr<int64_t> RecordAudit(const scheduler::AuditEntry& entry) override {
    events.push_back(entry.event);
    return static_cast<int64_t>(events.size());
  }

  static BackfillRecord Record(const std::string& dag_id) {
    BackfillRecord b;
    b.id = 7;
    b.dag_id = dag_id;
    b.from_date = *scheduler::ParseRfc3339("2026-01-01T00:00:00Z");
    b.to_date = *scheduler::ParseRfc3339("2026-01-05T00:00:00Z");
    b.created_at = *scheduler::ParseRfc3339("2026-12-02T10:00:00Z");
    b.updated_at = b.created_at;
    return b;
  }

  int calls = 0;
  scheduler::BackfillRequest last;
  scheduler::BackfillQuery last_query;
  std::vector<std::string> events;
};

class BackfillRoutesTest : public dagd::testing::RouteTest<BackfillService> {};

constexpr const char* kBody =
    R"({"dag_id": "etl", "from_date": "2026-01-01T00:00:00Z", "to_date": "2026-01-05T00:00:00Z")";

TEST_F(BackfillRoutesTest, CreatingABackfillAnswersItWithAirflowsFieldsAndDefaults) {
  Response r = Call("POST", "/api/v2/backfills", std::string(kBody) + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  const Json b = Body(r);
  EXPECT_EQ(b["id"], 7);
  EXPECT_EQ(b["dag_id"], "etl");
  EXPECT_EQ(b["dag_display_name"], "etl");
  EXPECT_EQ(b["from_date"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(b["reprocess_behavior"], "none");
  EXPECT_EQ(b["max_active_runs"], 10);
  EXPECT_TRUE(b["completed_at"].is_null());
  EXPECT_EQ(service_.last.max_active_runs, 10);
  EXPECT_FALSE(service_.last.run_backwards);
  EXPECT_TRUE(service_.last.run_on_latest_version);
  EXPECT_EQ(service_.last.reprocess_behavior, ReprocessBehavior::kNone);
  EXPECT_EQ(service_.events, std::vector<std::string>{"create_backfill"});
}

TEST_F(BackfillRoutesTest, EveryBodyFieldReachesTheService) {
  Response r = Call("POST", "/api/v2/backfills",
                    std::string(kBody) +
                        R"(, "run_backwards": true, "dag_run_conf": {"k": 1},
                        "reprocess_behavior": "failed", "max_active_runs": 3,
                        "run_on_latest_version": false})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(service_.last.run_backwards);
  EXPECT_EQ(service_.last.dag_run_conf, Json({{"k", 1}}));
  EXPECT_EQ(service_.last.reprocess_behavior, ReprocessBehavior::kFailed);
  EXPECT_EQ(service_.last.max_active_runs, 3);
  EXPECT_FALSE(service_.last.run_on_latest_version);
  EXPECT_EQ(service_.last.triggering_user_name, std::optional<std::string>("user"));
}

TEST_F(BackfillRoutesTest, BadBodiesAre422NamingTheField) {
  Response r = Call("POST", "/api/v2/backfills", std::string(kBody) + R"(, "partition": 1})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["type"], "extra_forbidden");
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"body", "partition"}));
  r = Call("POST", "/api/v2/backfills",
           R"({"dag_id": "etl", "from_date": "2026-01-01T00:00:00Z"})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"body", "to_date"}));
  r = Call("POST", "/api/v2/backfills", std::string(kBody) + R"(, "reprocess_behavior": "all"})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["type"], "enum");
  r = Call("POST", "/api/v2/backfills/dry_run",
           R"({"dag_id": "etl", "from_date": "yesterday", "to_date": "2026-01-05T00:00:00Z"})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"body", "from_date"}));
  r = Call("POST", "/api/v2/backfills", std::string(kBody) + R"(, "max_active_runs": "2"})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(service_.calls, 0);
}

TEST_F(BackfillRoutesTest, TheServicesRefusalsAnswerAsAirflows) {
  Response r = Call("POST", "/api/v2/backfills",
                    R"({"dag_id": "manual", "from_date": "2026-01-01T00:00:00Z",
                        "to_date": "2026-01-05T00:00:00Z"})");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["msg"],
            "manual has a non-periodic schedule that does not support backfills");
  r = Call("POST", "/api/v2/backfills",
           R"({"dag_id": "busy", "from_date": "2026-01-01T00:00:00Z",
               "to_date": "2026-01-05T00:00:00Z"})");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(Call("GET", "/api/v2/backfills/9", "").status, 404);
  r = Call("PUT", "/api/v2/backfills/8/pause", "");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(Body(r)["detail"], "Backfill is already completed.");
}

TEST_F(BackfillRoutesTest, DryRunListsTheDatesAndIsNotAudited) {
  Response r = Call("POST", "/api/v2/backfills/dry_run", std::string(kBody) + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["total_entries"], 1);
  EXPECT_EQ(Body(r)["backfills"][0]["logical_date"], "2026-01-01T00:00:00Z");
  EXPECT_TRUE(service_.events.empty());
}

TEST_F(BackfillRoutesTest, ListingNeedsADagIdAndOrdersByIdOnly) {
  Response r = Call("GET", "/api/v2/backfills", "", "viewer");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"query", "dag_id"}));
  r = Call("GET", "/api/v2/backfills?dag_id=etl&limit=5&offset=1&order_by=-id", "", "viewer");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["total_entries"], 1);
  EXPECT_EQ(service_.last_query.dag_id, "etl");
  EXPECT_EQ(service_.last_query.page.limit, 5);
  EXPECT_EQ(service_.last_query.page.offset, 1);
  EXPECT_EQ(service_.last_query.page.order_by, std::vector<std::string>{"-id"});
  EXPECT_EQ(Call("GET", "/api/v2/backfills?dag_id=etl&state=running", "", "viewer").status, 422);
}

TEST_F(BackfillRoutesTest, ABackfillIdMustBeANonNegativeInteger) {
  Response r = Call("GET", "/api/v2/backfills/abc", "", "viewer");
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Body(r)["detail"][0]["loc"], Json({"path", "backfill_id"}));
  EXPECT_EQ(Call("PUT", "/api/v2/backfills/-1/cancel", "").status, 422);
  EXPECT_EQ(Call("GET", "/api/v2/backfills/7", "", "viewer").status, 200);
}

TEST_F(BackfillRoutesTest, ViewersReadUsersWriteAndWritesAreAuditedWithAirflowsNames) {
  EXPECT_EQ(Call("POST", "/api/v2/backfills", std::string(kBody) + "}", "viewer").status, 403);
  EXPECT_EQ(Call("PUT", "/api/v2/backfills/7/pause", "", "viewer").status, 403);
  EXPECT_EQ(Call("POST", "/api/v2/backfills/dry_run", std::string(kBody) + "}", "viewer").status,
            403);
  ASSERT_EQ(Call("PUT", "/api/v2/backfills/7/pause", "").status, 200);
  Response r = Call("PUT", "/api/v2/backfills/7/unpause", "");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["is_paused"], false);
  r = Call("PUT", "/api/v2/backfills/7/cancel", "");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(Body(r)["completed_at"].is_string());
  // Refused writes are recorded too; dry_run only reads.
  EXPECT_EQ(service_.events,
            (std::vector<std::string>{"create_backfill", "pause_backfill", "pause_backfill",
                                      "unpause_backfill", "cancel_backfill"}));
}

}  // namespace
}  // namespace dagd::api
