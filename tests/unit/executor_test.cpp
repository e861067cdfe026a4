// ThreadPoolExecutor with a real thread pool and real child processes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dagd/executors/job_registry.hpp"
#include "dagd/executors/thread_pool_executor.hpp"
#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/metrics.hpp"
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

bool IsRoot() { return ::geteuid() == 0; }

// As root, bash tries need an unprivileged account: `nobody` (Debian's base image has it).
constexpr const char* kTaskAccount = "nobody";

std::optional<passwd> Account(const char* name) {
  const passwd* pw = ::getpwnam(name);
  if (pw == nullptr) return std::nullopt;
  return *pw;
}

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dagd-executor-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    if (IsRoot()) {
      // Commands run as the task account and write their marker files here.
      auto account = Account(kTaskAccount);
      ASSERT_TRUE(account) << "no account '" << kTaskAccount << "' to run bash tasks as";
      ASSERT_EQ(::chown(dir_.c_str(), account->pw_uid, account->pw_gid), 0);
    }
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

  ExecutorOptions Options(int parallelism = 4, std::chrono::milliseconds grace = 1000ms) const {
    ExecutorOptions options;
    options.parallelism = parallelism;
    options.hostname = "test-host";
    options.kill_grace = grace;
    if (IsRoot()) options.run_as_user = kTaskAccount;
    return options;
  }
  std::unique_ptr<ThreadPoolExecutor> MakeExecutor(int parallelism = 4,
                                                   std::chrono::milliseconds grace = 1000ms) {
    return std::make_unique<ThreadPoolExecutor>(Options(parallelism, grace), registry_, clock_);
  }

  // Runs one assignment to its end and returns its outcome.
  TaskOutcome RunOne(TaskAssignment a, std::chrono::milliseconds grace = 1000ms) {
    return RunWith(std::move(a), Options(2, grace));
  }
  TaskOutcome RunWith(TaskAssignment a, const ExecutorOptions& options) {
    auto executor = std::make_unique<ThreadPoolExecutor>(options, registry_, clock_);
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

TEST_F(ExecutorTest, BashGetsRenderedCommandEnvAndAirflowContextVariables) {
  TaskSpec t = Bash("env_task",
                    "echo \"cmd={{ params.who }} env=$GREETING ids=$AIRFLOW_CTX_DAG_ID/"
                    "$AIRFLOW_CTX_DAG_RUN_ID/$AIRFLOW_CTX_TASK_ID/$AIRFLOW_CTX_TRY_NUMBER "
                    "date=$AIRFLOW_CTX_LOGICAL_DATE home=${HOME:+set}\"; read -r line || "
                    "echo stdin-empty");
  t.env = {{"GREETING", "hi {{ dag_run.conf.who }} on {{ ds_nodash }}"}};
  auto a = Assign(std::move(t), 3, Json{{"who", "me"}});
  a.log_path = LogPath("env_task", 3);
  const TaskOutcome outcome = RunOne(std::move(a));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSuccess) << outcome.error;
  const std::string log = ReadFile(LogPath("env_task", 3));
  EXPECT_NE(log.find("cmd=me env=hi me on 20260102 ids=test_dag/manual__1/env_task/3 "
                     "date=2026-01-02T00:00:00+00:00 home=set"),
            std::string::npos)
      << log;
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

// --- Hostile templated values, the task's environment and account --------------------------

TEST_F(ExecutorTest, BashTemplatedConfAndRunIdAreNeverRunAsCode) {
  const std::string marker = (dir_ / "injected").string();
  const std::vector<std::string> hostile = {"$(touch " + marker + "1)",
                                            "`touch " + marker + "2`",
                                            "x; touch " + marker + "3",
                                            "x\ntouch " + marker + "4",
                                            "\"; touch " + marker + "5; \"",
                                            "${HOME}",
                                            "'$(id)'"};
  Json conf = Json::object();
  std::string command = "printf '<%s>\\n'";
  for (size_t i = 0; i < hostile.size(); ++i) {
    conf["v" + std::to_string(i)] = hostile[i];
    command += " \"{{ dag_run.conf.v" + std::to_string(i) + " }}\"";
  }
  command += " \"{{ run_id }}\" {{ params.v0 }}";
  auto a = Assign(Bash("inject", command), 1, conf);
  a.run.run_id = "$(touch " + marker + "6)";
  const TaskOutcome outcome = RunOne(std::move(a));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSuccess) << outcome.error;
  const std::string log = ReadFile(LogPath("inject", 1));
  for (const auto& value : hostile) {
    EXPECT_NE(log.find("<" + value + ">"), std::string::npos) << value << "\n" << log;
  }
  EXPECT_NE(log.find("<$(touch " + marker + "6)>"), std::string::npos) << log;
  for (int i = 1; i <= 6; ++i) {
    EXPECT_FALSE(fs::exists(marker + std::to_string(i))) << "template " << i << " ran as code";
  }
}

