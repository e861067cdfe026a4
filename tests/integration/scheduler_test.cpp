// The scheduling loop in-process, on a real PostgreSQL store and a real thread-pool executor, with
// a store decorator that injects faults (test double for failures only; every write that succeeds
// goes to PostgreSQL).
#include "dagd/scheduler/scheduler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "dagd/executors/job_registry.hpp"
#include "dagd/executors/thread_pool_executor.hpp"
#include "dagd/scheduler/dag_parser.hpp"
#include "dagd/scheduler/scheduler_service.hpp"
#include "dagd/storage/pg_state_store.hpp"
#include "forwarding_state_store.hpp"
#include "test_database.hpp"

namespace dagd::scheduler {
namespace {

using namespace std::chrono_literals;

// Forwards to a real store; Apply and LoadRuns can be made to fail.
class FaultyStore final : public testing::ForwardingStateStore {
 public:
  explicit FaultyStore(StateStore& inner) : ForwardingStateStore(inner) {}

  // Returns a non-ok Status to fail that Apply (nothing is written), or ok to let it through.
  std::function<Status(const Transition&)> apply_fault;
  std::atomic<int> fail_next_run_loads{0};
  std::atomic<bool> drop_notifications{false};  // change notifications never reach the caller
  std::atomic<bool> database_down{false};  // the lock check cannot reach the database
  std::atomic<int> dag_version_reads{0};

  StatusOr<DagVersionRecord> GetDagVersion(const std::string& dag_id, int version) override {
    ++dag_version_reads;
    return inner_.GetDagVersion(dag_id, version);
  }

  Status AcquireSchedulerLock() override {
    if (database_down) return Status::Unavailable("injected: database down");
    return inner_.AcquireSchedulerLock();
  }
  StatusOr<SubscriptionId> Subscribe(ChangeCallback on_change) override {
    return inner_.Subscribe([this, on_change](std::optional<int64_t> origin) {
      if (!drop_notifications) on_change(origin);
    });
  }
  StatusOr<std::vector<RunRows>> LoadRuns(const std::vector<int64_t>& run_keys) override {
    if (fail_next_run_loads > 0) {
      --fail_next_run_loads;
      return Status::Unavailable("injected: connection lost");
    }
    return inner_.LoadRuns(run_keys);
  }
  StatusOr<ApplyResult> Apply(const Transition& t) override {
    if (apply_fault) {
      if (Status s = apply_fault(t); !s.ok()) return s;
    }
    return inner_.Apply(t);
  }
};

// Forwards to a real executor; records the order of submissions and orphan stops, and lets a test
// decide what StopOrphanedProcess answers (the real one signals process groups).
class RecordingExecutor final : public TaskExecutor {
 public:
  explicit RecordingExecutor(TaskExecutor& inner) : inner_(inner) {}

  std::function<Status(const TryProcess&)> stop_orphan = [](const TryProcess&) {
    return Status::Ok();
  };

  void Submit(TaskAssignment assignment, TaskEventSink sink) override {
    Record("submit " + assignment.task().task_id + " try " + std::to_string(assignment.try_number));
    inner_.Submit(std::move(assignment), std::move(sink));
  }
  void StopAccepting() override { inner_.StopAccepting(); }
  void CancelRunning() override { inner_.CancelRunning(); }
  bool StopTry(const std::string& ti_id, int try_number, std::string reason) override {
    Record("stop try " + std::to_string(try_number));
    return inner_.StopTry(ti_id, try_number, std::move(reason));
  }
  bool WaitIdle(std::chrono::milliseconds timeout) override { return inner_.WaitIdle(timeout); }
  size_t RunningCount() const override { return inner_.RunningCount(); }
  Status StopOrphanedProcess(const TryProcess& process) override {
    Status s = stop_orphan(process);
    Record("stop " + std::to_string(process.pgid) + " " + process.start_key +
           (s.ok() ? " ok" : " failed"));
    return s;
  }

  std::vector<std::string> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  void Record(std::string call) {
    std::lock_guard lock(mu_);
    calls_.push_back(std::move(call));
  }

