// Backfills (StateStore's backfill methods; backfill.hpp): the backfill and backfill_dag_run
// rows, the runs a backfill creates or re-runs, pause, cancel and completion. Writes to runs and
// task instances are conditional SQL like a user's marks (pg_marks.cpp): the event log's
// triggers record them and the scheduler reloads the runs it holds.
#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dagd/scheduler/backfill.hpp"
#include "dagd/scheduler/states.hpp"
#include "dagd/storage/pg_state_store.hpp"
#include "not_found.hpp"
#include "pg.hpp"
#include "sql_values.hpp"

namespace dagd::storage {

namespace {

using scheduler::BackfillGate;
using scheduler::BackfillRecord;
using scheduler::Json;
using scheduler::RunState;
using scheduler::TimePoint;

constexpr std::string_view kBackfillColumns =
    "id, dag_id, dagd_us(from_date) AS from_date, dagd_us(to_date) AS to_date, "
    "dag_run_conf::text AS dag_run_conf, is_paused, reprocess_behavior, max_active_runs, "
    "dagd_us(created_at) AS created_at, dagd_us(completed_at) AS completed_at, "
    "dagd_us(updated_at) AS updated_at, triggering_user_name";

int64_t Us(TimePoint t) { return t.time_since_epoch().count(); }
TimePoint TimeAt(const pqxx::field& f) {
  return TimePoint(std::chrono::microseconds(f.as<int64_t>()));
}

BackfillRecord BackfillOf(const pqxx::row& r) {
  BackfillRecord b;
  b.id = r["id"].as<int64_t>();
  b.dag_id = r["dag_id"].as<std::string>();
  b.from_date = TimeAt(r["from_date"]);
  b.to_date = TimeAt(r["to_date"]);
  b.dag_run_conf = Json::parse(r["dag_run_conf"].c_str());
  b.is_paused = r["is_paused"].as<bool>();
  b.reprocess_behavior =
      scheduler::ParseReprocessBehavior(r["reprocess_behavior"].as<std::string>())
          .value_or(scheduler::ReprocessBehavior::kNone);
  b.max_active_runs = r["max_active_runs"].as<int>();
  b.created_at = TimeAt(r["created_at"]);
  if (!r["completed_at"].is_null()) b.completed_at = TimeAt(r["completed_at"]);
  b.updated_at = TimeAt(r["updated_at"]);
  if (!r["triggering_user_name"].is_null()) {
    b.triggering_user_name = r["triggering_user_name"].as<std::string>();
  }
  return b;
}

Status BackfillNotFound(int64_t id) {
  return Status::NotFound("Could not find backfill with id " + std::to_string(id));
}

// The backfill's row, locked until the transaction ends; not_found, or failed_precondition when
// it is completed (Airflow's 409 "Backfill is already completed.").
Status LockActiveBackfill(pqxx::work& tx, int64_t id) {
  const pqxx::result r =
      tx.exec_params("SELECT completed_at IS NOT NULL FROM backfill WHERE id = $1 FOR UPDATE", id);
  if (r.empty()) return BackfillNotFound(id);
  if (r[0][0].as<bool>()) return Status::FailedPrecondition("Backfill is already completed.");
  return Status::Ok();
}

// The task instances' columns a new run needs, as json_to_recordset reads them.
Json TaskRows(const std::vector<scheduler::TaskInstance>& tis) {
  Json rows = Json::array();
  for (const auto& ti : tis) {
    rows.push_back({{"task_id", ti.task_id},
                    {"version_number", ti.version_number},
                    {"max_tries", ti.max_tries},
                    {"operator", ti.operator_name},
                    {"pool", ti.pool},
                    {"pool_slots", ti.pool_slots},
                    {"priority_weight", ti.priority_weight}});
  }
  return rows;
}

// A new run owned by the backfill with its task instances; none when its run id or logical date
// was taken meanwhile (another writer's commit: Airflow records that date as in flight).
std::optional<int64_t> InsertRun(pqxx::work& tx, const scheduler::DagRun& run, int64_t backfill_id,
                                 const std::vector<scheduler::TaskInstance>& tis) {
  const pqxx::result r = tx.exec_params(
      "INSERT INTO dag_run (dag_id, run_id, version_number, state, run_type, logical_date,"
      "    queued_at, data_interval_start, data_interval_end, run_after, conf, triggered_by,"
      "    backfill_id)"
      " VALUES ($1, $2, $3, 'queued', 'backfill', dagd_ts($4), dagd_ts($5), dagd_ts($6),"
      "    dagd_ts($7), dagd_ts($8), $9::jsonb, $10, $11)"
      " ON CONFLICT DO NOTHING RETURNING id",
      run.dag_id, run.run_id, run.version_number, Us(*run.logical_date), Us(*run.queued_at),
      Us(*run.data_interval_start), Us(*run.data_interval_end), Us(*run.run_after), Dump(run.conf),
      run.triggered_by, backfill_id);
  if (r.empty()) return std::nullopt;
  const int64_t key = r[0][0].as<int64_t>();
  tx.exec_params(
      "INSERT INTO task_instance (dag_run_id, dag_id, run_id, task_id, version_number, max_tries,"
      "    operator, pool, pool_slots, priority_weight)"
      " SELECT $1, $2, $3, x.task_id, x.version_number, x.max_tries, x.operator, x.pool,"
      "    x.pool_slots, x.priority_weight"
      " FROM json_to_recordset($4::json) AS x(task_id text, version_number integer,"
      "    max_tries integer, operator text, pool text, pool_slots integer,"
      "    priority_weight integer)",
      key, run.dag_id, run.run_id, Dump(TaskRows(tis)));
  return key;
}

// Re-runs an ended run for the backfill, as Airflow's clear with dag_run_state=queued: each task
// instance back to none with its tries kept (the next one gets a new try number) and its task's
// retries counted again from there; the run queued and owned by the backfill. It moves to the
// DAG's latest version when asked and that version has the same tasks (its task instances then
// stay one per task); otherwise it keeps its version.
void ReRun(pqxx::work& tx, int64_t key, const scheduler::NewBackfill& b,
           const scheduler::NewBackfill::Date& date, int64_t backfill_id, int64_t now_us) {
  const std::string rows = Dump(TaskRows(date.tis));
  tx.exec_params(
      "UPDATE task_instance t SET state = NULL, next_retry_at = NULL,"
      "    max_tries = t.try_number + coalesce((SELECT (e->>'max_tries')::integer"
      "        FROM json_array_elements($2::json) e WHERE e->>'task_id' = t.task_id), 0)"
      " WHERE t.dag_run_id = $1",
      key, rows);
  if (b.run_on_latest_version) {
    std::vector<std::string> wanted;
    for (const auto& ti : date.tis) wanted.push_back(ti.task_id);
    std::sort(wanted.begin(), wanted.end());
    const pqxx::result have = tx.exec_params(
        "SELECT task_id FROM task_instance WHERE dag_run_id = $1 ORDER BY task_id", key);
    std::vector<std::string> stored;
    for (const auto& row : have) stored.push_back(row[0].as<std::string>());
    if (stored == wanted) {
      tx.exec_params("UPDATE task_instance SET version_number = $2 WHERE dag_run_id = $1", key,
                     b.version_number);
      tx.exec_params("UPDATE dag_run SET version_number = $2 WHERE id = $1", key, b.version_number);
    }
  }
  tx.exec_params(
      "UPDATE dag_run SET state = 'queued', queued_at = dagd_ts($2), start_date = NULL,"
      "    end_date = NULL, last_scheduling_decision = NULL, run_type = 'backfill',"
      "    triggered_by = 'backfill', backfill_id = $3, conf = $4::jsonb"
      " WHERE id = $1",
      key, now_us, backfill_id, Dump(b.backfill.dag_run_conf));
}

void RecordDate(pqxx::work& tx, int64_t backfill_id, std::optional<int64_t> run_key,
                std::optional<std::string_view> reason, TimePoint logical_date, int ordinal) {
  tx.exec_params(
      "INSERT INTO backfill_dag_run (backfill_id, dag_run_id, exception_reason, logical_date,"
      "    sort_ordinal) VALUES ($1, $2, $3, dagd_ts($4), $5)",
      backfill_id, run_key,
      reason ? std::optional<std::string>(std::string(*reason)) : std::nullopt, Us(logical_date),
      ordinal);
}

}  // namespace

StatusOr<BackfillRecord> PgStateStore::CreateBackfill(const scheduler::NewBackfill& b,
                                                      TimePoint now) {
  const int64_t now_us = Us(now);
  const BackfillRecord& in = b.backfill;
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<BackfillRecord> {
    // The DAG's row lock serializes two creations for one DAG (and a deletion of it).
    if (tx.exec_params("SELECT 1 FROM dag WHERE dag_id = $1 FOR UPDATE", in.dag_id).empty()) {
      return DagNotFound(in.dag_id);
    }
    if (!tx.exec_params("SELECT 1 FROM backfill WHERE dag_id = $1 AND completed_at IS NULL",
                        in.dag_id)
             .empty()) {
      return Status::AlreadyExists("There is already a running backfill for dag " + in.dag_id);
    }
    const pqxx::result created = tx.exec_params(
        "INSERT INTO backfill (dag_id, from_date, to_date, dag_run_conf, is_paused,"
        "    reprocess_behavior, max_active_runs, created_at, updated_at, triggering_user_name)"
        " VALUES ($1, dagd_ts($2), dagd_ts($3), $4::jsonb, false, $5, $6, dagd_ts($7),"
        "    dagd_ts($7), $8) RETURNING " +
            std::string(kBackfillColumns),
        in.dag_id, Us(in.from_date), Us(in.to_date), Dump(in.dag_run_conf),
        std::string(scheduler::ToString(in.reprocess_behavior)), in.max_active_runs, now_us,
        in.triggering_user_name);
    BackfillRecord out = BackfillOf(created[0]);
    int ordinal = 0;
    int owned = 0;  // runs created or re-run
    for (const auto& date : b.dates) {
      ++ordinal;
      const TimePoint logical = *date.run.logical_date;
      const pqxx::result existing = tx.exec_params(
          "SELECT id, state FROM dag_run WHERE dag_id = $1 AND logical_date = dagd_ts($2)"
          " FOR UPDATE",
          in.dag_id, Us(logical));
      if (existing.empty()) {
        const std::optional<int64_t> key = InsertRun(tx, date.run, out.id, date.tis);
        RecordDate(tx, out.id, key,
                   key ? std::nullopt : std::optional<std::string_view>(scheduler::kInFlight),
                   logical, ordinal);
        owned += key ? 1 : 0;
        continue;
      }
      const int64_t key = existing[0][0].as<int64_t>();
      const RunState state =
          scheduler::ParseRunState(existing[0][1].as<std::string>()).value_or(RunState::kRunning);
      if (auto reason = scheduler::NoRunReason(state, in.reprocess_behavior)) {
        RecordDate(tx, out.id, std::nullopt, reason, logical, ordinal);
        continue;
      }
      ReRun(tx, key, b, date, out.id, now_us);
      RecordDate(tx, out.id, key, std::nullopt, logical, ordinal);
      ++owned;
    }
    if (owned == 0) {
      // Every date kept its run: nothing is left to wait for.
      tx.exec_params("UPDATE backfill SET completed_at = dagd_ts($2) WHERE id = $1", out.id,
                     now_us);
      out.completed_at = now;
    }
    return out;
  });
}

