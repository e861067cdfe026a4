// SchedulerService on a real PostgreSQL store and a real executor: what the API receives for logs
// that are not plain files and for values the database refuses.
#include "dagd/scheduler/scheduler_service.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "dagd/executors/job_registry.hpp"
#include "dagd/executors/thread_pool_executor.hpp"
#include "dagd/scheduler/dag_parser.hpp"
#include "dagd/scheduler/log_paths.hpp"
#include "dagd/scheduler/scheduler.hpp"
#include "dagd/storage/pg_state_store.hpp"
#include "test_database.hpp"

namespace dagd::scheduler {
namespace {

using namespace std::chrono_literals;

class SchedulerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::PgOptions options;
    options.url = db_.url();
    auto store = storage::PgStateStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    logs_ = std::filesystem::temp_directory_path() / ("dagd-service-" + db_.name());
    executors::ExecutorOptions executor_options;
    if (geteuid() == 0) executor_options.run_as_user = "nobody";  // bash tasks never run as root
    executor_ = std::make_unique<executors::ThreadPoolExecutor>(executor_options, jobs_, clock_);
    ParseResult parsed = ParseDag(std::string(R"({"dag_id": "logged", "tasks": [
        {"task_id": "a", "operator": "bash", "bash_command": "echo hello"}]})"),
                                  ParseOptions{});
    ASSERT_TRUE(parsed.dag) << parsed.errors.front();
    ASSERT_TRUE(
        store_->SyncDag(*parsed.dag, "/dags/logged.json", clock_.Now(), scheduler::DagSource::kFile)
            .ok());
    SchedulerOptions scheduler_options;
    scheduler_options.logs_root = logs_;
    scheduler_ = std::make_unique<Scheduler>(scheduler_options, *store_, *executor_, clock_);
    ServiceOptions service_options;
    service_options.logs_root = logs_;
    service_ = std::make_unique<SchedulerService>(service_options, *store_, *scheduler_, clock_);
    ASSERT_TRUE(store_->AcquireSchedulerLock().ok());
    ASSERT_TRUE(scheduler_->Start().ok());
  }
  void TearDown() override {
    if (scheduler_) scheduler_->Shutdown(5s);
    std::filesystem::remove_all(logs_);
  }

  // Triggers run `run_id` of "logged" and waits for it to end.
  void RunToEnd(const std::string& run_id) {
    TriggerRequest request;
    request.dag_run_id = run_id;
    ASSERT_TRUE(service_->Trigger("logged", request).ok());
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto run = store_->GetRun("logged", run_id);
      if (run.ok() && IsTerminal(run->state)) return;
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "run " << run_id << " did not end";
  }

  testing::TestDatabase db_;
  SystemClock clock_;
  executors::JobRegistry jobs_;
  std::unique_ptr<storage::PgStateStore> store_;
  std::filesystem::path logs_;
  std::unique_ptr<executors::ThreadPoolExecutor> executor_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<SchedulerService> service_;
};

TEST_F(SchedulerServiceTest, AConfLargerThanTheLimitIsRefusedAndNothingIsCreated) {
  TriggerRequest request;
  request.dag_run_id = "big";
  request.conf = {{"blob", std::string(64 << 10, 'x')}};
  auto run = service_->Trigger("logged", request);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(run.status().message().find("the limit is 65536"), std::string::npos)
      << run.status().message();
  EXPECT_FALSE(store_->GetRun("logged", "big").ok());
  request.conf = {{"blob", std::string(60 << 10, 'x')}};
  EXPECT_TRUE(service_->Trigger("logged", request).ok());
}

TEST_F(SchedulerServiceTest, RunIdsOutsideAirflowsPatternAreRefusedAndNothingIsCreated) {
  for (const std::string& bad :
       std::vector<std::string>{"$(id>/tmp/y)", "a b", "a/b", std::string("a\0b", 3),
                                std::string(251, 'r'), "caf\xc3\xa9"}) {
    TriggerRequest request;
    request.dag_run_id = bad;
    auto run = service_->Trigger("logged", request);
    ASSERT_FALSE(run.ok()) << bad;
    EXPECT_EQ(run.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(run.status().message().find("does not match the pattern"), std::string::npos);
  }
  RunQuery all;
  all.dag_id = "logged";
  auto runs = store_->ListRuns(all);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->total_entries, 0);
  TriggerRequest good;
  good.dag_run_id = "manual__2026-01-01T00:00:00+00:00.v2~x";
  EXPECT_TRUE(service_->Trigger("logged", good).ok());
}

// Reads all of `reader` in pieces of `piece` bytes: its note, then its bytes.
std::string ReadAll(LogReader& reader, size_t piece = 7) {
  std::string text;
  for (std::string read; !(read = reader.Read(piece)).empty();) text += read;
  return text;
}

TEST_F(SchedulerServiceTest, ALogIsReadInPiecesFromTheFile) {
  RunToEnd("r1");
  auto reader = service_->OpenLog("logged", "r1", "a", 1, {});
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  const std::string text = ReadAll(*reader, 3);
  EXPECT_NE(text.find("hello"), std::string::npos) << text;
}