  TaskExecutor& inner_;
  std::mutex mu_;  // guards calls_
  std::vector<std::string> calls_;
};

class SchedulerTest : public ::testing::Test {
 protected:
  static constexpr const char* kThisHost = "this-host";

  void SetUp() override {
    storage::PgOptions options;
    options.url = db_.url();
    auto store = storage::PgStateStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    pg_ = std::move(store).value();
    faulty_ = std::make_unique<FaultyStore>(*pg_);
    logs_ = std::filesystem::temp_directory_path() / ("dagd-sched-" + db_.name());
    executors::ExecutorOptions executor_options;
    if (geteuid() == 0) executor_options.run_as_user = "nobody";  // bash tasks never run as root
    executor_ = std::make_unique<executors::ThreadPoolExecutor>(executor_options, jobs_, clock_);
    recording_ = std::make_unique<RecordingExecutor>(*executor_);
  }
  void TearDown() override {
    if (scheduler_) scheduler_->Shutdown(5s);
    std::filesystem::remove_all(logs_);
  }

  void AddDag(const std::string& json) {
    ParseResult parsed = ParseDag(json, ParseOptions{});
    ASSERT_TRUE(parsed.dag) << parsed.errors.front();
    ASSERT_TRUE(
        pg_->SyncDag(*parsed.dag, "/dags/x.json", clock_.Now(), scheduler::DagSource::kFile).ok());
  }

  void StartScheduler(std::chrono::milliseconds heartbeat = 60s) {
    SchedulerOptions options;
    options.logs_root = logs_;
    options.heartbeat = heartbeat;
    options.store_retry = 50ms;
    options.hostname = kThisHost;
    scheduler_ = std::make_unique<Scheduler>(options, *faulty_, *recording_, clock_);
    ServiceOptions service_options;
    service_options.logs_root = logs_;
    service_ = std::make_unique<SchedulerService>(service_options, *faulty_, *scheduler_, clock_);
    ASSERT_TRUE(faulty_->AcquireSchedulerLock().ok());
    ASSERT_TRUE(scheduler_->Start().ok());
  }
  // Triggers run `run_id` of "bash_two" without scheduling it, then records its task "a" as
  // running try 1 on `hostname` in process group `process`, owned by an older scheduler epoch:
  // what a daemon killed mid-try leaves behind.
  void LeaveTryRunning(const std::string& run_id, const std::string& hostname,
                       std::optional<TryProcess> process) {
    {
      SchedulerOptions options;
      options.logs_root = logs_;
      Scheduler unused(options, *faulty_, *executor_, clock_);
      ServiceOptions service_options;
      SchedulerService service(service_options, *faulty_, unused, clock_);
      TriggerRequest request;
      request.dag_run_id = run_id;
      ASSERT_TRUE(service.Trigger("bash_two", request).ok());
    }
    const std::string pgid = process ? std::to_string(process->pgid) : "NULL";
    const std::string start_key = process ? "'" + process->start_key + "'" : "NULL";
    db_.Query(
        "WITH e AS (INSERT INTO scheduler_epoch (hostname, pid) VALUES ('" + hostname +
        "', 1) RETURNING epoch) "
        "UPDATE task_instance SET state = 'running', try_number = 1, start_date = now(), "
        "hostname = '" + hostname + "', process_pgid = " + pgid + ", process_start_key = " +
        start_key + ", owner_epoch = (SELECT epoch FROM e) WHERE run_id = '" + run_id +
        "' AND task_id = 'a' RETURNING task_id");
  }

  void Trigger(const std::string& dag_id, const std::string& run_id,
               std::optional<TimePoint> run_after = std::nullopt) {
    TriggerRequest request;
    request.dag_run_id = run_id;
    request.run_after = run_after;
    auto run = service_->Trigger(dag_id, request);
    ASSERT_TRUE(run.ok()) << run.status().ToString();
  }

  DagRun WaitForEnd(const std::string& dag_id, const std::string& run_id,
                    std::chrono::seconds timeout = 20s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto run = pg_->GetRun(dag_id, run_id);
      if (run.ok() && IsTerminal(run->state)) return *run;
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "run " << run_id << " did not end";
    return *pg_->GetRun(dag_id, run_id);
  }

