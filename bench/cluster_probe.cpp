#include "cluster_probe.hpp"

#include <libpq-fe.h>

#include <stdexcept>

namespace dagd::bench {
namespace {

pg_conn* Open(const std::string& socket_dir, const char* database) {
  const char* keys[] = {"host", "port", "user", "dbname", "connect_timeout", nullptr};
  const char* values[] = {socket_dir.c_str(), "5432", "dagd", database, "10", nullptr};
  pg_conn* conn = PQconnectdbParams(keys, values, 0);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    PQfinish(conn);
    throw std::runtime_error("cannot connect to the embedded PostgreSQL in " + socket_dir + ": " +
                             message);
  }
  return conn;
}

}  // namespace

ClusterProbe::ClusterProbe(const std::string& socket_dir) {
  stats_ = Open(socket_dir, "postgres");
  try {
    dagd_ = Open(socket_dir, "dagd");
  } catch (...) {
    PQfinish(stats_);
    throw;
  }
}

ClusterProbe::~ClusterProbe() {
  PQfinish(dagd_);
  PQfinish(stats_);
}

std::string ClusterProbe::Scalar(pg_conn* conn, const std::string& sql,
                                 const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  PGresult* result = PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                  values.data(), nullptr, nullptr, 0);
  if (conn == dagd_) ++own_transactions_;
  if (PQresultStatus(result) != PGRES_TUPLES_OK || PQntuples(result) != 1) {
    std::string message = PQresultErrorMessage(result);
    PQclear(result);
    throw std::runtime_error("query failed: " + sql + ": " + message);
  }
  std::string value = PQgetvalue(result, 0, 0);
  PQclear(result);
  return value;
}

int64_t ClusterProbe::XactCommit() {
  return std::stoll(
      Scalar(stats_, "SELECT xact_commit FROM pg_stat_database WHERE datname = 'dagd'"));
}

int64_t ClusterProbe::NextXid() {
  return std::stoll(Scalar(stats_, "SELECT pg_snapshot_xmax(pg_current_snapshot())"));
}

std::string ClusterProbe::Setting(const std::string& name) {
  return Scalar(stats_, "SELECT current_setting($1)", {name});
}

int64_t ClusterProbe::FinishedRuns(const std::string& prefix) {
  const std::string pattern = prefix + "%";
  return std::stoll(Scalar(dagd_,
                           "SELECT count(*) FROM dag_run WHERE run_id LIKE $1 "
                           "AND state IN ('success', 'failed')",
                           {pattern}));
}

int64_t ClusterProbe::TaskInstancesIn(const std::string& dag_id, const std::string& state) {
  return std::stoll(Scalar(dagd_,
                           "SELECT count(*) FROM task_instance WHERE dag_id = $1 AND state = $2",
                           {dag_id, state}));
}

}  // namespace dagd::bench
