#include "migrations.hpp"

#include <pqxx/pqxx>
#include <string>

namespace dagd::storage {
namespace {

// Any fixed number: every dagd process migrating the same database takes this lock.
constexpr int64_t kMigrationLockKey = 0x64616764'6d696772;  // "dagdmigr"

}  // namespace

int ApplyMigrations(pqxx::connection_base& conn, const std::vector<Migration>& migrations) {
  pqxx::work tx(conn, "migrate");
  // Held until commit: a second process blocks here, then sees the versions the first applied.
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
  tx.exec(
      "CREATE TABLE IF NOT EXISTS schema_migration ("
      "  version    integer PRIMARY KEY,"
      "  name       text NOT NULL,"
      "  applied_at timestamptz NOT NULL DEFAULT clock_timestamp())");
  const int current =
      tx.exec1("SELECT coalesce(max(version), 0) FROM schema_migration")[0].as<int>();
  int applied = 0;
  for (const Migration& m : migrations) {
    if (m.version <= current) continue;
    tx.exec(std::string(m.sql), "migration " + std::string(m.name));
    tx.exec_params("INSERT INTO schema_migration (version, name) VALUES ($1, $2)", m.version,
                   std::string(m.name));
    ++applied;
  }
  tx.commit();
  return applied;
}

}  // namespace dagd::storage