  testing::TestDatabase db_;
  SystemClock clock_;
  executors::JobRegistry jobs_;
  std::unique_ptr<storage::PgStateStore> pg_;
  std::unique_ptr<FaultyStore> faulty_;
  std::filesystem::path logs_;
  std::unique_ptr<executors::ThreadPoolExecutor> executor_;
  std::unique_ptr<RecordingExecutor> recording_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<SchedulerService> service_;
};

const char* kTwoStep = R"({"dag_id": "two", "tasks": [
  {"task_id": "a", "operator": "empty"},
  {"task_id": "b", "operator": "empty", "upstream": ["a"]}]})";

const char* kBashTwo = R"({"dag_id": "bash_two", "tasks": [
  {"task_id": "a", "operator": "bash", "bash_command": "true"},
  {"task_id": "b", "operator": "bash", "bash_command": "true", "upstream": ["a"]}]})";

TEST_F(SchedulerTest, ARunTheStoreRejectsForGoodDoesNotBlockOtherRuns) {
  AddDag(kTwoStep);
  std::atomic<int> rejected{0};
  faulty_->apply_fault = [&](const Transition& t) {
    for (const auto& ti : t.task_instances) {
      if (ti.after.run_id == "poisoned") {
        ++rejected;
        return Status::Internal("injected: rows rejected");
      }
    }
    return Status::Ok();
  };
  StartScheduler();
  Trigger("two", "poisoned");
  Trigger("two", "healthy");
  EXPECT_EQ(WaitForEnd("two", "healthy").state, RunState::kSuccess);
  EXPECT_GT(rejected.load(), 0);
  EXPECT_EQ(pg_->GetTaskInstance("two", "poisoned", "a")->state, TaskState::kNone);
}

TEST_F(SchedulerTest, AFailureWhileIsolatingARejectedRunNeitherLosesNorRepeatsOtherRunsWork) {
  AddDag(kBashTwo);
  ASSERT_TRUE(pg_->SetPaused("bash_two", true).ok());
  StartScheduler();
  // Created while paused, so that the first step sees all three runs at once.
  Trigger("bash_two", "committed");
  Trigger("bash_two", "poisoned");
  Trigger("bash_two", "postponed");
  std::atomic<bool> postponed_fails_once{true};
  auto holds = [](const Transition& t, const std::string& run_id) {
    for (const auto& ti : t.task_instances) {
      if (ti.after.run_id == run_id) return true;
    }
    return false;
  };
  faulty_->apply_fault = [&](const Transition& t) {
    if (holds(t, "poisoned")) return Status::Internal("injected: rows rejected");
    if (holds(t, "postponed") && !holds(t, "committed") && postponed_fails_once.exchange(false)) {
      return Status::Unavailable("injected: connection lost");
    }
    return Status::Ok();
  };
  ASSERT_TRUE(service_->SetPaused("bash_two", false).ok());

  EXPECT_EQ(WaitForEnd("bash_two", "committed").state, RunState::kSuccess);
  EXPECT_EQ(WaitForEnd("bash_two", "postponed").state, RunState::kSuccess);
  EXPECT_FALSE(postponed_fails_once.load());
  for (const std::string run_id : {"committed", "postponed"}) {
    EXPECT_EQ(pg_->GetTaskInstance("bash_two", run_id, "a")->try_number, 1) << run_id;
    EXPECT_EQ(pg_->ListTries("bash_two", run_id, "a")->size(), 1u) << run_id;
    // Each transition recorded once: nothing committed was decided and written again.
    EXPECT_EQ(db_.Query("SELECT count(*) FROM event WHERE run_id = '" + run_id +
                        "' AND task_id = 'a' AND state = 'queued'"),
              std::vector<std::string>{"1"})
        << run_id;
  }
}

