// The contract: every endpoint of the real daemon, its successes and its errors, answers as dagd's
// own OpenAPI document (/api/v2/openapi.json) says, and, where Airflow 3.2 has the same
// operation, as Airflow's published document says. The responses are saved and checked by Ajv,
// an independent validator (tests/contract/validate.mjs, npm packages pinned by
// tests/contract/package-lock.json and installed by the ctest fixture contract.install).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../e2e/e2e_support.hpp"

namespace dagd::testing {
namespace {

const std::string kValidator = std::string(DAGD_CONTRACT_NODE_DIR) + "/validate.mjs";
const std::string kAirflowDocument =
    std::string(DAGD_SOURCE_DIR) + "/api/openapi/airflow-v2-3.2.1.yaml";

// A DAG with what the examples leave out: a run timeout (an ISO 8601 duration in Airflow's
// schema), several tags, an owner.
const char* kTimedDag = R"({
  "dag_id": "contract_timed", "description": "timeout and tags", "schedule": null,
  "tags": ["contract", "timed"], "dagrun_timeout": "1h30m",
  "default_args": {"owner": "ops", "retries": 0},
  "tasks": [{"task_id": "only", "operator": "empty"}]})";

// A daily schedule, for backfills: its runs last as long as the test, so that the backfill is
// still active when it is paused and cancelled.
const char* kDailyDag = R"({"dag_id": "contract_daily", "schedule": "@daily",
  "start_date": "2026-01-01T00:00:00Z",
  "tasks": [{"task_id": "d", "operator": "bash", "bash_command": "sleep 60"}]})";

// A try that runs as long as the test does: its log answers carry a continuation token.
const char* kSlowDag = R"({"dag_id": "contract_slow", "tasks": [
  {"task_id": "s", "operator": "bash", "bash_command": "echo started; sleep 60"}]})";

struct Result {
  int exit_code = -1;
  std::string output;
};

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, sep);) out.push_back(part);
  return out;
}

