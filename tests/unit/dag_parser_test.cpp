#include "dagd/scheduler/dag_parser.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "temp_dir.hpp"

namespace dagd::scheduler {
namespace {

using dagd::testing::TempDir;

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using namespace std::chrono_literals;

ParseResult Parse(std::string_view text, const ParseOptions& options = {}) {
  return ParseDag(text, options);
}

// The task ids of a parsed DAG, in its (topological) order.
std::vector<std::string> TaskIds(const Dag& dag) {
  std::vector<std::string> ids;
  for (const auto& task : dag.tasks) ids.push_back(task.task_id);
  return ids;
}

constexpr std::string_view kEtl = R"({
  "dag_id": "sparkify_etl",
  "description": "Song and event logs to a star schema",
  "schedule": "0 * * * *",
  "timezone": "UTC",
  "start_date": "2026-01-01T00:00:00Z",
  "catchup": false,
  "max_active_runs": 1,
  "max_active_tasks": 4,
  "dagrun_timeout": "2h",
  "tags": ["etl", "music"],
  "params": {"input": "s3://raw/sparkify"},
  "is_paused_upon_creation": true,
  "doc_md": "# ETL",
  "default_args": {"retries": 2, "retry_delay": "30s", "execution_timeout": "10m",
                   "owner": "data", "pool": "default_pool"},
  "tasks": [
    {"task_id": "stage_songs", "operator": "transform", "job": "sparkify.stage_songs",
     "args": {"input": "{{ params.input }}/song_data"}},
    {"task_id": "songs", "operator": "transform", "job": "sparkify.songs",
     "upstream": ["stage_songs"], "retries": 5, "execution_timeout": null},
    {"task_id": "notify", "operator": "bash", "bash_command": "echo done",
     "env": {"TARGET": "x"}, "cwd": "/tmp", "upstream": ["songs"], "trigger_rule": "all_done",
     "retry_delay": 1.5, "priority_weight": -3, "pool_slots": 1,
     "retry_exponential_backoff": true, "max_retry_delay": "1h", "doc_md": "says done"},
    {"task_id": "end", "operator": "empty", "upstream": ["notify"]}
  ]
})";

TEST(DagParser, ParsesAFullDocumentIntoTheModel) {
  auto result = Parse(kEtl);
  ASSERT_THAT(result.errors, IsEmpty());
  ASSERT_NE(result.dag, nullptr);
  const Dag& dag = *result.dag;
  EXPECT_EQ(dag.dag_id, "sparkify_etl");
  EXPECT_EQ(dag.description, "Song and event logs to a star schema");
  EXPECT_EQ(dag.schedule, "0 * * * *");
  EXPECT_EQ(dag.timezone, "UTC");
  ASSERT_TRUE(dag.start_date.has_value());
  EXPECT_EQ(FormatRfc3339(*dag.start_date), "2026-01-01T00:00:00Z");
  EXPECT_FALSE(dag.catchup);
  EXPECT_TRUE(dag.is_paused_upon_creation);
  EXPECT_EQ(dag.max_active_runs, 1);
  EXPECT_EQ(dag.max_active_tasks, 4);
  EXPECT_EQ(dag.dagrun_timeout, Duration(2h));
  EXPECT_THAT(dag.tags, ElementsAre("etl", "music"));
  EXPECT_THAT(dag.owners, ElementsAre("data"));
  EXPECT_EQ(dag.params["input"], "s3://raw/sparkify");
  EXPECT_THAT(TaskIds(dag), ElementsAre("stage_songs", "songs", "notify", "end"));

  const TaskSpec* stage = dag.Find("stage_songs");
  ASSERT_NE(stage, nullptr);
  EXPECT_EQ(stage->operator_name, "transform");
  EXPECT_EQ(stage->job, "sparkify.stage_songs");
  EXPECT_EQ(stage->args["input"], "{{ params.input }}/song_data");

  const TaskSpec* notify = dag.Find("notify");
  ASSERT_NE(notify, nullptr);
  EXPECT_EQ(notify->operator_name, "bash");
  EXPECT_EQ(notify->bash_command, "echo done");
  EXPECT_EQ(notify->env.at("TARGET"), "x");
  EXPECT_EQ(notify->cwd, "/tmp");
  EXPECT_THAT(notify->upstream, ElementsAre("songs"));
  EXPECT_EQ(notify->trigger_rule, TriggerRule::kAllDone);
  EXPECT_EQ(notify->retry_delay, Duration(1500ms));
  EXPECT_EQ(notify->priority_weight, -3);
  EXPECT_EQ(notify->pool_slots, 1);
  EXPECT_TRUE(notify->retry_exponential_backoff);
  EXPECT_EQ(notify->max_retry_delay, Duration(1h));
  EXPECT_EQ(notify->doc, "says done");

  EXPECT_EQ(dag.IndexOf("end"), 3u);
  EXPECT_EQ(dag.IndexOf("nope"), std::nullopt);
  EXPECT_EQ(dag.Find("nope"), nullptr);
  EXPECT_THAT(dag.upstream[3], ElementsAre(2u));
  EXPECT_THAT(dag.downstream[0], ElementsAre(1u));
  EXPECT_THAT(dag.upstream[0], IsEmpty());
  EXPECT_THAT(dag.downstream[3], IsEmpty());
}

TEST(DagParser, KeepsTheDagDocumentation) {
  auto result = Parse(kEtl);
  ASSERT_NE(result.dag, nullptr);
  EXPECT_EQ(result.dag->doc_md, "# ETL");
}

