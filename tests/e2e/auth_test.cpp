// Authentication and roles on the real daemon: POST /auth/token, Bearer JWTs and API tokens on
// every endpoint but version and health, roles, and the `dagd users` / `dagd tokens` commands
// run as a user would run them, on the daemon's database.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

const std::string kTrigger = R"({"logical_date": null})";

TEST(Auth, TheTokenEndpointAnswers201ForAPasswordAnd401OtherwiseTheSameWay) {
  Daemon d;
  d.Start();
  AddUser(d, "alice", "viewer");
  HttpResponse ok = PostToken(d, "alice", "pw-alice");
  ASSERT_EQ(ok.status, 201) << ok.body;
  const std::string jwt = Json::parse(ok.body)["access_token"];
  EXPECT_EQ(std::count(jwt.begin(), jwt.end(), '.'), 2);
  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags"), Bearer(jwt)).status, 200);

  HttpResponse form =
      HttpRequest("POST", d.Url("/auth/token"), "username=alice&password=pw-alice",
                  {{"Content-Type", "application/x-www-form-urlencoded"}, {"Authorization", ""}});
  EXPECT_EQ(form.status, 201) << form.body;

  HttpResponse wrong = PostToken(d, "alice", "nope");
  HttpResponse unknown = PostToken(d, "mallory", "pw-alice");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(Json::parse(wrong.body)["detail"], "Invalid username or password");
  EXPECT_EQ(wrong.body, unknown.body);
}

TEST(Auth, EveryEndpointButVersionAndHealthIs401WithoutAToken) {
  Daemon d;
  d.Start();
  const std::string run = "/api/v2/dags/example_chain/dagRuns/r1";
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/api/v2/dags"},
           {"GET", "/api/v2/dags/example_chain"},
           {"PATCH", "/api/v2/dags/example_chain"},
           {"GET", "/api/v2/dags/example_chain/details"},
           {"GET", "/api/v2/dags/example_chain/tasks"},
           {"GET", "/api/v2/dags/example_chain/tasks/hello"},
           {"GET", "/api/v2/dags/example_chain/dagRuns"},
           {"POST", "/api/v2/dags/example_chain/dagRuns"},
           {"GET", run},
           {"GET", run + "/taskInstances"},
           {"GET", run + "/taskInstances/hello"},
           {"GET", run + "/taskInstances/hello/tries"},
           {"GET", run + "/taskInstances/hello/tries/1"},
           {"GET", run + "/taskInstances/hello/logs/1"},
           {"GET", "/api/v2/importErrors"},
       }) {
    HttpResponse none = HttpRequest(method, d.Url(path), method == "GET" ? "" : "{}",
                                    {{"Content-Type", "application/json"}, {"Authorization", ""}});
    EXPECT_EQ(none.status, 401) << method << " " << path;
    EXPECT_EQ(Json::parse(none.body, nullptr, false)["detail"], "Not authenticated") << path;
    HttpResponse bad =
        HttpRequest(method, d.Url(path), method == "GET" ? "" : "{}", Bearer("dagd_0123"));
    EXPECT_EQ(bad.status, 401) << method << " " << path;
    EXPECT_EQ(Json::parse(bad.body, nullptr, false)["detail"], "Invalid or expired token");
  }
  for (const char* path : {"/api/v2/version", "/api/v2/monitor/health"}) {
    EXPECT_EQ(HttpGet(d.Url(path), {{"Authorization", ""}}).status, 200) << path;
  }
}

TEST(Auth, AnExpiredJwtIs401) {
  Daemon d(ExampleDags(), {"--jwt-expiration", "1"});
  d.Start();
  AddUser(d, "alice", "viewer");
  const std::string jwt = Jwt(d, "alice");
  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags"), Bearer(jwt)).status, 200);
  std::this_thread::sleep_for(2100ms);
  HttpResponse r = HttpGet(d.Url("/api/v2/dags"), Bearer(jwt));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Json::parse(r.body)["detail"], "Invalid or expired token");
}

