// ThreadPoolExecutor with a real thread pool and real child processes.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dagd/executors/job_registry.hpp"
#include "dagd/executors/thread_pool_executor.hpp"
#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::executors {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using scheduler::Dag;
using scheduler::TaskAssignment;
using scheduler::TaskEvent;
using scheduler::TaskOutcome;
using scheduler::TaskSpec;

// Collects the events of every try, keyed by ti_id.
class Recorder {
 public:
  scheduler::TaskEventSink Sink() {
    return [this](TaskEvent e) {
      std::lock_guard lock(mu_);
      events_[e.ti_id].push_back(std::move(e));
    };
  }
  std::vector<TaskEvent> Of(const std::string& ti_id) {
    std::lock_guard lock(mu_);
    return events_[ti_id];
  }
  size_t TriesWithEvents() {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& [id, events] : events_) n += events.empty() ? 0 : 1;
    return n;
  }
  // The single kFinished outcome, after checking the started-then-finished sequence.
  TaskOutcome Outcome(const std::string& ti_id) {
    auto events = Of(ti_id);
    EXPECT_EQ(events.size(), 2u) << ti_id;
    if (events.size() != 2) return {};
    EXPECT_EQ(events[0].kind, TaskEvent::Kind::kStarted);
    EXPECT_EQ(events[1].kind, TaskEvent::Kind::kFinished);
    return events[1].outcome;
  }

 private:
  std::mutex mu_;  // guards events_
  std::map<std::string, std::vector<TaskEvent>> events_;
};

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// True when `pid` no longer runs: gone, or a zombie nobody reaped yet (PID 1 in a container may
// not reap orphans, and kill(pid, 0) succeeds on zombies).
bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return stat.empty() || (paren != std::string::npos && paren + 2 < stat.size() &&
                          (stat[paren + 2] == 'Z' || stat[paren + 2] == 'X'));
}

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dagd-executor-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static TaskSpec Spec(std::string task_id, std::string op) {
    TaskSpec t;
    t.task_id = std::move(task_id);
    t.operator_name = std::move(op);
    return t;
  }
  static TaskSpec Transform(std::string task_id, std::string job, Json args = Json::object()) {
    TaskSpec t = Spec(std::move(task_id), "transform");
    t.job = std::move(job);
    t.args = std::move(args);
    return t;
  }
  static TaskSpec Bash(std::string task_id, std::string command) {
    TaskSpec t = Spec(std::move(task_id), "bash");
    t.bash_command = std::move(command);
    return t;
  }

  // A one-task DAG and an assignment of its only task, with ti_id = task_id.
  TaskAssignment Assign(TaskSpec task, int try_number = 1, Json conf = Json::object()) {
    auto dag = std::make_shared<Dag>();
    dag->dag_id = "test_dag";
    dag->params = Json{{"who", "world"}, {"root", "/data"}};
    dag->tasks.push_back(std::move(task));
    TaskAssignment a;
    a.dag = dag;
    a.task_index = 0;
    a.run.dag_id = "test_dag";
    a.run.run_id = "manual__1";
    a.run.conf = std::move(conf);
    a.run.logical_date =
        scheduler::TimePoint(std::chrono::sys_days{2026y / 1 / 2}.time_since_epoch());
    a.ti_id = dag->tasks[0].task_id;
    a.try_number = try_number;
    a.max_tries = 2;
    a.log_path = LogPath(a.ti_id, try_number);
    return a;
  }
  fs::path LogPath(const std::string& task_id, int try_number) const {
    return dir_ / "logs" / "test_dag" / "manual__1" / task_id /
           (std::to_string(try_number) + ".log");
  }

  std::unique_ptr<ThreadPoolExecutor> MakeExecutor(int parallelism = 4,
                                                   std::chrono::milliseconds grace = 1000ms) {
    ExecutorOptions options;
    options.parallelism = parallelism;
    options.hostname = "test-host";
    options.kill_grace = grace;
    return std::make_unique<ThreadPoolExecutor>(options, registry_, clock_);
  }

  // Runs one assignment to its end and returns its outcome.
  TaskOutcome RunOne(TaskAssignment a, std::chrono::milliseconds grace = 1000ms) {
    auto executor = MakeExecutor(2, grace);
    const std::string id = a.ti_id;
    executor->Submit(std::move(a), recorder_.Sink());
    EXPECT_TRUE(executor->WaitIdle(20s));
    return recorder_.Outcome(id);
  }

  fs::path dir_;
  JobRegistry registry_;
  scheduler::SystemClock clock_;
  Recorder recorder_;
};

