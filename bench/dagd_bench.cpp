// dagd_bench: the real dagd binary on its embedded PostgreSQL (fsync on, as users run it),
// triggered over loopback HTTP. Runs the scenes of scenes.hpp one after another on one daemon,
// then reads every task's timestamps back from the REST API and prints a table, plus one
// machine-readable `RESULT {json}` line per scene. See bench/RESULTS.md for the definitions.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cluster_probe.hpp"
#include "dagd_process.hpp"
#include "http_client.hpp"
#include "scenes.hpp"
#include "timestamps.hpp"

namespace dagd::bench {
namespace {

namespace fs = std::filesystem;
using dagd::testing::HttpGet;
using dagd::testing::HttpPostJson;

constexpr int kTriggerThreadsForHolds = 32;
constexpr int kPageLimit = 10000;

struct Options {
  std::set<std::string> scenes;  // empty: all
  int repeat = 1;
  int settle_s = 11;  // PostgreSQL 15 publishes idle backends' counters within 10 s
  int timeout_s = 600;
  bool keep = false;
  std::vector<std::string> dagd_args;
};

[[noreturn]] void Usage(int code) {
  std::fprintf(
      code == 0 ? stdout : stderr,
      "usage: dagd_bench [--scene NAME[,NAME...]]... [--repeat N] [--settle SECONDS]\n"
      "                  [--timeout SECONDS] [--keep] [--dagd-arg ARG]... [--list]\n"
      "  --scene     run only these scenes (default: all, in order)\n"
      "  --repeat    run each scene N times (default 1)\n"
      "  --settle    quiet seconds before reading pg_stat_database (default 11; 0 skips\n"
      "              xact_commit, write transactions are still counted)\n"
      "  --timeout   seconds a scene may take before it is reported as timed out\n"
      "  --keep      keep the state directory (dagd log, PostgreSQL log) afterwards\n"
      "  --dagd-arg  pass ARG to dagd (repeat for each word, e.g. --dagd-arg=--parallelism\n"
      "              --dagd-arg=16)\n"
      "  --list      print the scene names and exit\n");
  std::exit(code);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i], value;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (arg != "--keep" && arg != "--list" && arg != "--help" && arg != "-h") {
      if (i + 1 >= args.size()) Usage(2);
      value = args[++i];
    }
    try {
      if (arg == "--scene") {
        for (size_t start = 0; start <= value.size();) {
          size_t comma = std::min(value.find(',', start), value.size());
          if (comma > start) o.scenes.insert(value.substr(start, comma - start));
          start = comma + 1;
        }
      } else if (arg == "--repeat") {
        o.repeat = std::max(1, std::stoi(value));
      } else if (arg == "--settle") {
        o.settle_s = std::max(0, std::stoi(value));
      } else if (arg == "--timeout") {
        o.timeout_s = std::max(1, std::stoi(value));
      } else if (arg == "--keep") {
        o.keep = true;
      } else if (arg == "--dagd-arg") {
        o.dagd_args.push_back(value);
      } else if (arg == "--list") {
        for (const Scene& s : AllScenes()) std::printf("%s\n", s.name.c_str());
        std::exit(0);
      } else if (arg == "--help" || arg == "-h") {
        Usage(0);
      } else {
        std::fprintf(stderr, "unknown option %s\n", arg.c_str());
        Usage(2);
      }
    } catch (const std::logic_error&) {
      std::fprintf(stderr, "option %s needs a number, got '%s'\n", arg.c_str(), value.c_str());
      Usage(2);
    }
  }
  return o;
}

double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double one = -1;
  in >> one;
  return one;
}

// One triggered run and the harness' clock around its POST.
struct Trigger {
  std::string dag_id;
  std::string run_id;
  Micros sent = 0;
  Micros answered = 0;
};