TEST_F(SchedulerTest, AnUnavailableStoreDelaysCommitsButLosesNoTaskResult) {
  AddDag(kTwoStep);
  std::atomic<int> failures{3};
  faulty_->apply_fault = [&](const Transition&) {
    if (failures > 0) {
      --failures;
      return Status::Unavailable("injected: database restarting");
    }
    return Status::Ok();
  };
  StartScheduler();
  Trigger("two", "r1");
  EXPECT_EQ(WaitForEnd("two", "r1").state, RunState::kSuccess);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(pg_->GetTaskInstance("two", "r1", "b")->state, TaskState::kSuccess);
}

TEST_F(SchedulerTest, ANewRunWhoseFirstLoadFailsIsLoadedAgainWithoutWaitingForAHeartbeat) {
  AddDag(kTwoStep);
  StartScheduler(/*heartbeat=*/60s);
  faulty_->fail_next_run_loads = 1;
  Trigger("two", "r1");
  EXPECT_EQ(WaitForEnd("two", "r1", 10s).state, RunState::kSuccess);
  EXPECT_EQ(faulty_->fail_next_run_loads.load(), 0);
}

TEST_F(SchedulerTest, AQueuedRunStartsAsSoonAsThePreviousRunEndsUnderMaxActiveRuns) {
  AddDag(R"({"dag_id": "one_at_a_time", "max_active_runs": 1, "tasks": [
    {"task_id": "a", "operator": "bash", "bash_command": "sleep 0.2"}]})");
  StartScheduler(/*heartbeat=*/60s);
  Trigger("one_at_a_time", "r1");
  Trigger("one_at_a_time", "r2");
  Trigger("one_at_a_time", "r3");
  DagRun r1 = WaitForEnd("one_at_a_time", "r1", 10s);
  DagRun r2 = WaitForEnd("one_at_a_time", "r2", 10s);
  DagRun r3 = WaitForEnd("one_at_a_time", "r3", 10s);
  EXPECT_EQ(r3.state, RunState::kSuccess);
  // Never two at once.
  EXPECT_LE(*r1.end_date, *r2.start_date);
  EXPECT_LE(*r2.end_date, *r3.start_date);
}

// The folder sync hands the versions it parsed to the scheduler: the first run of a DAG reads
// no version back from the store.
TEST_F(SchedulerTest, ADagVersionRememberedFromTheFolderSyncIsNotReadBackForItsFirstRun) {
  ParseResult parsed = ParseDag(std::string_view(kTwoStep), ParseOptions{});
  ASSERT_TRUE(parsed.dag) << parsed.errors.front();
  auto version =
      pg_->SyncDag(*parsed.dag, "/dags/two.json", clock_.Now(), scheduler::DagSource::kFile);
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  StartScheduler();
  scheduler_->RememberDag(*version, parsed.dag);
  Trigger("two", "r1");
  EXPECT_EQ(WaitForEnd("two", "r1").state, RunState::kSuccess);
  EXPECT_EQ(faulty_->dag_version_reads.load(), 0);
  auto cached = scheduler_->GetDag("two", *version);
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(cached->get(), parsed.dag.get());
  // A version it was not given is read from the store.
  EXPECT_FALSE(scheduler_->GetDag("two", *version + 1).ok());
  EXPECT_EQ(faulty_->dag_version_reads.load(), 1);
}

TEST_F(SchedulerTest, ARunTriggeredForLaterWaitsForItsRunAfter) {
  AddDag(kTwoStep);
  StartScheduler(/*heartbeat=*/60s);
  const TimePoint later = clock_.Now() + 1500ms;
  Trigger("two", "later", later);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(pg_->GetRun("two", "later")->state, RunState::kQueued);
  DagRun run = WaitForEnd("two", "later", 10s);
  EXPECT_EQ(run.state, RunState::kSuccess);
  EXPECT_GE(*run.start_date, later);
}

TEST_F(SchedulerTest, RunningTriesLeftByAStoppedProcessAreRetriedWithoutUsingARetry) {
  AddDag(kBashTwo);
  // A previous process queued and started `a`, then vanished.
  ASSERT_NO_FATAL_FAILURE(LeaveTryRunning("orphaned", "", std::nullopt));

  StartScheduler();
  EXPECT_EQ(WaitForEnd("bash_two", "orphaned").state, RunState::kSuccess);
  TaskInstance after = *pg_->GetTaskInstance("bash_two", "orphaned", "a");
  EXPECT_EQ(after.try_number, 2);
  EXPECT_EQ(after.max_tries, 1);  // the cut-off try did not use the task's (zero) retries
  auto tries = pg_->ListTries("bash_two", "orphaned", "a");
  ASSERT_EQ(tries->size(), 2u);
  EXPECT_EQ((*tries)[0].state, TaskState::kUpForRetry);
}