TEST_F(ExecutorTest, EmptyOperatorSucceedsAndReportsHostAndPid) {
  auto executor = MakeExecutor();
  executor->Submit(Assign(Spec("noop", "empty")), recorder_.Sink());
  ASSERT_TRUE(executor->WaitIdle(10s));
  auto events = recorder_.Of("noop");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, TaskEvent::Kind::kStarted);
  EXPECT_EQ(events[0].hostname, "test-host");
  EXPECT_EQ(events[0].pid, ::getpid());
  EXPECT_EQ(events[0].try_number, 1);
  EXPECT_EQ(events[1].kind, TaskEvent::Kind::kFinished);
  EXPECT_EQ(events[1].outcome.kind, TaskOutcome::Kind::kSuccess);
  EXPECT_TRUE(events[1].outcome.error.empty());
  EXPECT_LE(events[0].at, events[1].at);
}

TEST_F(ExecutorTest, TryLogIsCreatedWithHeaderAndOutcomeLines) {
  EXPECT_EQ(RunOne(Assign(Spec("noop", "empty"))).kind, TaskOutcome::Kind::kSuccess);
  const std::string log = ReadFile(LogPath("noop", 1));
  EXPECT_NE(log.find("task=noop try=1 max_tries=2 operator=empty dag=test_dag run=manual__1"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("dagd: outcome=success"), std::string::npos) << log;
  EXPECT_TRUE(std::regex_search(log, std::regex(R"(^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")));
}

TEST_F(ExecutorTest, TransformRunsTheJobWithRenderedArgsAndReturnsItsXcom) {
  registry_.Register("test.echo", [](JobContext& ctx) {
    ctx.Log("path is " + ctx.args()["path"].get<std::string>());
    ctx.XcomPush("path", ctx.args()["path"]);
    ctx.XcomPush("who", ctx.params()["who"]);
    ctx.XcomPush("ids", Json{ctx.dag_id(), ctx.run_id(), ctx.task_id(), ctx.try_number()});
    if (!ctx.logical_date()) throw std::runtime_error("no logical date");
  });
  auto a = Assign(Transform("echo", "test.echo", Json{{"path", "{{ params.root }}/{{ ds }}"}}), 2,
                  Json{{"who", "me"}});
  a.log_path = LogPath("echo", 2);
  const TaskOutcome outcome = RunOne(std::move(a));
  ASSERT_EQ(outcome.kind, TaskOutcome::Kind::kSuccess) << outcome.error;
  ASSERT_EQ(outcome.xcom.size(), 3u);
  EXPECT_EQ(outcome.xcom[0].key, "path");
  EXPECT_EQ(outcome.xcom[0].value, "/data/2026-01-02");
  EXPECT_EQ(outcome.xcom[1].value, "me");  // run conf overrides the param
  EXPECT_EQ(outcome.xcom[2].value, (Json{"test_dag", "manual__1", "echo", 2}));
  EXPECT_NE(ReadFile(LogPath("echo", 2)).find("] path is /data/2026-01-02\n"), std::string::npos);
}

TEST_F(ExecutorTest, ThrowingJobFailsWithTheExceptionText) {
  registry_.Register("test.boom", [](JobContext& ctx) {
    ctx.XcomPush("partial", 1);
    throw std::runtime_error("input file s3://raw/x is missing");
  });
  const TaskOutcome outcome = RunOne(Assign(Transform("boom", "test.boom")));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "input file s3://raw/x is missing");
  EXPECT_TRUE(outcome.xcom.empty());
  EXPECT_NE(ReadFile(LogPath("boom", 1)).find("outcome=failed error=\"input file"),
            std::string::npos);
}