TEST_F(ExecutorTest, BashArithmeticOnATemplatedValueCannotRunAnArraySubscript) {
  // bash evaluates a value used in $(( )), (( )) or [[ -gt ]] as arithmetic, expanding an array
  // subscript in it: such values are refused before anything runs, in the command and in env.
  const std::string marker = (dir_ / "arith").string();
  const Json conf = {{"n", "a[$(touch " + marker + ")]"}};
  auto in_command =
      Assign(Bash("arith", "echo $(( {{ params.n }} + 1 )); [[ {{ params.n }} -gt 0 ]]"), 1, conf);
  TaskOutcome outcome = RunOne(std::move(in_command));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_NE(outcome.error.find("inside '[...]'"), std::string::npos) << outcome.error;
  TaskSpec with_env = Bash("arith_env", "echo $(( N + 1 ))");
  with_env.env = {{"N", "{{ params.n }}"}};
  outcome = RunOne(Assign(with_env, 1, conf));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_FALSE(fs::exists(marker)) << "the subscript ran";
  // A number, or brackets without an expansion, still work.
  outcome = RunOne(Assign(Bash("arith_ok", "echo $(( {{ params.n }} + 1 )) '{{ params.s }}'"), 1,
                          Json{{"n", "41"}, {"s", "[x] costs 5$"}}));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSuccess) << outcome.error;
  EXPECT_NE(ReadFile(LogPath("arith_ok", 1)).find("42"), std::string::npos);
}

TEST_F(ExecutorTest, BashEnvironmentHoldsNothingOfTheDaemons) {
  ::setenv("DAGD_DATABASE_URL", "postgresql://dagd:s3cret-db@db/dagd", 1);
  ::setenv("SERVICE_API_TOKEN", "s3cret-token", 1);
  auto executor = MakeExecutor(1);
  ::unsetenv("DAGD_DATABASE_URL");
  ::unsetenv("SERVICE_API_TOKEN");
  TaskSpec t = Bash("env", "env");
  t.env = {{"MINE", "kept"}};
  executor->Submit(Assign(std::move(t)), recorder_.Sink());
  ASSERT_TRUE(executor->WaitIdle(20s));
  EXPECT_EQ(recorder_.Outcome("env").kind, TaskOutcome::Kind::kSuccess);
  const std::string log = ReadFile(LogPath("env", 1));
  EXPECT_EQ(log.find("s3cret"), std::string::npos) << log;
  EXPECT_EQ(log.find("DAGD_"), std::string::npos) << log;
  EXPECT_NE(log.find("\nPATH=/usr/local/bin:/usr/bin:/bin\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\nHOME="), std::string::npos) << log;
  EXPECT_NE(log.find("\nMINE=kept\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\nAIRFLOW_CTX_DAG_ID=test_dag\n"), std::string::npos) << log;
  // Every variable is one the contract lists (bash adds PWD, SHLVL and `_` itself).
  const std::regex allowed(
      "^(PATH|LANG|TZ|HOME|MINE|PWD|SHLVL|_|AIRFLOW_CTX_[A-Z_]+|AIRFLOW_TEMPLATE_[0-9]+)=");
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line.front() == '[') continue;  // dagd's own lines
    EXPECT_TRUE(std::regex_search(line, allowed)) << "unexpected variable: " << line;
  }
}

TEST_F(ExecutorTest, BashInheritsNoDescriptorOfTheDaemons) {
  const int leaked = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC, like a careless library
  ASSERT_GE(leaked, 0);
  // What ls itself holds: stdio and the directory it reads (3), nothing inherited.
  const TaskOutcome outcome =
      RunOne(Assign(Bash("sh", "echo -n 'fds: '; ls /proc/self/fd | sort -n | tr '\\n' ' '")));
  ::close(leaked);
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSuccess) << outcome.error;
  const std::string log = ReadFile(LogPath("sh", 1));
  EXPECT_NE(log.find("\nfds: 0 1 2 3 ["), std::string::npos) << log;
}