TEST_F(SchedulerTest, ATryLeftRunningOnThisHostIsStoppedBeforeItsRetryIsQueued) {
  AddDag(kBashTwo);
  ASSERT_NO_FATAL_FAILURE(LeaveTryRunning("orphaned", kThisHost, TryProcess{4242, "boot:99"}));

  // The old group cannot be stopped at first (still dying): the retry must wait for it.
  std::atomic<int> refusals{2};
  recording_->stop_orphan = [&](const TryProcess&) {
    if (refusals-- > 0) return Status::Unavailable("injected: still there");
    return Status::Ok();
  };
  StartScheduler();
  EXPECT_EQ(WaitForEnd("bash_two", "orphaned").state, RunState::kSuccess);
  EXPECT_EQ(recording_->calls(),
            (std::vector<std::string>{"stop 4242 boot:99 failed", "stop 4242 boot:99 failed",
                                      "stop 4242 boot:99 ok", "submit a try 2", "submit b try 1"}));
  auto tries = pg_->ListTries("bash_two", "orphaned", "a");
  ASSERT_EQ(tries->size(), 2u);
  EXPECT_EQ(pg_->GetTaskInstance("bash_two", "orphaned", "a")->max_tries, 1);
}

TEST_F(SchedulerTest, ATryLeftRunningOnAnotherHostIsRetriedWithoutStoppingAnything) {
  AddDag(kBashTwo);
  ASSERT_NO_FATAL_FAILURE(
      LeaveTryRunning("elsewhere", "another-host", TryProcess{4242, "boot:99"}));
  StartScheduler();
  EXPECT_EQ(WaitForEnd("bash_two", "elsewhere").state, RunState::kSuccess);
  EXPECT_EQ(recording_->calls(), (std::vector<std::string>{"submit a try 2", "submit b try 1"}));
}

// A run created through another store (another process, as far as PostgreSQL can tell): nothing
// in this process calls Wake.
void CreateRunElsewhere(const testing::TestDatabase& db, const std::string& dag_id,
                        const std::string& run_id) {
  storage::PgOptions options;
  options.url = db.url();
  auto other = storage::PgStateStore::Open(options);
  ASSERT_TRUE(other.ok());
  DagRun run;
  run.dag_id = dag_id;
  run.run_id = run_id;
  run.version_number = 1;
  run.queued_at = SystemClock().Now();
  std::vector<TaskInstance> tis;
  for (const char* task_id : {"a", "b"}) {
    TaskInstance ti;
    ti.task_id = task_id;
    ti.version_number = 1;
    ti.operator_name = "empty";
    tis.push_back(ti);
  }
  ASSERT_TRUE((*other)->CreateRun(run, tis).ok());
}

TEST_F(SchedulerTest, ARunCreatedByAnotherProcessIsNotifiedWithoutWaitingForAHeartbeat) {
  AddDag(kTwoStep);
  StartScheduler(/*heartbeat=*/60s);
  ASSERT_NO_FATAL_FAILURE(CreateRunElsewhere(db_, "two", "elsewhere"));
  EXPECT_EQ(WaitForEnd("two", "elsewhere", 10s).state, RunState::kSuccess);
}

TEST_F(SchedulerTest, ALostNotificationIsMadeUpForByTheHeartbeatsCatchUp) {
  AddDag(kTwoStep);
  faulty_->drop_notifications = true;
  StartScheduler(/*heartbeat=*/200ms);
  ASSERT_NO_FATAL_FAILURE(CreateRunElsewhere(db_, "two", "unnotified"));
  EXPECT_EQ(WaitForEnd("two", "unnotified", 10s).state, RunState::kSuccess);
}