TEST_F(ExecutorTest, JobThrowingANonStandardExceptionFailsWithoutCrashing) {
  registry_.Register("test.throw_int", [](JobContext&) { throw 42; });
  const TaskOutcome outcome = RunOne(Assign(Transform("weird", "test.throw_int")));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "job threw an exception that is not a std::exception");
}

TEST_F(ExecutorTest, UnregisteredJobFails) {
  const TaskOutcome outcome = RunOne(Assign(Transform("t", "nope.missing")));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "job 'nope.missing' is not registered");
}

TEST_F(ExecutorTest, BadTemplateInArgsFailsNamingTemplateAndTask) {
  registry_.Register("test.noop", [](JobContext&) {});
  const TaskOutcome outcome =
      RunOne(Assign(Transform("t", "test.noop", Json{{"x", "{{ params.nope }}"}})));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "template '{{ params.nope }}' in task 't': params has no key 'nope'");
}

TEST_F(ExecutorTest, UnwritableLogPathFailsTheTry) {
  std::ofstream(dir_ / "a_file") << "x";
  auto a = Assign(Spec("noop", "empty"));
  a.log_path = dir_ / "a_file" / "sub" / "1.log";
  const TaskOutcome outcome = RunOne(std::move(a));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_NE(outcome.error.find("cannot create log directory"), std::string::npos) << outcome.error;
}

TEST_F(ExecutorTest, BashExitZeroSucceedsWithStdoutAndStderrInTheLog) {
  const TaskOutcome outcome = RunOne(Assign(Bash("sh", "echo to-stdout; echo to-stderr >&2")));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSuccess) << outcome.error;
  const std::string log = ReadFile(LogPath("sh", 1));
  EXPECT_NE(log.find("\nto-stdout\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\nto-stderr\n"), std::string::npos) << log;
  EXPECT_NE(log.find("dagd: started process pid="), std::string::npos) << log;
}

TEST_F(ExecutorTest, BashNonZeroExitFailsWithTheStatus) {
  const TaskOutcome outcome = RunOne(Assign(Bash("sh", "echo out; echo oops >&2; exit 3")));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "command exited with status 3");
  const std::string log = ReadFile(LogPath("sh", 1));
  EXPECT_NE(log.find("\nout\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\noops\n"), std::string::npos) << log;
}

TEST_F(ExecutorTest, BashKilledBySignalFailsNamingTheSignal) {
  const TaskOutcome outcome = RunOne(Assign(Bash("sh", "kill -KILL $$")));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "command was killed by signal SIGKILL (9)");
}

TEST_F(ExecutorTest, BashGetsRenderedCommandEnvAndDagdVariables) {
  TaskSpec t = Bash("env_task",
                    "echo \"cmd={{ params.who }} env=$GREETING ids=$DAGD_DAG_ID/$DAGD_RUN_ID/"
                    "$DAGD_TASK_ID/$DAGD_TRY_NUMBER home=${HOME:+set}\"; read -r line || "
                    "echo stdin-empty");
  t.env = {{"GREETING", "hi {{ dag_run.conf.who }} on {{ ds_nodash }}"}};
  auto a = Assign(std::move(t), 3, Json{{"who", "me"}});
  a.log_path = LogPath("env_task", 3);
  const TaskOutcome outcome = RunOne(std::move(a));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSuccess) << outcome.error;
  const std::string log = ReadFile(LogPath("env_task", 3));
  EXPECT_NE(log.find("cmd=me env=hi me on 20260102 ids=test_dag/manual__1/env_task/3"),
            std::string::npos)
      << log;
  if (::getenv("HOME") != nullptr) {
    EXPECT_NE(log.find("home=set"), std::string::npos) << "the daemon's environment is kept";
  }
  EXPECT_NE(log.find("stdin-empty"), std::string::npos) << "stdin is /dev/null";
}

