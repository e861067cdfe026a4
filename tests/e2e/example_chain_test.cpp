// A user's first session: list DAGs, trigger example_chain, watch it succeed, read a log.
#include <gtest/gtest.h>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

TEST(ExampleChain, RunsEndToEndOverHttpInOrderAndServesItsLogs) {
  Daemon d;
  d.Start();

  Json dags = GetJson(d.Url("/api/v2/dags"));
  std::vector<std::string> ids;
  for (const auto& dag : dags["dags"]) ids.push_back(dag["dag_id"]);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "example_chain"), ids.end()) << dags.dump();
  EXPECT_EQ(dags["total_entries"].get<int>(), static_cast<int>(ids.size()));

  // Airflow clients send logical_date null and let the server name the run.
  HttpResponse trigger = HttpPostJson(d.Url("/api/v2/dags/example_chain/dagRuns"),
                                      R"({"logical_date": null, "conf": {"who": "me"}})");
  ASSERT_EQ(trigger.status, 200) << trigger.body;
  Json run = Json::parse(trigger.body);
  const std::string run_id = run["dag_run_id"];
  EXPECT_EQ(run["state"], "queued");
  EXPECT_EQ(run["conf"]["who"], "me");
  EXPECT_TRUE(run.contains("logical_date") && run["logical_date"].is_null());

  // The generated run id has ':' and '+' in it: the path must be percent-encoded.
  std::string encoded;
  for (char c : run_id) {
    if (isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.') {
      encoded += c;
    } else {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
      encoded += buf;
    }
  }
  Json done = WaitForRun(d, "example_chain", encoded);
  ASSERT_EQ(done["state"], "success") << done.dump();

  auto tis = TaskInstancesById(d, "example_chain", encoded);
  ASSERT_EQ(tis.size(), 3u);
  for (const auto& [id, ti] : tis) {
    EXPECT_EQ(ti["state"], "success") << id;
    EXPECT_EQ(ti["try_number"], 1) << id;
    EXPECT_TRUE(ti["unixname"].is_string() && !ti["unixname"].get<std::string>().empty()) << id;
    EXPECT_TRUE(ti["hostname"].is_string()) << id;
  }
  // a → b → c: each starts only after its upstream ended.
  EXPECT_LE(tis["a"]["end_date"].get<std::string>(), tis["b"]["start_date"].get<std::string>());
  EXPECT_LE(tis["b"]["end_date"].get<std::string>(), tis["c"]["start_date"].get<std::string>());

  // Every transition is in the event log, in commit order: the run's and task b's.
  auto run_events = d.db.Query("SELECT state FROM event WHERE kind = 'dag_run' AND run_id = '" +
                               run_id + "' ORDER BY seq");
  EXPECT_EQ(run_events, (std::vector<std::string>{"queued", "running", "success"}));
  auto b_events = d.db.Query(
      "SELECT coalesce(state, 'none') || '/' || try_number FROM event "
      "WHERE task_id = 'b' AND run_id = '" +
      run_id + "' ORDER BY seq");
  EXPECT_EQ(b_events, (std::vector<std::string>{"queued/1", "running/1", "success/1"}));

  HttpResponse log =
      HttpGet(d.Url("/api/v2/dags/example_chain/dagRuns/" + encoded + "/taskInstances/b/logs/1"),
              {{"Accept", "text/plain"}});
  ASSERT_EQ(log.status, 200) << log.body;
  EXPECT_NE(log.body.find("hello again me from b"), std::string::npos) << log.body;

  HttpResponse json_log =
      HttpGet(d.Url("/api/v2/dags/example_chain/dagRuns/" + encoded + "/taskInstances/b/logs/1"),
              {{"Accept", "application/json"}});
  ASSERT_EQ(json_log.status, 200);
  EXPECT_NE(json_log.body.find("hello again me from b"), std::string::npos) << json_log.body;
}

TEST(ExampleChain, BadRequestsGetClearErrorsAndTheDaemonKeepsServing) {
  Daemon d;
  d.Start();
  auto post = [&](const std::string& dag, const std::string& body) {
    return HttpPostJson(d.Url("/api/v2/dags/" + dag + "/dagRuns"), body);
  };
  HttpResponse unknown_dag = post("no_such_dag", R"({"logical_date": null})");
  EXPECT_EQ(unknown_dag.status, 404);
  EXPECT_NE(unknown_dag.body.find("no_such_dag"), std::string::npos) << unknown_dag.body;

  HttpResponse missing = post("example_chain", R"({"conf": {}})");
  EXPECT_EQ(missing.status, 422) << missing.body;
  EXPECT_NE(missing.body.find("logical_date"), std::string::npos) << missing.body;

  HttpResponse unknown_key = post("example_chain", R"({"logical_date": null, "confx": {}})");
  EXPECT_EQ(unknown_key.status, 422) << unknown_key.body;

  HttpResponse not_json = post("example_chain", "{nope");
  EXPECT_EQ(not_json.status, 422) << not_json.body;

  EXPECT_EQ(post("example_chain", R"({"logical_date": null, "dag_run_id": "once"})").status, 200);
  HttpResponse dup = post("example_chain", R"({"logical_date": null, "dag_run_id": "once"})");
  EXPECT_EQ(dup.status, 409) << dup.body;
  EXPECT_NE(dup.body.find("once"), std::string::npos) << dup.body;

  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags/example_chain/dagRuns/nope")).status, 404);
  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags/example_chain/dagRuns/once/taskInstances/zz")).status, 404);
  EXPECT_EQ(HttpGet(d.Url("/api/v2/version")).status, 200);
  Json run = WaitForRun(d, "example_chain", "once");
  EXPECT_EQ(run["state"], "success");
}

TEST(ExampleChain, PausedDagKeepsItsRunQueuedUntilUnpaused) {
  Daemon d;
  d.Start();
  HttpResponse pause = HttpPatchJson(d.Url("/api/v2/dags/example_chain"), R"({"is_paused": true})");
  ASSERT_EQ(pause.status, 200) << pause.body;
  EXPECT_EQ(Json::parse(pause.body)["is_paused"], true);
  Trigger(d, "example_chain", "paused_run");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(GetJson(d.Url("/api/v2/dags/example_chain/dagRuns/paused_run"))["state"], "queued");
  ASSERT_EQ(HttpPatchJson(d.Url("/api/v2/dags/example_chain"), R"({"is_paused": false})").status,
            200);
  EXPECT_EQ(WaitForRun(d, "example_chain", "paused_run")["state"], "success");
}

}  // namespace
}  // namespace dagd::testing