// POSTs every trigger, all released at once (one thread each, or `max_threads` threads taking
// a share each). Throws when dagd refuses one.
void TriggerAll(const std::string& base_url, std::vector<Trigger>& triggers,
                size_t max_threads = SIZE_MAX) {
  const size_t threads = std::min(triggers.size(), max_threads);
  std::latch ready(static_cast<std::ptrdiff_t>(threads));
  std::vector<std::string> errors(threads);
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.arrive_and_wait();
      for (size_t i = t; i < triggers.size(); i += threads) {
        Trigger& trigger = triggers[i];
        Json body = {{"logical_date", nullptr}, {"dag_run_id", trigger.run_id}};
        const std::string url = base_url + "/api/v2/dags/" + trigger.dag_id + "/dagRuns";
        const std::string text = body.dump();
        trigger.sent = NowMicros();
        auto response = HttpPostJson(url, text);
        trigger.answered = NowMicros();
        if (response.status != 200 && errors[t].empty()) {
          errors[t] = "trigger of " + trigger.dag_id + " answered " +
                      std::to_string(response.status) + ": " + response.body + response.error;
        }
      }
    });
  }
  for (auto& thread : pool) thread.join();
  for (const auto& error : errors) {
    if (!error.empty()) throw std::runtime_error(error);
  }
}

Json GetJson(const std::string& url) {
  auto response = HttpGet(url);
  if (response.status != 200) {
    throw std::runtime_error("GET " + url + " answered " + std::to_string(response.status) + ": " +
                             response.body + response.error);
  }
  return Json::parse(response.body);
}

Micros Time(const Json& value, const char* what) {
  if (!value.is_string()) throw std::runtime_error(std::string("missing ") + what);
  auto parsed = ParseRfc3339(value.get<std::string>());
  if (!parsed) throw std::runtime_error(std::string("unreadable ") + what + ": " + value.dump());
  return *parsed;
}

// What one scene did, as executed (before its timestamps are read back).
struct Execution {
  const Scene* scene = nullptr;
  int repetition = 1;
  std::vector<Trigger> triggers;
  double load_before = 0;
  double load_after = 0;
  bool timed_out = false;
  int64_t write_xacts = 0;
  // xact_commit of the dagd database over the scene and its settle time, the probe's own
  // transactions and dagd's idle rate (heartbeats) over the same window subtracted.
  std::optional<double> commits;
  int64_t commits_raw = 0;
  double idle_commits_per_s = 0;
};

struct Figures {
  size_t tasks = 0;
  size_t not_success = 0;
  std::vector<double> lag_ms;          // every task
  std::vector<double> hop_ms;          // tasks with upstreams
  std::vector<double> root_ms;         // roots: start − run start_date
  std::vector<double> root_queued_ms;  // roots: start − run queued_at
  std::vector<double> trigger_answer_ms;
  double total_s = 0;
};

