#include "dagd/scheduler/decisions.hpp"

#include <gtest/gtest.h>

#include "dagd/scheduler/dag_parser.hpp"

namespace dagd::scheduler {
namespace {

using namespace std::chrono_literals;

const TimePoint kNow = TimePoint(Duration(1'700'000'000'000'000));

// `fields`: more top-level fields, each followed by a comma.
DagPtr MakeDag(const std::string& tasks_json, const std::string& fields = "") {
  ParseResult r = ParseDag(
      std::string_view(R"({"dag_id": "d", )" + fields + R"("tasks": )" + tasks_json + "}"),
      ParseOptions{});
  EXPECT_TRUE(r.errors.empty()) << (r.errors.empty() ? "" : r.errors.front());
  return r.dag;
}

std::vector<TaskInstance> Fresh(const Dag& dag) {
  std::vector<TaskInstance> tis(dag.tasks.size());
  for (size_t i = 0; i < tis.size(); ++i) {
    tis[i].id = "ti-" + dag.tasks[i].task_id;
    tis[i].task_id = dag.tasks[i].task_id;
    tis[i].max_tries = dag.tasks[i].retries;
  }
  return tis;
}

// A running run of `dag` with fresh task instances.
ActiveRun Running(const DagPtr& dag) {
  DagRun run;
  run.id = 1;
  run.dag_id = dag->dag_id;
  run.state = RunState::kRunning;
  return ActiveRun(run, dag, Fresh(*dag));
}

CandidateDecisions Decide(ActiveRun& run, TimePoint now = kNow, bool draining = false) {
  return DecideCandidates(run, now, /*epoch=*/7, draining, [](const TaskInstance&) {
    return false;
  });
}

size_t Index(const ActiveRun& run, const std::string& task_id) {
  return *run.dag().IndexOf(task_id);
}

// Sets one task's state as a worker's result would.
void SetState(ActiveRun& run, const std::string& task_id, TaskState state) {
  TaskInstance ti = run.ti(Index(run, task_id));
  ti.state = state;
  run.Set(Index(run, task_id), ti);
}

std::vector<std::string> Changed(const ActiveRun& run, const CandidateDecisions& d,
                                 TaskState state) {
  std::vector<std::string> ids;
  for (const TaskChange& c : d.changes) {
    if (run.ti(c.index).state == state) ids.push_back(run.dag().tasks[c.index].task_id);
  }
  return ids;
}

std::vector<std::string> Ids(const Dag& dag, const std::vector<size_t>& indices) {
  std::vector<std::string> ids;
  for (size_t i : indices) ids.push_back(dag.tasks[i].task_id);
  return ids;
}

const char* kBashChain = R"([
  {"task_id": "a", "operator": "bash", "bash_command": "true"},
  {"task_id": "b", "operator": "bash", "bash_command": "true", "upstream": ["a"]},
  {"task_id": "c", "operator": "bash", "bash_command": "true", "upstream": ["b"]}])";

TEST(Decisions, OnlyRootsAreQueuedAtFirst) {
  ActiveRun run = Running(MakeDag(kBashChain));
  CandidateDecisions d = Decide(run);
  EXPECT_EQ(Ids(run.dag(), d.to_submit), std::vector<std::string>{"a"});
  ASSERT_EQ(d.changes.size(), 1u);
  EXPECT_EQ(d.changes[0].kind, TiTransition::Kind::kQueue);
  EXPECT_EQ(d.changes[0].before.state, TaskState::kNone);
  const TaskInstance& a = run.ti(Index(run, "a"));
  EXPECT_EQ(a.state, TaskState::kQueued);
  EXPECT_EQ(a.try_number, 1);
  EXPECT_EQ(a.owner_epoch, 7);
  EXPECT_FALSE(d.finish);
  EXPECT_TRUE(run.candidates().empty());
}

TEST(Decisions, DownstreamIsQueuedWhenUpstreamSucceedsAndNothingElseIsLookedAt) {
  ActiveRun run = Running(MakeDag(kBashChain));
  Decide(run);
  SetState(run, "a", TaskState::kSuccess);
  EXPECT_EQ(run.candidates(), (std::set<size_t>{Index(run, "b")}));
  CandidateDecisions d = Decide(run);
  EXPECT_EQ(Ids(run.dag(), d.to_submit), std::vector<std::string>{"b"});
}

TEST(Decisions, UpstreamFailedPropagatesThroughTheWholeChainInOneDecision) {
  ActiveRun run = Running(MakeDag(kBashChain));
  Decide(run);
  SetState(run, "a", TaskState::kFailed);
  CandidateDecisions d = Decide(run);
  EXPECT_EQ(Changed(run, d, TaskState::kUpstreamFailed), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(d.finish, RunState::kFailed);
}

TEST(Decisions, SkipPropagatesAndTheRunSucceeds) {
  ActiveRun run = Running(MakeDag(kBashChain));
  Decide(run);
  SetState(run, "a", TaskState::kSkipped);
  CandidateDecisions d = Decide(run);
  EXPECT_EQ(Changed(run, d, TaskState::kSkipped), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(d.finish, RunState::kSuccess);
}

TEST(Decisions, AChainOfEmptyTasksSucceedsInOneDecisionWithoutAWorker) {
  ActiveRun run = Running(MakeDag(R"([
    {"task_id": "a", "operator": "empty"},
    {"task_id": "b", "operator": "empty", "upstream": ["a"]},
    {"task_id": "c", "operator": "empty", "upstream": ["b"]}])"));
  CandidateDecisions d = Decide(run);
  EXPECT_TRUE(d.to_submit.empty());
  EXPECT_EQ(Changed(run, d, TaskState::kSuccess), (std::vector<std::string>{"a", "b", "c"}));
  for (const TaskChange& c : d.changes) EXPECT_EQ(c.kind, TiTransition::Kind::kSettle);
  EXPECT_EQ(run.ti(2).try_number, 1);
  EXPECT_EQ(run.ti(2).start_date, kNow);
  EXPECT_EQ(d.finish, RunState::kSuccess);
}

TEST(Decisions, AllDoneCleanupRunsAfterAFailureAndDecidesTheRunByLeaves) {
  ActiveRun run = Running(MakeDag(R"([
    {"task_id": "a", "operator": "bash", "bash_command": "false"},
    {"task_id": "cleanup", "operator": "bash", "bash_command": "true", "upstream": ["a"],
     "trigger_rule": "all_done"}])"));
  Decide(run);
  SetState(run, "a", TaskState::kFailed);
  EXPECT_EQ(Ids(run.dag(), Decide(run).to_submit), std::vector<std::string>{"cleanup"});
  SetState(run, "cleanup", TaskState::kSuccess);
  CandidateDecisions d = Decide(run);
  EXPECT_EQ(d.finish, RunState::kSuccess);
}

TEST(Decisions, FreeSlotsBoundTheQueueAndPriorityWeightOrdersIt) {
  ActiveRun run = Running(MakeDag(R"([
    {"task_id": "low", "operator": "bash", "bash_command": "true", "priority_weight": 1},
    {"task_id": "high", "operator": "bash", "bash_command": "true", "priority_weight": 10},
    {"task_id": "mid", "operator": "bash", "bash_command": "true", "priority_weight": 5}])",
                                 R"("max_active_tasks": 2, )"));
  EXPECT_EQ(Ids(run.dag(), Decide(run).to_submit), (std::vector<std::string>{"high", "mid"}));
  EXPECT_TRUE(run.candidates().empty());
  EXPECT_TRUE(Decide(run).to_submit.empty());
  SetState(run, "high", TaskState::kSuccess);  // frees a slot: the task waiting for one runs
  EXPECT_EQ(Ids(run.dag(), Decide(run).to_submit), std::vector<std::string>{"low"});
}

TEST(Decisions, RetryIsQueuedOnlyOnceItsDelayHasPassed) {
  ActiveRun run = Running(MakeDag(
      R"([{"task_id": "a", "operator": "bash", "bash_command": "true", "retries": 1}])"));
  Decide(run);
  TaskInstance a = run.ti(0);
  a.state = TaskState::kUpForRetry;
  a.next_retry_at = kNow + 5s;
  run.Set(0, a);
  CandidateDecisions early = Decide(run);
  EXPECT_TRUE(early.to_submit.empty());
  ASSERT_EQ(early.wakeups.size(), 1u);
  EXPECT_EQ(early.wakeups[0], std::make_pair(kNow + 5s, size_t{0}));
  run.candidates().insert(0);  // the timer fired
  CandidateDecisions due = Decide(run, kNow + 5s);
  ASSERT_EQ(due.to_submit.size(), 1u);
  EXPECT_EQ(run.ti(0).try_number, 2);
}

TEST(Decisions, ATaskAlreadyChangedInTheBatchIsLeftForTheNextStep) {
  ActiveRun run = Running(MakeDag(kBashChain));
  CandidateDecisions d = DecideCandidates(run, kNow, 7, false, [](const TaskInstance& ti) {
    return ti.task_id == "a";
  });
  EXPECT_TRUE(d.changes.empty());
  EXPECT_TRUE(d.more);
  EXPECT_EQ(run.candidates().count(Index(run, "a")), 1u);
}

TEST(Decisions, NothingStartsWhileDraining) {
  ActiveRun run = Running(MakeDag(R"([
    {"task_id": "a", "operator": "bash", "bash_command": "true"},
    {"task_id": "e", "operator": "empty"}])"));
  CandidateDecisions d = Decide(run, kNow, /*draining=*/true);
  EXPECT_TRUE(d.changes.empty());
  EXPECT_TRUE(d.more);
  EXPECT_FALSE(d.finish);
}

TEST(Decisions, AQueuedRunIsNotDecided) {
  ActiveRun run = Running(MakeDag(kBashChain));
  run.run().state = RunState::kQueued;
  EXPECT_TRUE(Decide(run).changes.empty());
}

TEST(Decisions, AJoinCountsItsUpstreamsIncrementally) {
  ActiveRun run = Running(MakeDag(R"([
    {"task_id": "start", "operator": "bash", "bash_command": "true"},
    {"task_id": "w1", "operator": "bash", "bash_command": "true", "upstream": ["start"]},
    {"task_id": "w2", "operator": "bash", "bash_command": "true", "upstream": ["start"]},
    {"task_id": "join", "operator": "bash", "bash_command": "true", "upstream": ["w1", "w2"]}])"));
  Decide(run);
  SetState(run, "start", TaskState::kSuccess);
  EXPECT_EQ(Ids(run.dag(), Decide(run).to_submit), (std::vector<std::string>{"w1", "w2"}));
  SetState(run, "w1", TaskState::kSuccess);
  SetState(run, "w2", TaskState::kRunning);
  EXPECT_EQ(run.upstream(Index(run, "join")).success, 1);
  EXPECT_TRUE(Decide(run).to_submit.empty());
  SetState(run, "w2", TaskState::kSuccess);
  EXPECT_EQ(run.upstream(Index(run, "join")).success, 2);
  EXPECT_EQ(Ids(run.dag(), Decide(run).to_submit), std::vector<std::string>{"join"});
  EXPECT_EQ(run.unfinished(), 1);
  EXPECT_EQ(run.active(), 1);
}

TEST(Decisions, FailedTryGoesUpForRetryWhileTriesRemainThenFails) {
  DagPtr dag =
      MakeDag(R"([{"task_id": "a", "operator": "bash", "bash_command": "true", "retries": 2, "retry_delay": "10s"}])");
  TaskInstance ti = Fresh(*dag)[0];
  TaskOutcome failed{TaskOutcome::Kind::kFailed, "boom", {}};
  ti = Queue(ti, kNow);
  EXPECT_EQ(ti.try_number, 1);
  ti = Finish(ti, dag->tasks[0], failed, kNow);
  EXPECT_EQ(ti.state, TaskState::kUpForRetry);
  EXPECT_EQ(*ti.next_retry_at, kNow + 10s);
  ti = Finish(Queue(ti, kNow), dag->tasks[0], failed, kNow);
  EXPECT_EQ(ti.state, TaskState::kUpForRetry);
  ti = Finish(Queue(ti, kNow), dag->tasks[0], failed, kNow);
  EXPECT_EQ(ti.try_number, 3);
  EXPECT_EQ(ti.state, TaskState::kFailed);
}

TEST(Decisions, InterruptedTryIsRetriedAtOnceWithoutUsingARetry) {
  DagPtr dag = MakeDag(R"([{"task_id": "a", "operator": "empty"}])");
  TaskInstance ti = Queue(Fresh(*dag)[0], kNow);
  ti = Finish(ti, dag->tasks[0], TaskOutcome{TaskOutcome::Kind::kInterrupted, "stop", {}}, kNow);
  EXPECT_EQ(ti.state, TaskState::kUpForRetry);
  EXPECT_EQ(ti.max_tries, 1);
  EXPECT_EQ(*ti.next_retry_at, kNow);
}

TEST(Decisions, ExponentialBackoffDoublesUpToTheCap) {
  TaskSpec task;
  task.retry_delay = 10s;
  task.retry_exponential_backoff = true;
  task.max_retry_delay = 30s;
  EXPECT_EQ(NextRetryAt(task, 1, kNow), kNow + 10s);
  EXPECT_EQ(NextRetryAt(task, 2, kNow), kNow + 20s);
  EXPECT_EQ(NextRetryAt(task, 3, kNow), kNow + 30s);
}

TEST(Decisions, OrphanedRunningOrQueuedTryIsRetriedWithoutUsingARetry) {
  TaskInstance running;
  running.state = TaskState::kRunning;
  running.try_number = 1;
  running.start_date = kNow - 3s;
  TaskInstance recovered = RecoverOrphan(running, kNow);
  EXPECT_EQ(recovered.state, TaskState::kUpForRetry);
  EXPECT_EQ(recovered.max_tries, 1);
  TaskInstance queued;
  queued.state = TaskState::kQueued;
  queued.try_number = 1;
  EXPECT_EQ(RecoverOrphan(queued, kNow).state, TaskState::kUpForRetry);
  EXPECT_EQ(RecoverOrphan(queued, kNow).max_tries, 1);
}

TEST(Decisions, AStartedTryRecordsItsProcessGroupAndTheNextTryStartsWithoutIt) {
  TaskInstance ti;
  ti.state = TaskState::kQueued;
  ti.try_number = 1;
  TaskEvent started;
  started.kind = TaskEvent::Kind::kStarted;
  started.at = kNow;
  started.hostname = "h";
  started.pid = 77;
  started.process = TryProcess{77, "boot:1234"};
  ti = MarkRunning(ti, started);
  ASSERT_TRUE(ti.process.has_value());
  EXPECT_EQ(*ti.process, (TryProcess{77, "boot:1234"}));
  TaskInstance next = Queue(RecoverOrphan(ti, kNow), kNow);
  EXPECT_EQ(next.try_number, 2);
  EXPECT_EQ(next.process, std::nullopt);
}

TEST(Decisions, ATryClearedWhileRunningEndsUpForRetryAtOnceWithItsFullRetries) {
  TaskSpec task;
  task.retries = 2;
  task.retry_delay = 300s;
  TaskInstance ti;
  ti.state = TaskState::kRestarting;
  ti.try_number = 3;
  ti.max_tries = 2;  // its retries were used up before the clear
  ti.start_date = kNow - 4s;
  TaskInstance restarted = Restart(ti, task, kNow);
  EXPECT_EQ(restarted.state, TaskState::kUpForRetry);
  EXPECT_EQ(restarted.next_retry_at, kNow) << "no retry delay: the user asked for a rerun";
  EXPECT_EQ(restarted.max_tries, 3 + 2);
  EXPECT_EQ(restarted.duration, 4.0);
  EXPECT_EQ(Queue(restarted, kNow).try_number, 4);
}

}  // namespace
}  // namespace dagd::scheduler
