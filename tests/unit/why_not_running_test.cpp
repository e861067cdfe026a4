#include "dagd/scheduler/why_not_running.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dagd/scheduler/dag_parser.hpp"

namespace dagd::scheduler {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const TimePoint kNow = TimePoint(Duration(1'700'000'000'000'000));

// extract → transform → load, plus `report` (one_success after extract and transform).
DagPtr MakeDag(const std::string& fields = "") {
  ParseResult r = ParseDag(std::string_view(R"({"dag_id": "d", )" + fields + R"("tasks": [
      {"task_id": "extract", "operator": "bash", "bash_command": "true"},
      {"task_id": "transform", "operator": "bash", "bash_command": "true",
       "upstream": ["extract"], "retries": 2},
      {"task_id": "load", "operator": "bash", "bash_command": "true",
       "upstream": ["transform"]},
      {"task_id": "report", "operator": "bash", "bash_command": "true",
       "upstream": ["extract", "transform"], "trigger_rule": "one_success"}]})"),
                           ParseOptions{});
  EXPECT_TRUE(r.errors.empty()) << (r.errors.empty() ? "" : r.errors.front());
  return r.dag;
}

// A running run of the DAG with every task instance in state none.
struct Fixture {
  DagPtr dag;
  DagRun run;
  WhyInput input;