TEST_F(ExecutorTest, BashKStartedComesAfterTheSpawnWithTheProcessGroupAndAccount) {
  auto executor = MakeExecutor(1);
  executor->Submit(Assign(Bash("sh", "id -un; id -u")), recorder_.Sink());
  ASSERT_TRUE(executor->WaitIdle(20s));
  auto events = recorder_.Of("sh");
  ASSERT_EQ(events.size(), 2u);
  const TaskEvent& started = events[0];
  ASSERT_EQ(started.kind, TaskEvent::Kind::kStarted);
  EXPECT_NE(started.pid, ::getpid());
  ASSERT_TRUE(started.process.has_value());
  EXPECT_EQ(started.process->pgid, started.pid);
  std::string boot_id = ReadFile("/proc/sys/kernel/random/boot_id");
  boot_id.pop_back();
  EXPECT_TRUE(std::regex_match(started.process->start_key, std::regex(boot_id + ":[0-9]+")))
      << started.process->start_key;
  const std::string log = ReadFile(LogPath("sh", 1));
  EXPECT_NE(log.find("\n" + started.unixname + "\n"), std::string::npos)
      << "unixname " << started.unixname << " is not the account `id -un` printed\n"
      << log;
  if (IsRoot()) {
    EXPECT_EQ(started.unixname, kTaskAccount);
    EXPECT_EQ(log.find("\n0\n"), std::string::npos) << "ran as root:\n" << log;
  }
  EXPECT_EQ(recorder_.Outcome("sh").kind, TaskOutcome::Kind::kSuccess);
}

TEST_F(ExecutorTest, BashAsRootWithoutATaskAccountFailsWithoutRunning) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  ExecutorOptions options = Options();
  options.run_as_user.clear();
  const TaskOutcome outcome =
      RunWith(Assign(Bash("sh", "touch " + (dir_ / "ran").string())), options);
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error,
            "task 'sh' was not run: bash tasks never run as root, and dagd runs as root without "
            "a task account (--run-as)");
  EXPECT_FALSE(fs::exists(dir_ / "ran"));
}

TEST_F(ExecutorTest, TaskRunAsUserMustBeAllowed) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  auto other = Account("daemon");
  if (!other) GTEST_SKIP() << "no account 'daemon'";
  TaskSpec t = Bash("sh", "id -u");
  t.run_as_user = "daemon";
  const TaskOutcome refused = RunOne(Assign(t));
  EXPECT_EQ(refused.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(refused.error,
            "task 'sh' asks to run as 'daemon', which the daemon does not allow (--allow-run-as)");

  ExecutorOptions options = Options();
  options.allowed_run_as = {"daemon"};
  t.task_id = "allowed";
  EXPECT_EQ(RunWith(Assign(t), options).kind, TaskOutcome::Kind::kSuccess);
  EXPECT_NE(ReadFile(LogPath("allowed", 1)).find("\n" + std::to_string(other->pw_uid) + "\n"),
            std::string::npos);
}

TEST_F(ExecutorTest, TaskRunAsRootIsRefusedEvenWhenAllowed) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  TaskSpec t = Bash("sh", "touch " + (dir_ / "ran").string());
  t.run_as_user = "root";
  ExecutorOptions options = Options();
  options.allowed_run_as = {"root"};
  const TaskOutcome outcome = RunWith(Assign(std::move(t)), options);
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error,
            "task 'sh' was not run: bash tasks never run as root, and account 'root' has uid 0");
  EXPECT_FALSE(fs::exists(dir_ / "ran"));
}

TEST_F(ExecutorTest, ThePostgresAccountIsRefusedAsTheTaskAccount) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  ExecutorOptions options = Options();
  options.postgres_account = kTaskAccount;
  const TaskOutcome outcome =
      RunWith(Assign(Bash("sh", "touch " + (dir_ / "ran").string())), options);
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, std::string("task 'sh' was not run: account '") + kTaskAccount +
                               "' is the PostgreSQL account, which owns the database files");
  EXPECT_FALSE(fs::exists(dir_ / "ran"));
}

TEST_F(ExecutorTest, TaskNamingAnotherAccountFailsWhenTheDaemonIsNotRoot) {
  if (IsRoot()) GTEST_SKIP() << "needs a non-root daemon";
  TaskSpec t = Bash("sh", "true");
  t.run_as_user = "root";
  const TaskOutcome outcome = RunOne(Assign(std::move(t)));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_NE(outcome.error.find("only root can run a command as another account"), std::string::npos)
      << outcome.error;
}

