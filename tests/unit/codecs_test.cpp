// Codecs: every Airflow field present, nulls as null, datetimes RFC 3339 with Z.
#include "dagd/api/codecs.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>
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
  run.version_created_at = At("2025-12-31T00:00:00Z");
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
                          "dag_display_name",
                          "partition_key",
                          "backfill_id"});
  EXPECT_TRUE(j["backfill_id"].is_null());
  run.backfill_id = 4;
  EXPECT_EQ(DagRunToJson(run)["backfill_id"], 4);
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
  const auto t = At("2026-01-01T00:00:00Z");
  Json a = DagVersionToJson("etl", 1, t);
  Json b = DagVersionToJson("etl", 1, t);
  Json c = DagVersionToJson("etl", 2, t);
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
  ti.version_created_at = At("2025-12-01T00:00:00Z");
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
                          "timetable_partitioned",
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
  EXPECT_EQ(j["tags"], Json::parse(R"([{"name":"a","dag_id":"etl","dag_display_name":"etl"},)"
                                   R"({"name":"b","dag_id":"etl","dag_display_name":"etl"}])"));
  EXPECT_EQ(j["relative_fileloc"], "etl.json");
  EXPECT_EQ(j["timetable_summary"], "0 * * * *");
  EXPECT_EQ(j["last_parsed_time"], "2026-01-01T00:00:00Z");
  EXPECT_TRUE(j["description"].is_null());
  EXPECT_TRUE(j["next_dagrun_logical_date"].is_null());
  EXPECT_EQ(j["owners"], Json({"data"}));
}