TEST_F(SchedulerServiceTest, LogOffsetsCountFileBytesAlsoWhenTheHeadIsSkipped) {
  RunToEnd("r1");
  const auto path = TryLogPath(logs_, "logged", "r1", "a", 1);
  std::string log;
  for (char c = 'a'; c <= 'j'; ++c) log += std::string(9, c) + "\n";  // 100 bytes
  std::ofstream(path, std::ios::binary | std::ios::trunc) << log;
  ServiceOptions capped;
  capped.logs_root = logs_;
  capped.max_log_bytes = 20;
  SchedulerService service(capped, *store_, *scheduler_, clock_);

  auto head = service.OpenLog("logged", "r1", "a", 1, {});
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_TRUE(head->try_ended());
  EXPECT_EQ(head->position(), 80u);  // the head skipped counts: the file's byte 80 comes next
  const std::string key = head->try_key();
  EXPECT_EQ(ReadAll(*head), "[dagd: this log has 100 bytes; showing the last 20. The whole file: " +
                                path.string() + "]\n" + log.substr(80));
  EXPECT_EQ(head->position(), 100u);

  auto after = service.OpenLog("logged", "r1", "a", 1, {30, key, false, false});
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->position(), 80u);
  EXPECT_EQ(ReadAll(*after),
            "[dagd: skipping 50 bytes of this log after the continuation "
            "token's position, to serve its last 20. The whole file: " +
                path.string() + "]\n" + log.substr(80));

  auto near_end = service.OpenLog("logged", "r1", "a", 1, {90, key, false, false});
  ASSERT_TRUE(near_end.ok());
  EXPECT_EQ(ReadAll(*near_end), log.substr(90));
  auto whole = service.OpenLog("logged", "r1", "a", 1, {30, key, true, false});
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(ReadAll(*whole), log.substr(30));
  auto at_end = service.OpenLog("logged", "r1", "a", 1, {100, key, false, false});
  ASSERT_TRUE(at_end.ok());
  EXPECT_EQ(ReadAll(*at_end), "");

  auto past = service.OpenLog("logged", "r1", "a", 1, {101, key, false, false});
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(past.status().message(),
            "The continuation token points at byte 101, past the end of this log (100 bytes)");
  auto other = service.OpenLog("logged", "r1", "a", 1, {0, key + "0", false, false});
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SchedulerServiceTest, AReadOfARunningTrysLogForEventsEndsAfterItsLastCompleteLine) {
  RunToEnd("r1");
  db_.Query(
      "UPDATE task_instance SET state = 'running' WHERE dag_id = 'logged' AND run_id = 'r1' "
      "AND task_id = 'a' RETURNING task_id");
  const auto path = TryLogPath(logs_, "logged", "r1", "a", 1);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "one\ntwo\npart";

  auto lines = service_->OpenLog("logged", "r1", "a", 1, {0, "", false, true});
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  EXPECT_FALSE(lines->try_ended());
  EXPECT_EQ(ReadAll(*lines), "one\ntwo\n");
  EXPECT_EQ(lines->position(), 8u);
  // From there, no line is complete yet: nothing, and the next read starts at the same byte.
  auto rest = service_->OpenLog("logged", "r1", "a", 1, {8, lines->try_key(), false, true});
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(ReadAll(*rest), "");
  EXPECT_EQ(rest->end(), 8u);
  // Raw bytes need no whole lines.
  auto raw = service_->OpenLog("logged", "r1", "a", 1, {8, lines->try_key(), false, false});
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(ReadAll(*raw), "part");
}

TEST_F(SchedulerServiceTest, ALogReplacedByAFifoIsRefusedNotWaitedFor) {
  RunToEnd("r1");
  const auto path = TryLogPath(logs_, "logged", "r1", "a", 1);
  std::filesystem::remove(path);
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto opened =
      std::async(std::launch::async, [&] { return service_->OpenLog("logged", "r1", "a", 1, {}); });
  ASSERT_EQ(opened.wait_for(5s), std::future_status::ready) << "OpenLog blocked on a FIFO";
  auto reader = opened.get();
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(reader.status().message(), "The log of try 1 is not a regular file");
}

TEST_F(SchedulerServiceTest, AValueTheDatabaseRefusesIsASentenceOfOurs) {
  // PostgreSQL refuses text that is not UTF-8, and \u0000 in jsonb.
  DagQuery query;
  query.dag_id_pattern = "\xff";
  auto listing = service_->ListDags(query);
  ASSERT_FALSE(listing.ok());
  EXPECT_EQ(listing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(listing.status().message(),
            "The database cannot store or compare a value of this DAG listing; the daemon's log "
            "has the details");

  TriggerRequest request;
  request.conf = {{"k", std::string("a\0b", 3)}};
  auto run = service_->Trigger("logged", request);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run.status().message().find("jsonb"), std::string::npos) << run.status().message();
  EXPECT_EQ(run.status().message().find("Unicode"), std::string::npos) << run.status().message();
}

TEST_F(SchedulerServiceTest, AnUnknownOrderByKeepsItsSentence) {
  DagQuery query;
  query.page.order_by = {"nope"};
  auto listing = service_->ListDags(query);
  ASSERT_FALSE(listing.ok());
  EXPECT_EQ(listing.status().message().rfind("Ordering with 'nope'", 0), 0u)
      << listing.status().message();
}

}  // namespace
}  // namespace dagd::scheduler
