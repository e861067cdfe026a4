#include "dagd/scheduler/decisions.hpp"

#include <gtest/gtest.h>

#include "dagd/scheduler/dag_parser.hpp"

namespace dagd::scheduler {
namespace {

using namespace std::chrono_literals;

const TimePoint kNow = TimePoint(Duration(1'700'000'000'000'000));

DagPtr MakeDag(const std::string& tasks_json) {
  ParseResult r =
      ParseDag(std::string_view(R"({"dag_id": "d", "tasks": )" + tasks_json + "}"), ParseOptions{});
  EXPECT_TRUE(r.errors.empty()) << (r.errors.empty() ? "" : r.errors.front());
  return r.dag;
}

std::vector<TaskInstance> Fresh(const Dag& dag) {
  std::vector<TaskInstance> tis(dag.tasks.size());
  for (size_t i = 0; i < tis.size(); ++i) {
    tis[i].task_id = dag.tasks[i].task_id;
    tis[i].max_tries = dag.tasks[i].retries;
  }
  return tis;
}

TaskInstance& At(const Dag& dag, std::vector<TaskInstance>& tis, const std::string& id) {
  return tis[*dag.IndexOf(id)];
}

std::vector<std::string> Ids(const Dag& dag, const std::vector<size_t>& indices) {
  std::vector<std::string> ids;
  for (size_t i : indices) ids.push_back(dag.tasks[i].task_id);
  return ids;
}

const char* kChain = R"([
  {"task_id": "a", "operator": "empty"},
  {"task_id": "b", "operator": "empty", "upstream": ["a"]},
  {"task_id": "c", "operator": "empty", "upstream": ["b"]}])";

TEST(Decisions, OnlyRootsAreQueuedAtFirst) {
  DagPtr dag = MakeDag(kChain);
  auto tis = Fresh(*dag);
  RunDecision d = DecideRun(*dag, tis, kNow, 16);
  EXPECT_EQ(Ids(*dag, d.to_queue), std::vector<std::string>{"a"});
  EXPECT_FALSE(d.finish);
}

TEST(Decisions, DownstreamIsQueuedWhenUpstreamSucceeds) {
  DagPtr dag = MakeDag(kChain);
  auto tis = Fresh(*dag);
  At(*dag, tis, "a").state = TaskState::kSuccess;
  RunDecision d = DecideRun(*dag, tis, kNow, 16);
  EXPECT_EQ(Ids(*dag, d.to_queue), std::vector<std::string>{"b"});
}

TEST(Decisions, UpstreamFailedPropagatesThroughTheWholeChainInOneDecision) {
  DagPtr dag = MakeDag(kChain);
  auto tis = Fresh(*dag);
  At(*dag, tis, "a").state = TaskState::kFailed;
  RunDecision d = DecideRun(*dag, tis, kNow, 16);
  EXPECT_EQ(Ids(*dag, d.to_upstream_failed), (std::vector<std::string>{"b", "c"}));
  ASSERT_TRUE(d.finish);
  EXPECT_EQ(*d.finish, RunState::kFailed);
}

TEST(Decisions, SkipPropagatesAndTheRunSucceeds) {
  DagPtr dag = MakeDag(kChain);
  auto tis = Fresh(*dag);
  At(*dag, tis, "a").state = TaskState::kSkipped;
  RunDecision d = DecideRun(*dag, tis, kNow, 16);
  EXPECT_EQ(Ids(*dag, d.to_skip), (std::vector<std::string>{"b", "c"}));
  ASSERT_TRUE(d.finish);
  EXPECT_EQ(*d.finish, RunState::kSuccess);
}

TEST(Decisions, RunSucceedsWhenEveryTaskSucceeded) {
  DagPtr dag = MakeDag(kChain);
  auto tis = Fresh(*dag);
  for (auto& ti : tis) ti.state = TaskState::kSuccess;
  RunDecision d = DecideRun(*dag, tis, kNow, 16);
  ASSERT_TRUE(d.finish);
  EXPECT_EQ(*d.finish, RunState::kSuccess);
}

TEST(Decisions, AllDoneCleanupRunsAfterAFailureAndDecidesTheRunByLeaves) {
  DagPtr dag = MakeDag(R"([
    {"task_id": "a", "operator": "empty"},
    {"task_id": "cleanup", "operator": "empty", "upstream": ["a"], "trigger_rule": "all_done"}])");
  auto tis = Fresh(*dag);
  At(*dag, tis, "a").state = TaskState::kFailed;
  RunDecision d = DecideRun(*dag, tis, kNow, 16);
  EXPECT_EQ(Ids(*dag, d.to_queue), std::vector<std::string>{"cleanup"});
  At(*dag, tis, "cleanup").state = TaskState::kSuccess;
  EXPECT_EQ(RunOutcome(*dag, tis), RunState::kSuccess);
}

TEST(Decisions, FreeSlotsBoundTheQueueAndPriorityWeightOrdersIt) {
  DagPtr dag = MakeDag(R"([
    {"task_id": "low", "operator": "empty", "priority_weight": 1},
    {"task_id": "high", "operator": "empty", "priority_weight": 10},
    {"task_id": "mid", "operator": "empty", "priority_weight": 5}])");
  auto tis = Fresh(*dag);
  RunDecision d = DecideRun(*dag, tis, kNow, 2);
  EXPECT_EQ(Ids(*dag, d.to_queue), (std::vector<std::string>{"high", "mid"}));
  EXPECT_FALSE(d.finish);
  EXPECT_TRUE(DecideRun(*dag, tis, kNow, 0).to_queue.empty());
}

