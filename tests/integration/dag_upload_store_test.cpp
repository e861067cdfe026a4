// Uploaded DAGs in the store: their source is recorded, the folder sync never marks them stale, a
// file defining the same id takes them over (an import error says so), and DeleteDag removes a
// DAG with its runs but keeps the event log whole.
#include <gtest/gtest.h>

#include "dagd/scheduler/dag_sync.hpp"
#include "dagd/storage/pg_state_store.hpp"
#include "pg_store_fixture.hpp"
#include "temp_dir.hpp"

namespace dagd::storage {
namespace {

using scheduler::DagSource;
using test::kT0;
using test::MakeDag;

using DagUploadStoreTest = test::PgStoreTest;

std::string Doc(const std::string& dag_id, const std::string& task_id = "a") {
  return R"({"dag_id": ")" + dag_id + R"(", "tasks": [{"task_id": ")" + task_id +
         R"(", "operator": "empty"}]})";
}

TEST_F(DagUploadStoreTest, AnUploadedDagRecordsItsSourceAndTheFolderSyncNeverMarksItStale) {
  auto version = store_->SyncDag(*MakeDag("up"), "/ignored", kT0, DagSource::kApi);
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  ASSERT_TRUE(store_->SyncDag(*MakeDag("filed"), "/dags/filed.json", kT0, DagSource::kFile).ok());

  ASSERT_TRUE(store_->MarkStaleExcept({}).ok());
  auto up = store_->GetDag("up");
  ASSERT_TRUE(up.ok());
  EXPECT_FALSE(up->is_stale);
  EXPECT_EQ(up->source, DagSource::kApi);
  EXPECT_EQ(up->fileloc, "") << "an uploaded DAG has no file";
  EXPECT_TRUE(store_->GetDag("filed")->is_stale);
  EXPECT_EQ(store_->GetDag("filed")->source, DagSource::kFile);

  // The real folder sync, on an empty folder, leaves it too.
  testing::TempDir folder;
  scheduler::SystemClock clock;
  auto report = scheduler::SyncDagFolder(*store_, folder.path(), scheduler::ParseOptions{}, clock);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(store_->GetDag("up")->is_stale);
}

TEST_F(DagUploadStoreTest, AnUploadIsRefusedWhileAFileDefinesTheDagAndTakesOverAStaleOne) {
  ASSERT_TRUE(store_->SyncDag(*MakeDag("etl"), "/dags/etl.json", kT0, DagSource::kFile).ok());
  auto refused = store_->SyncDag(*MakeDag("etl", "changed"), "", kT0, DagSource::kApi);
  ASSERT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("/dags/etl.json"), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(Count("SELECT count(*) FROM dag_version WHERE dag_id = 'etl'"), 1);

  // Its file gone, the DAG may be uploaded: a new version, and no longer stale.
  ASSERT_TRUE(store_->MarkStaleExcept({}).ok());
  auto taken = store_->SyncDag(*MakeDag("etl", "changed"), "", kT0, DagSource::kApi);
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_EQ(*taken, 2);
  auto dag = store_->GetDag("etl");
  EXPECT_EQ(dag->source, DagSource::kApi);
  EXPECT_FALSE(dag->is_stale);
  EXPECT_EQ(dag->fileloc, "");
}

