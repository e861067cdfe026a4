// The audit log on the real daemon: writes and login attempts made over HTTP show in
// GET /api/v2/eventLogs with who, what, when and from which address; reads do not; a viewer
// may read it.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "dagd/scheduler/time.hpp"
#include "e2e_support.hpp"
#include "self_signed.hpp"

namespace dagd::testing {
namespace {

TEST(AuditLog, WritesAndLoginsAreListedWithWhoWhatWhenAndAddress) {
  Daemon d;
  d.Start();
  const auto before = std::chrono::system_clock::now() - std::chrono::seconds(1);
  const std::string admin = d.process->admin_token();
  ASSERT_FALSE(admin.empty());

  // Writes with the admin token, reads that must not show, a failed login.
  HttpResponse trigger = HttpPostJson(
      d.Url("/api/v2/dags/example_chain/dagRuns"),
      R"({"logical_date": null, "dag_run_id": "audited", "conf": {"api_password": "s3cr3t"}})");
  ASSERT_EQ(trigger.status, 200) << trigger.body;
  HttpResponse pause = HttpPatchJson(d.Url("/api/v2/dags/example_chain"), R"({"is_paused": true})");
  ASSERT_EQ(pause.status, 200) << pause.body;
  ASSERT_EQ(HttpGet(d.Url("/api/v2/dags")).status, 200);
  ASSERT_EQ(PostToken(d, "mallory", "hunter2").status, 401);

  // A viewer reads the log.
  ASSERT_NO_FATAL_FAILURE(AddUser(d, "vera", "viewer"));
  HttpResponse token = PostToken(d, "vera", "pw-vera");
  ASSERT_EQ(token.status, 201) << token.body;
  const std::string jwt = Json::parse(token.body)["access_token"];
  HttpResponse listed = HttpGet(d.Url("/api/v2/eventLogs?order_by=id"), Bearer(jwt));
  ASSERT_EQ(listed.status, 200) << listed.body;
  EXPECT_EQ(listed.body.find("s3cr3t"), std::string::npos) << listed.body;
  EXPECT_EQ(listed.body.find("hunter2"), std::string::npos) << listed.body;
  EXPECT_EQ(listed.body.find("pw-vera"), std::string::npos) << listed.body;
  const Json logs = Json::parse(listed.body);

  std::vector<std::string> events;
  for (const Json& e : logs["event_logs"]) events.push_back(e["event"]);
  EXPECT_EQ(events,
            (std::vector<std::string>{"trigger_dag_run", "patch_dag", "login_failed", "login"}));
  ASSERT_EQ(logs["total_entries"], 4);

  const Json& t = logs["event_logs"][0];
  EXPECT_TRUE(t["owner"].get<std::string>().starts_with("tests-admin-")) << t.dump();
  EXPECT_EQ(t["dag_id"], "example_chain");
  EXPECT_EQ(t["run_id"], "audited");
  const auto when = scheduler::ParseRfc3339(t["when"].get<std::string>());
  ASSERT_TRUE(when.has_value()) << t.dump();
  EXPECT_GE(*when, std::chrono::time_point_cast<std::chrono::microseconds>(before));
  EXPECT_LE(*when, std::chrono::system_clock::now());
  const Json extra = Json::parse(t["extra"].get<std::string>());
  EXPECT_EQ(extra["remote_address"], "127.0.0.1");
  EXPECT_EQ(extra["status"], 200);
  EXPECT_EQ(extra["method"], "POST");
  EXPECT_TRUE(extra["via"].get<std::string>().starts_with("token:")) << extra.dump();
  EXPECT_EQ(extra["body"]["conf"], "***");

  const Json& p = logs["event_logs"][1];
  EXPECT_EQ(p["owner"], t["owner"]);
  EXPECT_EQ(p["dag_id"], "example_chain");
  EXPECT_EQ(Json::parse(p["extra"].get<std::string>())["body"]["is_paused"], true);

  const Json& failed = logs["event_logs"][2];
  EXPECT_EQ(failed["owner"], "mallory");
  const Json failed_extra = Json::parse(failed["extra"].get<std::string>());
  EXPECT_EQ(failed_extra["status"], 401);
  EXPECT_EQ(failed_extra["remote_address"], "127.0.0.1");
  EXPECT_EQ(logs["event_logs"][3]["owner"], "vera");

  // Filters and one entry by id.
  const Json only = GetJson(d.Url("/api/v2/eventLogs?dag_id=example_chain&event=patch_dag"));
  ASSERT_EQ(only["total_entries"], 1);
  const int64_t id = only["event_logs"][0]["event_log_id"];
  const Json one = GetJson(d.Url("/api/v2/eventLogs/" + std::to_string(id)));
  EXPECT_EQ(one, only["event_logs"][0]);
  const Json logins = GetJson(d.Url("/api/v2/eventLogs?event_pattern=login&order_by=-when"));
  EXPECT_EQ(logins["total_entries"], 2);
  EXPECT_EQ(logins["event_logs"][0]["event"], "login");

  // A viewer cannot write, and the refusal is recorded too.
  EXPECT_EQ(HttpPatchJson(d.Url("/api/v2/dags/example_chain"), R"({"is_paused": false})").status,
            200);
  HttpResponse refused = HttpRequest("PATCH", d.Url("/api/v2/dags/example_chain"),
                                     R"({"is_paused": false})", Bearer(jwt));
  EXPECT_EQ(refused.status, 403);
  const Json last = GetJson(d.Url("/api/v2/eventLogs?order_by=-id&limit=1"));
  EXPECT_EQ(last["event_logs"][0]["owner"], "vera");
  EXPECT_EQ(Json::parse(last["event_logs"][0]["extra"].get<std::string>())["status"], 403);
}

TEST(AuditLog, AWriteOverHttpsIsRecordedWithThePeersAddress) {
  TempDir certs;
  const CertificateFiles files = MakeSelfSignedCertificate(certs.path(), "dagd", "audit");
  Daemon d(ExampleDags(), {"--tls-cert", files.cert, "--tls-key", files.key});
  d.process->UseHttps(files.cert);
  d.Start();
  const HttpOptions tls{files.cert};
  HttpResponse pause =
      HttpRequest("PATCH", d.Url("/api/v2/dags/example_chain"), R"({"is_paused": true})",
                  {{"Content-Type", "application/json"}}, tls);
  ASSERT_EQ(pause.status, 200) << pause.body << pause.error;
  HttpResponse listed = HttpGet(d.Url("/api/v2/eventLogs"), {}, tls);
  ASSERT_EQ(listed.status, 200) << listed.body << listed.error;
  const Json logs = Json::parse(listed.body);
  ASSERT_EQ(logs["total_entries"], 1) << listed.body;
  EXPECT_EQ(logs["event_logs"][0]["event"], "patch_dag");
  const Json extra = Json::parse(logs["event_logs"][0]["extra"].get<std::string>());
  EXPECT_EQ(extra["remote_address"], "127.0.0.1");
}

}  // namespace
}  // namespace dagd::testing