// dagd has no pools yet: a pool it would not enforce is refused, not ignored.
TEST(DagParser, RefusesPoolsOtherThanTheDefaultAndMoreThanOnePoolSlot) {
  auto result = Parse(R"({"dag_id": "pooled", "default_args": {"pool": "etl"}, "tasks": [
    {"task_id": "a", "operator": "empty", "pool_slots": 2},
    {"task_id": "b", "operator": "empty", "pool": "default_pool", "pool_slots": 1}]})");
  EXPECT_EQ(result.dag, nullptr);
  std::string all;
  for (const auto& e : result.errors) all += e + "\n";
  EXPECT_NE(all.find("field 'pool': pools are not supported yet"), std::string::npos) << all;
  EXPECT_NE(all.find("task 'a' field 'pool_slots': pools are not supported yet"),
            std::string::npos)
      << all;
}

TEST(DagParser, DefaultArgsApplyToEveryTaskUnlessTheTaskSetsTheField) {
  auto result = Parse(kEtl);
  ASSERT_NE(result.dag, nullptr);
  const Dag& dag = *result.dag;
  const TaskSpec& stage = *dag.Find("stage_songs");
  EXPECT_EQ(stage.retries, 2);
  EXPECT_EQ(stage.retry_delay, Duration(30s));
  EXPECT_EQ(stage.execution_timeout, Duration(10min));
  EXPECT_EQ(stage.pool, "default_pool");

  const TaskSpec& songs = *dag.Find("songs");
  EXPECT_EQ(songs.retries, 5);                       // task wins
  EXPECT_EQ(songs.execution_timeout, std::nullopt);  // explicit null wins too
  EXPECT_EQ(songs.retry_delay, Duration(30s));       // default kept

  const TaskSpec& notify = *dag.Find("notify");
  EXPECT_EQ(notify.retry_delay, Duration(1500ms));
  EXPECT_EQ(notify.retries, 2);
}

TEST(DagParser, FieldsLeftOutTakeTheModelDefaults) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [{"task_id": "a", "operator": "empty"}]})");
  ASSERT_THAT(result.errors, IsEmpty());
  const Dag& dag = *result.dag;
  EXPECT_EQ(dag.schedule, std::nullopt);
  EXPECT_EQ(dag.timezone, "UTC");
  EXPECT_EQ(dag.start_date, std::nullopt);
  EXPECT_EQ(dag.max_active_runs, 16);
  EXPECT_THAT(dag.owners, ElementsAre("airflow"));
  const TaskSpec& a = dag.tasks[0];
  EXPECT_EQ(a.trigger_rule, TriggerRule::kAllSuccess);
  EXPECT_EQ(a.retries, 0);
  EXPECT_EQ(a.retry_delay, Duration(300s));
  EXPECT_EQ(a.pool, "default_pool");
  EXPECT_EQ(a.pool_slots, 1);
  EXPECT_EQ(a.priority_weight, 1);
  EXPECT_EQ(a.execution_timeout, std::nullopt);
}

TEST(DagParser, OrdersTasksTopologicallyKeepingFileOrderForTies) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "load", "operator": "empty", "upstream": ["t2", "t1"]},
    {"task_id": "x", "operator": "empty"},
    {"task_id": "t1", "operator": "empty", "upstream": ["extract"]},
    {"task_id": "t2", "operator": "empty", "upstream": ["extract"]},
    {"task_id": "extract", "operator": "empty"},
    {"task_id": "y", "operator": "empty"}
  ]})");
  ASSERT_THAT(result.errors, IsEmpty());
  const Dag& dag = *result.dag;
  EXPECT_THAT(TaskIds(dag), ElementsAre("x", "extract", "t1", "t2", "load", "y"));
  size_t load = *dag.IndexOf("load");
  EXPECT_THAT(dag.upstream[load], ElementsAre(*dag.IndexOf("t1"), *dag.IndexOf("t2")));
  EXPECT_THAT(dag.downstream[*dag.IndexOf("extract")],
              ElementsAre(*dag.IndexOf("t1"), *dag.IndexOf("t2")));
  for (size_t i = 0; i < dag.tasks.size(); ++i) {
    for (size_t up : dag.upstream[i]) EXPECT_LT(up, i) << dag.tasks[i].task_id;
  }
}

TEST(DagParser, AlreadyOrderedFilesKeepTheirOrder) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "c", "operator": "empty"},
    {"task_id": "b", "operator": "empty", "upstream": ["c"]},
    {"task_id": "a", "operator": "empty"}
  ]})");
  ASSERT_NE(result.dag, nullptr);
  EXPECT_THAT(TaskIds(*result.dag), ElementsAre("c", "b", "a"));
}

TEST(DagParser, DownstreamIsTheInverseOfUpstream) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "b", "operator": "empty", "upstream": ["a"]},
    {"task_id": "a", "operator": "empty", "downstream": ["b", "c"]},
    {"task_id": "c", "operator": "empty"}
  ]})");
  ASSERT_THAT(result.errors, IsEmpty());
  const Dag& dag = *result.dag;
  EXPECT_THAT(TaskIds(dag), ElementsAre("a", "b", "c"));
  EXPECT_THAT(dag.Find("b")->upstream, ElementsAre("a"));  // listed twice, kept once
  EXPECT_THAT(dag.Find("c")->upstream, ElementsAre("a"));
  EXPECT_THAT(dag.downstream[0], ElementsAre(1u, 2u));
  EXPECT_THAT(dag.upstream[1], ElementsAre(0u));
}

