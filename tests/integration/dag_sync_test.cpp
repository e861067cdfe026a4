// SyncDagFolder on a real PostgreSQL: a DAG the database refuses is an import error for its own
// file, and every other file is still synced.
#include "dagd/scheduler/dag_sync.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "dagd/storage/pg_state_store.hpp"
#include "forwarding_state_store.hpp"
#include "temp_dir.hpp"
#include "test_database.hpp"

namespace dagd::scheduler {
namespace {

// Forwards everything to a real store, but hands SyncDag of one DAG a copy whose description holds
// a NUL character, so that PostgreSQL itself refuses it (the parser no longer lets one through, and
// this is the defence behind it). Every other call goes to PostgreSQL unchanged.
class NulInjectingStore final : public testing::ForwardingStateStore {
 public:
  NulInjectingStore(StateStore& inner, std::string poisoned_dag)
      : ForwardingStateStore(inner), poisoned_(std::move(poisoned_dag)) {}

  StatusOr<int> SyncDag(const Dag& dag, const std::string& fileloc, TimePoint at,
                        DagSource source) override {
    if (dag.dag_id != poisoned_) return inner_.SyncDag(dag, fileloc, at, source);
    Dag copy = dag;
    copy.description = std::string("x\0y", 3);
    return inner_.SyncDag(copy, fileloc, at, source);
  }

 private:
  std::string poisoned_;
};

std::string Doc(const std::string& dag_id) {
  return R"({"dag_id": ")" + dag_id + R"(", "tasks": [{"task_id": "a", "operator": "empty"}]})";
}

// Regression: the first DAG the database refused failed the whole sync, leaving /dags and
// /importErrors both empty.
TEST(DagSync, ADagTheDatabaseRefusesIsAnImportErrorForItsFileAloneAndTheOthersAreSynced) {
  testing::TestDatabase db;
  auto pg = storage::PgStateStore::Open({db.url(), 2});
  ASSERT_TRUE(pg.ok()) << pg.status().ToString();
  NulInjectingStore store(**pg, "b_refused");
  testing::TempDir folder;
  folder.Write("a_good.json", Doc("a_good"));
  folder.Write("b_refused.json", Doc("b_refused"));
  folder.Write("c_good.json", Doc("c_good"));
  SystemClock clock;

  auto report = SyncDagFolder(store, folder.path(), ParseOptions{}, clock);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->loaded, 2);
  EXPECT_EQ(report->failed_files, 1);
  // The synced DAGs come back parsed, with their stored version numbers (for the scheduler).
  ASSERT_EQ(report->versions.size(), 2u);
  EXPECT_EQ(report->versions[0].second->dag_id, "a_good");
  EXPECT_EQ(report->versions[1].second->dag_id, "c_good");
  for (const auto& [version, dag] : report->versions) {
    auto record = (*pg)->GetDag(dag->dag_id);
    ASSERT_TRUE(record.ok());
    EXPECT_EQ(version, record->latest_version) << dag->dag_id;
  }

  auto dags = (*pg)->ListDags(DagQuery{});
  ASSERT_TRUE(dags.ok());
  std::vector<std::string> ids;
  for (const auto& d : dags->items) ids.push_back(d.dag_id);
  EXPECT_EQ(ids, (std::vector<std::string>{"a_good", "c_good"}));

  auto errors = (*pg)->ListImportErrors(Page{});
  ASSERT_TRUE(errors.ok());
  ASSERT_EQ(errors->items.size(), 1u);
  EXPECT_EQ(errors->items[0].filename, (folder.path() / "b_refused.json").string());
  EXPECT_NE(errors->items[0].message.find("the database cannot store DAG 'b_refused'"),
            std::string::npos)
      << errors->items[0].message;
}

}  // namespace
}  // namespace dagd::scheduler
