// PgStateStore: the scheduler's StateStore port on PostgreSQL (libpqxx).
//
// Open connects, applies the embedded migrations (storage/migrations/*.sql) under an advisory
// lock, and returns a store backed by a small pool of connections. Every StateStore method is one
// transaction on one pooled connection; no exception escapes: libpqxx errors become
// unavailable (connection lost; the connection is re-opened on next use), aborted (serialization
// failure, deadlock: retry the call), already_exists (unique violation), internal (anything else,
// including a commit whose outcome is unknown); data PostgreSQL refuses (SQLSTATE class 22, e.g.
// \u0000 in a JSON string) is invalid_argument. Thread-safe; a caller blocks while all
// connections are busy.
//
// AcquireSchedulerLock uses one more connection, outside the pool, that stays open (holding the
// lock) until the store is destroyed; it shows as application_name 'dagd-scheduler'.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dagd/scheduler/ports.hpp"

namespace dagd::storage {

struct PgOptions {
  std::string url;    // any libpq connection string: "host=/run/pg port=5432 dbname=dagd" or a URI
  int pool_size = 8;  // connections; at least 1
};

namespace pg {
class Pool;
}

class PgStateStore final : public scheduler::StateStore {
 public:
  // unavailable when the database cannot be reached; internal when a migration fails.
  static StatusOr<std::unique_ptr<PgStateStore>> Open(const PgOptions& options);

  ~PgStateStore() override;
  PgStateStore(const PgStateStore&) = delete;
  PgStateStore& operator=(const PgStateStore&) = delete;

  Status Ping() override;
  Status AcquireSchedulerLock() override;

  StatusOr<int> SyncDag(const scheduler::Dag& dag, const std::string& fileloc,
                        scheduler::TimePoint parsed_at) override;
  Status MarkStaleExcept(const std::vector<std::string>& present_dag_ids) override;
  Status ReplaceImportErrors(const std::vector<scheduler::ImportError>& errors) override;
  StatusOr<scheduler::Listing<scheduler::ImportError>> ListImportErrors(
      const scheduler::Page& page) override;
  StatusOr<scheduler::Listing<scheduler::DagRecord>> ListDags(
      const scheduler::DagQuery& query) override;
  StatusOr<scheduler::DagRecord> GetDag(const std::string& dag_id) override;
  Status SetPaused(const std::string& dag_id, bool paused) override;
  StatusOr<scheduler::DagVersionRecord> GetDagVersion(const std::string& dag_id,
                                                      int version_number) override;

  StatusOr<scheduler::DagRun> CreateRun(const scheduler::DagRun& run,
                                        std::vector<scheduler::TaskInstance>& tis) override;
  StatusOr<scheduler::DagRun> GetRun(const std::string& dag_id, const std::string& run_id) override;
  StatusOr<scheduler::Listing<scheduler::DagRun>> ListRuns(
      const scheduler::RunQuery& query) override;
  StatusOr<std::vector<scheduler::DagRun>> LoadActiveRuns() override;
  StatusOr<std::vector<scheduler::TaskInstance>> LoadTaskInstances(int64_t run_key) override;

  StatusOr<scheduler::Listing<scheduler::TaskInstance>> ListTaskInstances(
      const scheduler::TaskInstanceQuery& query) override;
  StatusOr<scheduler::TaskInstance> GetTaskInstance(const std::string& dag_id,
                                                    const std::string& run_id,
                                                    const std::string& task_id) override;
  StatusOr<std::vector<scheduler::TaskTry>> ListTries(const std::string& dag_id,
                                                      const std::string& run_id,
                                                      const std::string& task_id) override;
  StatusOr<std::vector<scheduler::XcomEntry>> ListXcom(const std::string& ti_id) override;

  Status Apply(const scheduler::Transition& t) override;

 private:
  struct SchedulerLock;

  PgStateStore(std::string url, std::unique_ptr<pg::Pool> pool);

  const std::string url_;
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<SchedulerLock> scheduler_lock_;
};

}  // namespace dagd::storage