TEST(DagParser, ReportsAThreeCycleAsItsPathInOrder) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "a", "operator": "empty", "upstream": ["c"]},
    {"task_id": "b", "operator": "empty", "upstream": ["a"]},
    {"task_id": "c", "operator": "empty", "upstream": ["b"]}
  ]})");
  EXPECT_EQ(result.dag, nullptr);
  EXPECT_THAT(result.errors, ElementsAre("cycle: a → b → c → a"));
}

TEST(DagParser, StartsTheCyclePathAtTheFirstTaskInTheFile) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "start", "operator": "empty"},
    {"task_id": "p", "operator": "empty", "upstream": ["start", "r"]},
    {"task_id": "q", "operator": "empty", "upstream": ["p"]},
    {"task_id": "r", "operator": "empty", "upstream": ["q"]}
  ]})");
  EXPECT_THAT(result.errors, ElementsAre("cycle: p → q → r → p"));
}

TEST(DagParser, ReportsASelfDependencyAsAOneCycle) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "a", "operator": "empty", "upstream": ["a"]}
  ]})");
  EXPECT_EQ(result.dag, nullptr);
  EXPECT_THAT(result.errors, ElementsAre("cycle: a → a"));
}

TEST(DagParser, ReportsEveryIndependentCycle) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "a", "operator": "empty", "upstream": ["b"]},
    {"task_id": "b", "operator": "empty", "upstream": ["a"]},
    {"task_id": "c", "operator": "empty", "downstream": ["c"]}
  ]})");
  EXPECT_THAT(result.errors, UnorderedElementsAre("cycle: a → b → a", "cycle: c → c"));
}

TEST(DagParser, ReportsUnknownUpstreamAndDownstream) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "y", "operator": "empty", "upstream": ["x"], "downstream": ["z"]}
  ]})");
  EXPECT_EQ(result.dag, nullptr);
  EXPECT_THAT(result.errors,
              ElementsAre("task 'y': unknown upstream 'x'", "task 'y': unknown downstream 'z'"));
}

TEST(DagParser, ReportsDuplicateTaskIdsWithTheirPositions) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "a", "operator": "empty"},
    {"task_id": "b", "operator": "empty"},
    {"task_id": "a", "operator": "empty"}
  ]})");
  EXPECT_EQ(result.dag, nullptr);
  EXPECT_THAT(result.errors, ElementsAre("duplicate task id 'a' (tasks 1 and 3)"));
}

TEST(DagParser, ReportsInvalidIds) {
  auto result = Parse(R"({"dag_id": "my dag", "tasks": [
    {"task_id": "a b", "operator": "empty"},
    {"task_id": "", "operator": "empty"},
    {"task_id": "../x", "operator": "empty"}
  ]})");
  EXPECT_EQ(result.dag, nullptr);
  EXPECT_THAT(
      result.errors,
      ElementsAre("dag_id 'my dag' is invalid: use letters, digits, '_', '.', '-' (at most 250)",
                  "task id 'a b' is invalid: use letters, digits, '_', '.', '-' (at most 250)",
                  "task id '' is invalid: use letters, digits, '_', '.', '-' (at most 250)",
                  "task id '../x' is invalid: use letters, digits, '_', '.', '-' (at most 250)"));
}

TEST(DagParser, IdsAreOneTo250SafeCharacters) {
  EXPECT_TRUE(IsValidId("a"));
  EXPECT_TRUE(IsValidId("Extract_v2.raw-zone"));
  EXPECT_TRUE(IsValidId(std::string(250, 'x')));
  EXPECT_FALSE(IsValidId(std::string(251, 'x')));
  EXPECT_FALSE(IsValidId(""));
  EXPECT_FALSE(IsValidId("a/b"));
  EXPECT_FALSE(IsValidId("a b"));
  EXPECT_FALSE(IsValidId("é"));
  EXPECT_FALSE(IsValidId(std::string_view("a\0b", 3)));
}

TEST(DagParser, ReportsUnknownOperatorsListingTheKnownOnes) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "x", "operator": "pythn"}
  ]})");
  EXPECT_THAT(result.errors,
              ElementsAre("task 'x': unknown operator 'pythn' (known: transform, bash, empty)"));
}

TEST(DagParser, ReportsUnknownJobsWhenTheRegistryIsGiven) {
  ParseOptions options;
  options.job_exists = [](std::string_view job) { return job == "known.job"; };
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "ok", "operator": "transform", "job": "known.job"},
    {"task_id": "x", "operator": "transform", "job": "foo.bar"}
  ]})",
                      options);
  EXPECT_THAT(result.errors, ElementsAre("task 'x': unknown job 'foo.bar'"));
}

TEST(DagParser, AcceptsAnyJobWithoutARegistry) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "x", "operator": "transform", "job": "foo.bar"}
  ]})");
  EXPECT_THAT(result.errors, IsEmpty());
}

TEST(DagParser, ReportsMissingOperatorInputsAndFieldsOfOtherOperators) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "t", "operator": "transform", "env": {"A": "1"}},
    {"task_id": "b", "operator": "bash", "bash_command": "", "job": "j"},
    {"task_id": "e", "operator": "empty", "args": {}},
    {"task_id": "n"}
  ]})");
  EXPECT_THAT(result.errors,
              ElementsAre("task 't': field 'env' does not apply to operator 'transform'",
                          "task 't': operator 'transform' needs field 'job'",
                          "task 'b': field 'job' does not apply to operator 'bash'",
                          "task 'b' field 'bash_command': expected a non-empty string, got \"\"",
                          "task 'e': field 'args' does not apply to operator 'empty'",
                          "task 'n': missing required field 'operator'"));
}

