// Shared helpers of the end-to-end tests: a dagd started on the test PostgreSQL, its CLI and
// logins, and polling over HTTP for run states or any other condition.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "dagd_process.hpp"
#include "http_client.hpp"
#include "temp_dir.hpp"
#include "test_database.hpp"

namespace dagd::testing {

using Json = nlohmann::json;

// As root, dagd needs an unprivileged account for bash tasks (its default, `dagd`, is created by
// deploy/install-deps.sh and may be missing where the tests run): `nobody`. Empty otherwise.
inline std::vector<std::string> RunAsArgs() {
  if (geteuid() != 0) return {};
  return {"--run-as", "nobody"};
}

inline std::string ExampleDags() { return std::string(DAGD_SOURCE_DIR) + "/dags"; }

// Arguments of a dagd on the embedded PostgreSQL in `state_dir` (as root the cluster runs as
// `postgres` and tasks as RunAsArgs()).
inline std::vector<std::string> EmbeddedDaemonArgs(const std::filesystem::path& state_dir,
                                                   int port) {
  std::vector<std::string> args = {"--state-dir",   state_dir.string(),
                                   "--dags-folder", ExampleDags(),
                                   "--listen",      "127.0.0.1:" + std::to_string(port)};
  if (geteuid() == 0) {
    args.push_back("--pg-user");
    args.push_back("postgres");
  }
  for (auto& arg : RunAsArgs()) args.push_back(arg);
  return args;
}

// A dagd on its own test database, state directory and port.
struct Daemon {
  TestDatabase db;
  TempDir state;
  int port = FreePort();
  std::unique_ptr<DagdProcess> process;

  explicit Daemon(std::string dags_folder = ExampleDags(), std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--database-url", db.url(),    "--state-dir", state.path().string(),
        "--dags-folder",  dags_folder, "--listen",    "127.0.0.1:" + std::to_string(port)};
    args.insert(args.end(), extra.begin(), extra.end());
    if (std::find(extra.begin(), extra.end(), "--run-as") == extra.end()) {
      for (auto& arg : RunAsArgs()) args.push_back(std::move(arg));
    }
    process = std::make_unique<DagdProcess>(args, (state.path() / "dagd.log").string(), port);
  }
  // Starts (again, after a stop) the same daemon: same database, state and port.
  void Start() { process->Start(); }
  std::string Url(const std::string& path) const { return process->base_url() + path; }
};

// The daemon's own flags (database, state directory) followed by `command`, run as the CLI.
inline CliResult Cli(const Daemon& d, std::vector<std::string> command,
                     const std::string& input = "") {
  std::vector<std::string> args = d.process->args();
  args.insert(args.end(), command.begin(), command.end());
  return RunDagd(args, input);
}

// Adds the user `name` with `role` and the password "pw-<name>".
inline void AddUser(const Daemon& d, const std::string& name, const std::string& role) {
  CliResult r = Cli(d, {"users", "add", name, "--role", role}, "pw-" + name + "\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

// POST /auth/token with a JSON body, without the default bearer.
inline HttpResponse PostToken(const Daemon& d, const std::string& user,
                              const std::string& password) {
  return HttpRequest("POST", d.Url("/auth/token"),
                     Json{{"username", user}, {"password", password}}.dump(),
                     {{"Content-Type", "application/json"}, {"Authorization", ""}});
}

// A JWT of a user added by AddUser.
inline std::string Jwt(const Daemon& d, const std::string& user) {
  HttpResponse r = PostToken(d, user, "pw-" + user);
  EXPECT_EQ(r.status, 201) << r.body;
  return Json::parse(r.body, nullptr, false).value("access_token", "");
}

// Headers of a JSON request with `token` instead of the default bearer.
inline std::map<std::string, std::string> Bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}};
}

// Whether a process whose command line contains `needle` is alive.
inline bool ProcessRunning(const std::string& needle) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (char& ch : cmdline) ch = ch == '\0' ? ' ' : ch;
    if (cmdline.find(needle) != std::string::npos) return true;
  }
  return false;
}

// Polls `done` every 20 ms until it holds (true) or `timeout` passes (false).
inline bool WaitUntil(const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

inline Json GetJson(const std::string& url) {
  HttpResponse r = HttpGet(url);
  EXPECT_EQ(r.status, 200) << url << ": " << r.body;
  return Json::parse(r.body, nullptr, false);
}

inline std::string Trigger(const Daemon& d, const std::string& dag_id, const std::string& run_id,
                           const Json& conf = Json::object()) {
  Json body = {{"logical_date", nullptr}, {"dag_run_id", run_id}, {"conf", conf}};
  HttpResponse r = HttpPostJson(d.Url("/api/v2/dags/" + dag_id + "/dagRuns"), body.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  return run_id;
}

// Polls the run until its state is one of `states`; returns the last run JSON seen.
inline Json WaitForRun(const Daemon& d, const std::string& dag_id, const std::string& run_id,
                       std::vector<std::string> states = {"success", "failed"},
                       std::chrono::seconds timeout = std::chrono::seconds(60)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Json run;
  while (std::chrono::steady_clock::now() < deadline) {
    HttpResponse r = HttpGet(d.Url("/api/v2/dags/" + dag_id + "/dagRuns/" + run_id));
    if (r.status == 200) {
      run = Json::parse(r.body, nullptr, false);
      for (const auto& s : states) {
        if (run.value("state", "") == s) return run;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "run " << run_id << " did not reach an expected state; last: " << run.dump()
                << "\n--- daemon log ---\n"
                << d.process->Log();
  return run;
}

inline std::map<std::string, Json> TaskInstancesById(const Daemon& d, const std::string& dag_id,
                                                     const std::string& run_id) {
  Json list =
      GetJson(d.Url("/api/v2/dags/" + dag_id + "/dagRuns/" + run_id + "/taskInstances?limit=1000"));
  std::map<std::string, Json> by_id;
  for (const auto& ti : list["task_instances"]) by_id[ti["task_id"]] = ti;
  return by_id;
}

// The state of one task instance of a run; "none" while it has none.
inline std::string TaskState(const Daemon& d, const std::string& dag_id, const std::string& run_id,
                             const std::string& task_id) {
  return TaskInstancesById(d, dag_id, run_id)[task_id].value("state", "none");
}

}  // namespace dagd::testing
