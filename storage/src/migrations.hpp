// The SQL migrations compiled into the library (storage/migrations/NNN_name.sql, embedded at build
// time by embed_migrations.cmake), and the routine that applies them.
#pragma once

#include <string_view>
#include <vector>

namespace pqxx {
class connection_base;
}

namespace dagd::storage {

struct Migration {
  int version;            // NNN of the file name
  std::string_view name;  // file name without extension: "001_initial"
  std::string_view sql;
};

// Every embedded migration, sorted by version. Defined in the generated embedded_migrations.cpp.
const std::vector<Migration>& EmbeddedMigrations();

// Applies every migration newer than the database's schema_migration records, all in one
// transaction that holds an advisory lock, so concurrent callers (two daemons starting at once)
// serialise and each migration runs exactly once. Throws libpqxx exceptions; callers map them.
// Returns the number of migrations applied.
int ApplyMigrations(pqxx::connection_base& conn, const std::vector<Migration>& migrations);

}  // namespace dagd::storage
