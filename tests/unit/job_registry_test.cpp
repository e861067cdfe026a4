#include "dagd/executors/job_registry.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dagd/dags/register.hpp"
#include "dagd/executors/job_api.hpp"
#include "dagd/scheduler/dag_parser.hpp"

namespace dagd::executors {
namespace {

TEST(JobRegistry, FindsRegisteredJobsByName) {
  JobRegistry registry;
  int calls = 0;
  registry.Register("pipe.step", [&calls](JobContext&) { ++calls; });
  ASSERT_NE(registry.Find("pipe.step"), nullptr);
  EXPECT_TRUE(registry.Contains("pipe.step"));
  EXPECT_EQ(registry.Find("pipe.other"), nullptr);
  EXPECT_FALSE(registry.Contains("pipe"));
  JobContext ctx(JobInfo{}, nullptr, nullptr);
  (*registry.Find("pipe.step"))(ctx);
  EXPECT_EQ(calls, 1);
}

TEST(JobRegistry, NamesAreSorted) {
  JobRegistry registry;
  registry.Register("b.two", [](JobContext&) {});
  registry.Register("a.one", [](JobContext&) {});
  registry.Register("c.three", [](JobContext&) {});
  EXPECT_EQ(registry.Names(), (std::vector<std::string>{"a.one", "b.two", "c.three"}));
  EXPECT_EQ(registry.size(), 3u);
}

TEST(JobRegistry, RegisteringANameTwiceIsAProgrammerError) {
  JobRegistry registry;
  registry.Register("x", [](JobContext&) {});
  try {
    registry.Register("x", [](JobContext&) {});
    FAIL() << "expected std::logic_error";
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(), "job 'x' is registered twice");
  }
}

TEST(JobRegistry, EmptyNamesAndEmptyJobsAreRejected) {
  JobRegistry registry;
  EXPECT_THROW(registry.Register("", [](JobContext&) {}), std::logic_error);
  EXPECT_THROW(registry.Register("x", Job{}), std::logic_error);
  EXPECT_EQ(registry.size(), 0u);
}

TEST(JobContext, XcomPushKeepsFirstPushOrderAndLastValue) {
  JobContext ctx(JobInfo{}, nullptr, nullptr);
  ctx.XcomPush("a", 1);
  ctx.XcomPush("b", 2);
  ctx.XcomPush("a", 3);
  auto xcom = ctx.TakeXcom();
  ASSERT_EQ(xcom.size(), 2u);
  EXPECT_EQ(xcom[0].key, "a");
  EXPECT_EQ(xcom[0].value, 3);
  EXPECT_EQ(xcom[1].key, "b");
  EXPECT_TRUE(ctx.TakeXcom().empty());
}

TEST(JobContext, WaitForReturnsFalsePromptlyOnceCancelled) {
  auto token = std::make_shared<std::atomic<bool>>(false);
  JobContext ctx(JobInfo{}, nullptr, token);
  EXPECT_FALSE(ctx.cancelled());
  EXPECT_TRUE(ctx.WaitFor(std::chrono::milliseconds(20)));
  token->store(true);
  EXPECT_TRUE(ctx.cancelled());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(ctx.WaitFor(std::chrono::seconds(10)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
}

TEST(JobContext, LogLinesGoToTheSink) {
  std::vector<std::string> lines;
  JobContext ctx(
      JobInfo{}, [&lines](std::string_view l) { lines.emplace_back(l); }, nullptr);
  ctx.Log("one");
  ctx.Log("two");
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
}

// --- The example jobs --------------------------------------------------------------------------

JobInfo InfoFor(std::string task_id, int try_number, Json args = Json::object()) {
  JobInfo info;
  info.dag_id = "example";
  info.run_id = "r1";
  info.task_id = std::move(task_id);
  info.try_number = try_number;
  info.args = std::move(args);
  return info;
}

TEST(ExampleJobs, RegisterAllJobsRegistersEveryExampleJob) {
  JobRegistry registry;
  dags::RegisterAllJobs(registry);
  for (const char* name : {"example.start", "example.work", "example.join", "example.flaky"}) {
    EXPECT_TRUE(registry.Contains(name)) << name;
  }
}

TEST(ExampleJobs, FlakyFailsOnTriesOneAndTwoAndSucceedsOnThree) {
  JobRegistry registry;
  dags::RegisterAllJobs(registry);
  const Job& flaky = *registry.Find("example.flaky");
  for (int try_number : {1, 2}) {
    JobContext ctx(InfoFor("flaky", try_number), nullptr, nullptr);
    EXPECT_THROW(flaky(ctx), std::exception) << "try " << try_number;
  }
  JobContext ctx(InfoFor("flaky", 3), nullptr, nullptr);
  EXPECT_NO_THROW(flaky(ctx));
}

TEST(ExampleJobs, WorkPushesItsResult) {
  JobRegistry registry;
  dags::RegisterAllJobs(registry);
  JobContext ctx(InfoFor("work_3", 1, Json{{"sleep_ms", "30"}, {"index", "3"}}), nullptr, nullptr);
  (*registry.Find("example.work"))(ctx);
  auto xcom = ctx.TakeXcom();
  ASSERT_EQ(xcom.size(), 1u);
  EXPECT_EQ(xcom[0].key, "result");
  EXPECT_EQ(xcom[0].value["task_id"], "work_3");
  EXPECT_EQ(xcom[0].value["worked_ms"], 30);
}

TEST(ExampleJobs, WorkStopsWithAnErrorWhenCancelled) {
  JobRegistry registry;
  dags::RegisterAllJobs(registry);
  auto token = std::make_shared<std::atomic<bool>>(true);
  JobContext ctx(InfoFor("work_0", 1, Json{{"sleep_ms", 10000}}), nullptr, token);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW((*registry.Find("example.work"))(ctx), std::runtime_error);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST(ExampleDags, EveryFileParsesAndNamesOnlyRegisteredJobs) {
  JobRegistry registry;
  dags::RegisterAllJobs(registry);
  scheduler::ParseOptions options;
  options.job_exists = [&registry](std::string_view name) { return registry.Contains(name); };
  const auto files = scheduler::LoadDagFolder(std::string(DAGD_SOURCE_DIR) + "/dags", options);
  std::vector<std::string> ids;
  for (const auto& f : files) {
    EXPECT_TRUE(f.errors.empty()) << f.path << ": " << (f.errors.empty() ? "" : f.errors[0]);
    if (f.dag) ids.push_back(f.dag->dag_id);
  }
  for (const char* id :
       {"example_chain", "example_fanout", "example_retry", "example_retry_exhausted"}) {
    EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id;
  }
}

}  // namespace
}  // namespace dagd::executors