TEST_F(DagUploadStoreTest, AFileDefiningAnUploadedDagWinsAndTheConflictIsAnImportError) {
  auto uploaded = scheduler::ParseDag(Doc("shared", "from_api"), scheduler::ParseOptions{});
  ASSERT_TRUE(uploaded.dag);
  ASSERT_TRUE(store_->SyncDag(*uploaded.dag, "", kT0, DagSource::kApi).ok());

  testing::TempDir folder;
  folder.Write("shared.json", Doc("shared", "from_file"));
  scheduler::SystemClock clock;
  auto report = scheduler::SyncDagFolder(*store_, folder.path(), scheduler::ParseOptions{}, clock);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->versions.size(), 1u);
  EXPECT_EQ(report->versions[0].first, 2);

  auto dag = store_->GetDag("shared");
  ASSERT_TRUE(dag.ok());
  EXPECT_EQ(dag->latest_version, 2);
  EXPECT_EQ(dag->source, DagSource::kFile);
  EXPECT_EQ(dag->fileloc, (folder.path() / "shared.json").string());
  EXPECT_TRUE(dag->has_import_errors);
  auto errors = store_->ListImportErrors(scheduler::Page{});
  ASSERT_TRUE(errors.ok());
  ASSERT_EQ(errors->items.size(), 1u);
  EXPECT_EQ(errors->items[0].filename, (folder.path() / "shared.json").string());
  EXPECT_NE(errors->items[0].message.find(
                "DAG 'shared' was uploaded through the API and is also defined by this file; the "
                "file wins"),
            std::string::npos)
      << errors->items[0].message;
  // From now on the file defines it: an upload is refused.
  EXPECT_EQ(store_->SyncDag(*uploaded.dag, "", kT0, DagSource::kApi).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(DagUploadStoreTest, DeleteDagRemovesVersionsRunsAndTaskInstancesButKeepsTheEventLog) {
  auto dag = MakeDag("gone");
  ASSERT_TRUE(store_->SyncDag(*dag, "", kT0, DagSource::kApi).ok());
  ASSERT_TRUE(store_->SyncDag(*MakeDag("gone", "v2"), "", kT0, DagSource::kApi).ok());
  auto tis = test::MakeTis(*dag, 1);
  auto run = store_->CreateRun(test::MakeRun("gone", "r1", 1), tis);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_TRUE(store_->SyncDag(*MakeDag("kept"), "", kT0, DagSource::kApi).ok());

  // A queued run: refused, nothing deleted.
  Status busy = store_->DeleteDag("gone");
  ASSERT_EQ(busy.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(busy.message().find("1 queued or running run"), std::string::npos) << busy.message();
  EXPECT_EQ(Count("SELECT count(*) FROM dag_run WHERE dag_id = 'gone'"), 1);

  db_.Query("UPDATE dag_run SET state = 'success' WHERE dag_id = 'gone'");
  const int64_t events = Count("SELECT count(*) FROM event");
  const int64_t last_seq = Count("SELECT max(seq) FROM event");
  ASSERT_GT(events, 0);
  Status deleted = store_->DeleteDag("gone");
  ASSERT_TRUE(deleted.ok()) << deleted.ToString();
  EXPECT_EQ(store_->GetDag("gone").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Count("SELECT count(*) FROM dag_version WHERE dag_id = 'gone'"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM dag_run WHERE dag_id = 'gone'"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instance WHERE dag_id = 'gone'"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM event"), events) << "the log keeps its rows";
  EXPECT_EQ(Count("SELECT max(seq) FROM event"), last_seq) << "deleting writes no event";
  EXPECT_TRUE(store_->GetDag("kept").ok());

  EXPECT_EQ(store_->DeleteDag("gone").code(), StatusCode::kNotFound);
  // The same id starts afresh.
  auto again = store_->SyncDag(*dag, "", kT0, DagSource::kApi);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 1);
}

TEST_F(DagUploadStoreTest, DeleteDagRefusesADagAFileDefinesNamingTheFile) {
  ASSERT_TRUE(store_->SyncDag(*MakeDag("etl"), "/dags/etl.json", kT0, DagSource::kFile).ok());
  Status refused = store_->DeleteDag("etl");
  ASSERT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("/dags/etl.json"), std::string::npos) << refused.message();
  // A stale one (its file is gone) may be deleted, as in Airflow.
  ASSERT_TRUE(store_->MarkStaleExcept({}).ok());
  EXPECT_TRUE(store_->DeleteDag("etl").ok());
}

}  // namespace
}  // namespace dagd::storage
