// PgStateStore: the scheduler's StateStore port on PostgreSQL (libpqxx).
//
// Open connects, applies the embedded migrations (storage/migrations/*.sql) under an advisory
// lock, and returns a store backed by a small pool of connections. Every StateStore method is one
// transaction on one pooled connection (CreateRun and Apply: one autocommit statement, one round
// trip; concurrent CreateRun calls share theirs, see below); no exception escapes: libpqxx errors become unavailable (connection lost, the statement
// timed out, or no pooled connection became free in time), aborted (serialization failure,
// deadlock: retry the call), already_exists (unique violation), internal (anything else,
// including a commit whose outcome is unknown); data PostgreSQL refuses (SQLSTATE class 22, e.g.
// \u0000 in a JSON string) is invalid_argument. Thread-safe.
//
// Events, notifications and fencing live in the database (migration 003 states the contract
// every writer gets): any writer of runs and task instances, psql included, appends events and
// wakes subscribers.
//
// CreateRun commits in groups: a call that finds no other CreateRun writing goes out at once;
// calls arriving meanwhile queue, and the next statement writes all of them (up to the batch
// limits below) in one commit. Each call still gets exactly its own outcome: already_exists for a
// taken (dag_id, run_id) (of two equal requests in one group, the first wins), not_found for an
// unknown DAG. When the shared statement fails for another reason, each request of the group is
// written on its own, so a bad request fails only its caller; only unavailable (the database is
// unreachable or busy) is everyone's answer.
//
// AcquireSchedulerLock uses one more connection, outside the pool, that stays open (holding the
// lock) until the store is destroyed; it shows as application_name 'dagd-scheduler'. Subscribe
// uses another ('dagd-listener') on its own thread.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dagd/scheduler/metrics.hpp"
#include "dagd/scheduler/ports.hpp"

namespace dagd::storage {

struct PgOptions {
  std::string url;    // any libpq connection string: "host=/run/pg port=5432 dbname=dagd" or a URI
  int pool_size = 8;  // connections; at least 1
  // Every connection (pool, lock, listener): libpq's connect_timeout (whole seconds, at least 1)
  // and TCP keepalives (idle, interval, count), so a silent network partition ends in an error
  // instead of a hang. These override the same keys in `url`.
  std::chrono::seconds connect_timeout{5};
  std::chrono::seconds keepalives_idle{30};
  std::chrono::seconds keepalives_interval{10};
  int keepalives_count = 3;
  // Session settings of every connection: a statement running longer is cancelled (→
  // unavailable); a session idle inside a transaction longer is closed by the server.
  std::chrono::milliseconds statement_timeout{30000};
  std::chrono::milliseconds idle_in_transaction_timeout{60000};
  // How long a call waits for a free pooled connection before it answers unavailable ("the
  // database is busy").
  std::chrono::milliseconds pool_wait_timeout{5000};
  // The most CreateRun calls, and task instances, one shared commit writes (at least one call).
  int create_run_group_max_runs = 200;
  int create_run_group_max_task_instances = 20000;
  // Where the store reports: active runs and their task instances by state (two grouped queries
  // per scrape, over the active runs only), its pool's connections, and the latency of
  // CreateRun's group commits (pg_state_store_metrics.cpp). Must outlive the store; none:
  // nothing is reported.
  scheduler::MetricsRegistry* metrics = nullptr;
};

namespace pg {
class Pool;
template <typename Request, typename T>
class GroupCommit;
}  // namespace pg

class PgStateStore final : public scheduler::StateStore {
 public:
  // unavailable when the database cannot be reached; internal when a migration fails.
  static StatusOr<std::unique_ptr<PgStateStore>> Open(const PgOptions& options);

  ~PgStateStore() override;
  PgStateStore(const PgStateStore&) = delete;
  PgStateStore& operator=(const PgStateStore&) = delete;

