// A user's clear of task instances (StateStore::ClearTaskInstances), as Airflow's
// clear_task_instances. One transaction locks the selected runs' rows (so that two clears, or a
// clear and a mark, of one run serialize), selects the task instances again under that lock and
// changes them: the event triggers log every state change, and the scheduler's next commit for
// a changed row expects its old state, is rejected, and the scheduler reloads the run.
#include <string>
#include <vector>

#include "dagd/storage/pg_state_store.hpp"
#include "not_found.hpp"
#include "pg.hpp"
#include "sql_values.hpp"

namespace dagd::storage {

namespace {

using scheduler::Json;
using scheduler::TaskInstance;
using scheduler::TaskInstanceClear;

std::string UuidArray(pqxx::work& tx, const std::vector<std::string>& ids) {
  std::string out = "ARRAY[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ", ";
    out += tx.quote(ids[i]);
  }
  return out + "]::uuid[]";
}

std::string Micros(const std::optional<scheduler::TimePoint>& t) {
  return std::to_string(t->time_since_epoch().count());
}

// The selected runs' keys, in key order (with `lock`, their rows locked until the transaction
// ends); not_found when the DAG or the named run does not exist.
StatusOr<std::vector<int64_t>> SelectRuns(pqxx::work& tx, const TaskInstanceClear& clear,
                                          bool lock) {
  if (tx.exec_params("SELECT 1 FROM dag WHERE dag_id = $1", clear.dag_id).empty()) {
    return DagNotFound(clear.dag_id);
  }
  std::string sql = "SELECT id FROM dag_run WHERE dag_id = " + tx.quote(clear.dag_id);
  if (clear.run_id) sql += " AND run_id = " + tx.quote(*clear.run_id);
  if (clear.start_date) sql += " AND logical_date >= dagd_ts(" + Micros(clear.start_date) + ")";
  if (clear.end_date) sql += " AND logical_date <= dagd_ts(" + Micros(clear.end_date) + ")";
  sql += " ORDER BY id";
  if (lock) sql += " FOR UPDATE";
  const pqxx::result r = tx.exec(sql);
  if (clear.run_id && r.empty()) {
    return Status::NotFound("Dag Run id " + *clear.run_id + " not found in dag " + clear.dag_id);
  }
  std::vector<int64_t> keys;
  for (const auto& row : r) keys.push_back(row[0].as<int64_t>());
  return keys;
}

// The selected task instances of `runs`: (id, task id, run id, state), by run then task id.
pqxx::result SelectTaskInstances(pqxx::work& tx, const TaskInstanceClear& clear,
                                 const std::vector<int64_t>& runs) {
  std::string keys = "ARRAY[";
  for (size_t i = 0; i < runs.size(); ++i) keys += (i > 0 ? ", " : "") + std::to_string(runs[i]);
  keys += "]::bigint[]";
  std::string sql =
      "SELECT id::text, state FROM task_instance WHERE dag_run_id = ANY(" + keys + ")";
  if (clear.task_ids) sql += " AND task_id = ANY(" + TextArray(tx, *clear.task_ids) + ")";
  // Airflow's dag.clear: only_failed adds failed and upstream_failed, only_running adds
  // running; with both, either.
  std::vector<std::string> states;
  if (clear.only_failed) states = {"failed", "upstream_failed"};
  if (clear.only_running) states.push_back("running");
  if (!states.empty()) sql += " AND state = ANY(" + TextArray(tx, states) + ")";
  sql += " ORDER BY dag_run_id, task_id";
  return tx.exec(sql);
}

// run_on_latest_version: moves the runs of the cleared task instances `ids` to the latest
// version, as TaskInstanceClear::latest_version says.
void MoveToLatestVersion(pqxx::work& tx, const TaskInstanceClear& clear, const std::string& ids,
                         int64_t now_us) {
  Json tasks = Json::array();
  std::vector<std::string> task_ids;
  for (const scheduler::TaskSpec& t : clear.latest_tasks) {
    tasks.push_back({{"task_id", t.task_id},
                     {"operator", t.operator_name},
                     {"pool", t.pool},
                     {"pool_slots", t.pool_slots},
                     {"priority_weight", t.priority_weight},
                     {"retries", t.retries}});
    task_ids.push_back(t.task_id);
  }
  const std::string version = std::to_string(*clear.latest_version);
  const pqxx::result moved = tx.exec(
      "UPDATE dag_run SET version_number = " + version +
      " WHERE id IN (SELECT dag_run_id FROM task_instance WHERE id = ANY(" + ids +
      ")) AND version_number <> " + version + " RETURNING id");
  if (moved.empty()) return;
  std::string runs = "ARRAY[";
  for (size_t i = 0; i < moved.size(); ++i) {
    runs += (i > 0 ? ", " : "") + std::to_string(moved[i][0].as<int64_t>());
  }
  runs += "]::bigint[]";
  const std::string recordset =
      "json_to_recordset($1::json) AS x(task_id text, operator text, pool text, "
      "pool_slots integer, priority_weight integer, retries integer)";
  tx.exec_params(
      "INSERT INTO task_instance (dag_run_id, dag_id, run_id, task_id, version_number,"
      "    max_tries, operator, pool, pool_slots, priority_weight)"
      "  SELECT r.id, r.dag_id, r.run_id, x.task_id, " +
          version +
          ", x.retries, x.operator, x.pool, x.pool_slots, x.priority_weight"
          "  FROM dag_run r, " +
          recordset + " WHERE r.id = ANY(" + runs +
          ")"
          "    AND NOT EXISTS (SELECT 1 FROM task_instance t"
          "                    WHERE t.dag_run_id = r.id AND t.task_id = x.task_id)",
      tasks.dump());
  // Airflow's verify_integrity: a task the version no longer has is `removed` in the run.
  tx.exec_params("UPDATE task_instance SET state = 'removed',"
                 "    end_date = coalesce(end_date, dagd_ts($1)), next_retry_at = NULL"
                 "  WHERE dag_run_id = ANY(" +
                     runs + ") AND NOT (task_id = ANY(" + TextArray(tx, task_ids) +
                     ")) AND state IS DISTINCT FROM 'removed'",
                 now_us);
  tx.exec_params("UPDATE task_instance t SET version_number = " + version +
                     ", operator = x.operator, pool = x.pool, pool_slots = x.pool_slots,"
                     "    priority_weight = x.priority_weight"
                     "  FROM " +
                     recordset + " WHERE t.id = ANY(" + ids + ") AND t.task_id = x.task_id",
                 tasks.dump());
}

}  // namespace