Figures ReadBack(const std::string& base_url, const Execution& e) {
  Figures f;
  Micros first_sent = INT64_MAX, last_end = INT64_MIN;
  std::map<std::string, const Json*> dags;
  for (const Json& dag : e.scene->dags) dags[dag.at("dag_id").get<std::string>()] = &dag;
  for (const Trigger& trigger : e.triggers) {
    first_sent = std::min(first_sent, trigger.sent);
    f.trigger_answer_ms.push_back(static_cast<double>(trigger.answered - trigger.sent) / 1000.0);
    const std::string run_url =
        base_url + "/api/v2/dags/" + trigger.dag_id + "/dagRuns/" + trigger.run_id;
    const Json run = GetJson(run_url);
    std::map<std::string, Json> tis;
    for (int offset = 0;; offset += kPageLimit) {
      Json page = GetJson(run_url + "/taskInstances?limit=" + std::to_string(kPageLimit) +
                          "&offset=" + std::to_string(offset));
      const Json& items = page.at("task_instances");
      for (const Json& ti : items) tis[ti.at("task_id").get<std::string>()] = ti;
      if (items.empty() || tis.size() >= page.at("total_entries").get<size_t>()) {
        break;
      }
    }
    const Micros run_start = Time(run["start_date"], "run start_date");
    const Micros run_queued = Time(run["queued_at"], "run queued_at");
    for (const Json& task : (*dags.at(trigger.dag_id))["tasks"]) {
      ++f.tasks;
      const Json& ti = tis.at(task.at("task_id").get<std::string>());
      if (ti["state"] != "success") {
        ++f.not_success;
        continue;
      }
      const Micros start = Time(ti["start_date"], "task start_date");
      last_end = std::max(last_end, Time(ti["end_date"], "task end_date"));
      if (!task.contains("upstream")) {
        const double lag = static_cast<double>(start - run_start) / 1000.0;
        f.lag_ms.push_back(lag);
        f.root_ms.push_back(lag);
        f.root_queued_ms.push_back(static_cast<double>(start - run_queued) / 1000.0);
        continue;
      }
      Micros released = INT64_MIN;
      for (const Json& up : task["upstream"]) {
        const Json& upstream = tis.at(up.get<std::string>());
        released = std::max(released, Time(upstream.at("end_date"), "upstream end_date"));
      }
      const double lag = static_cast<double>(start - released) / 1000.0;
      f.lag_ms.push_back(lag);
      f.hop_ms.push_back(lag);
    }
  }
  f.total_s = static_cast<double>(last_end - first_sent) / 1e6;
  return f;
}

class Bench {
 public:
  Bench(Options options, fs::path dir) : options_(std::move(options)), dir_(std::move(dir)) {}

  int Run() {
    std::vector<Scene> all = AllScenes();
    std::vector<const Scene*> chosen;
    for (const Scene& s : all) {
      if (options_.scenes.empty() || options_.scenes.count(s.name) != 0) chosen.push_back(&s);
    }
    for (const auto& name : options_.scenes) {
      if (std::none_of(all.begin(), all.end(), [&](const Scene& s) { return s.name == name; })) {
        std::fprintf(stderr, "unknown scene '%s' (--list shows them)\n", name.c_str());
        return 2;
      }
    }
    WriteDags(chosen);
    StartDagd();
    PrintSettings();
    Warmup();
    MeasureIdleRate();

    std::vector<Execution> executions;
    for (const Scene* scene : chosen) {
      for (int r = 1; r <= options_.repeat; ++r) {
        HoldRuns(scene->hold_runs);
        executions.push_back(Execute(*scene, r));
      }
    }
    std::printf("\nreading timestamps back over REST...\n");
    PrintTables(executions);
    (void)dagd_->Signal(SIGTERM);
    return 0;
  }

 private:
  void WriteDags(const std::vector<const Scene*>& chosen) {
    fs::create_directories(dir_ / "dags");
    std::map<std::string, std::string> files;
    for (const Scene* scene : chosen) {
      for (const Json& dag : scene->dags) files[dag["dag_id"]] = dag.dump();
    }
    for (const Json& dag : {HoldDag(), WarmupDag()}) files[dag["dag_id"]] = dag.dump();
    for (const auto& [id, text] : files) std::ofstream(dir_ / "dags" / (id + ".json")) << text;
  }

  void StartDagd() {
    const int port = dagd::testing::FreePort();
    base_url_ = "http://127.0.0.1:" + std::to_string(port);
    std::vector<std::string> args = {"--state-dir",      (dir_ / "state").string(),
                                     "--dags-folder",    (dir_ / "dags").string(),
                                     "--listen",         "127.0.0.1:" + std::to_string(port),
                                     "--log-level",      "warn",
                                     "--max-page-limit", std::to_string(kPageLimit)};
    if (geteuid() == 0) args.insert(args.end(), {"--pg-user", "postgres"});
    args.insert(args.end(), options_.dagd_args.begin(), options_.dagd_args.end());
    std::string shown;
    for (const auto& a : args) shown += " " + a;
    std::printf("dagd%s\n", shown.c_str());
    std::fflush(stdout);
    dagd_ = std::make_unique<dagd::testing::DagdProcess>(args, (dir_ / "dagd.log").string(), port);
    dagd_->Start(std::chrono::seconds(120));
    LogIn(args);
    probe_ = std::make_unique<ClusterProbe>((dir_ / "state" / "postgres" / "run").string());
  }