TEST(DagParser, ReportsUnknownFieldsInsteadOfIgnoringTypos) {
  auto result = Parse(R"({"dag_id": "d", "schedual": "@daily", "tasks": [
    {"task_id": "a", "operator": "empty"},
    {"task_id": "b", "operator": "empty", "upsteam": ["a"]}
  ], "default_args": {"retires": 1, "job": "x"}})");
  EXPECT_THAT(
      result.errors,
      ElementsAre("unknown field 'schedual'",
                  "default_args: field 'job' cannot be defaulted (set it on each task)",
                  "default_args: unknown field 'retires'", "task 'b': unknown field 'upsteam'"));
}

TEST(DagParser, ReportsWrongTypesNamingTaskFieldAndValue) {
  auto result = Parse(R"({"dag_id": "d", "catchup": "no", "max_active_runs": 0,
    "tags": ["a", 1], "params": [], "tasks": [
    {"task_id": "b", "operator": "empty", "retries": "two", "pool_slots": 0,
     "priority_weight": 1.5, "retry_exponential_backoff": 1, "pool": 3,
     "upstream": "a", "trigger_rule": "all_sucess"}
  ]})");
  EXPECT_EQ(result.dag, nullptr);
  EXPECT_THAT(
      result.errors,
      ElementsAre(
          "DAG field 'catchup': expected a boolean, got \"no\"",
          "DAG field 'max_active_runs': expected a positive integer, got 0",
          "DAG field 'tags': expected an array of strings, got [\"a\",1]",
          "DAG field 'params': expected an object, got []",
          "task 'b' field 'upstream': expected an array of task ids, got \"a\"",
          "task 'b' field 'retries': expected a non-negative integer, got \"two\"",
          "task 'b' field 'retry_exponential_backoff': expected a boolean, got 1",
          "task 'b' field 'trigger_rule': unknown trigger rule 'all_sucess' (known: all_success, "
          "all_failed, all_done, all_done_min_one_success, all_skipped, one_success, "
          "one_failed, one_done, none_failed, none_skipped, none_failed_min_one_success, always)",
          "task 'b' field 'pool': expected a non-empty string, got 3",
          "task 'b' field 'pool_slots': expected a positive integer, got 0",
          "task 'b' field 'priority_weight': expected an integer, got 1.5"));
}

TEST(DagParser, RejectsIntegersOutsideIntRange) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "b", "operator": "empty", "retries": 99999999999, "priority_weight": -99999999999}
  ]})");
  EXPECT_THAT(result.errors,
              ElementsAre("task 'b' field 'retries': expected a non-negative integer, got "
                          "99999999999",
                          "task 'b' field 'priority_weight': expected an integer, got "
                          "-99999999999"));
}

TEST(DagParser, ReportsBadDurations) {
  auto result = Parse(R"({"dag_id": "d", "dagrun_timeout": true, "tasks": [
    {"task_id": "x", "operator": "empty", "retry_delay": "5 minutes",
     "execution_timeout": -5, "max_retry_delay": "1h30"}
  ]})");
  EXPECT_THAT(
      result.errors,
      ElementsAre(
          "DAG field 'dagrun_timeout': expected a duration (seconds, or text like 30s, 10m, 2h), "
          "got true",
          "task 'x' field 'retry_delay': invalid duration '5 minutes' (use e.g. 30s, 10m, 2h)",
          "task 'x' field 'max_retry_delay': invalid duration '1h30' (use e.g. 30s, 10m, 2h)",
          "task 'x' field 'execution_timeout': expected a non-negative duration, got -5"));
}

TEST(DagParser, AcceptsDurationsAsSecondsOrText) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "a", "operator": "empty", "retry_delay": 45, "execution_timeout": "00:01:30",
     "max_retry_delay": "250ms"}
  ]})");
  ASSERT_THAT(result.errors, IsEmpty());
  const TaskSpec& a = result.dag->tasks[0];
  EXPECT_EQ(a.retry_delay, Duration(45s));
  EXPECT_EQ(a.execution_timeout, Duration(90s));
  EXPECT_EQ(a.max_retry_delay, Duration(250ms));
}

TEST(DagParser, ReportsBadStartDatesAndSchedules) {
  auto result = Parse(R"({"dag_id": "d", "start_date": "2026-13-01", "schedule": 5,
    "tasks": [{"task_id": "a", "operator": "empty"}]})");
  EXPECT_THAT(result.errors,
              ElementsAre("DAG field 'schedule': expected a non-empty string, got 5",
                          "DAG field 'start_date': invalid timestamp '2026-13-01' (use RFC 3339, "
                          "e.g. 2026-01-01T00:00:00Z)"));
}

// A minimal document with extra top-level fields (JSON text without braces).
ParseResult ParseWith(std::string_view fields) {
  return Parse(R"({"dag_id": "d", "tasks": [{"task_id": "a", "operator": "empty"}], )" +
               std::string(fields) + "}");
}

TEST(DagParserSchedule, ReportsBadSchedulesNamingTheFieldAndToken) {
  EXPECT_THAT(ParseWith(R"("schedule": "61 * * * *")").errors,
              ElementsAre("DAG field 'schedule': minute field: 61 is out of range 0-59"));
  EXPECT_THAT(ParseWith(R"("schedule": "0 0 * * MOON")").errors,
              ElementsAre("DAG field 'schedule': day-of-week field: 'MOON' is not a number or a "
                          "name"));
  EXPECT_THAT(ParseWith(R"("schedule": "@fortnightly")").errors,
              ElementsAre(HasSubstr("DAG field 'schedule': unknown preset '@fortnightly'")));
  EXPECT_THAT(ParseWith(R"("schedule": "soon")").errors,
              ElementsAre(HasSubstr("DAG field 'schedule': 'soon' is not a cron expression")));
}