TEST_F(ExecutorTest, BashRunsInTheTaskCwd) {
  TaskSpec t = Bash("cwd_task", "pwd");
  t.cwd = (dir_ / "work").string();
  fs::create_directories(dir_ / "work");
  EXPECT_EQ(RunOne(Assign(std::move(t))).kind, TaskOutcome::Kind::kSuccess);
  EXPECT_NE(ReadFile(LogPath("cwd_task", 1)).find("\n" + (dir_ / "work").string() + "\n"),
            std::string::npos);
}

TEST_F(ExecutorTest, BashWithAMissingCwdFails) {
  TaskSpec t = Bash("cwd_task", "pwd");
  t.cwd = (dir_ / "does-not-exist").string();
  const TaskOutcome outcome = RunOne(Assign(std::move(t)));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_NE(outcome.error.find("cannot start /bin/bash in directory"), std::string::npos)
      << outcome.error;
}

TEST_F(ExecutorTest, BashBadTemplateFailsWithoutRunning) {
  const TaskOutcome outcome = RunOne(Assign(Bash("sh", "touch {{ params.nope }}")));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "template '{{ params.nope }}' in task 'sh': params has no key 'nope'");
}

TEST_F(ExecutorTest, BashExecutionTimeoutKillsTheWholeProcessGroup) {
  const fs::path pid_file = dir_ / "grandchild.pid";
  TaskSpec t = Bash("slow", "sleep 30 & echo $! > " + pid_file.string() + "; sleep 30; wait");
  t.execution_timeout = std::chrono::milliseconds(500);
  const auto start = std::chrono::steady_clock::now();
  const TaskOutcome outcome = RunOne(Assign(std::move(t)), 1000ms);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "execution_timeout of 0.5s exceeded");
  EXPECT_GE(elapsed, 500ms);
  EXPECT_LT(elapsed, 500ms + 1000ms + 1000ms);
  const pid_t grandchild = std::stoi(ReadFile(pid_file));
  ASSERT_GT(grandchild, 0);
  // The group got SIGTERM; give the kernel a moment to finish the processes off.
  for (int i = 0; i < 100 && !ProcessGone(grandchild); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(ProcessGone(grandchild)) << "background sleep " << grandchild << " survived";
  EXPECT_NE(ReadFile(LogPath("slow", 1)).find("sent SIGTERM to process group"), std::string::npos);
}

TEST_F(ExecutorTest, BashIgnoringSigtermIsKilledAfterTheGracePeriod) {
  const fs::path pid_file = dir_ / "grandchild.pid";
  // `trap '' TERM` makes bash and the sleeps it starts ignore SIGTERM.
  TaskSpec t =
      Bash("stubborn", "trap '' TERM; sleep 30 & echo $! > " + pid_file.string() + "; wait");
  t.execution_timeout = std::chrono::milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  const TaskOutcome outcome = RunOne(Assign(std::move(t)), 400ms);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "execution_timeout of 0.2s exceeded");
  EXPECT_GE(elapsed, 600ms);
  EXPECT_LT(elapsed, 3s);
  const pid_t grandchild = std::stoi(ReadFile(pid_file));
  for (int i = 0; i < 100 && !ProcessGone(grandchild); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(ProcessGone(grandchild));
  EXPECT_NE(ReadFile(LogPath("stubborn", 1)).find("sent SIGKILL to process group"),
            std::string::npos);
}