StatusOr<std::vector<std::pair<TimePoint, RunState>>> PgStateStore::RunStatesAt(
    const std::string& dag_id, const std::vector<TimePoint>& logical_dates) {
  std::vector<int64_t> us;
  us.reserve(logical_dates.size());
  for (TimePoint t : logical_dates) us.push_back(Us(t));
  return pool_->Run<pg::SnapshotRead>(
      [&](pg::SnapshotRead& tx) -> StatusOr<std::vector<std::pair<TimePoint, RunState>>> {
        const pqxx::result r = tx.exec_params(
            "SELECT dagd_us(logical_date), state FROM dag_run WHERE dag_id = $1"
            " AND logical_date IN (SELECT dagd_ts(u) FROM unnest($2::bigint[]) AS u)",
            dag_id, BigintArray(us));
        std::vector<std::pair<TimePoint, RunState>> out;
        for (const auto& row : r) {
          out.emplace_back(
              TimeAt(row[0]),
              scheduler::ParseRunState(row[1].as<std::string>()).value_or(RunState::kRunning));
        }
        return out;
      });
}

StatusOr<scheduler::Listing<BackfillRecord>> PgStateStore::ListBackfills(
    const scheduler::BackfillQuery& query) {
  std::string order;
  for (const std::string& item : query.page.order_by) {
    if (item.empty()) continue;
    const bool desc = item[0] == '-';
    const std::string name = desc ? item.substr(1) : item;
    if (name != "id") {
      return Status::InvalidArgument("Ordering with '" + name +
                                     "' is disallowed or the attribute does not exist on the "
                                     "model");
    }
    if (order.empty()) order = desc ? "id DESC" : "id ASC";
  }
  if (order.empty()) order = "id ASC";
  return pool_->Run<pg::SnapshotRead>(
      [&](pg::SnapshotRead& tx) -> StatusOr<scheduler::Listing<BackfillRecord>> {
        scheduler::Listing<BackfillRecord> out;
        out.total_entries =
            tx.exec_params("SELECT count(*) FROM backfill WHERE dag_id = $1", query.dag_id)[0][0]
                .as<int64_t>();
        const pqxx::result r = tx.exec_params("SELECT " + std::string(kBackfillColumns) +
                                                  " FROM backfill WHERE dag_id = $1 ORDER BY " +
                                                  order + " LIMIT $2 OFFSET $3",
                                              query.dag_id, query.page.limit, query.page.offset);
        for (const auto& row : r) out.items.push_back(BackfillOf(row));
        return out;
      });
}