  // Requests carry a JWT, as a client's that logged in with POST /auth/token: it is checked
  // without a database round trip, where the API token DagdProcess makes costs one lookup per
  // request. The user is made with the real CLI on the running daemon's database.
  void LogIn(std::vector<std::string> args) {
    for (const char* a : {"users", "add", "bench", "--role", "admin"}) args.push_back(a);
    const auto added = dagd::testing::RunDagd(args, "bench-password\n");
    if (added.exit_code != 0) throw std::runtime_error("dagd users add failed: " + added.err);
    const auto token = HttpPostJson(base_url_ + "/auth/token",
                                    R"({"username": "bench", "password": "bench-password"})");
    const Json body = Json::parse(token.body, nullptr, false);
    if (token.status != 201 || !body.contains("access_token")) {
      throw std::runtime_error("POST /auth/token failed: " + token.body);
    }
    dagd::testing::SetDefaultBearer(base_url_, body["access_token"].get<std::string>());
  }

  void PrintSettings() {
    const Json version = GetJson(base_url_ + "/api/v2/version");
    std::printf(
        "dagd %s (git %s); PostgreSQL %s, fsync=%s synchronous_commit=%s wal_sync_method=%s "
        "full_page_writes=%s; %u cores; load %.2f\n",
        version.value("version", "?").c_str(), version.value("git_version", "?").c_str(),
        probe_->Setting("server_version").c_str(), probe_->Setting("fsync").c_str(),
        probe_->Setting("synchronous_commit").c_str(), probe_->Setting("wal_sync_method").c_str(),
        probe_->Setting("full_page_writes").c_str(), std::thread::hardware_concurrency(),
        LoadAverage());
    std::fflush(stdout);
  }

  void Warmup() {
    std::vector<Trigger> warm = {{"bench_warmup", "warmup-1", 0, 0}};
    TriggerAll(base_url_, warm);
    WaitFinished("warmup-", 1);
    Settle();
  }

