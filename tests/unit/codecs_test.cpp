// Codecs: every Airflow field present, nulls as null, datetimes RFC 3339 with Z.
#include "dagd/api/codecs.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dagd::api {
namespace {

using scheduler::ParseRfc3339;
using scheduler::TimePoint;

TimePoint At(const char* text) { return *ParseRfc3339(text); }

void ExpectExactlyFields(const Json& object, const std::vector<std::string>& fields) {
  ASSERT_TRUE(object.is_object());
  for (const auto& f : fields) EXPECT_TRUE(object.contains(f)) << "missing field " << f;
  for (const auto& [key, value] : object.items()) {
    EXPECT_NE(std::find(fields.begin(), fields.end(), key), fields.end())
        << "unexpected field " << key;
  }
}

bool EndsWithZ(const Json& v) {
  return v.is_string() && !v.get<std::string>().empty() && v.get<std::string>().back() == 'Z';
}

TEST(Codecs, DagRunHasEveryAirflowFieldWithNullsAndZDates) {
  scheduler::DagRun run;
  run.dag_id = "etl";
  run.run_id = "manual__1";
  run.version_number = 2;
  run.state = scheduler::RunState::kSuccess;
  run.logical_date = At("2026-01-01T00:00:00Z");
  run.start_date = At("2026-01-01T00:00:01Z");
  run.end_date = At("2026-01-01T00:00:03.500000Z");
  run.run_after = At("2026-01-01T00:00:00Z");
  Json j = DagRunToJson(run);
  ExpectExactlyFields(j, {"dag_run_id",
                          "dag_id",
                          "logical_date",
                          "queued_at",
                          "start_date",
                          "end_date",
                          "duration",
                          "data_interval_start",
                          "data_interval_end",
                          "run_after",
                          "last_scheduling_decision",
                          "run_type",
                          "state",
                          "triggered_by",
                          "triggering_user_name",
                          "conf",
                          "note",
                          "dag_versions",
                          "bundle_version",
                          "dag_display_name"});
  EXPECT_EQ(j["logical_date"], "2026-01-01T00:00:00Z");
  EXPECT_TRUE(EndsWithZ(j["end_date"]));
  EXPECT_DOUBLE_EQ(j["duration"].get<double>(), 2.5);
  EXPECT_TRUE(j["queued_at"].is_null());
  EXPECT_TRUE(j["data_interval_start"].is_null());
  EXPECT_TRUE(j["note"].is_null());
  EXPECT_TRUE(j["triggering_user_name"].is_null());
  EXPECT_EQ(j["state"], "success");
  EXPECT_EQ(j["run_type"], "manual");
  EXPECT_EQ(j["triggered_by"], "rest_api");
  EXPECT_EQ(j["conf"], Json::object());
  EXPECT_EQ(j["dag_display_name"], "etl");
  ASSERT_EQ(j["dag_versions"].size(), 1u);
  ExpectExactlyFields(j["dag_versions"][0],
                      {"id", "version_number", "dag_id", "bundle_name", "bundle_version",
                       "created_at", "dag_display_name", "bundle_url"});
  EXPECT_EQ(j["dag_versions"][0]["version_number"], 2);
}

TEST(Codecs, DagRunDurationIsNullUntilItEnds) {
  scheduler::DagRun run;
  run.start_date = At("2026-01-01T00:00:01Z");
  EXPECT_TRUE(DagRunToJson(run)["duration"].is_null());
}

TEST(Codecs, DagVersionIdIsAStableUuid) {
  Json a = DagVersionToJson("etl", 1);
  Json b = DagVersionToJson("etl", 1);
  Json c = DagVersionToJson("etl", 2);
  EXPECT_EQ(a["id"], b["id"]);
  EXPECT_NE(a["id"], c["id"]);
  const std::string id = a["id"];
  ASSERT_EQ(id.size(), 36u);
  EXPECT_EQ(id[8], '-');
  EXPECT_EQ(id[14], '8');
}

TEST(Codecs, TaskInstanceHasEveryAirflowField) {
  scheduler::TaskInstance ti;
  ti.id = "uuid-1";
  ti.dag_id = "etl";
  ti.run_id = "r1";
  ti.task_id = "extract";
  ti.version_number = 1;
  ti.operator_name = "bash";
  ti.unixname = "dagd";
  ti.queued_when = At("2026-01-01T00:00:00Z");
  scheduler::DagRun run;
  run.logical_date = At("2026-01-01T00:00:00Z");
  run.run_after = At("2026-01-01T01:00:00Z");
  Json j = TaskInstanceToJson(ti, &run);
  ExpectExactlyFields(j, {"id",
                          "task_id",
                          "dag_id",
                          "dag_run_id",
                          "map_index",
                          "logical_date",
                          "run_after",
                          "start_date",
                          "end_date",
                          "duration",
                          "state",
                          "try_number",
                          "max_tries",
                          "task_display_name",
                          "dag_display_name",
                          "hostname",
                          "unixname",
                          "pool",
                          "pool_slots",
                          "queue",
                          "priority_weight",
                          "operator",
                          "operator_name",
                          "queued_when",
                          "scheduled_when",
                          "pid",
                          "executor",
                          "executor_config",
                          "note",
                          "rendered_map_index",
                          "rendered_fields",
                          "trigger",
                          "triggerer_job",
                          "dag_version"});
  EXPECT_TRUE(j["state"].is_null()) << "kNone is Airflow's null state";
  EXPECT_EQ(j["map_index"], -1);
  EXPECT_EQ(j["dag_run_id"], "r1");
  EXPECT_EQ(j["run_after"], "2026-01-01T01:00:00Z");
  EXPECT_EQ(j["queued_when"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(j["operator"], "BashOperator");
  EXPECT_EQ(j["operator_name"], "BashOperator");
  EXPECT_EQ(j["unixname"], "dagd");
  EXPECT_EQ(j["queue"], "default");
  EXPECT_EQ(j["pool"], "default_pool");
  EXPECT_TRUE(j["executor"].is_null());
  EXPECT_TRUE(j["pid"].is_null());
  EXPECT_TRUE(j["hostname"].is_null());
  EXPECT_EQ(j["dag_version"]["version_number"], 1);
}

TEST(Codecs, TaskInstanceWithoutItsRunHasNullDates) {
  scheduler::TaskInstance ti;
  ti.state = scheduler::TaskState::kUpstreamFailed;
  ti.operator_name = "empty";
  Json j = TaskInstanceToJson(ti, nullptr);
  EXPECT_TRUE(j["logical_date"].is_null());
  EXPECT_TRUE(j["run_after"].is_null());
  EXPECT_EQ(j["state"], "upstream_failed");
  EXPECT_EQ(j["operator"], "EmptyOperator");
  EXPECT_TRUE(j["dag_version"].is_null());
}

TEST(Codecs, TaskTryHasEveryHistoryField) {
  scheduler::TaskInstance ti;
  ti.max_tries = 3;
  ti.operator_name = "transform";
  scheduler::TaskTry t;
  t.dag_id = "etl";
  t.run_id = "r1";
  t.task_id = "load";
  t.try_number = 2;
  t.state = scheduler::TaskState::kSuccess;
  t.pid = 42;
  t.start_date = At("2026-01-01T00:00:00.250000Z");
  Json j = TaskTryToJson(t, ti);
  ExpectExactlyFields(j, {"task_id",
                          "dag_id",
                          "dag_run_id",
                          "map_index",
                          "start_date",
                          "end_date",
                          "duration",
                          "state",
                          "try_number",
                          "max_tries",
                          "task_display_name",
                          "dag_display_name",
                          "hostname",
                          "unixname",
                          "pool",
                          "pool_slots",
                          "queue",
                          "priority_weight",
                          "operator",
                          "operator_name",
                          "queued_when",
                          "scheduled_when",
                          "pid",
                          "executor",
                          "executor_config",
                          "dag_version"});
  EXPECT_EQ(j["max_tries"], 3);
  EXPECT_EQ(j["pid"], 42);
  EXPECT_EQ(j["operator"], "TransformOperator");
  EXPECT_EQ(j["start_date"], "2026-01-01T00:00:00.250000Z");
}

TEST(Codecs, DagHasEveryAirflowField) {
  scheduler::DagRecord r;
  r.dag_id = "etl";
  r.fileloc = "/srv/dags/etl.json";
  r.tags = {"a", "b"};
  r.owners = {"data"};
  r.schedule = "0 * * * *";
  r.last_parsed_time = At("2026-01-01T00:00:00Z");
  Json j = DagToJson(r);
  ExpectExactlyFields(j, {"dag_id",
                          "dag_display_name",
                          "is_paused",
                          "is_stale",
                          "last_parsed_time",
                          "last_expired",
                          "bundle_name",
                          "bundle_version",
                          "relative_fileloc",
                          "fileloc",
                          "description",
                          "timetable_summary",
                          "timetable_description",
                          "tags",
                          "max_active_tasks",
                          "max_active_runs",
                          "max_consecutive_failed_dag_runs",
                          "has_task_concurrency_limits",
                          "has_import_errors",
                          "next_dagrun_logical_date",
                          "next_dagrun_data_interval_start",
                          "next_dagrun_data_interval_end",
                          "next_dagrun_run_after",
                          "owners",
                          "file_token"});
  EXPECT_EQ(j["tags"], Json::parse(R"([{"name":"a","dag_id":"etl"},{"name":"b","dag_id":"etl"}])"));
  EXPECT_EQ(j["relative_fileloc"], "etl.json");
  EXPECT_EQ(j["timetable_summary"], "0 * * * *");
  EXPECT_EQ(j["last_parsed_time"], "2026-01-01T00:00:00Z");
  EXPECT_TRUE(j["description"].is_null());
  EXPECT_TRUE(j["next_dagrun_logical_date"].is_null());
  EXPECT_EQ(j["owners"], Json({"data"}));
}

TEST(Codecs, DagDetailsWithoutAParsedVersionStillHaveEveryField) {
  scheduler::DagDetails d;
  d.record.dag_id = "etl";
  Json j = DagDetailsToJson(d);
  for (const char* f : {"catchup", "dag_run_timeout", "doc_md", "start_date", "end_date", "params",
                        "timezone", "last_parsed", "concurrency", "latest_dag_version"}) {
    EXPECT_TRUE(j.contains(f)) << f;
  }
  EXPECT_TRUE(j["latest_dag_version"].is_null());
}

TEST(Codecs, TaskHasEveryAirflowField) {
  scheduler::Dag dag;
  dag.dag_id = "etl";
  scheduler::TaskSpec t;
  t.task_id = "a";
  t.operator_name = "bash";
  dag.tasks = {t};
  dag.upstream = {{}};
  dag.downstream = {{}};
  dag.index_ = {{"a", 0}};
  Json j = TaskToJson(dag, dag.tasks[0]);
  ExpectExactlyFields(j, {"task_id",
                          "task_display_name",
                          "owner",
                          "start_date",
                          "end_date",
                          "trigger_rule",
                          "depends_on_past",
                          "wait_for_downstream",
                          "retries",
                          "queue",
                          "pool",
                          "pool_slots",
                          "execution_timeout",
                          "retry_delay",
                          "retry_exponential_backoff",
                          "priority_weight",
                          "weight_rule",
                          "ui_color",
                          "ui_fgcolor",
                          "template_fields",
                          "downstream_task_ids",
                          "doc_md",
                          "operator_name",
                          "params",
                          "class_ref",
                          "is_mapped",
                          "has_outlets",
                          "extra_links"});
  EXPECT_EQ(j["trigger_rule"], "all_success");
  EXPECT_TRUE(j["execution_timeout"].is_null());
  EXPECT_EQ(j["retry_delay"]["seconds"], 300);
  EXPECT_EQ(j["class_ref"]["class_name"], "BashOperator");
}

TEST(Codecs, TimeDeltaNormalisesLikePython) {
  Json j = TimeDeltaToJson(std::chrono::hours(25) + std::chrono::microseconds(7));
  EXPECT_EQ(j, Json::parse(R"({"__type":"TimeDelta","days":1,"seconds":3600,"microseconds":7})"));
  Json neg = TimeDeltaToJson(std::chrono::seconds(-1));
  EXPECT_EQ(neg["days"], -1);
  EXPECT_EQ(neg["seconds"], 86399);
}

TEST(Codecs, ImportErrorHasEveryAirflowField) {
  scheduler::ImportError e{9, "/dags/x.json", "bad", At("2026-01-01T00:00:00Z")};
  Json j = ImportErrorToJson(e);
  ExpectExactlyFields(j,
                      {"import_error_id", "timestamp", "filename", "bundle_name", "stack_trace"});
  EXPECT_EQ(j["import_error_id"], 9);
  EXPECT_EQ(j["timestamp"], "2026-01-01T00:00:00Z");
}

TEST(Codecs, LogLinesBecomeStructuredEvents) {
  Json j = LogToJson("one\r\n{\"event\":\"two\",\"level\":\"error\"}\n{not json\n\nlast");
  ASSERT_EQ(j["content"].size(), 5u);
  EXPECT_EQ(j["content"][0], Json({{"event", "one"}}));
  EXPECT_EQ(j["content"][1]["level"], "error");
  EXPECT_EQ(j["content"][2]["event"], "{not json");
  EXPECT_EQ(j["content"][3]["event"], "");
  EXPECT_EQ(j["content"][4]["event"], "last");
  EXPECT_TRUE(j["continuation_token"].is_null());
  EXPECT_EQ(LogToJson("")["content"].size(), 0u);
}

}  // namespace
}  // namespace dagd::api
