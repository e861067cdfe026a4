// Retries over the real daemon: a flaky task succeeds on its third try; with fewer retries it
// fails for good and its downstream task ends upstream_failed.
#include <gtest/gtest.h>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

TEST(ExampleRetry, FlakyTaskSucceedsOnItsThirdTryAndEveryTryIsRecorded) {
  Daemon d;
  d.Start();
  Trigger(d, "example_retry", "r1");
  Json run = WaitForRun(d, "example_retry", "r1");
  ASSERT_EQ(run["state"], "success") << run.dump();
  auto tis = TaskInstancesById(d, "example_retry", "r1");
  EXPECT_EQ(tis["flaky"]["state"], "success");
  EXPECT_EQ(tis["flaky"]["try_number"], 3);
  EXPECT_EQ(tis["after"]["state"], "success");

  Json tries = GetJson(d.Url("/api/v2/dags/example_retry/dagRuns/r1/taskInstances/flaky/tries"));
  ASSERT_EQ(tries["task_instances"].size(), 3u) << tries.dump();
  EXPECT_EQ(tries["task_instances"][0]["state"], "up_for_retry");
  EXPECT_EQ(tries["task_instances"][2]["state"], "success");
  // Each try has its own log.
  for (int n = 1; n <= 3; ++n) {
    HttpResponse log =
        HttpGet(d.Url("/api/v2/dags/example_retry/dagRuns/r1/taskInstances/flaky/logs/" +
                      std::to_string(n)),
                {{"Accept", "text/plain"}});
    EXPECT_EQ(log.status, 200);
    EXPECT_FALSE(log.body.empty()) << "try " << n;
  }
  EXPECT_EQ(
      HttpGet(d.Url("/api/v2/dags/example_retry/dagRuns/r1/taskInstances/flaky/logs/4")).status,
      404);
}

TEST(ExampleRetry, ExhaustedRetriesFailTheRunAndMarkDownstreamUpstreamFailed) {
  Daemon d;
  d.Start();
  Trigger(d, "example_retry_exhausted", "r1");
  Json run = WaitForRun(d, "example_retry_exhausted", "r1");
  ASSERT_EQ(run["state"], "failed") << run.dump();
  auto tis = TaskInstancesById(d, "example_retry_exhausted", "r1");
  EXPECT_EQ(tis["flaky"]["state"], "failed");
  EXPECT_EQ(tis["flaky"]["try_number"], 2);
  EXPECT_EQ(tis["after"]["state"], "upstream_failed");
}

}  // namespace
}  // namespace dagd::testing