  // Waits until `count` runs whose run_id starts with `prefix` are finished; false on timeout.
  bool WaitFinished(const std::string& prefix, int64_t count) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(options_.timeout_s);
    while (probe_->FinishedRuns(prefix) < count) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }

  // Lets idle backends publish their counters, then takes the baseline for the next scene.
  void Settle() {
    if (options_.settle_s > 0) {
      std::this_thread::sleep_for(std::chrono::seconds(options_.settle_s));
      commits_mark_ = probe_->XactCommit();
    }
    own_mark_ = probe_->own_transactions();
    mark_time_ = std::chrono::steady_clock::now();
  }

  // dagd commits a little while idle (scheduler heartbeats): measured over one quiet settle
  // window, and subtracted from the scenes' counts in proportion to their windows.
  void MeasureIdleRate() {
    if (options_.settle_s == 0) return;
    Settle();
    const int64_t commits = commits_mark_, own = own_mark_;
    const auto time = mark_time_;
    Settle();
    idle_rate_ = static_cast<double>(commits_mark_ - commits - (own_mark_ - own)) /
                 std::chrono::duration<double>(mark_time_ - time).count();
    std::printf("idle: %.2f commits/s (subtracted from each scene's window)\n", idle_rate_);
    std::fflush(stdout);
  }

  // Keeps `target` runs of the hold DAG running with their task up_for_retry (held runs are
  // only ever added).
  void HoldRuns(int target) {
    if (target <= held_) return;
    std::printf("holding %d runs active (run running, task up_for_retry for a day)...\n", target);
    std::fflush(stdout);
    const auto started = std::chrono::steady_clock::now();
    std::vector<Trigger> holds;
    for (int i = held_; i < target; ++i) {
      holds.push_back({kHoldDagId, "hold-" + std::to_string(i), 0, 0});
    }
    TriggerAll(base_url_, holds, kTriggerThreadsForHolds);
    const auto deadline = started + std::chrono::seconds(options_.timeout_s);
    while (probe_->TaskInstancesIn(kHoldDagId, "up_for_retry") < target) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("held runs did not all reach up_for_retry in time");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    held_ = target;
    std::printf("  %d runs held after %.1f s\n", target,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    MeasureIdleRate();
  }

  Execution Execute(const Scene& scene, int repetition) {
    Execution e;
    e.scene = &scene;
    e.repetition = repetition;
    const std::string prefix = scene.name + "-r" + std::to_string(repetition) + "-";
    for (size_t i = 0; i < scene.dags.size(); ++i) {
      e.triggers.push_back({scene.dags[i]["dag_id"], prefix + std::to_string(i), 0, 0});
    }
    e.load_before = LoadAverage();
    const int64_t xid_before = probe_->NextXid();
    TriggerAll(base_url_, e.triggers);
    e.timed_out = !WaitFinished(prefix, static_cast<int64_t>(e.triggers.size()));
    e.write_xacts = probe_->NextXid() - xid_before;
    e.load_after = LoadAverage();
    const int64_t commits_before = commits_mark_, own_before = own_mark_;
    const auto window_start = mark_time_;
    Settle();
    if (options_.settle_s > 0) {
      const double window_s = std::chrono::duration<double>(mark_time_ - window_start).count();
      e.commits_raw = commits_mark_ - commits_before - (own_mark_ - own_before);
      e.idle_commits_per_s = idle_rate_;
      e.commits = static_cast<double>(e.commits_raw) - idle_rate_ * window_s;
    }
    std::printf("%-24s r%d %s (load %.2f → %.2f)\n", scene.name.c_str(), repetition,
                e.timed_out ? "TIMED OUT" : "done", e.load_before, e.load_after);
    std::fflush(stdout);
    return e;
  }

  void PrintTables(const std::vector<Execution>& executions) {
    std::printf("\n%-24s %5s %6s | %8s %8s %8s | %8s %8s | %8s %8s | %8s %9s | %9s %7s %7s | %s\n",
                "scene", "load", "tasks", "lag p50", "p95", "p99", "root", "root(q)", "hop p50",
                "hop p99", "total s", "tasks/s", "trig max", "commit", "wxact",
                "peer p95/root/total");
    std::vector<Json> lines;
    for (const Execution& e : executions) {
      const Scene& s = *e.scene;
      Figures f;
      std::string error;
      try {
        f = ReadBack(base_url_, e);
      } catch (const std::exception& ex) {
        error = ex.what();
      }
      const double units = static_cast<double>(s.hop ? f.hop_ms.size() : f.tasks);
      const double commits_per = e.commits && units > 0 ? *e.commits / units : -1;
      const double wxacts_per = units > 0 ? static_cast<double>(e.write_xacts) / units : -1;
      char commits_text[32] = "-";
      if (commits_per >= 0) std::snprintf(commits_text, sizeof commits_text, "%.2f", commits_per);
      std::string peer = "-";
      if (s.target) {
        char buffer[96];
        std::snprintf(buffer, sizeof buffer, "%s%.1f / %.1f / %.2f",
                      s.target->lag_is_p99 ? "p99 " : "", s.target->lag_ms, s.target->root_ms,
                      s.target->total_s);
        peer = buffer;
      }
      std::printf(
          "%-24s %5.2f %6zu | %8.2f %8.2f %8.2f | %8.2f %8.2f | %8.2f %8.2f | %8.3f %9.0f | "
          "%9.1f %7s %7.2f | %s%s%s%s\n",
          (s.name + (options_.repeat > 1 ? "/" + std::to_string(e.repetition) : "")).c_str(),
          e.load_before, f.tasks, Percentile(f.lag_ms, 0.5), Percentile(f.lag_ms, 0.95),
          Percentile(f.lag_ms, 0.99), Mean(f.root_ms), Mean(f.root_queued_ms),
          Percentile(f.hop_ms, 0.5), Percentile(f.hop_ms, 0.99), f.total_s,
          f.total_s > 0 ? static_cast<double>(f.tasks) / f.total_s : 0,
          Percentile(f.trigger_answer_ms, 1.0), commits_text, wxacts_per, peer.c_str(),
          e.timed_out ? "  TIMED OUT" : "",
          f.not_success > 0 ? ("  not success: " + std::to_string(f.not_success)).c_str() : "",
          error.empty() ? "" : ("  ERROR: " + error).c_str());
      Json line = {
          {"scene", s.name},
          {"repetition", e.repetition},
          {"held_runs", s.hold_runs},
          {"load_before", e.load_before},
          {"load_after", e.load_after},
          {"tasks", f.tasks},
          {"not_success", f.not_success},
          {"timed_out", e.timed_out},
          {"lag_ms",
           {{"p50", Percentile(f.lag_ms, 0.5)},
            {"p95", Percentile(f.lag_ms, 0.95)},
            {"p99", Percentile(f.lag_ms, 0.99)}}},
          {"hop_ms", {{"p50", Percentile(f.hop_ms, 0.5)}, {"p99", Percentile(f.hop_ms, 0.99)}}},
          {"root_lag_mean_ms", Mean(f.root_ms)},
          {"root_lag_from_queued_mean_ms", Mean(f.root_queued_ms)},
          {"total_s", f.total_s},
          {"tasks_per_s", f.total_s > 0 ? static_cast<double>(f.tasks) / f.total_s : 0},
          {"trigger_answer_ms",
           {{"p50", Percentile(f.trigger_answer_ms, 0.5)},
            {"max", Percentile(f.trigger_answer_ms, 1.0)}}},
          {"xact_commit", e.commits ? Json(*e.commits) : Json(nullptr)},
          {"xact_commit_raw", e.commits_raw},
          {"idle_commits_per_s", e.idle_commits_per_s},
          {"write_xacts", e.write_xacts},
          {s.hop ? "commits_per_hop" : "commits_per_task",
           commits_per >= 0 ? Json(commits_per) : Json(nullptr)},
          {s.hop ? "write_xacts_per_hop" : "write_xacts_per_task", wxacts_per}};
      if (!error.empty()) line["error"] = error;
      if (s.target) {
        line["peer"] = {{s.target->lag_is_p99 ? "lag_p99_ms" : "lag_p95_ms", s.target->lag_ms},
                        {"root_lag_mean_ms", s.target->root_ms},
                        {"total_s", s.target->total_s}};
      }
      lines.push_back(std::move(line));
    }
    std::printf("\n");
    for (const Json& line : lines) std::printf("RESULT %s\n", line.dump().c_str());
    std::fflush(stdout);
  }

  Options options_;
  fs::path dir_;
  std::string base_url_;
  std::unique_ptr<dagd::testing::DagdProcess> dagd_;
  std::unique_ptr<ClusterProbe> probe_;
  int held_ = 0;
  int64_t commits_mark_ = 0;
  int64_t own_mark_ = 0;
  std::chrono::steady_clock::time_point mark_time_;
  double idle_rate_ = 0;
};

}  // namespace
}  // namespace dagd::bench

int main(int argc, char** argv) {
  using namespace dagd::bench;
  Options options = ParseOptions(argc, argv);
  // The embedded PostgreSQL (another account when dagd runs as root) must reach the state
  // directory: a world-traversable parent, not mktemp's 0700.
  const fs::path dir = fs::temp_directory_path() / ("dagd-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  int code = 1;
  try {
    code = Bench(options, dir).Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dagd_bench: %s\n(dagd log: %s)\n", e.what(), (dir / "dagd.log").c_str());
    options.keep = true;
  }
  if (options.keep) {
    std::printf("kept %s\n", dir.c_str());
  } else {
    fs::remove_all(dir);
  }
  return code;
}