TEST(Codecs, DagShowsItsNextRunAndTimetableDescription) {
  scheduler::DagRecord r;
  r.dag_id = "etl";
  r.schedule = "@hourly";
  r.timetable_description = "At 0 minutes past the hour";
  r.next_dagrun = scheduler::RunSlot{At("2026-01-01T00:00:00Z"), At("2026-01-01T01:00:00Z"),
                                     At("2026-01-01T00:00:00Z"), At("2026-01-01T01:00:00Z")};
  Json j = DagToJson(r);
  EXPECT_EQ(j["timetable_description"], "At 0 minutes past the hour");
  EXPECT_EQ(j["next_dagrun_logical_date"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(j["next_dagrun_data_interval_start"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(j["next_dagrun_data_interval_end"], "2026-01-01T01:00:00Z");
  EXPECT_EQ(j["next_dagrun_run_after"], "2026-01-01T01:00:00Z");
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
                          "extra_links"});
  EXPECT_EQ(j["trigger_rule"], "all_success");
  EXPECT_TRUE(j["execution_timeout"].is_null());
  EXPECT_EQ(j["retry_delay"]["seconds"], 300);
  EXPECT_EQ(j["class_ref"]["class_name"], "BashOperator");
}

TEST(Codecs, DagRunTimeoutIsAnIso8601Duration) {
  scheduler::DagDetails d;
  d.record.dag_id = "etl";
  auto dag = std::make_shared<scheduler::Dag>();
  d.dag = dag;
  dag->dagrun_timeout = std::chrono::hours(26) + std::chrono::seconds(5);
  EXPECT_EQ(DagDetailsToJson(d)["dag_run_timeout"], "P1DT2H5S");
  dag->dagrun_timeout = std::chrono::milliseconds(1500);
  EXPECT_EQ(DagDetailsToJson(d)["dag_run_timeout"], "PT1.5S");
  dag->dagrun_timeout = std::chrono::seconds(0);
  EXPECT_EQ(DagDetailsToJson(d)["dag_run_timeout"], "PT0S");
  dag->dagrun_timeout = std::chrono::hours(48);
  EXPECT_EQ(DagDetailsToJson(d)["dag_run_timeout"], "P2D");
  dag->dagrun_timeout = -std::chrono::seconds(90);
  EXPECT_EQ(DagDetailsToJson(d)["dag_run_timeout"], "-PT1M30S");
  dag->dagrun_timeout = scheduler::Duration::min();
  EXPECT_EQ(DagDetailsToJson(d)["dag_run_timeout"].get<std::string>().substr(0, 2), "-P");
}

TEST(Codecs, DagVersionsOfRunsAndTaskInstancesCarryTheirCreationTime) {
  scheduler::DagRun run;
  run.dag_id = "etl";
  run.version_number = 2;
  run.version_created_at = At("2026-01-02T03:04:05Z");
  Json j = DagRunToJson(run);
  ASSERT_EQ(j["dag_versions"].size(), 1u);
  EXPECT_EQ(j["dag_versions"][0]["created_at"], "2026-01-02T03:04:05Z");
  EXPECT_TRUE(j.contains("partition_key"));
  scheduler::TaskInstance ti;
  ti.dag_id = "etl";
  ti.version_number = 2;
  ti.version_created_at = run.version_created_at;
  EXPECT_EQ(TaskInstanceToJson(ti, &run)["dag_version"]["created_at"], "2026-01-02T03:04:05Z");
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

// `text` through a LogEncoder in pieces of `piece` bytes.
std::string Encode(std::string_view text, LogFormat format, size_t piece = 1 << 20,
                   size_t max_line_bytes = 64 << 10) {
  LogEncoder encoder(format, max_line_bytes);
  std::string out;
  for (size_t pos = 0; pos < text.size(); pos += piece)
    out += encoder.Feed(text.substr(pos, piece));
  return out + encoder.Finish();
}

const std::string kMixedLog = "one\r\n{\"event\":\"two\",\"level\":\"error\"}\n{not json\n\nlast";

TEST(Codecs, LogLinesBecomeStructuredEvents) {
  for (size_t piece : {1, 2, 5, 1000}) {
    Json j = Json::parse(Encode(kMixedLog, LogFormat::kJson, piece));
    ASSERT_EQ(j["content"].size(), 5u) << piece;
    EXPECT_EQ(j["content"][0], Json({{"event", "one"}}));
    EXPECT_EQ(j["content"][1]["level"], "error");
    EXPECT_EQ(j["content"][2]["event"], "{not json");
    EXPECT_EQ(j["content"][3]["event"], "");
    EXPECT_EQ(j["content"][4]["event"], "last");
    EXPECT_TRUE(j["continuation_token"].is_null());
  }
  EXPECT_EQ(Encode("", LogFormat::kJson), R"({"content":[],"continuation_token":null})");
  EXPECT_EQ(Json::parse(Encode("a\n", LogFormat::kJson))["content"].size(), 1u);
}

TEST(Codecs, NdjsonLogIsOneEventObjectALine) {
  EXPECT_EQ(Encode(kMixedLog, LogFormat::kNdjson, 3),
            "{\"event\":\"one\"}\n{\"event\":\"two\",\"level\":\"error\"}\n"
            "{\"event\":\"{not json\"}\n{\"event\":\"\"}\n{\"event\":\"last\"}\n");
  EXPECT_EQ(Encode("", LogFormat::kNdjson), "");
}

TEST(Codecs, LogLinesAreEscapedAndInvalidUtf8IsReplaced) {
  const std::string text = "quote \" backslash \\ tab \t bell \x07 bad \xff end\n";
  Json j = Json::parse(Encode(text, LogFormat::kJson));
  EXPECT_EQ(j["content"][0]["event"],
            "quote \" backslash \\ tab \t bell \x07 bad \xEF\xBF\xBD end");
}

TEST(Codecs, ALongLineIsEmittedAsItComesInOneEvent) {
  // Multi-byte characters and "\r\n" fall across piece boundaries at every offset.
  std::string line;
  for (int i = 0; i < 300; ++i) line += "é€😀x";
  const std::string text = line + "\r\n" + line + "\r\nshort\n";
  for (size_t piece : {1, 7, 64, 4096}) {
    LogEncoder encoder(LogFormat::kNdjson, /*max_line_bytes=*/100);
    std::string out;
    for (size_t pos = 0; pos < text.size(); pos += piece) {
      out += encoder.Feed(std::string_view(text).substr(pos, piece));
    }
    out += encoder.Finish();
    std::vector<Json> events;
    for (size_t pos = 0; pos < out.size();) {
      const size_t end = out.find('\n', pos);
      events.push_back(Json::parse(out.substr(pos, end - pos)));
      pos = end + 1;
    }
    ASSERT_EQ(events.size(), 3u) << piece;
    EXPECT_EQ(events[0]["event"], line) << piece;
    EXPECT_EQ(events[1]["event"], line) << piece;
    EXPECT_EQ(events[2]["event"], "short") << piece;
  }
}

TEST(Codecs, ALongLineIsEmittedBeforeItEnds) {
  LogEncoder encoder(LogFormat::kJson, /*max_line_bytes=*/100);
  const std::string out = encoder.Feed(std::string(1000, 'x'));
  EXPECT_GE(out.size(), 1000u);  // not held back until the newline
  EXPECT_EQ(Json::parse(out + encoder.Finish())["content"][0]["event"], std::string(1000, 'x'));
}

TEST(Codecs, ADeeplyNestedLogLineIsAPlainEventNotACrash) {
  const std::string deep =
      "{\"event\":\"x\",\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  const std::string line =
      "{\"event\":\"x\",\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  Json j = Json::parse(Encode(deep + "\n" + line + "\n", LogFormat::kJson, 4096));
  ASSERT_EQ(j["content"].size(), 2u);
  EXPECT_EQ(j["content"][0]["event"], deep);
  EXPECT_EQ(j["content"][1]["event"], line);
}

TEST(Codecs, UntrustedJsonNestingDeeperThanTheLimitIsRefusedBeforeParsing) {
  EXPECT_TRUE(ParseUntrustedJson(std::string(64, '[') + std::string(64, ']')).value);
  ParsedJson deep = ParseUntrustedJson(std::string(65, '[') + std::string(65, ']'));
  EXPECT_FALSE(deep.value);
  EXPECT_EQ(deep.error, "The JSON nests deeper than 64 levels");
  EXPECT_EQ(deep.byte, 64u);
  ParsedJson huge = ParseUntrustedJson(std::string(1000000, '{'));
  EXPECT_FALSE(huge.value);
  EXPECT_EQ(huge.error, "The JSON nests deeper than 64 levels");
}

TEST(Codecs, UntrustedJsonBracketsInStringsDoNotCount) {
  const std::string brackets(1000, '[');
  auto parsed = ParseUntrustedJson("{\"a\": \"" + brackets + "\\\"" + brackets + "\"}");
  ASSERT_TRUE(parsed.value) << parsed.error;
  EXPECT_EQ((*parsed.value)["a"], brackets + "\"" + brackets);
}

TEST(Codecs, UntrustedJsonErrorsAreSentencesOfOursNotLibraryText) {
  ParsedJson overflow = ParseUntrustedJson(R"({"conf": {"x": 1e999999}})");
  EXPECT_FALSE(overflow.value);
  EXPECT_EQ(overflow.error, "The JSON holds a number too large to represent");
  ParsedJson invalid = ParseUntrustedJson(R"({"a": tru})");
  EXPECT_FALSE(invalid.value);
  EXPECT_EQ(invalid.error, "The JSON is not valid");
  EXPECT_TRUE(invalid.byte.has_value());
  ParsedJson utf8 = ParseUntrustedJson("{\"a\": \"\xff\"}");
  EXPECT_EQ(utf8.error, "The JSON is not valid UTF-8");
  for (const ParsedJson* p : {&overflow, &invalid, &utf8}) {
    EXPECT_EQ(p->error.find("json.exception"), std::string::npos) << p->error;
  }
}

}  // namespace
}  // namespace dagd::api
