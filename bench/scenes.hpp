// The benchmark scenes: the DAG documents each one triggers, and the peer's targets.
//
// A scene is a set of DAGs of which one run each is triggered at once over REST. The ten standard
// orchestrator scenes use `empty` tasks with the default trigger rule; the hop scenes run a chain
// of 100 bash (`true`) or transform (`example.join`) tasks while `hold_runs` other runs are kept
// active (see HoldDag); `wide_10000` is one DAG of 10,000 `empty` tasks.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dagd::bench {

using Json = nlohmann::json;

// The peer's figures from issue 6 (C++ orchestrator on MySQL, same machine kind).
struct Target {
  double lag_ms = 0;        // p95 per-task lag (p99 where lag_is_p99)
  bool lag_is_p99 = false;  // linear 10×100 states its lag at p99
  double root_ms = 0;       // mean root lag
  double total_s = 0;       // first trigger → last task end
};

struct Scene {
  std::string name;
  std::vector<Json> dags;  // one run of each is triggered, all at once
  std::optional<Target> target;
  int hold_runs = 0;  // other runs kept active while this scene runs
  bool hop = false;   // report hop (non-root lag) figures
};

// Every scene, in the order a full run takes them (hold levels increasing, so held runs are
// only ever added).
std::vector<Scene> AllScenes();

// The DAG whose runs are kept active without a worker slot: a transform task that fails its first
// try and is then up_for_retry for a day, so its run stays `running`.
Json HoldDag();
inline constexpr const char* kHoldDagId = "bench_hold";

// A 3-task chain triggered once before the first scene, so that no scene pays for first use.
Json WarmupDag();

}  // namespace dagd::bench
