// GET /metrics on the real binary, scraped as Prometheus would after a user's first run.
#include <gtest/gtest.h>

#include "e2e_support.hpp"
#include "prometheus_text.hpp"

namespace dagd::testing {
namespace {

PromText Scrape(const Daemon& d, const std::map<std::string, std::string>& headers = {}) {
  HttpResponse r = HttpGet(d.Url("/metrics"), headers);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  PromText text = ParsePrometheusText(r.body);
  for (const std::string& e : text.errors) ADD_FAILURE() << e;
  return text;
}

double ValueOr(const PromText& text, const std::string& name,
               const std::map<std::string, std::string>& labels = {}) {
  auto v = text.Value(name, labels);
  EXPECT_TRUE(v.has_value()) << name;
  return v.value_or(-1);
}

TEST(Metrics, AScrapeAfterARunShowsItsStatesLagsRequestsAndTheProcess) {
  Daemon d;
  d.Start();
  const std::string run_id = Trigger(d, "example_chain", "metrics_run");
  ASSERT_EQ(WaitForRun(d, "example_chain", run_id)["state"], "success");

  PromText text = Scrape(d);
  // The run and its three tasks, counted as the scheduler committed them.
  EXPECT_GE(ValueOr(text, "dagd_dag_run_transitions_total", {{"state", "success"}}), 1);
  // (Its creation is counted only when the loop was already up to read it from the event log:
  // a run created before the loop's first load is loaded as it is.)
  EXPECT_GE(ValueOr(text, "dagd_dag_run_transitions_total", {{"state", "running"}}), 1);
  EXPECT_GE(ValueOr(text, "dagd_task_instance_transitions_total", {{"state", "success"}}), 3);
  // Nothing is active any more.
  EXPECT_EQ(ValueOr(text, "dagd_dag_runs", {{"state", "queued"}}), 0);
  EXPECT_EQ(ValueOr(text, "dagd_dag_runs", {{"state", "running"}}), 0);
  EXPECT_EQ(ValueOr(text, "dagd_task_instances", {{"state", "running"}}), 0);
  // Three tries were queued then started; b and c started after their upstream ended.
  EXPECT_GE(ValueOr(text, "dagd_task_queued_to_running_seconds_count"), 3);
  EXPECT_GE(ValueOr(text, "dagd_task_upstream_to_start_seconds_count"), 2);
  EXPECT_GT(ValueOr(text, "dagd_scheduler_commit_seconds_count"), 0);
  EXPECT_GE(ValueOr(text, "dagd_store_run_create_commit_seconds_count"), 1);
  // The trigger, by its route pattern.
  EXPECT_EQ(
      ValueOr(text, "dagd_http_request_duration_seconds_count",
              {{"route", "/api/v2/dags/{dag_id}/dagRuns"}, {"method", "POST"}, {"status", "200"}}),
      1);
  EXPECT_GT(ValueOr(text, "dagd_http_request_duration_seconds_count",
                    {{"route", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}"},
                     {"method", "GET"},
                     {"status", "200"}}),
            0);
  EXPECT_GT(ValueOr(text, "process_resident_memory_bytes"), 0);
  EXPECT_GT(ValueOr(text, "process_open_fds"), 0);
  EXPECT_GT(ValueOr(text, "dagd_executor_workers"), 0);
  EXPECT_EQ(ValueOr(text, "dagd_executor_workers_busy"), 0);
  EXPECT_GT(ValueOr(text, "dagd_db_pool_connections_max"), 0);
  EXPECT_GE(ValueOr(text, "dagd_http_live_streams"), 0);
  EXPECT_GE(ValueOr(text, "dagd_event_log_watchers"), 0);
}

TEST(Metrics, ActiveRunsAndTheirTaskInstancesAreGaugedFromTheDatabase) {
  Daemon d;
  d.Start();
  ASSERT_EQ(HttpPatchJson(d.Url("/api/v2/dags/example_chain"), R"({"is_paused": true})").status,
            200);
  Trigger(d, "example_chain", "held_1");
  Trigger(d, "example_chain", "held_2");
  PromText text = Scrape(d);
  EXPECT_EQ(ValueOr(text, "dagd_dag_runs", {{"state", "queued"}}), 2);
  EXPECT_EQ(ValueOr(text, "dagd_task_instances", {{"state", "none"}}), 6);
  EXPECT_EQ(ValueOr(text, "dagd_task_instances", {{"state", "success"}}), 0);

  // Another writer (psql) ends one: the scheduler reads it from the event log and counts it.
  d.db.Query("UPDATE dag_run SET state = 'failed' WHERE run_id = 'held_2'");
  WaitUntil(
      [&] {
        return Scrape(d).Value("dagd_dag_run_transitions_total", {{"state", "failed"}}) == 1;
      },
      std::chrono::seconds(10));
  text = Scrape(d);
  EXPECT_EQ(ValueOr(text, "dagd_dag_run_transitions_total", {{"state", "failed"}}), 1);
  EXPECT_EQ(ValueOr(text, "dagd_dag_runs", {{"state", "queued"}}), 1);
  EXPECT_EQ(ValueOr(text, "dagd_task_instances", {{"state", "none"}}), 3);

  ASSERT_EQ(HttpPatchJson(d.Url("/api/v2/dags/example_chain"), R"({"is_paused": false})").status,
            200);
  EXPECT_EQ(WaitForRun(d, "example_chain", "held_1")["state"], "success");
  text = Scrape(d);
  EXPECT_EQ(ValueOr(text, "dagd_dag_runs", {{"state", "queued"}}), 0);
  EXPECT_EQ(ValueOr(text, "dagd_task_instances", {{"state", "none"}}), 0);
  EXPECT_EQ(ValueOr(text, "dagd_dag_run_transitions_total", {{"state", "success"}}), 1);
}

TEST(Metrics, PrometheusNeedsAViewerToken) {
  Daemon d;
  d.Start();
  HttpResponse anonymous = HttpGet(d.Url("/metrics"), {{"Authorization", ""}});
  EXPECT_EQ(anonymous.status, 401) << anonymous.body;
  CliResult made =
      Cli(d, {"tokens", "create", "--role", "viewer", "--expires", "1d", "--name", "prometheus"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string token = made.out.substr(0, made.out.find('\n'));
  PromText text = Scrape(d, {{"Authorization", "Bearer " + token}});
  EXPECT_GT(ValueOr(text, "process_resident_memory_bytes"), 0);
}

}  // namespace
}  // namespace dagd::testing