  explicit Fixture(const std::string& fields = "", RunState state = RunState::kRunning)
      : dag(MakeDag(fields)) {
    run.id = 5;
    run.dag_id = "d";
    run.run_id = "r";
    run.state = state;
    input.dag = dag.get();
    input.run = &run;
    input.tis.resize(dag->tasks.size());
    for (size_t i = 0; i < dag->tasks.size(); ++i) input.tis[i].task_id = dag->tasks[i].task_id;
  }
  TaskInstance& Ti(const std::string& task_id) { return input.tis[*dag->IndexOf(task_id)]; }
  std::vector<Dependency> Explain(const std::string& task_id, TimePoint now = kNow) {
    input.task = *dag->IndexOf(task_id);
    return ExplainWhyNotRunning(input, now);
  }
};

std::vector<std::string> Names(const std::vector<Dependency>& deps) {
  std::vector<std::string> out;
  for (const auto& d : deps) out.push_back(d.name);
  return out;
}

TEST(WhyNotRunning, NothingBlocksARootTaskOfARunningRun) {
  Fixture f;
  EXPECT_TRUE(f.Explain("extract").empty());
}

TEST(WhyNotRunning, RunningAndQueuedTasksHaveNoReasons) {
  Fixture f;
  f.Ti("extract").state = TaskState::kRunning;
  EXPECT_TRUE(f.Explain("extract").empty());
  f.Ti("extract").state = TaskState::kQueued;
  EXPECT_TRUE(f.Explain("extract").empty());
}

TEST(WhyNotRunning, UpstreamNotDoneNamesTheTasksTheirStatesAndTheRule) {
  Fixture f;
  f.Ti("extract").state = TaskState::kRunning;
  const auto deps = f.Explain("transform");
  ASSERT_EQ(Names(deps), std::vector<std::string>{"Trigger Rule"});
  EXPECT_EQ(deps[0].reason,
            "Task's trigger rule 'all_success' requires all upstream tasks to succeed; 1 of its 1 "
            "upstream task is not done: extract (running).");
}

TEST(WhyNotRunning, OnlyTheUpstreamTasksNotDoneAreListed) {
  Fixture f;
  f.Ti("extract").state = TaskState::kFailed;
  f.Ti("transform").state = TaskState::kUpForRetry;
  const auto deps = f.Explain("report");
  ASSERT_EQ(Names(deps), std::vector<std::string>{"Trigger Rule"});
  EXPECT_THAT(deps[0].reason, HasSubstr("'one_success' requires at least one upstream task to "
                                        "succeed; 1 of its 2 upstream tasks is not done: "
                                        "transform (up_for_retry)."));
}

TEST(WhyNotRunning, ATriggerRuleThatCanNoLongerBeMetSaysWhatTheSchedulerWillDo) {
  Fixture f;
  f.Ti("transform").state = TaskState::kFailed;
  const auto deps = f.Explain("load");
  ASSERT_EQ(Names(deps), std::vector<std::string>{"Trigger Rule"});
  EXPECT_THAT(deps[0].reason, HasSubstr("can no longer be met (upstream: transform (failed))"));
  EXPECT_THAT(deps[0].reason, HasSubstr("upstream_failed"));
}

TEST(WhyNotRunning, APausedDagIsAReason) {
  Fixture f;
  f.input.paused = true;
  const auto deps = f.Explain("extract");
  ASSERT_EQ(Names(deps), std::vector<std::string>{"Dag Not Paused"});
  EXPECT_EQ(deps[0].reason, "Task's DAG 'd' is paused.");
}

TEST(WhyNotRunning, RetryWaitSaysUntilWhen) {
  Fixture f;
  f.Ti("extract").state = TaskState::kSuccess;
  TaskInstance& ti = f.Ti("transform");
  ti.state = TaskState::kUpForRetry;
  ti.try_number = 1;
  ti.next_retry_at = kNow + 90s;
  const auto deps = f.Explain("transform");
  ASSERT_EQ(Names(deps), std::vector<std::string>{"Not In Retry Period"});
  EXPECT_THAT(deps[0].reason,
              HasSubstr("try 1 failed and the next try starts at " + FormatRfc3339(kNow + 90s)));
  EXPECT_TRUE(f.Explain("transform", kNow + 90s).empty()) << "the retry is due";
}

TEST(WhyNotRunning, FinishedStatesAreNotRunnable) {
  for (TaskState state :
       {TaskState::kSuccess, TaskState::kFailed, TaskState::kSkipped, TaskState::kUpstreamFailed}) {
    Fixture f;
    f.Ti("extract").state = state;
    const auto deps = f.Explain("extract");
    ASSERT_EQ(Names(deps), std::vector<std::string>{"Task Instance State"});
    EXPECT_THAT(deps[0].reason,
                HasSubstr("Task is in the '" + std::string(ToString(state)) + "' state"));
  }
}

TEST(WhyNotRunning, MaxActiveTasksReachedInTheRun) {
  Fixture f(R"("max_active_tasks": 1, )");
  f.Ti("extract").state = TaskState::kSuccess;
  f.Ti("transform").state = TaskState::kRunning;
  const auto deps = f.Explain("report");  // one_success: may run now
  ASSERT_EQ(Names(deps), std::vector<std::string>{"Max Active Tasks"});
  EXPECT_EQ(deps[0].reason,
            "The run has reached its DAG's max_active_tasks (1): 1 task instance is queued or "
            "running.");
}

TEST(WhyNotRunning, AQueuedRunWaitsForMaxActiveRuns) {
  Fixture f(R"("max_active_runs": 1, )", RunState::kQueued);
  f.input.admission.running = 1;
  f.input.admission.max_active_runs = 1;
  f.input.admission.queued = {{5, std::nullopt}};
  const auto deps = f.Explain("extract");
  ASSERT_EQ(Names(deps), (std::vector<std::string>{"Dagrun Running", "Max Active Runs"}));
  EXPECT_EQ(deps[1].reason, "The DAG has reached its max_active_runs (1): 1 run is running.");
}

TEST(WhyNotRunning, AQueuedRunBehindOlderQueuedRuns) {
  Fixture f("", RunState::kQueued);
  f.input.admission.running = 1;
  f.input.admission.max_active_runs = 3;
  f.input.admission.queued = {{3, std::nullopt}, {4, std::nullopt}, {5, std::nullopt}};
  const auto deps = f.Explain("extract");
  ASSERT_EQ(Names(deps), (std::vector<std::string>{"Dagrun Running", "Max Active Runs"}));
  EXPECT_THAT(deps[1].reason, HasSubstr("go to 2 older queued runs first"));
}

TEST(WhyNotRunning, AQueuedRunThatAdmissionStartsOnlyWaitsForTheLoop) {
  Fixture f("", RunState::kQueued);
  f.input.admission.running = 1;
  f.input.admission.max_active_runs = 3;
  f.input.admission.queued = {{4, kNow + 1h}, {5, std::nullopt}};  // the older one is not due
  EXPECT_EQ(Names(f.Explain("extract")), std::vector<std::string>{"Dagrun Running"});
}

TEST(WhyNotRunning, AQueuedRunNotDueYetSaysWhen) {
  Fixture f("", RunState::kQueued);
  f.run.run_after = kNow + 1h;
  f.input.admission.queued = {{5, f.run.run_after}};
  const auto deps = f.Explain("extract");
  ASSERT_EQ(Names(deps), (std::vector<std::string>{"Dagrun Running", "Run After"}));
  EXPECT_THAT(deps[1].reason, HasSubstr(FormatRfc3339(kNow + 1h)));
}

TEST(WhyNotRunning, AQueuedRunNotDueYetAndBeyondMaxActiveRunsSaysBoth) {
  Fixture f("", RunState::kQueued);
  f.run.run_after = kNow + 1h;
  f.input.admission.running = 16;
  f.input.admission.queued = {{5, f.run.run_after}};
  EXPECT_EQ(Names(f.Explain("extract")),
            (std::vector<std::string>{"Dagrun Running", "Run After", "Max Active Runs"}));
}

TEST(WhyNotRunning, AQueuedRunOfAPausedDag) {
  Fixture f("", RunState::kQueued);
  f.input.paused = true;
  f.input.admission.paused = true;
  f.input.admission.queued = {{5, std::nullopt}};
  EXPECT_EQ(Names(f.Explain("extract")),
            (std::vector<std::string>{"Dag Not Paused", "Dagrun Running"}));
}

// A queued run of a backfill, first in the DAG's queue, with DAG slots free.
struct BackfillRun : Fixture {
  BackfillRun(BackfillGate gate, int running) : Fixture("", RunState::kQueued) {
    run.backfill_id = gate.id;
    input.admission.queued = {{5, std::nullopt}};
    input.backfill = gate;
    input.backfill_running = running;
  }
};

TEST(WhyNotRunning, AQueuedRunOfAPausedBackfillSaysHowToUnpauseIt) {
  BackfillRun f({.id = 7, .is_paused = true, .completed = false, .max_active_runs = 2}, 0);
  const auto deps = f.Explain("extract");
  ASSERT_EQ(Names(deps), (std::vector<std::string>{"Dagrun Running", "Backfill Not Paused"}));
  EXPECT_EQ(deps[1].reason,
            "The run belongs to backfill 7, which is paused: its runs start once it is unpaused "
            "(POST /api/v2/backfills/7/unpause).");
}

TEST(WhyNotRunning, AQueuedRunOfABackfillAtItsMaxActiveRuns) {
  BackfillRun f({.id = 7, .is_paused = false, .completed = false, .max_active_runs = 2}, 2);
  const auto deps = f.Explain("extract");
  ASSERT_EQ(Names(deps), (std::vector<std::string>{"Dagrun Running", "Backfill Max Active Runs"}));
  EXPECT_EQ(deps[1].reason,
            "The run's backfill 7 has reached its max_active_runs (2): 2 of its runs are running.");
}

TEST(WhyNotRunning, AQueuedRunOfACancelledBackfillNeverStarts) {
  BackfillRun f({.id = 7, .is_paused = true, .completed = true, .max_active_runs = 2}, 0);
  const auto deps = f.Explain("extract");
  ASSERT_EQ(Names(deps), (std::vector<std::string>{"Dagrun Running", "Backfill Running"}));
  EXPECT_THAT(deps[1].reason, HasSubstr("completed or cancelled"));
}

TEST(WhyNotRunning, AQueuedRunOfABackfillWithAFreeSlotOnlyWaitsForTheLoop) {
  BackfillRun f({.id = 7, .is_paused = false, .completed = false, .max_active_runs = 2}, 1);
  EXPECT_EQ(Names(f.Explain("extract")), std::vector<std::string>{"Dagrun Running"});
}

TEST(WhyNotRunning, ABackfillRunNotDueYetAndPausedSaysBoth) {
  BackfillRun f({.id = 7, .is_paused = true, .completed = false, .max_active_runs = 2}, 0);
  f.run.run_after = kNow + 1h;
  f.input.admission.queued = {{5, f.run.run_after}};
  EXPECT_EQ(Names(f.Explain("extract")),
            (std::vector<std::string>{"Dagrun Running", "Run After", "Backfill Not Paused"}));
}

TEST(WhyNotRunning, AFinishedRunSchedulesNothing) {
  Fixture f("", RunState::kFailed);
  const auto deps = f.Explain("extract");
  ASSERT_EQ(Names(deps), std::vector<std::string>{"Dagrun Running"});
  EXPECT_THAT(deps[0].reason, HasSubstr("'failed' state"));
}

}  // namespace
}  // namespace dagd::scheduler
