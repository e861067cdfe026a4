// Bad DAG files are reported with the place of the error and never affect the other DAGs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

void Write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

const char* kGood = R"({"dag_id": "good", "tasks": [
  {"task_id": "x", "operator": "bash", "bash_command": "echo fine"},
  {"task_id": "y", "operator": "empty", "upstream": ["x"]}]})";
const char* kCycle = R"({"dag_id": "loopy", "tasks": [
  {"task_id": "a", "operator": "empty", "upstream": ["c"]},
  {"task_id": "b", "operator": "empty", "upstream": ["a"]},
  {"task_id": "c", "operator": "empty", "upstream": ["b"]}]})";

TEST(BadDags, CycleIsReportedWithItsPathWhileOtherDagsKeepWorking) {
  TempDir dags;
  Write(dags.path() / "good.json", kGood);
  Write(dags.path() / "loopy.json", kCycle);
  Write(
      dags.path() / "typo.json",
      R"({"dag_id": "typo", "tasks": [{"task_id": "t", "operator": "bash", "bash_comand": "x"}]})");
  Daemon d(dags.path().string());
  d.Start();

  Json errors = GetJson(d.Url("/api/v2/importErrors"));
  ASSERT_EQ(errors["total_entries"], 2) << errors.dump();
  std::string all = errors.dump();
  EXPECT_NE(all.find("a \u2192 b \u2192 c \u2192 a"), std::string::npos) << all;
  EXPECT_NE(all.find("loopy.json"), std::string::npos) << all;
  EXPECT_NE(all.find("bash_comand"), std::string::npos) << all;
  EXPECT_NE(d.process->Log().find("cycle"), std::string::npos) << "the log names the cycle too";

  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags/loopy")).status, 404);
  Trigger(d, "good", "g1");
  EXPECT_EQ(WaitForRun(d, "good", "g1")["state"], "success");
}

TEST(BadDags, SighupReloadsAChangedDagAsANewVersionAndRunsStayPinned) {
  TempDir dags;
  Write(dags.path() / "good.json", kGood);
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "good", "v1");
  EXPECT_EQ(WaitForRun(d, "good", "v1")["state"], "success");

  Write(dags.path() / "good.json", R"({"dag_id": "good", "tasks": [
    {"task_id": "x", "operator": "bash", "bash_command": "echo changed"},
    {"task_id": "z", "operator": "empty", "upstream": ["x"]}]})");
  Write(dags.path() / "loopy.json", kCycle);
  kill(d.process->pid(), SIGHUP);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  Json tasks;
  while (std::chrono::steady_clock::now() < deadline) {
    tasks = GetJson(d.Url("/api/v2/dags/good/tasks"));
    if (tasks.dump().find("\"z\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_NE(tasks.dump().find("\"z\""), std::string::npos) << tasks.dump();
  EXPECT_EQ(GetJson(d.Url("/api/v2/importErrors"))["total_entries"], 1);

  Trigger(d, "good", "v2");
  EXPECT_EQ(WaitForRun(d, "good", "v2")["state"], "success");
  auto v1 = TaskInstancesById(d, "good", "v1");
  auto v2 = TaskInstancesById(d, "good", "v2");
  EXPECT_TRUE(v1.count("y") == 1 && v1.count("z") == 0);
  EXPECT_TRUE(v2.count("z") == 1 && v2.count("y") == 0);
  auto versions = d.db.Query(
      "SELECT version_number FROM dag_version WHERE dag_id = 'good' "
      "ORDER BY version_number");
  EXPECT_EQ(versions, (std::vector<std::string>{"1", "2"}));
}

std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  int status = pclose(pipe);
  return {WEXITSTATUS(status), output};
}

TEST(BadDags, ValidateCommandChecksFilesOfflineAndExitsNonZeroOnErrors) {
  TempDir dags;
  Write(dags.path() / "good.json", kGood);
  Write(dags.path() / "loopy.json", kCycle);
  Write(dags.path() / "unknown_job.json", R"({"dag_id": "j", "tasks": [
    {"task_id": "t", "operator": "transform", "job": "no.such.job"}]})");
  auto [ok_code, ok_out] = RunCommand(std::string(DAGD_BINARY) + " dags validate " +
                                      (dags.path() / "good.json").string());
  EXPECT_EQ(ok_code, 0) << ok_out;
  EXPECT_NE(ok_out.find("ok"), std::string::npos) << ok_out;

  auto [bad_code, bad_out] = RunCommand(
      std::string(DAGD_BINARY) + " dags validate " + (dags.path() / "good.json").string() + " " +
      (dags.path() / "loopy.json").string() + " " + (dags.path() / "unknown_job.json").string());
  EXPECT_EQ(bad_code, 1) << bad_out;
  EXPECT_NE(bad_out.find("a \u2192 b \u2192 c \u2192 a"), std::string::npos) << bad_out;
  EXPECT_NE(bad_out.find("no.such.job"), std::string::npos) << bad_out;

  auto [examples_code, examples_out] =
      RunCommand(std::string(DAGD_BINARY) + " dags validate " + ExampleDags() + "/*.json");
  EXPECT_EQ(examples_code, 0) << "every example DAG must validate:\n" << examples_out;
}

}  // namespace
}  // namespace dagd::testing