TEST_F(ExecutorTest, BashDefaultCwdIsAFreshDirectoryOfTheTaskAccountRemovedAfterTheTry) {
  const TaskOutcome outcome =
      RunOne(Assign(Bash("sh",
                         "echo \"cwd=$PWD owner=$(stat -c %U .) mode=$(stat -c %a .)\"; "
                         "mkdir -p a/b; touch a/b/c; ln -s / a/root")));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSuccess) << outcome.error;
  const std::string log = ReadFile(LogPath("sh", 1));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, std::regex("cwd=(\\S+) owner=(\\S+) mode=(\\d+)"))) << log;
  EXPECT_NE(m[1].str().find("dagd-try-"), std::string::npos);
  if (IsRoot()) {
    EXPECT_EQ(m[2].str(), kTaskAccount);
  }
  EXPECT_EQ(m[3].str(), "700");
  EXPECT_FALSE(fs::exists(m[1].str())) << "the try's directory was left behind";
  EXPECT_TRUE(fs::exists("/etc/passwd")) << "removal followed a symbolic link";
}

// --- Process groups -----------------------------------------------------------------------

TEST_F(ExecutorTest, BackgroundProcessesOfASuccessfulTryAreKilledWhenBashExits) {
  const fs::path pid_file = dir_ / "background.pid";
  const auto start = std::chrono::steady_clock::now();
  const TaskOutcome outcome =
      RunOne(Assign(Bash("sh", "sleep 30 & echo $! > " + pid_file.string() + "; echo done")));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSuccess) << outcome.error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s)
      << "the try waited for its background job";
  const pid_t background = std::stoi(ReadFile(pid_file));
  for (int i = 0; i < 100 && !ProcessGone(background); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(ProcessGone(background)) << "background sleep " << background << " outlived the try";
  EXPECT_NE(ReadFile(LogPath("sh", 1)).find("killed 1 process(es) left in process group"),
            std::string::npos);
}