  Status Ping() override;
  Status AcquireSchedulerLock() override;
  std::optional<int64_t> SchedulerEpoch() const override;

  StatusOr<int> SyncDag(const scheduler::Dag& dag, const std::string& fileloc,
                        scheduler::TimePoint parsed_at, scheduler::DagSource source) override;
  Status MarkStaleExcept(const std::vector<std::string>& present_dag_ids) override;
  Status DeleteDag(const std::string& dag_id) override;
  Status ReplaceImportErrors(const std::vector<scheduler::ImportError>& errors) override;
  StatusOr<scheduler::Listing<scheduler::ImportError>> ListImportErrors(
      const scheduler::Page& page) override;
  StatusOr<scheduler::Listing<scheduler::DagRecord>> ListDags(
      const scheduler::DagQuery& query) override;
  StatusOr<scheduler::DagRecord> GetDag(const std::string& dag_id) override;
  Status SetPaused(const std::string& dag_id, bool paused) override;
  StatusOr<std::vector<scheduler::ScheduledDag>> ListScheduledDags() override;
  Status SetNextDagRun(const std::string& dag_id,
                       const std::optional<scheduler::RunSlot>& next) override;
  StatusOr<scheduler::DagVersionRecord> GetDagVersion(const std::string& dag_id,
                                                      int version_number) override;
  StatusOr<scheduler::Listing<scheduler::DagVersionRecord>> ListDagVersions(
      const scheduler::DagVersionQuery& query) override;
  StatusOr<std::vector<scheduler::DagRunStats>> CountRunsByState(
      const std::vector<std::string>& dag_ids) override;

  StatusOr<scheduler::DagRun> CreateRun(const scheduler::DagRun& run,
                                        std::vector<scheduler::TaskInstance>& tis) override;
  StatusOr<scheduler::DagRun> GetRun(const std::string& dag_id, const std::string& run_id) override;
  // Two queries on one snapshot: the runs, then all their task instances.
  StatusOr<std::vector<scheduler::RunRows>> LoadRuns(const std::vector<int64_t>& run_keys) override;
  StatusOr<scheduler::Listing<scheduler::DagRun>> ListRuns(
      const scheduler::RunQuery& query) override;
  StatusOr<std::vector<scheduler::DagRun>> LoadActiveRuns() override;

  StatusOr<scheduler::Listing<scheduler::TaskInstance>> ListTaskInstances(
      const scheduler::TaskInstanceQuery& query) override;
  StatusOr<scheduler::TaskInstance> GetTaskInstance(const std::string& dag_id,
                                                    const std::string& run_id,
                                                    const std::string& task_id) override;
  StatusOr<std::vector<scheduler::TaskTry>> ListTries(const std::string& dag_id,
                                                      const std::string& run_id,
                                                      const std::string& task_id) override;
  StatusOr<std::vector<scheduler::XcomEntry>> ListXcom(const std::string& ti_id) override;
  StatusOr<scheduler::DagRun> PatchRun(const std::string& dag_id, const std::string& run_id,
                                       const scheduler::RunPatch& patch,
                                       scheduler::TimePoint now) override;
  StatusOr<std::vector<scheduler::TaskInstance>> PatchTaskInstances(
      const std::string& dag_id, const std::string& run_id,
      const scheduler::TaskInstancePatch& patch, scheduler::TimePoint now) override;

  StatusOr<std::vector<scheduler::TaskInstance>> ClearTaskInstances(
      const scheduler::TaskInstanceClear& clear, scheduler::TimePoint now) override;

  StatusOr<scheduler::ApplyResult> Apply(const scheduler::Transition& t) override;