// Rows of pg_stat_activity holding the scheduler lock's connection.
int64_t LockConnections(const testing::TestDatabase& db) {
  return std::stoll(
      db.Query("SELECT count(*) FROM pg_stat_activity WHERE datname = "
               "current_database() AND application_name = 'dagd-scheduler'")[0]);
}

bool Eventually(const std::function<bool()>& condition) {
  for (int i = 0; i < 200; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(25ms);
  }
  return false;
}

TEST_F(SchedulerTest, TheSchedulerLockIsTakenAgainAfterTheDatabaseDropsItAndLosingItFencesThisProcess) {
  AddDag(kTwoStep);
  ASSERT_TRUE(pg_->AcquireSchedulerLock().ok());
  StartScheduler(/*heartbeat=*/100ms);
  const std::string kill_lock_session =
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
      "current_database() AND application_name = 'dagd-scheduler'";

  // The database drops the lock's session (as in a restart): the loop takes the lock again.
  db_.Query(kill_lock_session);
  EXPECT_TRUE(Eventually([&] { return LockConnections(db_) == 0; }));
  EXPECT_TRUE(Eventually([&] { return LockConnections(db_) == 1; }));
  Trigger("two", "before");
  EXPECT_EQ(WaitForEnd("two", "before").state, RunState::kSuccess);

  // Now another process takes it first (this loop may retake it in between: kill its session
  // again until the other one wins): this scheduler must not start tries any more.
  storage::PgOptions options;
  options.url = db_.url();
  auto other = storage::PgStateStore::Open(options);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(Eventually([&] {
    db_.Query(kill_lock_session);
    return (*other)->AcquireSchedulerLock().ok();
  }));
  EXPECT_TRUE(Eventually([&] { return scheduler_->Fenced(); }));  // at its next lock check
  Trigger("two", "after");
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(pg_->GetTaskInstance("two", "after", "a")->state, TaskState::kNone);
}

TEST_F(SchedulerTest, TheHeartbeatStopsWhileTheDatabaseIsUnreachableAndResumesAfter) {
  StartScheduler(/*heartbeat=*/50ms);
  ASSERT_TRUE(Eventually([&] { return scheduler_->LastHeartbeat().has_value(); }));
  faulty_->database_down = true;
  std::this_thread::sleep_for(200ms);
  const auto stale = scheduler_->LastHeartbeat();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(scheduler_->LastHeartbeat(), stale);
  faulty_->database_down = false;
  EXPECT_TRUE(Eventually([&] { return scheduler_->LastHeartbeat() > stale; }));
}

// A try's whole log as OpenLog serves it.
StatusOr<std::string> ReadLog(Service& service, const std::string& dag_id,
                              const std::string& run_id, const std::string& task_id,
                              int try_number) {
  auto reader = service.OpenLog(dag_id, run_id, task_id, try_number, {});
  if (!reader.ok()) return reader.status();
  std::string text;
  for (std::string piece; !(piece = reader->Read(4096)).empty();) text += piece;
  return text;
}

TEST_F(SchedulerTest, ALogLargerThanTheLimitIsServedFromItsEndWithANote) {
  AddDag(R"({"dag_id": "chatty", "tasks": [{"task_id": "a", "operator": "bash",
    "bash_command": "head -c 20000 /dev/zero | tr '\\0' x; echo; echo THE END"}]})");
  StartScheduler();
  Trigger("chatty", "r1");
  ASSERT_EQ(WaitForEnd("chatty", "r1").state, RunState::kSuccess);

  auto full = ReadLog(*service_, "chatty", "r1", "a", 1);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_GT(full->size(), 20000u);

  ServiceOptions options;
  options.logs_root = logs_;
  options.max_log_bytes = 100;
  SchedulerService capped(options, *faulty_, *scheduler_, clock_);
  auto tail = ReadLog(capped, "chatty", "r1", "a", 1);
  ASSERT_TRUE(tail.ok());
  EXPECT_LT(tail->size(), 400u);
  EXPECT_NE(tail->find("showing the last 100"), std::string::npos) << *tail;
  EXPECT_NE(tail->find("THE END"), std::string::npos) << *tail;
}

