// Schema migrations applied by PgStateStore::Open, against a real PostgreSQL.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dagd/storage/pg_state_store.hpp"
#include "pg_store_fixture.hpp"
#include "test_database.hpp"

namespace dagd::storage {
namespace {

TEST(PgStateStoreMigrations, OpenAppliesTheSchemaOnceAndRecordsIt) {
  testing::TestDatabase db;
  {
    auto store = PgStateStore::Open({.url = db.url(), .pool_size = 2});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
  }
  EXPECT_EQ(
      db.Query("SELECT version || ':' || name FROM schema_migration ORDER BY version"),
      (std::vector<std::string>{"1:001_initial", "2:002_try_process", "3:003_event_log_and_fencing",
                                "4:004_transition_events", "5:005_users_and_tokens",
                                "6:006_audit_log", "7:007_dag_source", "8:008_scheduled_runs",
                                "9:009_backfill"}));
  for (const char* table : {"dag", "dag_version", "dag_run", "task_instance", "task_instance_try",
                            "xcom", "event", "import_error", "event_counter", "scheduler_epoch",
                            "scheduler_lease", "dagd_user", "api_token", "audit_log", "backfill",
                            "backfill_dag_run"}) {
    EXPECT_EQ(db.Query(std::string("SELECT to_regclass('") + table + "') IS NOT NULL")[0], "t")
        << table;
  }
  const std::vector<std::string> applied_at =
      db.Query("SELECT applied_at FROM schema_migration ORDER BY version");

  // Opening again is a no-op: nothing re-applied, the record untouched.
  auto again = PgStateStore::Open({.url = db.url(), .pool_size = 2});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(db.Query("SELECT count(*) FROM schema_migration")[0], "9");
  EXPECT_EQ(db.Query("SELECT applied_at FROM schema_migration ORDER BY version"), applied_at);
  EXPECT_TRUE((*again)->Ping().ok());
}

TEST(PgStateStoreMigrations, StoresOpeningAtOnceOnAFreshDatabaseAllSucceed) {
  testing::TestDatabase db;
  constexpr int kOpeners = 6;
  std::atomic<int> failures{0};
  std::vector<std::string> errors(kOpeners);
  std::vector<std::thread> threads;
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back([&, i] {
      auto store = PgStateStore::Open({.url = db.url(), .pool_size = 1});
      if (!store.ok()) {
        ++failures;
        errors[static_cast<size_t>(i)] = store.status().ToString();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0) << errors[0] << errors[1];
  EXPECT_EQ(db.Query("SELECT count(*) FROM schema_migration")[0], "9");
}

std::string ReadMigration(const std::string& name) {
  std::ifstream in(std::string(DAGD_SOURCE_DIR) + "/storage/migrations/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A database written by an older dagd: its events (numbered by a bigserial with gaps) are
// renumbered 1..n in their old order and tied to their runs; the triggers number on from there.
TEST(PgStateStoreMigrations, EventsOfAnOlderSchemaAreRenumberedWithoutGapsInTheirOrder) {
  testing::TestDatabase db;
  test::SqlSession sql(db.url());
  sql.Exec(ReadMigration("001_initial.sql"));
  sql.Exec(ReadMigration("002_try_process.sql"));
  sql.Exec(
      "CREATE TABLE schema_migration (version integer PRIMARY KEY, name text NOT NULL,"
      "  applied_at timestamptz NOT NULL DEFAULT clock_timestamp());"
      "INSERT INTO schema_migration (version, name) VALUES (1, '001_initial'),"
      "  (2, '002_try_process');"
      "INSERT INTO dag (dag_id) VALUES ('etl');"
      "INSERT INTO dag_run (dag_id, run_id, version_number, state, run_type)"
      "  VALUES ('etl', 'r1', 1, 'running', 'manual');"
      "INSERT INTO event (id, kind, dag_id, run_id, state) VALUES"
      "  (7, 'dag_run', 'etl', 'r1', 'queued'), (3, 'dag_run', 'gone', 'old', 'success'),"
      "  (12, 'dag_run', 'etl', 'r1', 'running');"
      "INSERT INTO event (id, kind, dag_id, run_id, task_id, state, payload) VALUES"
      "  (9, 'task_instance', 'etl', 'r1', 'a', 'queued',"
      "   '{\"ti_id\": \"00000000-0000-0000-0000-00000000000a\"}')");
  auto store = PgStateStore::Open({.url = db.url(), .pool_size = 1});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(db.Query("SELECT seq || ':' || run_id || ':' || coalesce(run_key::text, '-') || ':' "
                     "|| coalesce(ti_id::text, '-') FROM event ORDER BY seq"),
            (std::vector<std::string>{"1:old:-:-", "2:r1:1:-",
                                      "3:r1:1:00000000-0000-0000-0000-00000000000a",
                                      "4:r1:1:-"}));
  EXPECT_EQ(*(*store)->LatestEventSeq(), 4);
  sql.Exec("UPDATE dag_run SET state = 'success'");
  auto events = (*store)->ReadEvents(4, 10);
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].seq, 5);
}

TEST(PgStateStoreMigrations, OpenWithAnUnreachableDatabaseIsUnavailable) {
  auto store = PgStateStore::Open(
      {.url = "host=/nonexistent-dagd-socket-dir port=1 dbname=x", .pool_size = 1});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
}

TEST(PgStateStoreMigrations, OpenAcceptsAUriConnectionString) {
  testing::TestDatabase db;
  // DAGD_TEST_PG is conninfo "host=/dir port=N user=U"; turn it into a URI with the socket
  // directory as a query parameter.
  std::string host, port, user;
  std::string conninfo = db.url();
  size_t pos = 0;
  while (pos < conninfo.size()) {
    size_t end = conninfo.find(' ', pos);
    if (end == std::string::npos) end = conninfo.size();
    const std::string kv = conninfo.substr(pos, end - pos);
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) {
      const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      if (k == "host") host = v;
      if (k == "port") port = v;
      if (k == "user") user = v;
    }
    pos = end + 1;
  }
  const std::string uri = "postgresql://" + user + "@/" + db.name() + "?host=" + host +
                          (port.empty() ? "" : "&port=" + port);
  auto store = PgStateStore::Open({.url = uri, .pool_size = 1});
  ASSERT_TRUE(store.ok()) << uri << ": " << store.status().ToString();
  EXPECT_TRUE((*store)->Ping().ok());
}

}  // namespace
}  // namespace dagd::storage
