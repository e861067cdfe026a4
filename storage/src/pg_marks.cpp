// A user's writes to runs and task instances: marking states and notes (StateStore::PatchRun,
// PatchTaskInstances). Each locks the run's row first, so that two users' marks of one run
// serialize, and updates only rows not yet in the state asked for: the scheduler's next commit
// for a changed row expects its old state, is rejected, and the scheduler reloads the run.
#include <string>
#include <string_view>
#include <vector>

#include "dagd/scheduler/states.hpp"
#include "dagd/storage/pg_state_store.hpp"
#include "not_found.hpp"
#include "pg.hpp"
#include "sql_values.hpp"

namespace dagd::storage {

namespace {

using scheduler::DagRun;
using scheduler::RunState;
using scheduler::TaskInstance;
using scheduler::TaskState;

// The states Airflow counts as finished (State.finished) and as running for set_dag_run_state_to_
// failed (running, deferred, up_for_reschedule).
constexpr std::string_view kFinished =
    "('success', 'failed', 'skipped', 'upstream_failed', 'removed')";
constexpr std::string_view kRunningStates = "('running', 'deferred', 'up_for_reschedule')";

// Sets the run's task instances that match `where` (SQL over task_instance's columns) to
// `state` as Airflow's TaskInstance.set_state does (start_date and end_date kept when set, now
// otherwise), their current try row too. Returns the task ids changed (with `dry_run`, those
// that would be, changing nothing).
std::vector<std::string> MarkTaskInstances(pqxx::work& tx, int64_t run_key, std::string_view where,
                                           std::string_view state, int64_t now_us,
                                           bool dry_run = false) {
  const std::string matching = "dag_run_id = $1 AND (" + std::string(where) + ")";
  pqxx::result r;
  if (dry_run) {
    r = tx.exec_params("SELECT task_id FROM task_instance WHERE " + matching + " ORDER BY task_id",
                       run_key);
  } else {
    r = tx.exec_params(
        "WITH tu AS ("
        "  UPDATE task_instance SET state = $2,"
        "      start_date = coalesce(start_date, dagd_ts($3)),"
        "      end_date = coalesce(end_date, dagd_ts($3)),"
        "      duration = extract(epoch FROM coalesce(end_date, dagd_ts($3)) -"
        "                                    coalesce(start_date, dagd_ts($3))),"
        "      next_retry_at = NULL"
        "    WHERE " +
            matching +
            " RETURNING id, task_id, try_number, state, start_date, end_date, duration),"
            " tries AS ("
            "  UPDATE task_instance_try y SET state = tu.state,"
            "      start_date = coalesce(y.start_date, tu.start_date),"
            "      end_date = tu.end_date, duration = tu.duration"
            "    FROM tu WHERE y.ti_id = tu.id AND y.try_number = tu.try_number)"
            " SELECT task_id FROM tu ORDER BY task_id",
        run_key, std::string(state), now_us);
  }
  std::vector<std::string> changed;
  for (const auto& row : r) changed.push_back(row[0].as<std::string>());
  return changed;
}

// The run's key, its row locked until the transaction ends; nullopt when there is none.
std::optional<int64_t> LockRun(pqxx::work& tx, const std::string& dag_id,
                               const std::string& run_id) {
  const pqxx::result r = tx.exec_params(
      "SELECT id FROM dag_run WHERE dag_id = $1 AND run_id = $2 FOR UPDATE", dag_id, run_id);
  if (r.empty()) return std::nullopt;
  return r[0][0].as<int64_t>();
}

}  // namespace

StatusOr<DagRun> PgStateStore::PatchRun(const std::string& dag_id, const std::string& run_id,
                                        const scheduler::RunPatch& patch,
                                        scheduler::TimePoint now) {
  const int64_t now_us = now.time_since_epoch().count();
  Status written = pool_->Run([&](pqxx::work& tx) -> Status {
    const std::optional<int64_t> key = LockRun(tx, dag_id, run_id);
    if (!key) return RunNotFound(dag_id, run_id);
    if (patch.state == RunState::kSuccess) {
      MarkTaskInstances(tx, *key, "state IS DISTINCT FROM 'success'", "success", now_us);
    } else if (patch.state == RunState::kFailed) {
      // Running tries fail (the scheduler stops them); what has not run yet is skipped.
      MarkTaskInstances(tx, *key, "state IN " + std::string(kRunningStates), "failed", now_us);
      MarkTaskInstances(tx, *key,
                        "state IS NULL OR state NOT IN " + std::string(kFinished) +
                            " AND state NOT IN " + std::string(kRunningStates),
                        "skipped", now_us);
    }
    if (patch.state == RunState::kQueued) {
      // Back to the scheduler: it starts the run again and decides it from its task instances.
      tx.exec_params(
          "UPDATE dag_run SET state = 'queued', queued_at = dagd_ts($2), start_date = NULL,"
          "    end_date = NULL WHERE id = $1 AND state <> 'queued'",
          *key, now_us);
    } else if (patch.state) {
      tx.exec_params(
          "UPDATE dag_run SET state = $2, end_date = dagd_ts($3),"
          "    start_date = coalesce(start_date, dagd_ts($3)) WHERE id = $1 AND state <> $2",
          *key, std::string(scheduler::ToString(*patch.state)), now_us);
    }
    if (patch.note) tx.exec_params("UPDATE dag_run SET note = $2 WHERE id = $1", *key, *patch.note);
    return Status::Ok();
  });
  if (!written.ok()) return written;
  return GetRun(dag_id, run_id);
}

StatusOr<std::vector<TaskInstance>> PgStateStore::PatchTaskInstances(
    const std::string& dag_id, const std::string& run_id, const scheduler::TaskInstancePatch& patch,
    scheduler::TimePoint now) {
  const int64_t now_us = now.time_since_epoch().count();
  auto changed = pool_->Run([&](pqxx::work& tx) -> StatusOr<std::vector<std::string>> {
    const std::optional<int64_t> key = LockRun(tx, dag_id, run_id);
    if (!key) return RunNotFound(dag_id, run_id);
    const pqxx::result ti = tx.exec_params(
        "SELECT 1 FROM task_instance WHERE dag_run_id = $1 AND task_id = $2", *key, patch.task_id);
    if (ti.empty()) return TaskInstanceNotFound(dag_id, run_id, patch.task_id);
    std::vector<std::string> ids;
    if (patch.new_state) {
      const std::string state(scheduler::ToString(*patch.new_state));
      ids = MarkTaskInstances(tx, *key,
                              "task_id = ANY(" + TextArray(tx, patch.state_tasks) +
                                  ") AND state IS DISTINCT FROM " + tx.quote(state),
                              state, now_us, patch.dry_run);
      // Airflow answers 409 when the mark changes nothing; the note is not written either.
      if (ids.empty() && !patch.dry_run) {
        return Status::AlreadyExists("Task id " + patch.task_id + " is already in " + state +
                                     " state");
      }
    }
    if (patch.note) {
      if (!patch.dry_run) {
        tx.exec_params("UPDATE task_instance SET note = $3 WHERE dag_run_id = $1 AND task_id = $2",
                       *key, patch.task_id, *patch.note);
      }
      if (!patch.new_state) ids.push_back(patch.task_id);
    }
    return ids;
  });
  if (!changed.ok()) return changed.status();
  if (changed->empty()) return std::vector<TaskInstance>();
  // One read of them all, in the order of `changed` (by task id).
  scheduler::TaskInstanceQuery query;
  query.dag_id = dag_id;
  query.run_id = run_id;
  query.task_ids = std::move(*changed);
  query.page.limit = static_cast<int>(query.task_ids.size());
  query.page.order_by = {"task_id"};
  auto listed = ListTaskInstances(query);
  if (!listed.ok()) return listed.status();
  return std::move(listed->items);
}

}  // namespace dagd::storage