Result Run(const std::string& command) {
  Result r;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The exchanges of one daemon, saved in the validator's input format.
class Exchanges {
 public:
  explicit Exchanges(const Daemon& d) : d_(d) {}

  // Sends the request, checks the status the test expects, and keeps the exchange.
  Json Send(const std::string& method, const std::string& path, int expected_status,
            const std::string& body = "", std::map<std::string, std::string> headers = {}) {
    return Keep(method, path, expected_status, body, std::move(headers), false);
  }
  // The same, for an answer that only dagd's document describes (a status or media type Airflow
  // does not document for that operation): left out of the check against Airflow's.
  Json SendDagdOnly(const std::string& method, const std::string& path, int expected_status,
                    std::map<std::string, std::string> headers = {}) {
    return Keep(method, path, expected_status, "", std::move(headers), true);
  }
  Json SendDagdOnly(const std::string& method, const std::string& path, int expected_status,
                    const std::string& body) {
    return Keep(method, path, expected_status, body, {}, true);
  }

  Json& list() { return list_; }

 private:
  Json Keep(const std::string& method, const std::string& path, int expected_status,
            const std::string& body, std::map<std::string, std::string> headers, bool dagd_only) {
    if (!body.empty()) headers.emplace("Content-Type", "application/json");
    HttpResponse r = HttpRequest(method, d_.Url(path), body, headers);
    EXPECT_EQ(r.status, expected_status) << method << " " << path << ": " << r.body;
    Json parsed = Json::parse(r.body, nullptr, false);
    const bool json = r.content_type.starts_with("application/json");
    EXPECT_TRUE(!json || !parsed.is_discarded()) << method << " " << path << ": " << r.body;
    list_.push_back({{"method", method},
                     {"url", path},
                     {"status", r.status},
                     {"content_type", r.content_type},
                     {"body", json ? parsed : Json(r.body)},
                     {"dagd_only", dagd_only}});
    return parsed;
  }

  const Daemon& d_;
  Json list_ = Json::array();
};

Result Validate(const std::string& exchanges_path, const std::string& spec,
                const std::string& flags) {
  return Run("node " + kValidator + " --spec " + spec + " " + flags + " " + exchanges_path);
}

TEST(Contract, EveryEndpointAnswersAsDagdsDocumentAndAirflowsSayAndADriftFails) {
  TempDir dags;
  for (const char* name : {"example_chain.json", "example_retry.json"}) {
    std::filesystem::copy_file(std::filesystem::path(ExampleDags()) / name, dags.path() / name);
  }
  dags.Write("contract_timed.json", kTimedDag);
  dags.Write("broken.json", R"({"dag_id": "broken", "tasks": [{"task_id": "t"}]})");
  dags.Write("contract_slow.json", kSlowDag);
  dags.Write("contract_daily.json", kDailyDag);
  // contract_slow still runs at the end: it is stopped at once rather than waited for.
  Daemon d(dags.path().string(), {"--shutdown-grace", "0"});
  d.Start();
  Trigger(d, "contract_slow", "contract_s");
  Trigger(d, "example_chain", "contract_1", {{"who", "contract"}});
  Trigger(d, "example_retry", "contract_retry");
  ASSERT_EQ(WaitForRun(d, "example_chain", "contract_1")["state"], "success");
  ASSERT_EQ(WaitForRun(d, "example_retry", "contract_retry")["state"], "success");

  ASSERT_NO_FATAL_FAILURE(AddUser(d, "contract", "viewer"));
  Exchanges ex(d);
  ex.Send("POST", "/auth/token", 201, R"({"username": "contract", "password": "pw-contract"})");
  ex.Send("POST", "/auth/token", 201, "username=contract&password=pw-contract&grant_type=password",
          {{"Content-Type", "application/x-www-form-urlencoded"}});
  ex.Send("POST", "/auth/token", 401, R"({"username": "contract", "password": "wrong"})");
  ex.Send("POST", "/auth/token", 422, R"({"username": "contract"})");
  ex.Send("POST", "/auth/token", 415, "username=contract", {{"Content-Type", "text/plain"}});
  // The wrong password above was the first failure from this address; nine more, then 429.
  for (int i = 0; i < 9; ++i) ASSERT_EQ(PostToken(d, "contract", "wrong").status, 401);
  ex.Send("POST", "/auth/token", 429, R"({"username": "contract", "password": "pw-contract"})");
  const std::string run = "/api/v2/dags/example_chain/dagRuns/contract_1";
  const std::string retry_ti =
      "/api/v2/dags/example_retry/dagRuns/contract_retry/taskInstances/flaky";
  ex.Send("GET", "/api/v2/version", 200);
  ex.Send("GET", "/api/v2/monitor/health", 200);
  ex.Send("GET", "/api/v2/openapi.json", 200);
  ex.Send("GET", "/api/v2/openapi.json?x=1", 422);

  ex.Send("GET", "/api/v2/dags", 200);
  ex.Send("GET", "/api/v2/dags?tags=timed&limit=1&order_by=-dag_id&paused=false", 200);
  ex.Send("GET", "/api/v2/dags?limit=-1", 422);
  ex.Send("GET", "/api/v2/dags?owners=ops", 422);
  ex.Send("GET", "/api/v2/dags/contract_timed", 200);
  ex.Send("GET", "/api/v2/dags/nope", 404);
  ex.Send("PATCH", "/api/v2/dags/contract_timed", 200, R"({"is_paused": false})");
  ex.Send("PATCH", "/api/v2/dags/contract_timed", 422, R"({"is_paused": "yes"})");
  ex.Send("PATCH", "/api/v2/dags/contract_timed?update_mask=owners", 400, R"({"is_paused": true})");
  ex.Send("PATCH", "/api/v2/dags/nope", 404, R"({"is_paused": true})");
  // DAG upload (dagd's) and deletion (Airflow's; its 409 only dagd's document lists).
  const std::string upload =
      R"({"dag_id": "contract_upload", "tags": ["up"], "tasks": [{"task_id": "u", "operator": "empty"}]})";
  ex.Send("PUT", "/api/v2/dags/contract_upload", 201, upload);
  ex.Send("PUT", "/api/v2/dags/contract_upload", 200, upload);
  ex.Send("PUT", "/api/v2/dags/contract_upload", 422,
          R"({"dag_id": "contract_upload", "tasks": [{"task_id": "u", "operator": "x"}]})");
  ex.Send("PUT", "/api/v2/dags/contract_timed", 409,
          R"({"dag_id": "contract_timed", "tasks": [{"task_id": "u", "operator": "empty"}]})");
  ex.Send("DELETE", "/api/v2/dags/contract_upload", 200);
  ex.Send("DELETE", "/api/v2/dags/contract_upload", 404);
  ex.Send("DELETE", "/api/v2/dags/contract_upload?x=1", 422);
  ex.SendDagdOnly("DELETE", "/api/v2/dags/contract_timed", 409);
  const Json details = ex.Send("GET", "/api/v2/dags/contract_timed/details", 200);
  EXPECT_EQ(details["dag_run_timeout"], "PT1H30M");
  ex.Send("GET", "/api/v2/dags/example_chain/details", 200);
  ex.Send("GET", "/api/v2/dags/nope/details", 404);

  const Json versions = ex.Send("GET", "/api/v2/dags/example_chain/dagVersions", 200);
  EXPECT_EQ(versions["total_entries"], 1);
  ex.Send("GET", "/api/v2/dags/~/dagVersions?order_by=-created_at&limit=2", 200);
  ex.Send("GET", "/api/v2/dags/nope/dagVersions", 404);
  ex.Send("GET", "/api/v2/dags/example_chain/dagVersions?bundle_version=x", 422);
  ex.Send("GET", "/api/v2/dags/example_chain/dagVersions/1", 200);
  ex.Send("GET", "/api/v2/dags/example_chain/dagVersions/7", 404);
  ex.Send("GET", "/api/v2/dags/example_chain/dagVersions/one", 422);

  ex.Send("GET", "/api/v2/dags/example_chain/tasks", 200);
  ex.Send("GET", "/api/v2/dags/example_chain/tasks?order_by=bogus", 400);
  ex.Send("GET", "/api/v2/dags/nope/tasks", 404);
  ex.Send("GET", "/api/v2/dags/example_chain/tasks/a", 200);
  ex.Send("GET", "/api/v2/dags/example_chain/tasks/zz", 404);

  ex.Send("POST", "/api/v2/dags/contract_timed/dagRuns", 200,
          R"({"logical_date": null, "dag_run_id": "contract_t", "note": "n"})");
  ex.Send("POST", "/api/v2/dags/contract_timed/dagRuns", 409,
          R"({"logical_date": null, "dag_run_id": "contract_t"})");
  ex.Send("POST", "/api/v2/dags/contract_timed/dagRuns", 422, R"({"dag_run_id": "x"})");
  ex.Send("POST", "/api/v2/dags/nope/dagRuns", 404, R"({"logical_date": null})");
  ex.Send("POST", "/api/v2/dags/contract_timed/dagRuns", 400,
          R"({"logical_date": null, "dag_run_id": "no spaces"})");
  ex.Send("GET", "/api/v2/dags/example_chain/dagRuns", 200);
  ex.Send("GET",
          "/api/v2/dags/~/dagRuns?state=success&run_after_gte=2000-01-01T00:00:00Z"
          "&duration_gte=0&order_by=-run_after&limit=5",
          200);
  ex.Send("GET", "/api/v2/dags/~/dagRuns?state=bogus", 422);
  ex.Send("GET", "/api/v2/dags/~/dagRuns?conf_contains=x", 422);
  ex.Send("GET", "/api/v2/dags/nope/dagRuns", 404);
  ex.Send("POST", "/api/v2/dags/~/dagRuns/list", 200,
          R"({"dag_ids": ["example_chain", "example_retry"], "states": ["success"],)"
          R"( "order_by": "-start_date", "page_limit": 10})");
  ex.Send("POST", "/api/v2/dags/~/dagRuns/list", 422, R"({"conf_contains": "x"})");
  ex.Send("GET", run, 200);
  ex.Send("GET", "/api/v2/dags/example_chain/dagRuns/nope", 404);

  // Marking and notes; contract_1 keeps its states (notes, a dry run, refusals).
  ex.Send("PATCH", run, 200, R"({"note": "checked"})");
  ex.Send("PATCH", run + "?update_mask=note", 200, R"({"state": "failed", "note": null})");
  ex.Send("PATCH", run, 422, R"({"state": "running"})");
  ex.Send("PATCH", run, 422, R"({"conf": {}})");
  ex.Send("PATCH", run + "?update_mask=conf", 400, R"({"note": "x"})");
  ex.Send("PATCH", "/api/v2/dags/example_chain/dagRuns/nope", 404, R"({"state": "failed"})");
  ex.Send("PATCH", run + "/taskInstances/a/dry_run", 200,
          R"({"new_state": "failed", "include_downstream": true})");
  ex.Send("PATCH", run + "/taskInstances/a", 200, R"({"note": "fine"})");
  ex.Send("PATCH", run + "/taskInstances/a", 409, R"({"new_state": "success"})");
  ex.Send("PATCH", run + "/taskInstances/a", 422,
          R"({"new_state": "failed", "include_past": true})");
  ex.Send("PATCH", run + "/taskInstances/zz", 404, R"({"new_state": "failed"})");

  // Clearing: dry runs and refusals (contract_1 keeps its states); the real clears select
  // nothing (only_failed, and nothing failed), so they change nothing either.
  const std::string clear = "/api/v2/dags/example_chain/clearTaskInstances";
  ex.Send("POST", clear, 200, R"({"dag_run_id": "contract_1", "only_failed": false})");
  ex.Send("POST", clear, 200, R"({"dag_run_id": "contract_1", "dry_run": false})");
  ex.SendDagdOnly("POST", clear, 400, R"({"dag_run_id": "contract_1", "include_past": true})");
  ex.Send("POST", clear, 422, R"({"bogus": 1})");
  ex.Send("POST", clear, 422, R"({"task_ids": [["a", 2]]})");
  ex.Send("POST", clear, 404, R"({"dag_run_id": "nope"})");
  ex.Send("POST", "/api/v2/dags/nope/clearTaskInstances", 404, "{}");
  ex.Send("POST", run + "/clear", 200, "{}");
  ex.Send("POST", run + "/clear", 422, R"({"task_ids": ["a"]})");
  ex.Send("POST", "/api/v2/dags/example_chain/dagRuns/nope/clear", 404, "{}");
  ex.Send("POST", "/api/v2/dags/example_retry/dagRuns/contract_retry/clear", 200,
          R"({"dry_run": false, "only_failed": true})");

  ex.Send("GET", run + "/taskInstances", 200);
  ex.Send("GET", "/api/v2/dags/~/dagRuns/~/taskInstances?state=success&limit=3", 200);
  ex.Send("GET", "/api/v2/dags/~/dagRuns/~/taskInstances?executor=x", 422);
  ex.Send("GET", "/api/v2/dags/example_chain/dagRuns/nope/taskInstances", 404);
  ex.Send("POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list", 200,
          R"({"dag_ids": ["example_retry"], "dag_run_ids": ["contract_retry"],)"
          R"( "state": ["success"], "duration_gte": 0})");
  ex.Send("POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list", 422, R"({"queue": ["q"]})");
  ex.Send("GET", run + "/taskInstances/a", 200);
  ex.Send("GET", run + "/taskInstances/zz", 404);
  ex.Send("GET", retry_ti + "/tries", 200);
  ex.Send("GET", retry_ti + "/tries/2", 200);
  ex.Send("GET", retry_ti + "/tries/9", 404);
  ex.Send("GET", retry_ti + "/tries/x", 422);
  // Why a task is not running: a finished task says its state is not runnable.
  const Json deps = ex.Send("GET", run + "/taskInstances/a/dependencies", 200);
  EXPECT_EQ(deps["dependencies"][0]["name"], "Task Instance State") << deps;
  ex.Send("GET", run + "/taskInstances/a/dependencies?map_index=-1", 200);
  ex.Send("GET", run + "/taskInstances/a/-1/dependencies", 200);
  ex.Send("GET", run + "/taskInstances/a/2/dependencies", 404);
  ex.Send("GET", run + "/taskInstances/zz/dependencies", 404);
  ex.Send("GET", run + "/taskInstances/a/x/dependencies", 422);
  ex.Send("GET", run + "/taskInstances/a/dependencies?map_index=x", 422);
  ex.Send("GET", run + "/taskInstances/a/logs/1", 200);
  ex.SendDagdOnly("GET", run + "/taskInstances/a/logs/1", 200, {{"Accept", "text/plain"}});
  ex.Send("GET", run + "/taskInstances/a/logs/1", 200, "", {{"Accept", "application/x-ndjson"}});
  ex.Send("GET", run + "/taskInstances/a/logs/5", 404);
  ex.Send("GET", run + "/taskInstances/a/logs/1?map_index=3", 404);
  ex.Send("GET", run + "/taskInstances/a/logs/1?full_content=true", 200);
  ex.SendDagdOnly("GET", run + "/taskInstances/a/logs/1?follow=true", 200);
  const std::string slow_log =
      "/api/v2/dags/contract_slow/dagRuns/contract_s/taskInstances/s/logs/1";
  WaitUntil([&] {
    HttpResponse r = HttpGet(d.Url(slow_log));
    return r.status == 200 && r.body.find("started") != std::string::npos;
  });
  const Json tokenized = ex.Send("GET", slow_log, 200);
  ASSERT_TRUE(tokenized["continuation_token"].is_string()) << tokenized;
  const std::string token = tokenized["continuation_token"].get<std::string>();
  ex.Send("GET", slow_log + "?token=" + token, 200);
  ex.SendDagdOnly("GET", run + "/taskInstances/a/logs/1?token=" + token, 400);

  const Json stats = ex.Send("GET", "/api/v2/dagStats?dag_ids=example_chain", 200);
  EXPECT_EQ(stats["total_entries"], 1);
  ex.Send("GET", "/api/v2/dagStats", 200);
  ex.Send("GET", "/api/v2/dagStats?dag_id=x", 422);
  const Json errors = ex.Send("GET", "/api/v2/importErrors", 200);
  EXPECT_EQ(errors["total_entries"], 1);
  ex.SendDagdOnly("GET", "/api/v2/importErrors?order_by=nope", 400);
  ex.Send("GET", "/api/v2/config", 200);
  ex.Send("GET", "/api/v2/config", 200, "", {{"Accept", "text/plain"}});
  ex.Send("GET", "/api/v2/config?section=nope", 404);
  ex.Send("GET", "/api/v2/config", 406, "", {{"Accept", "image/png"}});
  ex.Send("GET", "/api/v2/plugins", 200);
  ex.Send("GET", "/api/v2/plugins?limit=x", 422);
  ex.Send("GET", "/api/v2/providers", 200);
  ex.Send("GET", "/api/v2/providers?limit=x", 422);
  // The audit log: the triggers and the pause above are in it.
  const Json audit =
      ex.Send("GET", "/api/v2/eventLogs?event=trigger_dag_run&order_by=-when&limit=2", 200);
  EXPECT_GE(audit["total_entries"], 2);
  ex.Send("GET", "/api/v2/eventLogs?included_events=patch_dag&after=2000-01-01T00:00:00Z", 200);
  ex.Send("GET",
          "/api/v2/eventLogs/" + std::to_string(audit["event_logs"][0]["event_log_id"].get<int>()),
          200);
  ex.Send("GET", "/api/v2/eventLogs/999999", 404);
  ex.Send("GET", "/api/v2/eventLogs/x", 422);
  ex.Send("GET", "/api/v2/eventLogs?colour=red", 422);
  ex.SendDagdOnly("GET", "/api/v2/eventLogs?order_by=nope", 400);
  // Backfills: created, refused, listed, paused, cancelled; their runs show their backfill.
  const std::string backfill =
      R"({"dag_id": "contract_daily", "from_date": "2026-01-01T00:00:00Z",
          "to_date": "2026-01-02T00:00:00Z", "max_active_runs": 1})";
  const Json dry = ex.Send("POST", "/api/v2/backfills/dry_run", 200, backfill);
  EXPECT_EQ(dry["total_entries"], 2);
  ex.Send("POST", "/api/v2/backfills/dry_run", 404,
          R"({"dag_id": "nope", "from_date": "2026-01-01T00:00:00Z",
              "to_date": "2026-01-02T00:00:00Z"})");
  const Json created = ex.Send("POST", "/api/v2/backfills", 200, backfill);
  const std::string backfill_path = "/api/v2/backfills/" + std::to_string(created.value("id", 0));
  ex.Send("POST", "/api/v2/backfills", 409, backfill);
  ex.Send("POST", "/api/v2/backfills", 404,
          R"({"dag_id": "nope", "from_date": "2026-01-01T00:00:00Z",
              "to_date": "2026-01-02T00:00:00Z"})");
  ex.Send("POST", "/api/v2/backfills", 422,
          R"({"dag_id": "contract_timed", "from_date": "2026-01-01T00:00:00Z",
              "to_date": "2026-01-02T00:00:00Z"})");
  ex.Send("POST", "/api/v2/backfills", 422, R"({"dag_id": "contract_daily", "colour": 1})");
  ex.Send("GET", "/api/v2/backfills?dag_id=contract_daily&order_by=-id&limit=5", 200);
  ex.Send("GET", "/api/v2/backfills", 422);
  ex.SendDagdOnly("GET", "/api/v2/backfills?dag_id=contract_daily&order_by=dag_id", 400);
  ex.Send("GET", backfill_path, 200);
  ex.Send("GET", "/api/v2/backfills/999999", 404);
  ex.Send("GET", "/api/v2/backfills/x", 422);
  // The test's HTTP client would label an empty PUT as a form; a client without a body sends no
  // Content-Type, which the JSON label stands for here.
  const std::map<std::string, std::string> json = {{"Content-Type", "application/json"}};
  ex.Send("PUT", backfill_path + "/pause", 200, "", json);
  ex.Send("PUT", backfill_path + "/unpause", 200, "", json);
  ex.Send("PUT", "/api/v2/backfills/999999/unpause", 404, "", json);
  ex.Send("PUT", backfill_path + "/cancel", 200, "", json);
  ex.Send("PUT", backfill_path + "/cancel", 409, "", json);
  ex.Send("PUT", backfill_path + "/pause", 409, "", json);
  const Json backfill_runs =
      ex.Send("GET", "/api/v2/dags/contract_daily/dagRuns?run_type=backfill", 200);
  EXPECT_EQ(backfill_runs["total_entries"], 2);
  // The event stream and wait: their refusals, and a wait for a run that is over (one line).
  ex.Send("GET", "/api/v2/events?since=x", 422);
  ex.Send("GET", "/api/v2/events?since=999999999", 400);
  ex.Send("GET", "/api/v2/events?dag_id=nope", 404);
  ex.Send("GET", run + "/wait?interval=0", 422);
  ex.Send("GET", run + "/wait?result=a", 200);
  // Prometheus's scrape (outside /api/v2): text, its refusals JSON.
  ex.Send("GET", "/metrics", 200);
  ex.Send("GET", "/metrics?name=x", 422);
  ex.Send("GET", "/metrics", 401, "", {{"Authorization", ""}});
  EXPECT_EQ(HttpGet(d.Url("/metrics")).content_type, "text/plain; version=0.0.4; charset=utf-8");

  // The query parameters the document lists are the ones dagd reads: each, given alone, is
  // never refused as unsupported, and a parameter it does not list is (except where noted).
  const Json served = Json::parse(HttpGet(d.Url("/api/v2/openapi.json")).body);
  const std::map<std::string, std::string> path_values = {
      {"{dag_id}", "example_chain"}, {"{dag_run_id}", "contract_1"}, {"{task_id}", "a"},
      {"{try_number}", "1"},         {"{task_try_number}", "1"},     {"{version_number}", "1"},
      {"{event_log_id}", "1"},       {"{map_index}", "-1"}};
  // Not checked by their handlers: version and health take anything.
  const std::set<std::string> unchecked = {"/api/v2/version", "/api/v2/monitor/health"};
  for (const auto& [templ, item] : served["paths"].items()) {
    if (!item.contains("get")) continue;
    std::string path;
    for (const auto& segment : Split(templ, '/')) {
      auto it = path_values.find(segment);
      path += (path.empty() && segment.empty() ? "" : "/") +
              (it == path_values.end() ? segment : it->second);
    }
    for (const Json& p : item["get"].value("parameters", Json::array())) {
      if (p["in"] != "query") continue;
      // The event stream stays open for a valid query: a `since` in the future makes it answer.
      const std::string name = p["name"].get<std::string>();
      std::string query = name + "=1";
      if (templ == "/api/v2/events") {
        query = name == "since" ? "since=999999999" : name + "=1&since=999999999";
      }
      HttpResponse r = HttpGet(d.Url(path + "?" + query));
      EXPECT_EQ(r.body.find("unsupported_parameter"), std::string::npos)
          << path << " refuses its documented parameter " << p["name"] << ": " << r.body;
    }
    if (unchecked.contains(templ)) continue;
    HttpResponse r = HttpGet(d.Url(path + "?not_in_the_document=1"));
    EXPECT_EQ(r.status, 422) << path << " ignores an undocumented parameter: " << r.body;
  }

  // The validator's packages come from the npm registry (contract.install); a machine that
  // cannot reach it has run every check above, and says plainly that the schema checks did not.
  if (!std::filesystem::exists(std::string(DAGD_CONTRACT_NODE_DIR) + "/node_modules/.dagd-lock")) {
    GTEST_SKIP() << "the OpenAPI validator is not installed (contract.install could not reach "
                    "the npm registry): responses were not checked against the schemas";
  }

  // The document the daemon serves is the checked-in one, which the validator reads.
  TempDir out;
  out.Write("dagd-openapi.json", served.dump());
  out.Write("exchanges.json", ex.list().dump(1));
  const std::string exchanges = (out.path() / "exchanges.json").string();
  const std::string dagd_spec = (out.path() / "dagd-openapi.json").string();

  Result own = Validate(exchanges, dagd_spec, "--coverage --closed");
  EXPECT_EQ(own.exit_code, 0) << own.output;
  Result airflow = Validate(exchanges, kAirflowDocument, "--shared-only");
  EXPECT_EQ(airflow.exit_code, 0) << airflow.output;
  std::printf("%s%s", own.output.c_str(), airflow.output.c_str());

  // The check can fail: a DAG without a property Airflow requires, a version without its time.
  for (Json& e : ex.list()) {
    if (e["url"] == "/api/v2/dags/contract_timed" && e["method"] == "GET") {
      e["body"].erase("timetable_partitioned");
    }
    if (e["url"] == run && e["method"] == "GET")
      e["body"]["dag_versions"][0]["created_at"] = nullptr;
  }
  out.Write("drifted.json", ex.list().dump(1));
  const std::string drifted = (out.path() / "drifted.json").string();
  for (const auto& [spec, flags] : {std::pair{dagd_spec, std::string("--closed")},
                                    std::pair{kAirflowDocument, std::string("--shared-only")}}) {
    Result r = Validate(drifted, spec, flags);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("timetable_partitioned"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("/dag_versions/0/created_at"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace dagd::testing
