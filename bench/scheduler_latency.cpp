// Scheduler latency and throughput of the real daemon: a chain of 100 `empty` tasks and a
// fan-out of 1,000 `empty` tasks, triggered over HTTP on a PostgreSQL started by bench/run.sh.
// Prints total run time, per-hop latency (upstream end → downstream start, p50/p99) and tasks/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "dagd/scheduler/time.hpp"
#include "dagd_process.hpp"
#include "http_client.hpp"
#include "test_database.hpp"

namespace {

using dagd::scheduler::ParseRfc3339;
using Json = nlohmann::json;

// Built with += rather than Id("t", i): GCC 12 at -O3 reports a false -Wrestrict
// on the latter.
std::string Id(const char* prefix, int i) {
  std::string id = prefix;
  id += std::to_string(i);
  return id;
}

Json ChainDag(int n) {
  Json tasks = Json::array();
  for (int i = 0; i < n; ++i) {
    Json t = {{"task_id", Id("t", i)}, {"operator", "empty"}};
    if (i > 0) t["upstream"] = {Id("t", i - 1)};
    tasks.push_back(t);
  }
  return {{"dag_id", "bench_chain"}, {"max_active_tasks", 2000}, {"tasks", tasks}};
}

Json FanoutDag(int n) {
  Json tasks = Json::array({{{"task_id", "start"}, {"operator", "empty"}}});
  Json all = Json::array();
  for (int i = 0; i < n; ++i) {
    std::string id = Id("w", i);
    tasks.push_back({{"task_id", id}, {"operator", "empty"}, {"upstream", {"start"}}});
    all.push_back(id);
  }
  tasks.push_back({{"task_id", "join"}, {"operator", "empty"}, {"upstream", all}});
  return {{"dag_id", "bench_fanout"}, {"max_active_tasks", 2000}, {"tasks", tasks}};
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double Seconds(const std::string& from, const std::string& to) {
  return std::chrono::duration<double>(*ParseRfc3339(to) - *ParseRfc3339(from)).count();
}

void Measure(const dagd::testing::DagdProcess& dagd, const std::string& dag_id, const Json& dag,
             const std::string& run_id) {
  const std::string base = dagd.base_url() + "/api/v2/dags/" + dag_id + "/dagRuns";
  Json body = {{"logical_date", nullptr}, {"dag_run_id", run_id}};
  auto posted = std::chrono::steady_clock::now();
  auto r = dagd::testing::HttpPostJson(base, body.dump());
  if (r.status != 200) {
    std::fprintf(stderr, "trigger failed: %ld %s\n", r.status, r.body.c_str());
    std::exit(1);
  }
  Json run;
  for (;;) {
    run = Json::parse(dagd::testing::HttpGet(base + "/" + run_id).body);
    if (run["state"] == "success" || run["state"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - posted).count();
  Json tis =
      Json::parse(dagd::testing::HttpGet(base + "/" + run_id + "/taskInstances?limit=5000").body);
  std::map<std::string, Json> by_id;
  for (const auto& ti : tis["task_instances"]) by_id[ti["task_id"]] = ti;

  std::vector<double> hops_ms;
  for (const auto& task : dag["tasks"]) {
    if (!task.contains("upstream")) continue;
    const Json& down = by_id[task["task_id"]];
    // The hop that released this task: its last upstream to end.
    std::string last_end;
    for (const auto& up : task["upstream"]) {
      last_end = std::max(last_end, by_id[up.get<std::string>()]["end_date"].get<std::string>());
    }
    hops_ms.push_back(1000.0 * Seconds(last_end, down["start_date"]));
  }
  std::string first_start = by_id.begin()->second["start_date"];
  std::string last_end = by_id.begin()->second["end_date"];
  for (const auto& [id, ti] : by_id) {
    first_start = std::min(first_start, ti["start_date"].get<std::string>());
    last_end = std::max(last_end, ti["end_date"].get<std::string>());
  }
  double total = Seconds(run["queued_at"], run["end_date"]);
  std::printf(
      "%-14s state=%-7s tasks=%5zu total=%7.3fs (trigger→seen done %7.3fs) "
      "tasks_per_s=%8.1f hop_p50=%7.2fms hop_p99=%7.2fms\n",
      dag_id.c_str(), run["state"].get<std::string>().c_str(), by_id.size(), total, wall,
      static_cast<double>(by_id.size()) / Seconds(first_start, last_end), Percentile(hops_ms, 0.5),
      Percentile(hops_ms, 0.99));
}

}  // namespace

int main() {
  dagd::testing::TestDatabase db;
  auto dir = std::filesystem::temp_directory_path() / ("dagd-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir / "dags");
  const Json chain = ChainDag(100), fanout = FanoutDag(1000);
  std::ofstream(dir / "dags" / "chain.json") << chain.dump();
  std::ofstream(dir / "dags" / "fanout.json") << fanout.dump();
  int port = dagd::testing::FreePort();
  dagd::testing::DagdProcess dagd(
      {"--database-url", db.url(), "--state-dir", (dir / "state").string(), "--dags-folder",
       (dir / "dags").string(), "--listen", "127.0.0.1:" + std::to_string(port), "--parallelism",
       "8", "--log-level", "warn"},
      (dir / "dagd.log").string(), port);
  dagd.Start();
  for (int round = 1; round <= 3; ++round) {
    Measure(dagd, "bench_chain", chain, Id("chain_", round));
    Measure(dagd, "bench_fanout", fanout, Id("fanout_", round));
  }
  std::filesystem::remove_all(dir);
  return 0;
}