TEST(DagParserSchedule, ReportsUnknownTimeZonesAndTimetables) {
  EXPECT_THAT(ParseWith(R"("timezone": "Europe/Atlantis", "schedule": "@daily")").errors,
              ElementsAre("DAG field 'timezone': unknown time zone 'Europe/Atlantis' (use an IANA "
                          "name such as Europe/London or UTC)"));
  EXPECT_THAT(ParseWith(R"("timetable": "interval")").errors,
              ElementsAre("DAG field 'timetable': expected 'trigger' or 'data_interval', got "
                          "'interval'"));
  EXPECT_THAT(ParseWith(R"("start_date": "2026-02-01", "end_date": "2026-01-01")").errors,
              ElementsAre("DAG field 'end_date': is before start_date"));
  EXPECT_THAT(ParseWith(R"("end_date": "soon")").errors,
              ElementsAre("DAG field 'end_date': invalid timestamp 'soon' (use RFC 3339, e.g. "
                          "2026-01-01T00:00:00Z)"));
}

TEST(DagParserSchedule, BuildsTheTimetable) {
  auto result = ParseWith(R"("schedule": "30 2 * * *", "timezone": "America/New_York",
      "timetable": "data_interval", "catchup": true)");
  ASSERT_THAT(result.errors, IsEmpty());
  const Dag& dag = *result.dag;
  ASSERT_NE(dag.timetable, nullptr);
  EXPECT_EQ(dag.timetable->Summary(), "30 2 * * *");
  EXPECT_EQ(dag.timetable->Description(), "At 02:30");
  EXPECT_EQ(dag.timetable->mode(), TimetableMode::kDataInterval);
  EXPECT_EQ(dag.timetable->zone().name(), "America/New_York");
  auto manual = ParseWith(R"("schedule": null)");
  ASSERT_THAT(manual.errors, IsEmpty());
  EXPECT_FALSE(manual.dag->timetable->Periodic());
  EXPECT_EQ(manual.dag->timetable_mode, TimetableMode::kTrigger);
}

TEST(DagParserSchedule, DatesWithoutAnOffsetAreWallTimesInTheDagZone) {
  auto result = ParseWith(R"("timezone": "America/New_York", "start_date": "2026-01-01",
      "end_date": "2026-07-01T08:30:00")");
  ASSERT_THAT(result.errors, IsEmpty());
  EXPECT_EQ(FormatRfc3339(*result.dag->start_date), "2026-01-01T05:00:00Z");
  EXPECT_EQ(FormatRfc3339(*result.dag->end_date), "2026-07-01T12:30:00Z");
  auto offset = ParseWith(R"("timezone": "America/New_York",
      "start_date": "2026-01-01T00:00:00+01:00", "end_date": "2026-07-01T08:30:00Z")");
  ASSERT_THAT(offset.errors, IsEmpty());
  EXPECT_EQ(FormatRfc3339(*offset.dag->start_date), "2025-12-31T23:00:00Z");
  EXPECT_EQ(FormatRfc3339(*offset.dag->end_date), "2026-07-01T08:30:00Z");
}

TEST(DagParser, ReportsMissingRequiredTopLevelFields) {
  EXPECT_THAT(Parse("{}").errors,
              ElementsAre("missing required field 'dag_id'", "missing required field 'tasks'"));
  EXPECT_THAT(Parse(R"({"dag_id": "d", "tasks": []})").errors,
              ElementsAre("DAG field 'tasks': expected a non-empty array of tasks, got []"));
  EXPECT_THAT(Parse("[1]").errors, ElementsAre("a DAG document must be a JSON object, got array"));
}

TEST(DagParser, NamesTasksWithoutUsableIdsByPosition) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "a", "operator": "empty"},
    {"operator": "empty"},
    {"task_id": 7, "operator": "empty"},
    "c"
  ]})");
  EXPECT_THAT(result.errors, ElementsAre("task 2: missing required field 'task_id'",
                                         "task 3 field 'task_id': expected a string, got 7",
                                         "task 4: expected an object, got \"c\""));
}

TEST(DagParser, ReportsSeveralErrorsTogether) {
  ParseOptions options;
  options.job_exists = [](std::string_view) { return false; };
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "a", "operator": "empty", "upstream": ["c"]},
    {"task_id": "b", "operator": "empty", "upstream": ["a"], "upsteam": [], "retries": "two"},
    {"task_id": "c", "operator": "empty", "upstream": ["b", "ghost"]},
    {"task_id": "a", "operator": "transform", "job": "foo.bar"},
    {"task_id": "x", "operator": "pythn", "retry_delay": "5 minutes"}
  ]})",
                      options);
  EXPECT_EQ(result.dag, nullptr);
  EXPECT_THAT(
      result.errors,
      ElementsAre("task 'b': unknown field 'upsteam'",
                  "task 'b' field 'retries': expected a non-negative integer, got \"two\"",
                  "task 'a': unknown job 'foo.bar'",
                  "task 'x': unknown operator 'pythn' (known: transform, bash, empty)",
                  "task 'x' field 'retry_delay': invalid duration '5 minutes' (use e.g. 30s, "
                  "10m, 2h)",
                  "duplicate task id 'a' (tasks 1 and 4)", "task 'c': unknown upstream 'ghost'",
                  "cycle: a → b → c → a"));
}