const char* kSlowWithTimeout = R"({"dag_id": "slow", "dagrun_timeout": 1, "tasks": [
  {"task_id": "a", "operator": "bash", "bash_command": "sleep 30"},
  {"task_id": "b", "operator": "empty", "upstream": ["a"]},
  {"task_id": "quick", "operator": "empty"}]})";

TEST_F(SchedulerTest, ARunPastItsDagrunTimeoutFailsStopsItsRunningTryAndSkipsTheRest) {
  AddDag(kSlowWithTimeout);
  StartScheduler();
  const auto began = std::chrono::steady_clock::now();
  Trigger("slow", "r1");
  const DagRun run = WaitForEnd("slow", "r1", 15s);
  EXPECT_EQ(run.state, RunState::kFailed);
  EXPECT_LT(std::chrono::steady_clock::now() - began, 8s);  // not the 30 s of `sleep`
  ASSERT_TRUE(run.start_date && run.end_date);
  EXPECT_GE(*run.end_date - *run.start_date, 1s);
  EXPECT_EQ(pg_->GetTaskInstance("slow", "r1", "a")->state, TaskState::kFailed);
  EXPECT_EQ(pg_->GetTaskInstance("slow", "r1", "b")->state, TaskState::kSkipped);
  EXPECT_EQ(pg_->GetTaskInstance("slow", "r1", "quick")->state, TaskState::kSuccess);
  const auto calls = recording_->calls();
  EXPECT_NE(std::find(calls.begin(), calls.end(), "stop try 1"), calls.end());
  // The command is gone and its log says why it ended.
  EXPECT_TRUE(executor_->WaitIdle(10s));
  auto log = ReadLog(*service_, "slow", "r1", "a", 1);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_NE(log->find("the run timed out: dagrun_timeout of 1s exceeded"), std::string::npos)
      << *log;
}

// The timeout counts from the stored start_date: a restart does not give a run more time.
TEST_F(SchedulerTest, ADagrunTimeoutIsMeasuredFromTheStoredStartDateAfterARestart) {
  AddDag(R"({"dag_id": "slow", "dagrun_timeout": "1h", "tasks": [
    {"task_id": "a", "operator": "bash", "bash_command": "sleep 30"},
    {"task_id": "b", "operator": "empty", "upstream": ["a"]}]})");
  {
    SchedulerOptions options;
    options.logs_root = logs_;
    Scheduler unused(options, *faulty_, *executor_, clock_);
    SchedulerService service(ServiceOptions{}, *faulty_, unused, clock_);
    TriggerRequest request;
    request.dag_run_id = "started_long_ago";
    ASSERT_TRUE(service.Trigger("slow", request).ok());
  }
  // What a daemon stopped two hours into the run leaves behind.
  db_.Query(
      "UPDATE dag_run SET state = 'running', start_date = now() - interval '2 hours' "
      "WHERE run_id = 'started_long_ago' RETURNING run_id");
  const auto began = std::chrono::steady_clock::now();
  StartScheduler();
  EXPECT_EQ(WaitForEnd("slow", "started_long_ago", 10s).state, RunState::kFailed);
  EXPECT_LT(std::chrono::steady_clock::now() - began, 5s);
  EXPECT_EQ(pg_->GetTaskInstance("slow", "started_long_ago", "a")->state, TaskState::kSkipped);
  EXPECT_EQ(pg_->GetTaskInstance("slow", "started_long_ago", "b")->state, TaskState::kSkipped);
  EXPECT_EQ(recording_->calls(), std::vector<std::string>{});  // nothing was started
}

TEST_F(SchedulerTest, ARunWithinItsDagrunTimeoutIsNotCutShort) {
  AddDag(R"({"dag_id": "roomy", "dagrun_timeout": "1h", "tasks": [
    {"task_id": "a", "operator": "bash", "bash_command": "sleep 0.3"}]})");
  StartScheduler();
  Trigger("roomy", "r1");
  EXPECT_EQ(WaitForEnd("roomy", "r1").state, RunState::kSuccess);
}

}  // namespace
}  // namespace dagd::scheduler