TEST_F(ExecutorTest, TransformExecutionTimeoutSetsTheTokenAndFailsTheTry) {
  std::atomic<bool> saw_cancel{false};
  registry_.Register("test.until_cancelled", [&saw_cancel](JobContext& ctx) {
    if (!ctx.WaitFor(10s)) saw_cancel = true;
  });
  TaskSpec t = Transform("slow", "test.until_cancelled");
  t.execution_timeout = std::chrono::milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  const TaskOutcome outcome = RunOne(Assign(std::move(t)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_TRUE(saw_cancel);
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "execution_timeout of 0.2s exceeded");
}

TEST_F(ExecutorTest, JobFinishingBeforeItsTimeoutSucceeds) {
  registry_.Register("test.quick", [](JobContext&) {});
  TaskSpec t = Transform("quick", "test.quick");
  t.execution_timeout = std::chrono::seconds(30);
  EXPECT_EQ(RunOne(Assign(std::move(t))).kind, TaskOutcome::Kind::kSuccess);
}

TEST_F(ExecutorTest, CancelRunningInterruptsJobsAndCommands) {
  registry_.Register("test.until_cancelled", [](JobContext& ctx) { ctx.WaitFor(30s); });
  auto executor = MakeExecutor(4, 1000ms);
  executor->Submit(Assign(Transform("job", "test.until_cancelled")), recorder_.Sink());
  executor->Submit(Assign(Bash("cmd", "sleep 30")), recorder_.Sink());
  for (int i = 0; i < 500 && executor->RunningCount() < 2; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(executor->RunningCount(), 2u);
  std::this_thread::sleep_for(100ms);  // let bash start sleeping
  const auto start = std::chrono::steady_clock::now();
  executor->CancelRunning();
  ASSERT_TRUE(executor->WaitIdle(5s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
  EXPECT_EQ(executor->RunningCount(), 0u);
  EXPECT_EQ(recorder_.Outcome("job").kind, TaskOutcome::Kind::kInterrupted);
  EXPECT_EQ(recorder_.Outcome("cmd").kind, TaskOutcome::Kind::kInterrupted);
  EXPECT_NE(ReadFile(LogPath("cmd", 1)).find("outcome=interrupted"), std::string::npos);
}

TEST_F(ExecutorTest, ParallelismBoundIsRespected) {
  std::atomic<int> current{0}, peak{0};
  registry_.Register("test.count", [&](JobContext& ctx) {
    const int now = ++current;
    int seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
    ctx.WaitFor(50ms);
    --current;
  });
  auto executor = MakeExecutor(3);
  for (int i = 0; i < 12; ++i) {
    auto a = Assign(Transform("t" + std::to_string(i), "test.count"));
    executor->Submit(std::move(a), recorder_.Sink());
  }
  ASSERT_TRUE(executor->WaitIdle(20s));
  EXPECT_EQ(peak.load(), 3);
  EXPECT_EQ(recorder_.TriesWithEvents(), 12u);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(recorder_.Outcome("t" + std::to_string(i)).kind, TaskOutcome::Kind::kSuccess);
  }
}

TEST_F(ExecutorTest, QueuedWorkStartsInSubmissionOrder) {
  std::mutex mu;
  std::vector<std::string> order;
  registry_.Register("test.order", [&](JobContext& ctx) {
    std::lock_guard lock(mu);
    order.push_back(ctx.task_id());
  });
  auto executor = MakeExecutor(1);
  for (int i = 0; i < 5; ++i) {
    executor->Submit(Assign(Transform("t" + std::to_string(i), "test.order")), recorder_.Sink());
  }
  ASSERT_TRUE(executor->WaitIdle(10s));
  EXPECT_EQ(order, (std::vector<std::string>{"t0", "t1", "t2", "t3", "t4"}));
}

TEST_F(ExecutorTest, StopAcceptingDropsQueuedWorkWithoutEvents) {
  std::atomic<bool> release{false};
  registry_.Register("test.block", [&release](JobContext& ctx) {
    while (!release && !ctx.cancelled()) std::this_thread::sleep_for(5ms);
  });
  auto executor = MakeExecutor(1);
  executor->Submit(Assign(Transform("first", "test.block")), recorder_.Sink());
  for (int i = 0; i < 3; ++i) {
    executor->Submit(Assign(Transform("queued" + std::to_string(i), "test.block")),
                     recorder_.Sink());
  }
  for (int i = 0; i < 500 && executor->RunningCount() < 1; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(executor->RunningCount(), 1u);
  executor->StopAccepting();
  executor->Submit(Assign(Transform("late", "test.block")), recorder_.Sink());
  release = true;
  ASSERT_TRUE(executor->WaitIdle(10s));
  EXPECT_EQ(recorder_.Outcome("first").kind, TaskOutcome::Kind::kSuccess);
  EXPECT_EQ(recorder_.TriesWithEvents(), 1u);
  EXPECT_TRUE(recorder_.Of("queued0").empty());
  EXPECT_TRUE(recorder_.Of("late").empty());
  EXPECT_FALSE(fs::exists(LogPath("queued0", 1)));
}

TEST_F(ExecutorTest, EveryTryReportsStartedThenFinishedExactlyOnce) {
  registry_.Register("test.ok", [](JobContext& ctx) { ctx.WaitFor(5ms); });
  registry_.Register("test.fail", [](JobContext&) { throw std::runtime_error("no"); });
  auto executor = MakeExecutor(4);
  std::vector<std::string> ids;
  for (int i = 0; i < 24; ++i) {
    const std::string id = "t" + std::to_string(i);
    ids.push_back(id);
    switch (i % 4) {
      case 0:
        executor->Submit(Assign(Transform(id, "test.ok")), recorder_.Sink());
        break;
      case 1:
        executor->Submit(Assign(Transform(id, "test.fail")), recorder_.Sink());
        break;
      case 2:
        executor->Submit(Assign(Bash(id, i % 8 == 2 ? "true" : "false")), recorder_.Sink());
        break;
      default:
        executor->Submit(Assign(Spec(id, "empty")), recorder_.Sink());
    }
  }
  ASSERT_TRUE(executor->WaitIdle(30s));
  for (const auto& id : ids) {
    auto events = recorder_.Of(id);
    ASSERT_EQ(events.size(), 2u) << id;
    EXPECT_EQ(events[0].kind, TaskEvent::Kind::kStarted) << id;
    EXPECT_EQ(events[1].kind, TaskEvent::Kind::kFinished) << id;
    EXPECT_EQ(events[0].ti_id, id);
    EXPECT_EQ(events[1].ti_id, id);
  }
}

TEST_F(ExecutorTest, DestructorInterruptsRunningTriesAndReportsThem) {
  registry_.Register("test.until_cancelled", [](JobContext& ctx) { ctx.WaitFor(30s); });
  {
    auto executor = MakeExecutor(2);
    executor->Submit(Assign(Transform("job", "test.until_cancelled")), recorder_.Sink());
    executor->Submit(Assign(Transform("queued1", "test.until_cancelled")), recorder_.Sink());
    executor->Submit(Assign(Transform("queued2", "test.until_cancelled")), recorder_.Sink());
    for (int i = 0; i < 500 && executor->RunningCount() < 2; ++i) {
      std::this_thread::sleep_for(10ms);
    }
  }
  EXPECT_EQ(recorder_.Outcome("job").kind, TaskOutcome::Kind::kInterrupted);
  EXPECT_EQ(recorder_.Outcome("queued1").kind, TaskOutcome::Kind::kInterrupted);
  EXPECT_TRUE(recorder_.Of("queued2").empty());
}

TEST_F(ExecutorTest, ThrowingSinkDoesNotStopTheExecutor) {
  auto executor = MakeExecutor(1);
  executor->Submit(Assign(Spec("a", "empty")),
                   [](TaskEvent) { throw std::runtime_error("sink is broken"); });
  executor->Submit(Assign(Spec("b", "empty")), recorder_.Sink());
  ASSERT_TRUE(executor->WaitIdle(10s));
  EXPECT_EQ(recorder_.Outcome("b").kind, TaskOutcome::Kind::kSuccess);
}

}  // namespace
}  // namespace dagd::executors
