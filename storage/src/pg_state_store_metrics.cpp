// What the store reports to the metrics registry (PgOptions::metrics). The state gauges cover
// the active runs only, so that a scrape costs what is in flight, never the history: the runs
// come from dag_run_state_idx (state, ...), their task instances from the unique
// (dag_run_id, task_id) index. Finished work is counted by the scheduler as it commits
// (dagd_dag_run_transitions_total, dagd_task_instance_transitions_total).
#include <string>
#include <string_view>
#include <vector>

#include "dagd/storage/pg_state_store.hpp"
#include "pg.hpp"

namespace dagd::storage {
namespace {

using scheduler::MetricType;
using scheduler::Sample;

// The (state, count) rows of `sql` as one sample per name in `states`, 0 when the query found
// none, so that series do not come and go; no sample when the database does not answer.
std::vector<Sample> CountByState(pg::Pool& pool, const char* sql,
                                 const std::vector<std::string_view>& states) {
  auto rows = pool.RunAutocommit(
      [sql](pqxx::nontransaction& tx) -> StatusOr<pqxx::result> { return tx.exec(sql); });
  if (!rows.ok()) return {};
  std::vector<Sample> out;
  for (std::string_view state : states) {
    double count = 0;
    for (const auto& row : *rows) {
      if (row[0].as<std::string>() == state) count = row[1].as<double>();
    }
    out.push_back(Sample{{{"state", std::string(state)}}, count});
  }
  return out;
}

std::vector<std::string_view> TaskStateNames() {
  std::vector<std::string_view> out;
  for (int i = 0; i <= static_cast<int>(scheduler::TaskState::kRestarting); ++i) {
    out.push_back(scheduler::ToString(static_cast<scheduler::TaskState>(i)));
  }
  return out;
}

}  // namespace

void PgStateStore::RegisterMetrics(scheduler::MetricsRegistry& registry) {
  run_commit_seconds_ = &registry.AddHistogram(
      "dagd_store_run_create_commit_seconds",
      "Round trip of the commits that create triggered runs (several triggers share one).",
      scheduler::LatencyBuckets());
  registry.AddGauge("dagd_db_pool_connections_max", "Size of the store's database connection pool.")
      .Set(static_cast<double>(pool_->size()));
  pg::Pool* pool = pool_.get();
  metric_callbacks_.push_back(registry.AddCallback(
      "dagd_dag_runs", "Active DAG runs by state (queued, running).", MetricType::kGauge, [pool] {
        return CountByState(*pool,
                            "SELECT state, count(*) FROM dag_run "
                            "WHERE state IN ('queued', 'running') GROUP BY state",
                            {"queued", "running"});
      }));
  metric_callbacks_.push_back(registry.AddCallback(
      "dagd_task_instances", "Task instances of the active DAG runs by state.", MetricType::kGauge,
      [pool] {
        return CountByState(*pool,
                            "SELECT coalesce(ti.state, 'none'), count(*) FROM dag_run r "
                            "JOIN task_instance ti ON ti.dag_run_id = r.id "
                            "WHERE r.state IN ('queued', 'running') GROUP BY 1",
                            TaskStateNames());
      }));
  metric_callbacks_.push_back(registry.AddCallback(
      "dagd_db_pool_connections_in_use", "Connections of the store's database pool lent out now.",
      MetricType::kGauge, [pool] {
        return std::vector<Sample>{{{}, static_cast<double>(pool->InUse())}};
      }));
}

}  // namespace dagd::storage