TEST(DagParser, ReportsInvalidJsonWithLineAndColumn) {
  auto result = Parse("{\n  \"dag_id\": \"d\",\n  \"tasks\": [,]\n}");
  EXPECT_EQ(result.dag, nullptr);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0], HasSubstr("invalid JSON at line 3 column 13: "));
  EXPECT_THAT(result.errors[0], HasSubstr("syntax error"));
  EXPECT_THAT(result.errors[0], Not(HasSubstr("json.exception")));

  EXPECT_THAT(Parse("").errors, ElementsAre(HasSubstr("invalid JSON at line 1 column 1: ")));
  EXPECT_THAT(Parse("{\"dag_id\": \"d\"").errors, ElementsAre(HasSubstr("invalid JSON")));
  EXPECT_THAT(Parse("{\"a\": \"\xff\"}").errors, ElementsAre(HasSubstr("invalid JSON")));
}

TEST(DagParser, ReportsRepeatedKeysThatJsonWouldSilentlyMerge) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "b", "operator": "empty", "retries": 1, "retries": 2}
  ]})");
  EXPECT_EQ(result.dag, nullptr);
  EXPECT_THAT(result.errors, ElementsAre("duplicate key 'retries' in one object"));
}

TEST(DagParser, RefusesDeeplyNestedDocumentsWithoutCrashing) {
  std::string deep = R"({"dag_id": "d", "params": {"p": )" + std::string(100000, '[') +
                     std::string(100000, ']') +
                     R"(}, "tasks": [{"task_id": "a", "operator": "empty"}]})";
  EXPECT_THAT(Parse(deep).errors, ElementsAre("the document nests deeper than 64 levels"));
}

// Regression: "description": "x\u0000y" passed validation, then failed the whole folder sync at
// the database, which stores no NUL in text or jsonb.
TEST(DagParser, RefusesNulCharactersInStringsAndKeysNamingWhere) {
  auto result = Parse(R"({"dag_id": "d", "description": "x\u0000y", "tasks": [
    {"task_id": "a", "operator": "bash", "bash_command": "echo \u0000",
     "env": {"A\u0000B": "v", "OK": "v\u0000"}}],
    "params": {"p": ["fine", "bad\u0000"]}})");
  EXPECT_EQ(result.dag, nullptr);
  EXPECT_THAT(
      result.errors,
      UnorderedElementsAre("field 'description' contains a NUL character (\\u0000)",
                           "field 'tasks[0].bash_command' contains a NUL character (\\u0000)",
                           "key 'A\\u0000B' in 'tasks[0].env' contains a NUL character (\\u0000)",
                           "field 'tasks[0].env.OK' contains a NUL character (\\u0000)",
                           "field 'params.p[1]' contains a NUL character (\\u0000)"));
  auto top_key = Parse(R"({"dag_id": "d", "x\u0000": 1, "tasks": []})");
  EXPECT_THAT(top_key.errors, ElementsAre("key 'x\\u0000' contains a NUL character (\\u0000)"));
}

TEST(DagParser, BashTasksMayNameAnAccountToRunAs) {
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "a", "operator": "bash", "bash_command": "id", "run_as_user": "etl-runner"},
    {"task_id": "b", "operator": "bash", "bash_command": "id"}]})");
  ASSERT_NE(result.dag, nullptr) << result.errors.front();
  EXPECT_EQ(result.dag->Find("a")->run_as_user, "etl-runner");
  EXPECT_EQ(result.dag->Find("b")->run_as_user, "");
}

TEST(DagParser, RunAsUserIsRefusedForRootBadNamesOtherOperatorsAndAccountsNotAllowed) {
  ParseOptions options;
  options.run_as_allowed = [](std::string_view user) { return user == "etl"; };
  auto result = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "r", "operator": "bash", "bash_command": "id", "run_as_user": "root"},
    {"task_id": "n", "operator": "bash", "bash_command": "id", "run_as_user": "a b;rm"},
    {"task_id": "e", "operator": "bash", "bash_command": "id", "run_as_user": ""},
    {"task_id": "o", "operator": "bash", "bash_command": "id", "run_as_user": "postgres"},
    {"task_id": "ok", "operator": "bash", "bash_command": "id", "run_as_user": "etl"},
    {"task_id": "t", "operator": "empty", "run_as_user": "etl"}]})",
                      options);
  EXPECT_EQ(result.dag, nullptr);
  EXPECT_THAT(
      result.errors,
      UnorderedElementsAre(
          "task 'r' field 'run_as_user': tasks never run as root",
          "task 'n' field 'run_as_user': invalid account name 'a b;rm' (letters, digits, '_', "
          "'-', '.', at most 32)",
          "task 'e' field 'run_as_user': expected a non-empty string, got \"\"",
          "task 'o' field 'run_as_user': account 'postgres' is not one this daemon lets tasks "
          "run as",
          "task 't': field 'run_as_user' does not apply to operator 'empty'"));
  // Without a policy (offline validation, stored versions) any valid name but root is accepted.
  auto offline = Parse(R"({"dag_id": "d", "tasks": [
    {"task_id": "o", "operator": "bash", "bash_command": "id", "run_as_user": "postgres"},
    {"task_id": "r", "operator": "bash", "bash_command": "id", "run_as_user": "root"}]})");
  EXPECT_THAT(offline.errors, ElementsAre("task 'r' field 'run_as_user': tasks never run as root"));
}

TEST(DagParser, ParsesAJsonValueAsWellAsText) {
  Json doc = Json::parse(kEtl);
  auto from_json = ParseDag(doc, {});
  auto from_text = Parse(kEtl);
  ASSERT_NE(from_json.dag, nullptr);
  EXPECT_EQ(from_json.dag->hash, from_text.dag->hash);
  EXPECT_EQ(from_json.dag->document, from_text.dag->document);
}

