#include "scenes.hpp"

#include <functional>

namespace dagd::bench {
namespace {

// Runs and tasks the DAG format accepts (int); the peer allows 1,000 runs per DAG and 100,000
// tasks, so these never throttle a scene.
constexpr int kMaxActiveRuns = 20000;
constexpr int kMaxActiveTasks = 100000;

// Built with += rather than "t" + std::to_string(i): GCC 12 at -O3 reports a false -Wrestrict.
std::string Name(const char* prefix, int i) {
  std::string s = prefix;
  s += std::to_string(i);
  return s;
}

std::string Padded(const std::string& prefix, int i) {
  std::string digits = std::to_string(i);
  std::string s = prefix;
  s += '_';
  s.append(digits.size() < 3 ? 3 - digits.size() : 0, '0');
  s += digits;
  return s;
}

using Upstreams = std::vector<std::vector<int>>;  // upstream task indexes per task index
using TaskBody = std::function<Json()>;           // the operator fields of a task

Json EmptyTask() { return {{"operator", "empty"}}; }

Json Dag(const std::string& dag_id, const Upstreams& upstreams, const TaskBody& body) {
  Json tasks = Json::array();
  for (size_t i = 0; i < upstreams.size(); ++i) {
    Json task = body();
    task["task_id"] = Name("t", static_cast<int>(i));
    if (!upstreams[i].empty()) {
      Json ids = Json::array();
      for (int u : upstreams[i]) ids.push_back(Name("t", u));
      task["upstream"] = std::move(ids);
    }
    tasks.push_back(std::move(task));
  }
  return {{"dag_id", dag_id},
          {"schedule", nullptr},
          {"max_active_runs", kMaxActiveRuns},
          {"max_active_tasks", kMaxActiveTasks},
          {"tasks", std::move(tasks)}};
}

Upstreams Linear(int n) {
  Upstreams up(static_cast<size_t>(n));
  for (int i = 1; i < n; ++i) up[static_cast<size_t>(i)] = {i - 1};
  return up;
}

Upstreams Tree(int n) {
  Upstreams up(static_cast<size_t>(n));
  for (int i = 1; i < n; ++i) up[static_cast<size_t>(i)] = {(i - 1) / 2};
  return up;
}

// t0 → {t1 … t_width}
Upstreams Burst(int width) {
  Upstreams up(static_cast<size_t>(width) + 1);
  for (int i = 1; i <= width; ++i) up[static_cast<size_t>(i)] = {0};
  return up;
}

// Each task of a layer depends on every task of the previous layer; `sizes` lists layer widths.
Upstreams Layers(const std::vector<int>& sizes) {
  Upstreams up;
  std::vector<int> previous;
  int next = 0;
  for (int size : sizes) {
    std::vector<int> layer;
    for (int i = 0; i < size; ++i) {
      up.push_back(previous);
      layer.push_back(next++);
    }
    previous = std::move(layer);
  }
  return up;
}

Scene Standard(const std::string& name, int dags, const Upstreams& shape, Target target) {
  Scene scene{name, {}, target, 0, false};
  for (int i = 0; i < dags; ++i) scene.dags.push_back(Dag(Padded(name, i), shape, EmptyTask));
  return scene;
}

}  // namespace

std::vector<Scene> AllScenes() {
  std::vector<Scene> scenes = {
      Standard("linear_100x10", 100, Linear(10), {32.7, false, 31.7, 0.36}),
      Standard("linear_10x100", 10, Linear(100), {4.0, true, 13.6, 0.16}),
      Standard("tree_100x10", 100, Tree(10), {26.2, false, 29.0, 0.35}),
      Standard("burst_1x100", 1, Burst(100), {0.2, false, 2.0, 0.02}),
      Standard("burst_1x500", 1, Burst(500), {0.2, false, 2.6, 0.09}),
      Standard("burst_1x1000", 1, Burst(1000), {0.2, false, 2.4, 0.09}),
      Standard("diamond_100x10", 100, Layers({1, 8, 1}), {12.0, false, 12.0, 0.14}),
      Standard("fanout_100x10", 100, Burst(9), {10.4, false, 10.3, 0.15}),
      Standard("fanin_100x10", 100, Layers({9, 1}), {26.6, false, 17.6, 0.15}),
      Standard("mesh_100x10", 100, Layers({3, 3, 4}), {21.2, false, 15.3, 0.15}),
      Scene{"wide_10000", {Dag("wide_10000", Burst(9999), EmptyTask)}, std::nullopt, 0, false},
  };
  const Json bash = Dag("hop_bash", Linear(100), [] {
    return Json{{"operator", "bash"}, {"bash_command", "true"}};
  });
  const Json transform = Dag("hop_transform", Linear(100), [] {
    return Json{{"operator", "transform"}, {"job", "example.join"}};
  });
  for (int hold : {0, 1, 100, 10000}) {
    const std::string suffix = hold == 0 ? "" : Name("_hold", hold);
    scenes.push_back({"hop_bash" + suffix, {bash}, std::nullopt, hold, true});
    scenes.push_back({"hop_transform" + suffix, {transform}, std::nullopt, hold, true});
  }
  return scenes;
}

Json HoldDag() {
  return Dag(kHoldDagId, {{}}, [] {
    return Json{{"operator", "transform"},
                {"job", "example.flaky"},
                {"args", {{"succeed_on_try", 2}}},
                {"retries", 1},
                {"retry_delay", "1d"}};
  });
}

Json WarmupDag() { return Dag("bench_warmup", Linear(3), EmptyTask); }

}  // namespace dagd::bench
