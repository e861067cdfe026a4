// Bash tasks on the real binary: templated values are never run as code, tasks get none of the
// daemon's environment and never run as root, and unusable task accounts are refused at start.
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

namespace fs = std::filesystem;

const char* kProbe = R"({"dag_id": "probe", "params": {"who": "nobody-in-particular"}, "tasks": [
  {"task_id": "show", "operator": "bash",
   "bash_command": "echo \"who=<{{ params.who }}> run=<{{ run_id }}>\"; )"
                     R"(echo \"account=$(id -un)\"; env"}]})";

// The text of every try log of the run's task (the state directory holds them).
std::string TaskLogs(const fs::path& state) {
  std::string all;
  for (const auto& entry : fs::recursive_directory_iterator(state / "logs")) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    all += ss.str();
  }
  return all;
}

TEST(TaskSecurity, RunConfAndRunIdAreNotShellCodeAndTasksGetNoDaemonSecrets) {
  TempDir dags, markers;
  ::chmod(markers.path().c_str(), 0777);  // the task account could write here if injected
  std::ofstream(dags.path() / "probe.json") << kProbe;
  ::setenv("DAGD_E2E_SECRET", "e2e-s3cret", 1);
  ::setenv("SERVICE_PASSWORD", "e2e-s3cret", 1);
  Daemon d(dags.path().string());
  d.Start();
  ::unsetenv("DAGD_E2E_SECRET");
  ::unsetenv("SERVICE_PASSWORD");

  const std::string conf_marker = (markers.path() / "from-conf").string();
  const std::string who = "$(touch " + conf_marker + ")`touch " + conf_marker + "`;id";
  Trigger(d, "probe", "r1", Json{{"who", who}});
  EXPECT_EQ(WaitForRun(d, "probe", "r1")["state"], "success");

  // The run id as code, where the API accepts such an id.
  const std::string id_marker = (markers.path() / "from-run-id").string();
  const std::string hostile_id = "$(touch " + id_marker + ")";
  Json body = {{"logical_date", nullptr}, {"dag_run_id", hostile_id}};
  const bool accepted =
      HttpPostJson(d.Url("/api/v2/dags/probe/dagRuns"), body.dump()).status == 200;
  if (accepted) {
    for (int i = 0;
         i < 600 && TaskLogs(d.state.path()).find("run=<" + hostile_id + ">") == std::string::npos;
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  const std::string logs = TaskLogs(d.state.path());
  EXPECT_NE(logs.find("who=<" + who + ">"), std::string::npos) << logs;
  EXPECT_FALSE(fs::exists(conf_marker)) << "run conf ran as shell code";
  if (accepted) {
    EXPECT_NE(logs.find("run=<" + hostile_id + ">"), std::string::npos) << logs;
    EXPECT_FALSE(fs::exists(id_marker)) << "the run id ran as shell code";
  }
  EXPECT_EQ(logs.find("e2e-s3cret"), std::string::npos) << logs;
  EXPECT_EQ(logs.find("\nDAGD_"), std::string::npos) << logs;
  EXPECT_EQ(logs.find(d.db.url()), std::string::npos) << "the database URL reached the task";
  EXPECT_NE(logs.find("\nAIRFLOW_CTX_DAG_RUN_ID=r1\n"), std::string::npos) << logs;
  EXPECT_EQ(logs.find("account=root"), std::string::npos) << logs;

  auto tis = TaskInstancesById(d, "probe", "r1");
  const std::string unixname = tis["show"].value("unixname", "");
  EXPECT_NE(logs.find("account=" + unixname + "\n"), std::string::npos)
      << "unixname '" << unixname << "' is not the account the task ran as\n"
      << logs;
}

TEST(TaskSecurity, RootAsTheTaskAccountIsRefusedAtStart) {
  Daemon d(ExampleDags(), {"--run-as", "root"});
  EXPECT_THROW(d.process->Start(std::chrono::seconds(10)), std::runtime_error);
  EXPECT_NE(d.process->Log().find("--run-as 'root'"), std::string::npos) << d.process->Log();
}

TEST(TaskSecurity, ThePostgresAccountAsTheTaskAccountIsRefusedAtStart) {
  if (geteuid() != 0) GTEST_SKIP() << "only root switches accounts";
  if (::getpwnam("postgres") == nullptr) GTEST_SKIP() << "no account 'postgres'";
  Daemon d(ExampleDags(), {"--run-as", "postgres", "--pg-user", "postgres"});
  EXPECT_THROW(d.process->Start(std::chrono::seconds(10)), std::runtime_error);
  EXPECT_NE(d.process->Log().find("is the PostgreSQL account"), std::string::npos)
      << d.process->Log();
}

}  // namespace
}  // namespace dagd::testing