TEST(DagParser, DocumentIsCanonicalJsonWithSortedKeys) {
  auto result = Parse(R"({ "tasks": [{"task_id": "a", "operator": "empty"}],
                          "dag_id": "d" })");
  ASSERT_NE(result.dag, nullptr);
  EXPECT_EQ(result.dag->document, R"({"dag_id":"d","tasks":[{"operator":"empty","task_id":"a"}]})");
}

TEST(DagParser, HashIsStableAndChangesWithTheDocument) {
  auto first = Parse(kEtl);
  ASSERT_NE(first.dag, nullptr);
  EXPECT_EQ(first.dag->hash.size(), 16u);
  EXPECT_EQ(first.dag->hash.find_first_not_of("0123456789abcdef"), std::string::npos);

  // Same content, different whitespace and key order: same version.
  Json reordered = Json::parse(kEtl);
  std::string compact = reordered.dump(2);
  auto second = Parse(compact);
  ASSERT_NE(second.dag, nullptr);
  EXPECT_EQ(first.dag->hash, second.dag->hash);

  reordered["tasks"][0]["retries"] = 3;
  auto changed = ParseDag(reordered, {});
  ASSERT_NE(changed.dag, nullptr);
  EXPECT_NE(first.dag->hash, changed.dag->hash);
}

TEST(DagParser, NeverThrowsOnArbitraryJsonValues) {
  for (const char* text : {"null", "1", "\"x\"", "true", "[]", R"({"dag_id": null})",
                           R"({"dag_id": "d", "tasks": {}})", R"({"dag_id": "d", "tasks": [null]})",
                           R"({"dag_id": "d", "default_args": 1, "tasks": [[]]})"}) {
    EXPECT_NO_THROW({
      auto result = Parse(text);
      EXPECT_EQ(result.dag, nullptr) << text;
      EXPECT_THAT(result.errors, Not(IsEmpty())) << text;
    });
  }
}

TEST(LoadDagFolder, LoadsGoodFilesAndReportsBadOnesInFileNameOrder) {
  TempDir dir;
  dir.Write("b_good.json",
            R"({"dag_id": "good", "tasks": [{"task_id": "a", "operator": "empty"}]})");
  dir.Write("a_bad.json", R"({"dag_id": "bad", "tasks": [{"task_id": "a"}]})");
  dir.Write("c_broken.json", "{not json");
  dir.Write("notes.txt", "ignored");
  std::filesystem::create_directory(dir.path() / "sub.json");  // directories are skipped

  auto files = LoadDagFolder(dir.path(), {});
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].path, dir.path() / "a_bad.json");
  EXPECT_EQ(files[0].dag, nullptr);
  EXPECT_THAT(files[0].errors, ElementsAre("task 'a': missing required field 'operator'"));

  EXPECT_EQ(files[1].path, dir.path() / "b_good.json");
  ASSERT_NE(files[1].dag, nullptr);
  EXPECT_EQ(files[1].dag->dag_id, "good");
  EXPECT_THAT(files[1].errors, IsEmpty());

  EXPECT_EQ(files[2].dag, nullptr);
  EXPECT_THAT(files[2].errors, ElementsAre(HasSubstr("invalid JSON at line 1 column ")));
}

TEST(LoadDagFolder, ReportsTheSecondFileDefiningTheSameDag) {
  TempDir dir;
  std::string doc = R"({"dag_id": "same", "tasks": [{"task_id": "a", "operator": "empty"}]})";
  dir.Write("one.json", doc);
  dir.Write("two.json", doc);
  auto files = LoadDagFolder(dir.path(), {});
  ASSERT_EQ(files.size(), 2u);
  ASSERT_NE(files[0].dag, nullptr);
  EXPECT_EQ(files[1].dag, nullptr);
  EXPECT_THAT(files[1].errors, ElementsAre("DAG 'same' is already defined in " +
                                           (dir.path() / "one.json").string()));
}

TEST(LoadDagFolder, ReportsFilesThatCannotBeRead) {
  TempDir dir;
  std::filesystem::create_symlink(dir.path() / "missing-target", dir.path() / "dangling.json");
  auto files = LoadDagFolder(dir.path(), {});
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].dag, nullptr);
  EXPECT_THAT(files[0].errors, ElementsAre(HasSubstr("cannot read the file")));
}

// Regression: a FIFO named *.json blocked the daemon in open() (and so ignored SIGTERM).
TEST(LoadDagFolder, AFifoIsReportedWithoutBlockingAndOtherFilesStillLoad) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir.path() / "fifo.json").c_str(), 0600), 0);
  dir.Write("good.json", R"({"dag_id": "good", "tasks": [{"task_id": "a", "operator": "empty"}]})");
  auto files = LoadDagFolder(dir.path(), {});  // would block forever if the FIFO were opened
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].dag, nullptr);
  EXPECT_THAT(files[0].errors,
              ElementsAre("cannot read the file: it is a FIFO, and only regular files are read"));
  EXPECT_NE(files[1].dag, nullptr);
}

TEST(ReadDagFile, RefusesFilesOverTheLimitNamingItAndFollowsSymlinksToRegularFiles) {
  TempDir dir;
  {
    std::ofstream out(dir.path() / "huge.json", std::ios::binary);
    out << std::string(kMaxDagFileBytes + 1, ' ');
  }
  auto huge = ReadDagFile(dir.path() / "huge.json");
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().message(), "the file is larger than the limit of 4 MiB");

  dir.Write("real.json", "{}");
  std::filesystem::create_symlink(dir.path() / "real.json", dir.path() / "link.json");
  auto linked = ReadDagFile(dir.path() / "link.json");
  ASSERT_TRUE(linked.ok()) << linked.status().ToString();
  EXPECT_EQ(*linked, "{}");

  auto device = ReadDagFile("/dev/zero");  // endless: must be refused, not read
  ASSERT_FALSE(device.ok());
  EXPECT_THAT(device.status().message(), HasSubstr("a character device"));
}

