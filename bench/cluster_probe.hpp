// Reads the embedded PostgreSQL of the dagd under test over its unix socket (libpq): commit
// counters, settings, and how many of a scene's runs have finished.
//
// Two sessions: one on the `postgres` database reads pg_stat_database, so that its own
// transactions never count in the `dagd` database's xact_commit; one on `dagd` answers run
// counts, and counts its own transactions (each query is one) so they can be subtracted.
// Every method throws std::runtime_error on a database error. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct pg_conn;

namespace dagd::bench {

class ClusterProbe {
 public:
  // `socket_dir` holds .s.PGSQL.5432; the cluster trusts local connections as role dagd.
  explicit ClusterProbe(const std::string& socket_dir);
  ~ClusterProbe();
  ClusterProbe(const ClusterProbe&) = delete;
  ClusterProbe& operator=(const ClusterProbe&) = delete;

  // pg_stat_database.xact_commit of the dagd database. PostgreSQL 15 backends publish their
  // counters when idle, up to 10 s late: read it after the cluster has been quiet that long.
  int64_t XactCommit();
  // The next transaction id to be assigned: the difference between two readings is the number
  // of write transactions (commits and rollbacks) in between, counted at once.
  int64_t NextXid();
  std::string Setting(const std::string& name);
  // Runs whose run_id starts with `prefix` and that are in state success or failed.
  int64_t FinishedRuns(const std::string& prefix);
  // Task instances of `dag_id` in `state`.
  int64_t TaskInstancesIn(const std::string& dag_id, const std::string& state);
  // Transactions this probe ran on the dagd database so far.
  int64_t own_transactions() const { return own_transactions_; }

 private:
  std::string Scalar(pg_conn* conn, const std::string& sql,
                     const std::vector<std::string>& params = {});

  pg_conn* stats_ = nullptr;  // database postgres
  pg_conn* dagd_ = nullptr;   // database dagd
  int64_t own_transactions_ = 0;
};

}  // namespace dagd::bench