StatusOr<BackfillRecord> PgStateStore::GetBackfill(int64_t id) {
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<BackfillRecord> {
    const pqxx::result r = tx.exec_params(
        "SELECT " + std::string(kBackfillColumns) + " FROM backfill WHERE id = $1", id);
    if (r.empty()) return Status::NotFound("Backfill not found");
    return BackfillOf(r[0]);
  });
}

StatusOr<BackfillRecord> PgStateStore::SetBackfillPaused(int64_t id, bool paused, TimePoint now) {
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<BackfillRecord> {
    if (Status s = LockActiveBackfill(tx, id); !s.ok()) return s;
    const pqxx::result r = tx.exec_params(
        "UPDATE backfill SET is_paused = $2,"
        "    updated_at = CASE WHEN is_paused = $2 THEN updated_at ELSE dagd_ts($3) END"
        " WHERE id = $1 RETURNING " +
            std::string(kBackfillColumns),
        id, paused, Us(now));
    return BackfillOf(r[0]);
  });
}

StatusOr<BackfillRecord> PgStateStore::CancelBackfill(int64_t id, TimePoint now) {
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<BackfillRecord> {
    if (Status s = LockActiveBackfill(tx, id); !s.ok()) return s;
    // Only runs still queued: one the scheduler started meanwhile runs to its end.
    tx.exec_params(
        "UPDATE dag_run SET state = 'failed', end_date = dagd_ts($2)"
        " WHERE backfill_id = $1 AND state = 'queued'",
        id, Us(now));
    const pqxx::result r = tx.exec_params(
        "UPDATE backfill SET is_paused = true, completed_at = dagd_ts($2), updated_at = dagd_ts($2)"
        " WHERE id = $1 RETURNING " +
            std::string(kBackfillColumns),
        id, Us(now));
    return BackfillOf(r[0]);
  });
}