// The API answers an uploaded document's errors at these paths (["body", ...path]).
TEST(ParseDag, EachErrorHasThePathOfItsFieldInTheDocument) {
  auto result = Parse(R"({"dag_id": "d", "colour": 1, "default_args": {"retries": "x"},
    "tasks": [
      {"task_id": "a", "operator": "empty"},
      {"task_id": "b", "operator": "bash", "retries": -1, "upstream": ["zz"]},
      {"task_id": "c", "operator": "bash", "bash_command": "x", "job": "j", "env": {"A=": "1"}},
      {"operator": "empty"},
      {"task_id": "a", "operator": "nope"}]})");
  ASSERT_EQ(result.errors.size(), result.error_paths.size());
  std::map<std::string, std::string> by_path;
  for (size_t i = 0; i < result.errors.size(); ++i) {
    by_path[result.error_paths[i].dump()] += result.errors[i] + "|";
  }
  EXPECT_THAT(by_path[R"(["colour"])"], HasSubstr("unknown field 'colour'"));
  EXPECT_THAT(by_path[R"(["default_args","retries"])"], HasSubstr("default_args field 'retries'"));
  EXPECT_THAT(by_path[R"(["tasks",1,"retries"])"], HasSubstr("task 'b' field 'retries'"));
  EXPECT_THAT(by_path[R"(["tasks",1,"bash_command"])"], HasSubstr("needs field 'bash_command'"));
  EXPECT_THAT(by_path[R"(["tasks",1,"upstream"])"], HasSubstr("unknown upstream 'zz'"));
  EXPECT_THAT(by_path[R"(["tasks",2,"job"])"], HasSubstr("does not apply to operator 'bash'"));
  EXPECT_THAT(by_path[R"(["tasks",2,"env"])"], HasSubstr("invalid variable name 'A='"));
  EXPECT_THAT(by_path[R"(["tasks",3,"task_id"])"], HasSubstr("missing required field 'task_id'"));
  EXPECT_THAT(by_path[R"(["tasks",4,"operator"])"], HasSubstr("unknown operator 'nope'"));
  EXPECT_THAT(by_path[R"(["tasks",4,"task_id"])"], HasSubstr("duplicate task id 'a'"));
}

TEST(ParseDag, DocumentWideErrorsHaveTheEmptyPath) {
  for (const char* text : {"{", "[]", R"({"dag_id": "d", "dag_id": "e", "tasks": []})"}) {
    auto result = Parse(text);
    ASSERT_FALSE(result.errors.empty()) << text;
    ASSERT_EQ(result.errors.size(), result.error_paths.size()) << text;
    EXPECT_EQ(result.error_paths[0], Json::array()) << text << ": " << result.errors[0];
  }
  auto nul = Parse(R"({"dag_id": "d", "tasks": [{"task_id": "a\u0000", "operator": "empty"}]})");
  ASSERT_EQ(nul.error_paths.size(), 1u);
  EXPECT_EQ(nul.error_paths[0], Json::parse(R"(["tasks",0,"task_id"])")) << nul.errors[0];
}

TEST(LoadDagFolder, FollowsSymlinksInsideTheFolderAndRefusesThoseLeadingOut) {
  TempDir dir, outside;
  dir.Write("real.json.orig",
            R"({"dag_id": "inside", "tasks": [{"task_id": "a", "operator": "empty"}]})");
  std::filesystem::create_symlink(dir.path() / "real.json.orig", dir.path() / "inside.json");
  // A secret elsewhere, in a shape that would be echoed back as an unknown field.
  outside.Write("secret.json", R"({"dag_id": "x", "private_key": "hunter2"})");
  std::filesystem::create_symlink(outside.path() / "secret.json", dir.path() / "secret.json");
  auto files = LoadDagFolder(dir.path(), {});
  ASSERT_EQ(files.size(), 2u);
  ASSERT_NE(files[0].dag, nullptr) << files[0].errors.front();
  EXPECT_EQ(files[0].dag->dag_id, "inside");
  EXPECT_EQ(files[1].dag, nullptr);
  EXPECT_THAT(files[1].errors, ElementsAre(HasSubstr("leads outside the DAGs folder")));
  for (const auto& e : files[1].errors) EXPECT_THAT(e, Not(HasSubstr("hunter2")));
}

TEST(LoadDagFolder, ReportsAMissingFolder) {
  auto files = LoadDagFolder("/nonexistent/dagd/dags", {});
  ASSERT_EQ(files.size(), 1u);
  EXPECT_THAT(files[0].errors, ElementsAre(HasSubstr("cannot read the dags folder")));
}

// The example DAGs shipped in dags/ must always be valid (their jobs are checked at daemon start).
TEST(LoadDagFolder, EveryShippedExampleDagParses) {
  std::filesystem::path folder = std::filesystem::path(DAGD_SOURCE_DIR) / "dags";
  auto files = LoadDagFolder(folder, {});
  if (files.empty()) GTEST_SKIP() << "no *.json files in " << folder;
  for (const auto& file : files) {
    EXPECT_THAT(file.errors, IsEmpty()) << file.path;
    EXPECT_NE(file.dag, nullptr) << file.path;
  }
}

}  // namespace
}  // namespace dagd::scheduler