  StatusOr<std::vector<scheduler::EventRecord>> ReadEvents(int64_t after_seq, int limit) override;
  // One statement: event_counter.last, read in the statement's snapshot, is the highest
  // committed seq (seqs are taken in commit order under the counter's row lock, so every event
  // up to it is visible there too). A full page ends at its last row; a shorter one covers
  // everything up to the counter.
  StatusOr<scheduler::EventPage> ReadOtherEvents(int64_t after_seq, int limit,
                                                 int64_t skip_origin) override;
  // The same snapshot rule as ReadOtherEvents. A filter on dag_id and run_id reads the run's
  // events by index (event_run_idx); other filters scan the seq range (at most scan_window).
  StatusOr<scheduler::EventPage> ReadEventsMatching(int64_t after_seq, int limit,
                                                    const scheduler::EventFilter& filter,
                                                    int64_t scan_window) override;
  StatusOr<int64_t> LatestEventSeq() override;
  StatusOr<scheduler::EventBounds> ReadEventBounds() override;
  StatusOr<int64_t> PruneEvents(scheduler::TimePoint before, int64_t max_events) override;
  // One listening connection serves every subscription: the first Subscribe connects it
  // (unavailable when it cannot), so every commit after Subscribe returns is reported; the
  // last Unsubscribe closes it.
  StatusOr<SubscriptionId> Subscribe(ChangeCallback on_change) override;
  void Unsubscribe(SubscriptionId id) override;

  StatusOr<int64_t> AppendAudit(const scheduler::AuditEntry& entry) override;
  StatusOr<scheduler::Listing<scheduler::AuditEntry>> ListAudit(
      const scheduler::AuditQuery& query) override;
  StatusOr<scheduler::AuditEntry> GetAudit(int64_t id) override;

  // Backfills (pg_backfills.cpp).
  StatusOr<scheduler::BackfillRecord> CreateBackfill(const scheduler::NewBackfill& backfill,
                                                     scheduler::TimePoint now) override;
  StatusOr<std::vector<std::pair<scheduler::TimePoint, scheduler::RunState>>> RunStatesAt(
      const std::string& dag_id, const std::vector<scheduler::TimePoint>& logical_dates) override;
  StatusOr<scheduler::Listing<scheduler::BackfillRecord>> ListBackfills(
      const scheduler::BackfillQuery& query) override;
  StatusOr<scheduler::BackfillRecord> GetBackfill(int64_t id) override;
  StatusOr<scheduler::BackfillRecord> SetBackfillPaused(int64_t id, bool paused,
                                                        scheduler::TimePoint now) override;
  StatusOr<scheduler::BackfillRecord> CancelBackfill(int64_t id, scheduler::TimePoint now) override;
  StatusOr<std::vector<scheduler::BackfillGate>> ListBackfillGates(
      const std::string& dag_id) override;
  StatusOr<int> CompleteEndedBackfills(scheduler::TimePoint now) override;

 private:
  struct SchedulerLock;
  class Listener;
  struct NewRun;  // one CreateRun call: its run and task instances

  PgStateStore(PgOptions options, std::unique_ptr<pg::Pool> pool);

  void RegisterMetrics(scheduler::MetricsRegistry& registry);  // pg_state_store_metrics.cpp

  // Writes a group of CreateRun calls in one statement (one commit); one result per call.
  std::vector<StatusOr<scheduler::DagRun>> WriteRuns(const std::vector<NewRun*>& group);

  const PgOptions options_;
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<pg::GroupCommit<NewRun, scheduler::DagRun>> run_commits_;
  std::unique_ptr<SchedulerLock> scheduler_lock_;
  // Guards listener_ (created by the first Subscribe, destroyed by the last Unsubscribe) and
  // next_subscription_; held while the listener connects.
  std::mutex listener_mu_;
  std::unique_ptr<Listener> listener_;
  SubscriptionId next_subscription_ = 1;
  scheduler::Histogram* run_commit_seconds_ = nullptr;  // set when options_.metrics is
  // Declared last: removed (waiting for a scrape running them) before anything they read goes.
  std::vector<scheduler::MetricsRegistry::Registration> metric_callbacks_;
};

}  // namespace dagd::storage