// A process group the test starts itself: bash leading two sleeps, or ignoring SIGTERM.
class ProcessGroup {
 public:
  explicit ProcessGroup(const std::string& script) {
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    std::string arg0 = "/bin/bash", arg1 = "-c", arg2 = script;
    char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
    char* envp[] = {nullptr};
    EXPECT_EQ(posix_spawn(&pid_, "/bin/bash", nullptr, &attr, argv, envp), 0);
    posix_spawnattr_destroy(&attr);
    std::this_thread::sleep_for(200ms);  // let bash start its children
  }
  ~ProcessGroup() {
    ::kill(-pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  pid_t pid() const { return pid_; }
  // "<boot id>:<starttime>", read here independently of the executor's code.
  std::string StartKey(long delta = 0) const {
    std::string boot = ReadFile("/proc/sys/kernel/random/boot_id");
    boot.pop_back();
    const std::string stat = ReadFile("/proc/" + std::to_string(pid_) + "/stat");
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 22; ++i) fields >> field;
    return boot + ":" + std::to_string(std::stoll(field) + delta);
  }
  // Live processes whose process group is this one.
  int LiveMembers() const {
    int n = 0;
    for (const auto& entry : fs::directory_iterator("/proc")) {
      const std::string name = entry.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      const std::string stat = ReadFile(entry.path() / "stat");
      const size_t paren = stat.rfind(')');
      if (paren == std::string::npos) continue;
      std::istringstream fields(stat.substr(paren + 2));
      std::string state, ppid, pgrp;
      fields >> state >> ppid >> pgrp;
      if (pgrp == std::to_string(pid_) && state != "Z" && state != "X") ++n;
    }
    return n;
  }

 private:
  pid_t pid_ = -1;
};

TEST_F(ExecutorTest, StopOrphanedProcessKillsTheRecordedGroup) {
  ProcessGroup group("sleep 30 & sleep 30 & wait");
  ASSERT_EQ(group.LiveMembers(), 3);
  auto executor = MakeExecutor(1, 500ms);
  const Status s = executor->StopOrphanedProcess({group.pid(), group.StartKey()});
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(group.LiveMembers(), 0);
}

TEST_F(ExecutorTest, StopOrphanedProcessKillsAGroupIgnoringSigtermAfterTheGrace) {
  ProcessGroup group("trap '' TERM; sleep 30 & wait");
  ASSERT_EQ(group.LiveMembers(), 2);
  auto executor = MakeExecutor(1, 300ms);
  const auto start = std::chrono::steady_clock::now();
  const Status s = executor->StopOrphanedProcess({group.pid(), group.StartKey()});
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_EQ(group.LiveMembers(), 0);
}

TEST_F(ExecutorTest, StopOrphanedProcessLeavesAGroupWhoseStartKeyDoesNotMatch) {
  ProcessGroup group("sleep 30 & wait");
  ASSERT_EQ(group.LiveMembers(), 2);
  auto executor = MakeExecutor(1, 300ms);
  // The same id started at another time (a reused id), and the same start on another boot.
  EXPECT_TRUE(executor->StopOrphanedProcess({group.pid(), group.StartKey(-1)}).ok());
  const std::string key = group.StartKey();
  const std::string other_boot = "00000000-0000-0000-0000-000000000000" + key.substr(key.find(':'));
  EXPECT_TRUE(executor->StopOrphanedProcess({group.pid(), other_boot}).ok());
  EXPECT_EQ(group.LiveMembers(), 2) << "a group that is not the recorded one was signalled";
}

TEST_F(ExecutorTest, StopOrphanedProcessOfAGroupThatIsGoneIsOkAndAMalformedOneIsAnError) {
  auto executor = MakeExecutor(1, 300ms);
  int pgid = 0;
  std::string key;
  {
    ProcessGroup group("exit 0");
    pgid = group.pid();
    key = group.StartKey();
  }
  EXPECT_TRUE(executor->StopOrphanedProcess({pgid, key}).ok());
  EXPECT_EQ(executor->StopOrphanedProcess({pgid, "no-colon"}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(executor->StopOrphanedProcess({0, key}).code(), StatusCode::kInvalidArgument);
}

// --- Logs ---------------------------------------------------------------------------------

TEST_F(ExecutorTest, TryLogIsPrivateToTheDaemon) {
  EXPECT_EQ(RunOne(Assign(Bash("sh", "echo hi"))).kind, TaskOutcome::Kind::kSuccess);
  const fs::path log = LogPath("sh", 1);
  EXPECT_EQ(fs::status(log).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  for (fs::path dir = log.parent_path(); dir != dir_; dir = dir.parent_path()) {
    EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all) << dir;
  }
}

TEST_F(ExecutorTest, OutputBeyondTheLogCapIsDroppedWithANote) {
  ExecutorOptions options = Options();
  options.max_log_bytes = 4096;
  const TaskOutcome outcome = RunWith(
      Assign(Bash("sh", "head -c 100000 /dev/zero | tr '\\0' x; echo; echo THE-END")), options);
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSuccess) << outcome.error;
  const std::string log = ReadFile(LogPath("sh", 1));
  EXPECT_LE(log.size(), 4096u + 1024u);
  EXPECT_EQ(log.find("THE-END"), std::string::npos);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      log, m,
      std::regex("dagd: (\\d+) bytes of output were dropped: the log reached its cap "
                 "of 4096 bytes")))
      << log;
  const size_t run = log.find("\nxxxx");
  ASSERT_NE(run, std::string::npos) << log;
  const size_t kept = log.find_first_not_of('x', run + 1) - (run + 1);
  EXPECT_EQ(std::stoul(m[1].str()) + kept, 100000u + 1 + 8) << "every byte is accounted for";
  EXPECT_NE(log.find("outcome=success"), std::string::npos) << "dagd's own lines survive the cap";
}

// A tiny tmpfs mounted at `dir` for the test's duration.
class TinyFilesystem {
 public:
  explicit TinyFilesystem(const fs::path& dir) : dir_(dir) {
    fs::create_directories(dir_);
    mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=64k,mode=0700") == 0;
  }
  ~TinyFilesystem() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  fs::path dir_;
  bool mounted_ = false;
};