StatusOr<std::vector<TaskInstance>> PgStateStore::ClearTaskInstances(
    const TaskInstanceClear& clear, scheduler::TimePoint now) {
  const int64_t now_us = now.time_since_epoch().count();
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<std::vector<TaskInstance>> {
    auto runs = SelectRuns(tx, clear, !clear.dry_run);
    if (!runs.ok()) return runs.status();
    if (runs->empty()) return std::vector<TaskInstance>();
    const pqxx::result tis = SelectTaskInstances(tx, clear, *runs);
    if (tis.empty()) return std::vector<TaskInstance>();
    std::vector<std::string> selected;
    bool running = false;
    for (const auto& row : tis) {
      selected.push_back(row[0].as<std::string>());
      running = running || (!row[1].is_null() && row[1].as<std::string>() == "running");
    }
    const std::string ids = UuidArray(tx, selected);
    if (clear.dry_run) return pg::TaskInstancesIn(tx, ids);
    if (clear.prevent_running_task && running) {
      return Status::FailedPrecondition(
          "Cannot clear task instances while they are running: prevent_running_task is set");
    }
    // A running try is stopped by the scheduler, which then runs the task again (restarting);
    // every other selected task instance waits to be scheduled anew, with its full retries.
    tx.exec("UPDATE task_instance SET state = 'restarting' WHERE id = ANY(" + ids +
            ") AND state = 'running'");
    Json retries = Json::array();
    for (const auto& [key, n] : clear.retries) {
      retries.push_back({{"version_number", key.first}, {"task_id", key.second}, {"retries", n}});
    }
    tx.exec_params(
        "UPDATE task_instance t SET state = NULL, next_retry_at = NULL,"
        "    max_tries = coalesce(t.try_number + r.retries, greatest(t.max_tries, t.try_number))"
        "  FROM task_instance s LEFT JOIN json_to_recordset($1::json)"
        "      AS r(version_number integer, task_id text, retries integer)"
        "    ON r.version_number = " +
            (clear.latest_version ? std::to_string(*clear.latest_version)
                                  : std::string("s.version_number")) +
            " AND r.task_id = s.task_id"
        "  WHERE t.id = s.id AND s.id = ANY(" +
            ids + ") AND s.state IS DISTINCT FROM 'restarting'",
        retries.dump());
    if (clear.latest_version) MoveToLatestVersion(tx, clear, ids, now_us);
    if (clear.reset_dag_runs) {
      // Back to the scheduler, which admits and runs it again (Airflow: finished runs only).
      tx.exec_params(
          "UPDATE dag_run SET state = 'queued', queued_at = dagd_ts($1), start_date = NULL,"
          "    end_date = NULL, last_scheduling_decision = NULL"
          "  WHERE id IN (SELECT dag_run_id FROM task_instance WHERE id = ANY(" +
              ids + ")) AND state IN ('success', 'failed')",
          now_us);
    }
    return pg::TaskInstancesIn(tx, ids);
  });
}

}  // namespace dagd::storage
