// Bad DAG files are reported with the place of the error and never affect the other DAGs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
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

std::pair<int, std::string> RunCommand(const std::string& command);

// Regression: a FIFO named *.json blocked dagd in open() at the next scan, and it then ignored
// SIGTERM. A file over the size limit is refused unread.
TEST(BadDags, AFifoAndAHugeFileAreImportErrorsAndTheDaemonStillStopsOnSigterm) {
  TempDir dags;
  Write(dags.path() / "good.json", kGood);
  Daemon d(dags.path().string());
  d.Start();
  ASSERT_EQ(mkfifo((dags.path() / "fifo.json").c_str(), 0600), 0);
  {
    std::ofstream huge(dags.path() / "huge.json", std::ios::binary);
    huge << std::string(5 * 1024 * 1024, ' ');
  }
  kill(d.process->pid(), SIGHUP);
  Json errors;
  for (int i = 0; i < 400; ++i) {
    errors = GetJson(d.Url("/api/v2/importErrors"));
    if (errors.value("total_entries", 0) == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(errors["total_entries"], 2) << errors.dump() << d.process->Log();
  const std::string all = errors.dump();
  EXPECT_NE(all.find("it is a FIFO, and only regular files are read"), std::string::npos) << all;
  EXPECT_NE(all.find("larger than the limit of 4 MiB"), std::string::npos) << all;
  Trigger(d, "good", "after-fifo");
  EXPECT_EQ(WaitForRun(d, "good", "after-fifo")["state"], "success");
  const int status = d.process->Signal(SIGTERM, std::chrono::seconds(20));
  ASSERT_NE(status, -1) << "dagd did not stop on SIGTERM\n" << d.process->Log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << d.process->Log();
}

// Regression: a DAG file with "description": "x\u0000y" passed validation and then failed the
// whole folder sync at the database: /dags and /importErrors both came back empty.
TEST(BadDags, ANulCharacterInAFileIsAnImportErrorForThatFileAloneAndValidateRejectsIt) {
  TempDir dags;
  Write(dags.path() / "good.json", kGood);
  const std::string nul_doc = R"({"dag_id": "nul", "description": "x\u0000y", "tasks": [
    {"task_id": "a", "operator": "empty"}]})";
  Write(dags.path() / "nul.json", nul_doc);
  Daemon d(dags.path().string());
  d.Start();

  Json dags_listed = GetJson(d.Url("/api/v2/dags"));
  EXPECT_EQ(dags_listed["total_entries"], 1) << dags_listed.dump();
  EXPECT_NE(dags_listed.dump().find("\"good\""), std::string::npos) << dags_listed.dump();
  Json errors = GetJson(d.Url("/api/v2/importErrors"));
  ASSERT_EQ(errors["total_entries"], 1) << errors.dump();
  const std::string all = errors.dump();
  EXPECT_NE(all.find((dags.path() / "nul.json").string()), std::string::npos) << all;
  EXPECT_NE(all.find("field 'description' contains a NUL character"), std::string::npos) << all;

  auto [code, out] = RunCommand(std::string(DAGD_BINARY) + " dags validate " +
                                (dags.path() / "nul.json").string());
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("field 'description' contains a NUL character"), std::string::npos) << out;
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