TEST(Decisions, RetryIsQueuedOnlyOnceItsDelayHasPassed) {
  DagPtr dag = MakeDag(R"([{"task_id": "a", "operator": "empty", "retries": 1}])");
  auto tis = Fresh(*dag);
  tis[0].state = TaskState::kUpForRetry;
  tis[0].next_retry_at = kNow + 5s;
  RunDecision early = DecideRun(*dag, tis, kNow, 16);
  EXPECT_TRUE(early.to_queue.empty());
  ASSERT_TRUE(early.next_wakeup);
  EXPECT_EQ(*early.next_wakeup, kNow + 5s);
  EXPECT_EQ(DecideRun(*dag, tis, kNow + 5s, 16).to_queue.size(), 1u);
}

TEST(Decisions, FailedTryGoesUpForRetryWhileTriesRemainThenFails) {
  DagPtr dag =
      MakeDag(R"([{"task_id": "a", "operator": "empty", "retries": 2, "retry_delay": "10s"}])");
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

TEST(Decisions, OrphanedRunningTryIsRetriedAndQueuedTryKept) {
  TaskInstance running;
  running.state = TaskState::kRunning;
  running.try_number = 1;
  running.start_date = kNow - 3s;
  TaskInstance recovered = RecoverOrphan(running, kNow);
  EXPECT_EQ(recovered.state, TaskState::kUpForRetry);
  EXPECT_EQ(recovered.max_tries, 1);
  TaskInstance queued;
  queued.state = TaskState::kQueued;
  EXPECT_EQ(RecoverOrphan(queued, kNow).state, TaskState::kQueued);
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

TEST(Decisions, FanOutQueuesEveryBranchAndJoinWaitsForAll) {
  DagPtr dag = MakeDag(R"([
    {"task_id": "start", "operator": "empty"},
    {"task_id": "w1", "operator": "empty", "upstream": ["start"]},
    {"task_id": "w2", "operator": "empty", "upstream": ["start"]},
    {"task_id": "join", "operator": "empty", "upstream": ["w1", "w2"]}])");
  auto tis = Fresh(*dag);
  At(*dag, tis, "start").state = TaskState::kSuccess;
  EXPECT_EQ(Ids(*dag, DecideRun(*dag, tis, kNow, 16).to_queue),
            (std::vector<std::string>{"w1", "w2"}));
  At(*dag, tis, "w1").state = TaskState::kSuccess;
  At(*dag, tis, "w2").state = TaskState::kRunning;
  EXPECT_TRUE(DecideRun(*dag, tis, kNow, 16).to_queue.empty());
  At(*dag, tis, "w2").state = TaskState::kSuccess;
  EXPECT_EQ(Ids(*dag, DecideRun(*dag, tis, kNow, 16).to_queue), std::vector<std::string>{"join"});
}

}  // namespace
}  // namespace dagd::scheduler
