#include "test_database.hpp"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>

namespace dagd::testing {
namespace {

using PgConn = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using PgResult = std::unique_ptr<PGresult, decltype(&PQclear)>;

PgConn Connect(const std::string& conninfo) {
  PgConn conn(PQconnectdb(conninfo.c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error("cannot connect to the test cluster (" + conninfo +
                             "): " + PQerrorMessage(conn.get()));
  }
  return conn;
}

std::vector<std::string> Exec(PGconn* conn, const std::string& sql) {
  PgResult res(PQexec(conn, sql.c_str()), &PQclear);
  auto status = PQresultStatus(res.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error("SQL failed: " + sql + ": " + PQerrorMessage(conn));
  }
  std::vector<std::string> rows;
  for (int i = 0; i < PQntuples(res.get()); ++i) {
    rows.emplace_back(PQgetisnull(res.get(), i, 0) ? "" : PQgetvalue(res.get(), i, 0));
  }
  return rows;
}

}  // namespace

TestDatabase::TestDatabase() {
  const char* base = std::getenv("DAGD_TEST_PG");
  if (base == nullptr || *base == '\0') {
    throw std::runtime_error(
        "DAGD_TEST_PG is not set: run the tests through tests/run-tests.sh (or `make test`), "
        "which starts a throwaway PostgreSQL cluster");
  }
  static std::atomic<int> counter{0};
  std::random_device rd;
  name_ = "dagd_t_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + "_" +
          std::to_string(rd() % 100000);
  admin_ = std::string(base) + " dbname=postgres";
  url_ = std::string(base) + " dbname=" + name_;
  auto conn = Connect(admin_);
  Exec(conn.get(), "CREATE DATABASE " + name_);
}

TestDatabase::~TestDatabase() {
  try {
    auto conn = Connect(admin_);
    Exec(conn.get(), "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (const std::exception&) {
    // The cluster is torn down by the test script anyway.
  }
}

std::vector<std::string> TestDatabase::Query(const std::string& sql) const {
  auto conn = Connect(url_);
  return Exec(conn.get(), sql);
}

}  // namespace dagd::testing