TEST_F(ExecutorTest, FullDiskUnderTheLogsFailsTheTryWithNoSpaceLeftOnDevice) {
  TinyFilesystem disk(dir_ / "logs");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  const TaskOutcome outcome =
      RunOne(Assign(Bash("sh", "head -c 1000000 /dev/zero | tr '\\0' x; exit 1")));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_NE(outcome.error.find("no space left on device writing the log"), std::string::npos)
      << outcome.error;
  EXPECT_NE(outcome.error.find("command exited with status 1"), std::string::npos) << outcome.error;

  // A command that succeeds but whose output was lost fails too.
  auto a = Assign(Bash("ok", "head -c 1000000 /dev/zero | tr '\\0' x"));
  const TaskOutcome lost = RunOne(std::move(a));
  EXPECT_EQ(lost.kind, TaskOutcome::Kind::kFailed);
  EXPECT_NE(lost.error.find("no space left on device"), std::string::npos) << lost.error;
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

TEST_F(ExecutorTest, AJobIgnoringItsTokenIsFailedAfterTheGraceAndItsThreadIsCounted) {
  std::atomic<bool> release{false};
  registry_.Register("test.deaf", [&release](JobContext&) {
    while (!release) std::this_thread::sleep_for(5ms);  // never looks at its token
  });
  scheduler::MetricsRegistry metrics;
  ExecutorOptions options = Options(1);
  options.cancel_grace = 300ms;
  options.metrics = &metrics;
  auto executor = std::make_unique<ThreadPoolExecutor>(options, registry_, clock_);
  TaskSpec t = Transform("deaf", "test.deaf");
  t.execution_timeout = std::chrono::milliseconds(100);
  const auto start = std::chrono::steady_clock::now();
  executor->Submit(Assign(std::move(t)), recorder_.Sink());
  for (int i = 0; i < 300 && recorder_.Of("deaf").size() < 2; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  const TaskOutcome outcome = recorder_.Outcome("deaf");
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error,
            "execution_timeout of 0.1s exceeded; the job did not stop within 0.3s of its "
            "cancellation; its thread is still running and is counted in "
            "dagd_executor_abandoned_threads");
  // The thread still holds its worker slot, and the metric shows it.
  EXPECT_EQ(executor->RunningCount(), 1u);
  EXPECT_NE(metrics.Render().find("dagd_executor_abandoned_threads 1"), std::string::npos)
      << metrics.Render();
  release = true;
  ASSERT_TRUE(executor->WaitIdle(5s));
  EXPECT_NE(metrics.Render().find("dagd_executor_abandoned_threads 0"), std::string::npos);
  EXPECT_EQ(recorder_.Of("deaf").size(), 2u);  // the late return reports nothing more
}

TEST_F(ExecutorTest, StopTryFailsThatRunningTryWithTheReasonAndDropsItIfQueued) {
  auto executor = MakeExecutor(1, 1000ms);
  executor->Submit(Assign(Bash("cmd", "sleep 30")), recorder_.Sink());
  executor->Submit(Assign(Bash("waiting", "true")), recorder_.Sink());
  for (int i = 0; i < 500 && recorder_.Of("cmd").empty(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(executor->StopTry("waiting", 1, "the run timed out"));  // dropped: no events
  EXPECT_FALSE(executor->StopTry("cmd", 2, "not this try"));
  EXPECT_TRUE(executor->StopTry("cmd", 1, "the run timed out"));
  EXPECT_TRUE(executor->StopTry("cmd", 1, "its task instance was marked success"));
  ASSERT_TRUE(executor->WaitIdle(5s));
  const TaskOutcome outcome = recorder_.Outcome("cmd");
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "the run timed out");  // the first reason stands
  EXPECT_TRUE(recorder_.Of("waiting").empty());
  EXPECT_FALSE(executor->StopTry("cmd", 1, "gone"));
}

TEST_F(ExecutorTest, StopTryOfAJobIgnoringItsTokenReportsTheReasonAfterTheGrace) {
  std::atomic<bool> release{false};
  registry_.Register("test.deaf", [&release](JobContext&) {
    while (!release) std::this_thread::sleep_for(5ms);
  });
  ExecutorOptions options = Options(1);
  options.cancel_grace = 200ms;
  auto executor = std::make_unique<ThreadPoolExecutor>(options, registry_, clock_);
  executor->Submit(Assign(Transform("deaf", "test.deaf")), recorder_.Sink());
  for (int i = 0; i < 500 && recorder_.Of("deaf").empty(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(executor->StopTry("deaf", 1, "its task instance was marked success"));
  for (int i = 0; i < 300 && recorder_.Of("deaf").size() < 2; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  const TaskOutcome outcome = recorder_.Outcome("deaf");
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error,
            "its task instance was marked success; the job did not stop within 0.2s of its "
            "cancellation; its thread is still running and is counted in "
            "dagd_executor_abandoned_threads");
  EXPECT_FALSE(executor->WaitIdle(50ms));  // the thread still runs the job
  release = true;
  ASSERT_TRUE(executor->WaitIdle(5s));
  EXPECT_EQ(recorder_.Of("deaf").size(), 2u);
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