StatusOr<std::vector<BackfillGate>> PgStateStore::ListBackfillGates(const std::string& dag_id) {
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<std::vector<BackfillGate>> {
    const pqxx::result r = tx.exec_params(
        "SELECT id, is_paused, completed_at IS NOT NULL, max_active_runs FROM backfill b"
        " WHERE dag_id = $1 AND (completed_at IS NULL OR EXISTS (SELECT 1 FROM dag_run d"
        "   WHERE d.backfill_id = b.id AND d.state IN ('queued', 'running')))",
        dag_id);
    std::vector<BackfillGate> out;
    for (const auto& row : r) {
      out.push_back({row[0].as<int64_t>(), row[1].as<bool>(), row[2].as<bool>(), row[3].as<int>()});
    }
    return out;
  });
}

StatusOr<int> PgStateStore::CompleteEndedBackfills(TimePoint now) {
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<int> {
    const pqxx::result r = tx.exec_params(
        "UPDATE backfill b SET completed_at = dagd_ts($1), updated_at = dagd_ts($1)"
        " WHERE completed_at IS NULL AND NOT EXISTS (SELECT 1 FROM dag_run d"
        "   WHERE d.backfill_id = b.id AND d.state IN ('queued', 'running'))",
        Us(now));
    return static_cast<int>(r.affected_rows());
  });
}

}  // namespace dagd::storage
