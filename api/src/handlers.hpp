// What a route handler receives, and the handlers that live outside router.cpp: the listings
// across DAGs and runs (GET and the batch POSTs), DAG versions, dagStats, config, plugins,
// providers and dagd's OpenAPI document (contract_routes.cpp). Each answers like the Router
// (router.hpp): Airflow's shapes, 422 for a parameter or body field dagd does not support.
// Thread-safety as the Router's: no state beyond the request.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dagd/api/router.hpp"
#include "dagd/scheduler/service.hpp"
#include "validation.hpp"

namespace dagd::api {

struct Call {
  const Request& req;
  std::vector<std::string> params;  // the decoded path segments matched by "{}"
  const Query& query;
};

// Runs looked up once per request: task instances show their run's logical_date/run_after.
class RunCache {
 public:
  explicit RunCache(scheduler::Service& service) : service_(service) {}
  void Put(scheduler::DagRun run) {
    auto key = std::make_pair(run.dag_id, run.run_id);
    runs_[std::move(key)] = std::move(run);
  }
  // Reads the runs of these task instances that are not cached yet in one query (a listing's
  // page spans up to a hundred runs); Get then reads only what this missed.
  void Prefetch(const std::vector<scheduler::TaskInstance>& tis) {
    scheduler::RunQuery q;
    q.dag_id = "~";
    std::set<std::string> dag_ids, run_ids;
    for (const auto& ti : tis) {
      if (runs_.count({ti.dag_id, ti.run_id}) != 0) continue;
      dag_ids.insert(ti.dag_id);
      run_ids.insert(ti.run_id);
    }
    if (run_ids.empty()) return;
    q.dag_ids.assign(dag_ids.begin(), dag_ids.end());
    q.run_ids.assign(run_ids.begin(), run_ids.end());
    // Pairs of one DAG's id with another's run id may match runs this page does not need.
    q.page.limit = static_cast<int>(std::min<size_t>(dag_ids.size() * run_ids.size(), 10000));
    auto found = service_.ListRuns(q);
    if (!found.ok()) return;  // Get reads them one by one
    for (auto& run : found->items) Put(std::move(run));
  }
  const scheduler::DagRun* Get(const std::string& dag_id, const std::string& run_id) {
    auto key = std::make_pair(dag_id, run_id);
    auto it = runs_.find(key);
    if (it == runs_.end()) {
      auto run = service_.GetRun(dag_id, run_id);
      std::optional<scheduler::DagRun> value;
      if (run.ok()) value = std::move(*run);
      it = runs_.emplace(std::move(key), std::move(value)).first;
    }
    return it->second ? &*it->second : nullptr;
  }

 private:
  scheduler::Service& service_;
  std::map<std::pair<std::string, std::string>, std::optional<scheduler::DagRun>> runs_;
};

namespace contract {

using scheduler::Service;

// GET /dags/{dag_id}/dagRuns and POST /dags/~/dagRuns/list.
Response ListRuns(Service& service, const RouterOptions& options, const Call& c);
Response ListRunsBatch(Service& service, const RouterOptions& options, const Call& c);
// GET /dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances and POST .../~/taskInstances/list.
Response ListTaskInstances(Service& service, const RouterOptions& options, const Call& c);
Response ListTaskInstancesBatch(Service& service, const RouterOptions& options, const Call& c);
// GET /dags/{dag_id}/dagVersions and .../dagVersions/{version_number}.
Response ListDagVersions(Service& service, const RouterOptions& options, const Call& c);
Response GetDagVersion(Service& service, const RouterOptions& options, const Call& c);
// GET /dagStats?dag_ids=...
Response DagStats(Service& service, const RouterOptions& options, const Call& c);
// GET /config: RouterOptions::config plus the API's own settings; no secrets.
Response Config(Service& service, const RouterOptions& options, const Call& c);
// GET /plugins and /providers: dagd has neither; empty collections.
Response Plugins(Service& service, const RouterOptions& options, const Call& c);
Response Providers(Service& service, const RouterOptions& options, const Call& c);
// GET /openapi.json: api/openapi/dagd-openapi.json, embedded at build time.
Response OpenApi(Service& service, const RouterOptions& options, const Call& c);

}  // namespace contract

// Marking and notes (mark_routes.cpp).
namespace marks {

using scheduler::Service;

// PATCH /dags/{dag_id}/dagRuns/{dag_run_id}: DAGRunPatchBody → DAGRunResponse.
Response PatchRun(Service& service, const RouterOptions& options, const Call& c);
// PATCH .../taskInstances/{task_id} and .../{task_id}/dry_run: PatchTaskInstanceBody →
// TaskInstanceCollectionResponse (the task instances changed, or that would be).
Response PatchTaskInstance(Service& service, const RouterOptions& options, const Call& c);
Response PatchTaskInstanceDryRun(Service& service, const RouterOptions& options, const Call& c);

}  // namespace marks

// Backfills (backfill_routes.cpp): POST /backfills and /backfills/dry_run (BackfillPostBody),
// GET /backfills?dag_id=, GET /backfills/{backfill_id}, PUT .../pause, .../unpause, .../cancel.
namespace backfills {

using scheduler::Service;

Response Create(Service& service, const RouterOptions& options, const Call& c);
Response DryRun(Service& service, const RouterOptions& options, const Call& c);
Response List(Service& service, const RouterOptions& options, const Call& c);
Response Get(Service& service, const RouterOptions& options, const Call& c);
Response Pause(Service& service, const RouterOptions& options, const Call& c);
Response Unpause(Service& service, const RouterOptions& options, const Call& c);
Response Cancel(Service& service, const RouterOptions& options, const Call& c);

}  // namespace backfills

// Clearing (clear_routes.cpp).
namespace clears {

using scheduler::Service;

// POST /dags/{dag_id}/clearTaskInstances: ClearTaskInstancesBody →
// TaskInstanceCollectionResponse (the task instances cleared, or that would be).
Response ClearTaskInstances(Service& service, const RouterOptions& options, const Call& c);
// POST /dags/{dag_id}/dagRuns/{dag_run_id}/clear: DAGRunClearBody → with dry_run the
// TaskInstanceCollectionResponse, otherwise the run as a DAGRunResponse.
Response ClearRun(Service& service, const RouterOptions& options, const Call& c);

}  // namespace clears
}  // namespace dagd::api