TEST(Auth, AViewerGets403OnTriggerAndAUserTriggers) {
  Daemon d;
  d.Start();
  AddUser(d, "vera", "viewer");
  AddUser(d, "ulla", "user");
  HttpResponse refused = HttpRequest("POST", d.Url("/api/v2/dags/example_chain/dagRuns"), kTrigger,
                                     Bearer(Jwt(d, "vera")));
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(Json::parse(refused.body)["detail"],
            "viewer role cannot trigger DAG runs; it needs user");
  HttpResponse triggered = HttpRequest("POST", d.Url("/api/v2/dags/example_chain/dagRuns"),
                                       kTrigger, Bearer(Jwt(d, "ulla")));
  EXPECT_EQ(triggered.status, 200) << triggered.body;
}

TEST(Auth, AnApiTokenFromTheCliWorksUntilRevoked) {
  Daemon d;
  d.Start();
  CliResult made = Cli(d, {"tokens", "create", "--name", "ci", "--role", "user"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string token = made.out.substr(0, made.out.find('\n'));
  ASSERT_TRUE(token.starts_with("dagd_")) << made.out;
  EXPECT_NE(made.err.find("shown only this once"), std::string::npos) << made.err;
  EXPECT_EQ(
      HttpRequest("POST", d.Url("/api/v2/dags/example_chain/dagRuns"), kTrigger, Bearer(token))
          .status,
      200);

  CliResult listed = Cli(d, {"tokens", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("ci "), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find(token), std::string::npos) << "the secret is never listed";
  EXPECT_EQ(listed.out.find(token.substr(5, 16)), std::string::npos);

  CliResult revoked = Cli(d, {"tokens", "revoke", "ci"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  HttpResponse after = HttpGet(d.Url("/api/v2/dags"), Bearer(token));
  EXPECT_EQ(after.status, 401);
  EXPECT_EQ(Json::parse(after.body)["detail"], "Invalid or expired token");
  EXPECT_NE(Cli(d, {"tokens", "revoke", "ci"}).exit_code, 0);
}

TEST(Auth, TheUsersCommandsRoundTrip) {
  Daemon d;
  d.Start();
  AddUser(d, "bob", "viewer");
  CliResult again = Cli(d, {"users", "add", "bob", "--role", "user"}, "pw\n");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  EXPECT_EQ(Cli(d, {"users", "add", "bad name", "--role", "user"}, "pw\n").exit_code, 2);
  EXPECT_NE(Cli(d, {"users", "add", "carol", "--role", "root"}, "pw\n").exit_code, 0);
  EXPECT_EQ(Cli(d, {"users", "add", "carol", "--role", "user"}, "").exit_code, 2);  // no password

  CliResult listed = Cli(d, {"users", "list"});
  ASSERT_EQ(listed.exit_code, 0);
  EXPECT_NE(listed.out.find("bob"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("viewer"), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find("argon2"), std::string::npos) << "hashes are never listed";

  ASSERT_EQ(Cli(d, {"users", "set-role", "bob", "user"}).exit_code, 0);
  EXPECT_EQ(HttpRequest("POST", d.Url("/api/v2/dags/example_chain/dagRuns"), kTrigger,
                        Bearer(Jwt(d, "bob")))
                .status,
            200);
  CliResult changed = Cli(d, {"users", "set-password", "bob"}, "new-pw\n");
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  EXPECT_EQ(PostToken(d, "bob", "pw-bob").status, 401);
  EXPECT_EQ(PostToken(d, "bob", "new-pw").status, 201);
  EXPECT_EQ(Cli(d, {"users", "set-password", "bob"}, "").exit_code, 2);  // no password
  EXPECT_EQ(Cli(d, {"users", "set-password", "nobody"}, "pw\n").exit_code, 1);
  ASSERT_EQ(Cli(d, {"users", "delete", "bob"}).exit_code, 0);
  EXPECT_EQ(PostToken(d, "bob", "new-pw").status, 401);
  EXPECT_EQ(Cli(d, {"users", "list"}).out.find("bob"), std::string::npos);
  EXPECT_EQ(Cli(d, {"users", "delete", "bob"}).exit_code, 1);
}

TEST(Auth, TheCliStartsTheEmbeddedClusterWhenNoDaemonRunsAndUsesItsSocketWhenOneDoes) {
  TempDir state;
  chmod(state.path().c_str(), 0755);  // the postgres account passes through (as root)
  const int port = FreePort();
  const std::vector<std::string> args = EmbeddedDaemonArgs(state.path() / "s", port);
  std::vector<std::string> add = args;
  for (const char* a : {"users", "add", "admin", "--role", "admin"}) add.push_back(a);
  CliResult before = RunDagd(add, "pw-admin\n");
  ASSERT_EQ(before.exit_code, 0) << before.err;

  DagdProcess dagd(args, (state.path() / "dagd.log").string(), port);
  dagd.Start();
  std::vector<std::string> list = args;
  list.push_back("users");
  list.push_back("list");
  CliResult during = RunDagd(list);
  ASSERT_EQ(during.exit_code, 0) << during.err;
  EXPECT_NE(during.out.find("admin"), std::string::npos) << during.out;
  HttpResponse token = HttpRequest("POST", dagd.base_url() + "/auth/token",
                                   R"({"username": "admin", "password": "pw-admin"})",
                                   {{"Content-Type", "application/json"}, {"Authorization", ""}});
  EXPECT_EQ(token.status, 201) << token.body;

  // The key was made on first start, private to dagd's account.
  struct stat st {};
  ASSERT_EQ(stat((state.path() / "s" / "jwt.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
}

TEST(Auth, AJwtKeyOthersCanReadIsRefusedAtStart) {
  Daemon d;
  {
    std::ofstream key(d.state.path() / "jwt.key");
    key << std::string(64, 'a') << "\n";
  }
  chmod((d.state.path() / "jwt.key").c_str(), 0644);
  EXPECT_THROW(d.process->Start(10s), std::runtime_error);
  EXPECT_NE(d.process->Log().find("chmod 600"), std::string::npos) << d.process->Log();
}

TEST(Auth, AShortJwtSecretIsRefusedAndAGoodOneIsUsedInsteadOfAKeyFile) {
  {
    Daemon d;
    setenv("DAGD_JWT_SECRET", "too-short", 1);
    EXPECT_THROW(d.process->Start(10s), std::runtime_error);
    unsetenv("DAGD_JWT_SECRET");
    EXPECT_NE(d.process->Log().find("DAGD_JWT_SECRET holds 9 bytes"), std::string::npos)
        << d.process->Log();
    EXPECT_EQ(d.process->Log().find("too-short"), std::string::npos) << "never logged";
  }
  Daemon d;
  setenv("DAGD_JWT_SECRET", std::string(40, 'z').c_str(), 1);
  d.Start();
  unsetenv("DAGD_JWT_SECRET");
  AddUser(d, "alice", "viewer");
  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags"), Bearer(Jwt(d, "alice"))).status, 200);
  struct stat st {};
  EXPECT_NE(stat((d.state.path() / "jwt.key").c_str(), &st), 0) << "no key file is made";
}

TEST(Auth, TheJwtSecretReachesNoTaskAndNoLog) {
  TempDir dags;
  dags.Write("envdump.json", R"({"dag_id": "envdump", "tasks": [
      {"task_id": "show", "operator": "bash", "bash_command": "env"}]})");
  const std::string secret = "jwt-secret-e2e-" + std::string(32, 'q');
  setenv("DAGD_JWT_SECRET", secret.c_str(), 1);
  Daemon d(dags.path().string());
  d.Start();
  unsetenv("DAGD_JWT_SECRET");
  AddUser(d, "ulla", "user");
  ASSERT_EQ(HttpRequest("POST", d.Url("/api/v2/dags/envdump/dagRuns"),
                        R"({"logical_date": null, "dag_run_id": "r1"})", Bearer(Jwt(d, "ulla")))
                .status,
            200);
  EXPECT_EQ(WaitForRun(d, "envdump", "r1")["state"], "success");
  std::string logs;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(d.state.path() / "logs")) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path());
    logs += std::string(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_NE(logs.find("AIRFLOW_CTX_DAG_RUN_ID=r1"), std::string::npos) << logs;
  EXPECT_EQ(logs.find("jwt-secret-e2e"), std::string::npos) << logs;
  EXPECT_EQ(logs.find("DAGD_JWT_SECRET"), std::string::npos) << logs;
  EXPECT_EQ(d.process->Log().find("jwt-secret-e2e"), std::string::npos);
}

TEST(Auth, TheFirstStartWithoutUsersSaysHowToCreateTheFirstAdmin) {
  Daemon d;
  d.process->make_admin_token = false;
  d.Start();
  EXPECT_NE(d.process->Log().find("users add admin --role admin"), std::string::npos)
      << d.process->Log();
  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags")).status, 401);
}

}  // namespace
}  // namespace dagd::testing
