// DAG upload on the real binary: PUT /api/v2/dags/{dag_id} stores a DAG that is scheduled like a
// file's and survives a restart; a file with the same id wins (an import error says so); DELETE
// removes the DAG with its runs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

HttpResponse Put(const Daemon& d, const std::string& dag_id, const std::string& body) {
  return HttpRequest("PUT", d.Url("/api/v2/dags/" + dag_id), body,
                     {{"Content-Type", "application/json"}});
}

HttpResponse Delete(const Daemon& d, const std::string& dag_id) {
  return HttpRequest("DELETE", d.Url("/api/v2/dags/" + dag_id));
}

const char* kUploaded = R"({"dag_id": "uploaded", "tags": ["api"], "tasks": [
  {"task_id": "hello", "operator": "bash", "bash_command": "echo uploaded"},
  {"task_id": "done", "operator": "empty", "upstream": ["hello"]}]})";

TEST(DagUpload, AnUploadedDagRunsSurvivesARestartYieldsToAFileAndIsDeleted) {
  TempDir dags;
  Daemon d(dags.path().string());
  d.Start();

  // A bad document: the 422 names the task's field, and nothing is stored.
  HttpResponse bad = Put(d, "uploaded", R"({"dag_id": "uploaded", "tasks": [
    {"task_id": "a", "operator": "empty"}, {"task_id": "b", "operator": "empty", "retries": -1}]})");
  ASSERT_EQ(bad.status, 422) << bad.body;
  EXPECT_EQ(Json::parse(bad.body)["detail"][0]["loc"],
            Json::parse(R"(["body","tasks",1,"retries"])"))
      << bad.body;
  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags/uploaded")).status, 404);

  HttpResponse created = Put(d, "uploaded", kUploaded);
  ASSERT_EQ(created.status, 201) << created.body;
  Json details = Json::parse(created.body);
  EXPECT_EQ(details["dag_id"], "uploaded");
  EXPECT_EQ(details["fileloc"], "");
  EXPECT_TRUE(details["relative_fileloc"].is_null()) << created.body;
  EXPECT_EQ(details["latest_dag_version"]["version_number"], 1);
  // The same document again keeps its version.
  HttpResponse again = Put(d, "uploaded", kUploaded);
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Json::parse(again.body)["latest_dag_version"]["version_number"], 1);

  Trigger(d, "uploaded", "first");
  EXPECT_EQ(WaitForRun(d, "uploaded", "first")["state"], "success");
  EXPECT_EQ(TaskInstancesById(d, "uploaded", "first").size(), 2u);

  // A restart (and its folder scan) keeps the uploaded DAG: it is not stale.
  const int status = d.process->Signal(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << d.process->Log();
  d.Start();
  Json after_restart = GetJson(d.Url("/api/v2/dags/uploaded"));
  EXPECT_EQ(after_restart["is_stale"], false) << after_restart.dump();
  Trigger(d, "uploaded", "after-restart");
  EXPECT_EQ(WaitForRun(d, "uploaded", "after-restart")["state"], "success");

  // A new version is scheduled at once, without a scan.
  HttpResponse v2 = Put(d, "uploaded", R"({"dag_id": "uploaded", "tasks": [
    {"task_id": "only", "operator": "bash", "bash_command": "echo two"}]})");
  ASSERT_EQ(v2.status, 200) << v2.body;
  EXPECT_EQ(Json::parse(v2.body)["latest_dag_version"]["version_number"], 2);
  Trigger(d, "uploaded", "second-version");
  EXPECT_EQ(WaitForRun(d, "uploaded", "second-version")["state"], "success");
  EXPECT_EQ(TaskInstancesById(d, "uploaded", "second-version").count("only"), 1u);

  // A file defining the same id wins at the next scan, and says so in an import error.
  dags.Write("uploaded.json", R"({"dag_id": "uploaded", "tasks": [
    {"task_id": "from_file", "operator": "empty"}]})");
  ASSERT_EQ(::kill(d.process->pid(), SIGHUP), 0);
  Json errors;
  WaitUntil([&] {
    errors = GetJson(d.Url("/api/v2/importErrors"));
    return errors.value("total_entries", 0) == 1;
  });
  ASSERT_EQ(errors["total_entries"], 1) << errors.dump();
  const std::string error = errors["import_errors"][0]["stack_trace"];
  EXPECT_NE(error.find("was uploaded through the API and is also defined by this file"),
            std::string::npos)
      << error;
  EXPECT_NE(errors["import_errors"][0]["filename"].get<std::string>().find("uploaded.json"),
            std::string::npos);
  Json file_details = GetJson(d.Url("/api/v2/dags/uploaded/details"));
  EXPECT_EQ(file_details["latest_dag_version"]["version_number"], 3) << file_details.dump();
  EXPECT_EQ(file_details["relative_fileloc"], "uploaded.json");
  EXPECT_EQ(file_details["has_import_errors"], true);
  // Uploads and deletion of a DAG a file defines are refused, naming the file.
  HttpResponse refused = Put(d, "uploaded", kUploaded);
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_NE(refused.body.find("uploaded.json"), std::string::npos) << refused.body;
  HttpResponse refused_delete = Delete(d, "uploaded");
  EXPECT_EQ(refused_delete.status, 409) << refused_delete.body;
  EXPECT_NE(refused_delete.body.find("uploaded.json"), std::string::npos) << refused_delete.body;

  // Once the file is gone (and the folder rescanned), the DAG can be deleted with its runs.
  std::filesystem::remove(dags.path() / "uploaded.json");
  ASSERT_EQ(::kill(d.process->pid(), SIGHUP), 0);
  WaitUntil([&] { return GetJson(d.Url("/api/v2/dags/uploaded")).value("is_stale", false); });
  const int64_t events_before = std::stoll(d.db.Query("SELECT count(*) FROM event")[0]);
  HttpResponse deleted = Delete(d, "uploaded");
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags/uploaded")).status, 404);
  EXPECT_EQ(Delete(d, "uploaded").status, 404);
  EXPECT_EQ(d.db.Query("SELECT count(*) FROM dag_run WHERE dag_id = 'uploaded'"),
            std::vector<std::string>{"0"});
  EXPECT_EQ(d.db.Query("SELECT count(*) FROM dag_version WHERE dag_id = 'uploaded'"),
            std::vector<std::string>{"0"});
  // The event log keeps its rows: its seqs stay gap-free for readers.
  EXPECT_EQ(std::stoll(d.db.Query("SELECT count(*) FROM event")[0]), events_before);

  // The same id uploaded again starts afresh at version 1, and the scheduler runs that version,
  // not a cached one of the deleted DAG.
  HttpResponse reborn = Put(d, "uploaded", R"({"dag_id": "uploaded", "tasks": [
    {"task_id": "reborn", "operator": "bash", "bash_command": "echo again"}]})");
  ASSERT_EQ(reborn.status, 201) << reborn.body;
  EXPECT_EQ(Json::parse(reborn.body)["latest_dag_version"]["version_number"], 1);
  Trigger(d, "uploaded", "reborn");
  EXPECT_EQ(WaitForRun(d, "uploaded", "reborn")["state"], "success");
  auto tis = TaskInstancesById(d, "uploaded", "reborn");
  EXPECT_EQ(tis.size(), 1u);
  EXPECT_EQ(tis.count("reborn"), 1u);
}

TEST(DagUpload, DeleteIsRefusedWhileARunIsActive) {
  TempDir dags;
  Daemon d(dags.path().string());
  d.Start();
  ASSERT_EQ(Put(d, "slow", R"({"dag_id": "slow", "tasks": [
    {"task_id": "wait", "operator": "bash", "bash_command": "sleep 3"}]})")
                .status,
            201);
  Trigger(d, "slow", "busy");
  HttpResponse refused = Delete(d, "slow");
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_NE(refused.body.find("queued or running"), std::string::npos) << refused.body;
  EXPECT_EQ(WaitForRun(d, "slow", "busy")["state"], "success");
  EXPECT_EQ(Delete(d, "slow").status, 200);
}

}  // namespace
}  // namespace dagd::testing
