#include "dagd/api/router.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "audit_log.hpp"
#include "dagd/api/codecs.hpp"
#include "dagd/api/login_throttle.hpp"
#include "dagd/scheduler/states.hpp"
#include "dagd/scheduler/time.hpp"
#include "event_stream.hpp"
#include "handlers.hpp"
#include "http_metrics.hpp"
#include "request_guard.hpp"
#include "request_text.hpp"
#include "responses.hpp"
#include "task_logs.hpp"
#include "validation.hpp"

namespace dagd::api {

namespace {

using scheduler::DagRun;
using scheduler::Service;
using scheduler::TimePoint;

Response NotFound() { return Detail(404, "Not Found"); }

// The value at `path` in `document`, or the deepest one on the way there (the object a missing
// field belongs in): what a 422 entry echoes as its input.
const Json& ValueAt(const Json& document, const Json& path) {
  const Json* at = &document;
  for (const Json& part : path) {
    if (part.is_string() && at->is_object()) {
      auto it = at->find(part.get_ref<const std::string&>());
      if (it == at->end()) break;
      at = &*it;
    } else if (part.is_number_unsigned() && at->is_array() && part.get<size_t>() < at->size()) {
      at = &(*at)[part.get<size_t>()];
    } else {
      break;
    }
  }
  return *at;
}

// --- Routing ------------------------------------------------------------------------------------

class Api {
 public:
  Api(Service& service, const RouterOptions& options) : service_(service), options_(options) {}

  Response Version(const Call&) {
    const std::string git = DAGD_GIT_VERSION;
    return JsonResponse(
        200, {{"version", DAGD_VERSION}, {"git_version", git.empty() ? Json(nullptr) : Json(git)}});
  }

  Response Health(const Call&) {
    const scheduler::HealthReport h = service_.Health();
    auto status = [](bool healthy) { return healthy ? "healthy" : "unhealthy"; };
    // dagd parses DAG files inside the scheduler, so the DAG processor is as healthy as it is.
    Json body = {
        {"metadatabase", {{"status", status(h.metadatabase_healthy)}}},
        {"scheduler",
         {{"status", status(h.scheduler_healthy)},
          {"latest_scheduler_heartbeat", TimeOrNull(h.latest_scheduler_heartbeat)}}},
        {"triggerer", {{"status", nullptr}, {"latest_triggerer_heartbeat", nullptr}}},
        {"dag_processor",
         {{"status", status(h.scheduler_healthy)},
          {"latest_dag_processor_heartbeat", TimeOrNull(h.latest_scheduler_heartbeat)}}},
    };
    return JsonResponse(200, body);
  }

  Response ListDags(const Call& c) {
    if (auto refused = Unsupported(c, {"limit", "offset", "order_by", "tags", "dag_id_pattern",
                                       "paused", "exclude_stale"}))
      return *refused;
    Errors errors;
    scheduler::DagQuery q;
    q.page = c.query.Page(options_.max_page_limit, errors);
    q.tags = c.query.All("tags");
    q.dag_id_pattern = c.query.First("dag_id_pattern").value_or("");
    q.paused = c.query.Bool("paused", errors);
    q.include_stale = !c.query.Bool("exclude_stale", errors).value_or(true);
    if (!errors.empty()) return errors.ToResponse();
    auto listing = service_.ListDags(q);
    if (!listing.ok()) return ErrorResponse(listing.status());
    Json dags = Json::array();
    for (const auto& r : listing->items) dags.push_back(DagToJson(r));
    return JsonResponse(200,
                        {{"dags", std::move(dags)}, {"total_entries", listing->total_entries}});
  }

  Response GetDag(const Call& c) {
    if (auto refused = Unsupported(c, {})) return *refused;
    auto details = service_.GetDag(c.params[0]);
    if (!details.ok()) return ErrorResponse(details.status());
    return JsonResponse(200, DagToJson(details->record));
  }

  Response GetDagDetails(const Call& c) {
    if (auto refused = Unsupported(c, {})) return *refused;
    auto details = service_.GetDag(c.params[0]);
    if (!details.ok()) return ErrorResponse(details.status());
    return JsonResponse(200, DagDetailsToJson(*details));
  }

  Response PatchDag(const Call& c) {
    if (auto refused = Unsupported(c, {"update_mask"})) return *refused;
    for (const std::string& field : c.query.All("update_mask")) {
      for (std::string_view f : Split(field, ',')) {
        if (f != "is_paused") {
          return Detail(400, "Only `is_paused` field can be updated through the REST API");
        }
      }
    }
    Response error;
    auto body = ParseBodyObject(c.req, error);
    if (!body) return error;
    Errors errors;
    if (!body->contains("is_paused")) {
      errors.Add("missing", {"body", "is_paused"}, "Field required", *body);
    } else if (!(*body)["is_paused"].is_boolean()) {
      errors.Add("bool_type", {"body", "is_paused"}, "Input should be a valid boolean",
                 (*body)["is_paused"]);
    }
    for (const auto& [key, value] : body->items()) {
      if (key != "is_paused") {
        errors.Add("extra_forbidden", {"body", key}, "Extra inputs are not permitted", value);
      }
    }
    if (!errors.empty()) return errors.ToResponse();
    auto details = service_.SetPaused(c.params[0], (*body)["is_paused"].get<bool>());
    if (!details.ok()) return ErrorResponse(details.status());
    return JsonResponse(200, DagToJson(details->record));
  }

  // PUT /dags/{dag_id} (dagd): the body is a DAG document as the DAGs folder's files hold it,
  // validated by the same parser; its errors answer 422 at ["body", <path in the document>].
  Response UploadDag(const Call& c) {
    if (auto refused = Unsupported(c, {})) return *refused;
    Response error;
    // Not JSON, not an object, a NUL: the API's usual 422s. The parser reads the text itself
    // (as it reads a file's) so that it sees what a file would show, repeated keys included.
    auto body = ParseBodyObject(c.req, error);
    if (!body) return error;
    auto upload = service_.UploadDag(c.params[0], c.req.body);
    if (!upload.ok()) {
      if (upload.status().code() == StatusCode::kFailedPrecondition) {
        return Detail(409, upload.status().message());
      }
      return ErrorResponse(upload.status());
    }
    if (!upload->errors.empty()) {
      Errors errors;
      for (size_t i = 0; i < upload->errors.size(); ++i) {
        const Json& path = upload->error_paths[i];
        Json loc = {"body"};
        loc.insert(loc.end(), path.begin(), path.end());
        errors.Add("value_error", std::move(loc), upload->errors[i], ValueAt(*body, path));
      }
      return errors.ToResponse();
    }
    return JsonResponse(upload->created ? 201 : 200, DagDetailsToJson(upload->details));
  }

  // DELETE /dags/{dag_id}, as Airflow's delete_dag (409 while it cannot be deleted). Airflow's
  // document gives its 422 the {"detail": <sentence>} shape, so the refusals here use it.
  Response DeleteDag(const Call& c) {
    if (c.req.target.find('?') != std::string::npos) {
      return Detail(422, "DELETE /api/v2/dags/{dag_id} takes no query parameters");
    }
    if (!c.req.body.empty()) {
      return Detail(422, "DELETE /api/v2/dags/{dag_id} takes no request body");
    }
    const Status s = service_.DeleteDag(c.params[0]);
    if (s.code() == StatusCode::kFailedPrecondition) return Detail(409, s.message());
    if (!s.ok()) return ErrorResponse(s);
    return JsonResponse(200, {{"dag_id", c.params[0]},
                              {"message", "DAG '" + c.params[0] +
                                              "' was deleted with its versions, runs and task "
                                              "instances; its events stay in the event log"}});
  }

  Response ListTasks(const Call& c) {
    if (auto refused = Unsupported(c, {"order_by"})) return *refused;
    auto details = service_.GetDag(c.params[0]);
    if (!details.ok()) return ErrorResponse(details.status());
    if (!details->dag) return Detail(404, "DAG '" + c.params[0] + "' has no loaded version");
    const scheduler::Dag& dag = *details->dag;
    std::vector<const scheduler::TaskSpec*> tasks;
    for (const auto& t : dag.tasks) tasks.push_back(&t);
    const std::string order = c.query.First("order_by").value_or("task_id");
    if (order == "task_id" || order == "-task_id") {
      std::stable_sort(tasks.begin(), tasks.end(),
                       [](auto* a, auto* b) { return a->task_id < b->task_id; });
      if (order.front() == '-') std::reverse(tasks.begin(), tasks.end());
    } else {
      return Detail(400, "Ordering with '" + Shorten(order) +
                             "' is disallowed or the attribute does not exist on the model");
    }
    Json out = Json::array();
    for (const auto* t : tasks) out.push_back(TaskToJson(dag, *t));
    const int64_t total = static_cast<int64_t>(out.size());
    return JsonResponse(200, {{"tasks", std::move(out)}, {"total_entries", total}});
  }

  Response GetTask(const Call& c) {
    if (auto refused = Unsupported(c, {})) return *refused;
    auto details = service_.GetDag(c.params[0]);
    if (!details.ok()) return ErrorResponse(details.status());
    const scheduler::TaskSpec* task = details->dag ? details->dag->Find(c.params[1]) : nullptr;
    if (!task) return Detail(404, "Task with id " + c.params[1] + " not found");
    return JsonResponse(200, TaskToJson(*details->dag, *task));
  }

  Response Trigger(const Call& c) {
    if (auto refused = Unsupported(c, {})) return *refused;
    Response error;
    auto body = ParseBodyObject(c.req, error);
    if (!body) return error;
    Errors errors;
    scheduler::TriggerRequest request;
    auto time_field = [&](const char* name, std::optional<TimePoint>& out) {
      auto it = body->find(name);
      if (it == body->end() || it->is_null()) return;
      if (!it->is_string()) {
        errors.Add("datetime_type", {"body", name}, "Input should be a valid datetime", *it);
        return;
      }
      out = scheduler::ParseRfc3339(it->get<std::string>());
      if (!out) {
        errors.Add("datetime_from_date_parsing", {"body", name},
                   "Input should be a valid datetime or date, with a timezone (RFC 3339)", *it);
      }
    };
    auto string_field = [&](const char* name, std::optional<std::string>& out) {
      auto it = body->find(name);
      if (it == body->end() || it->is_null()) return;
      if (!it->is_string()) {
        errors.Add("string_type", {"body", name}, "Input should be a valid string", *it);
        return;
      }
      out = it->get<std::string>();
    };
    string_field("dag_run_id", request.dag_run_id);
    if (request.dag_run_id && request.dag_run_id->empty()) request.dag_run_id.reset();
    time_field("data_interval_start", request.data_interval_start);
    time_field("data_interval_end", request.data_interval_end);
    if (!body->contains("logical_date")) {
      errors.Add("missing", {"body", "logical_date"}, "Field required", *body);
    } else {
      time_field("logical_date", request.logical_date);
    }
    time_field("run_after", request.run_after);
    if (auto it = body->find("conf"); it != body->end() && !it->is_null()) {
      if (it->is_object()) {
        request.conf = *it;
      } else {
        errors.Add("dict_type", {"body", "conf"}, "Input should be a valid dictionary", *it);
      }
    }
    string_field("note", request.note);
    static const std::set<std::string, std::less<>> kFields = {
        "dag_run_id",   "data_interval_start", "data_interval_end",
        "logical_date", "run_after",           "conf",
        "note"};
    for (const auto& [key, value] : body->items()) {
      if (!kFields.contains(key)) {
        errors.Add("extra_forbidden", {"body", key}, "Extra inputs are not permitted", value);
      }
    }
    if (errors.empty() &&
        request.data_interval_start.has_value() != request.data_interval_end.has_value()) {
      errors.Add("value_error", {"body"},
                 "Value error, Either both data_interval_start and data_interval_end must be "
                 "provided or both must be None",
                 *body, {{"error", Json::object()}});
    }
    if (!errors.empty()) return errors.ToResponse();
    auto run = service_.Trigger(c.params[0], request);
    if (!run.ok()) return ErrorResponse(run.status());
    return JsonResponse(200, DagRunToJson(*run));
  }

  Response ListRuns(const Call& c) { return contract::ListRuns(service_, options_, c); }
  Response ListRunsBatch(const Call& c) { return contract::ListRunsBatch(service_, options_, c); }

  Response GetRun(const Call& c) {
    if (auto refused = Unsupported(c, {})) return *refused;
    auto run = service_.GetRun(c.params[0], c.params[1]);
    if (!run.ok()) return ErrorResponse(run.status());
    return JsonResponse(200, DagRunToJson(*run));
  }

  Response PatchRun(const Call& c) { return marks::PatchRun(service_, options_, c); }
  Response PatchTaskInstance(const Call& c) {
    return marks::PatchTaskInstance(service_, options_, c);
  }
  Response PatchTaskInstanceDryRun(const Call& c) {
    return marks::PatchTaskInstanceDryRun(service_, options_, c);
  }
  Response CreateBackfill(const Call& c) { return backfills::Create(service_, options_, c); }
  Response DryRunBackfill(const Call& c) { return backfills::DryRun(service_, options_, c); }
  Response ListBackfills(const Call& c) { return backfills::List(service_, options_, c); }
  Response GetBackfill(const Call& c) { return backfills::Get(service_, options_, c); }
  Response PauseBackfill(const Call& c) { return backfills::Pause(service_, options_, c); }
  Response UnpauseBackfill(const Call& c) { return backfills::Unpause(service_, options_, c); }
  Response CancelBackfill(const Call& c) { return backfills::Cancel(service_, options_, c); }

  Response ClearTaskInstances(const Call& c) {
    return clears::ClearTaskInstances(service_, options_, c);
  }
  Response ClearRun(const Call& c) { return clears::ClearRun(service_, options_, c); }

  Response ListTaskInstances(const Call& c) {
    return contract::ListTaskInstances(service_, options_, c);
  }
  Response ListTaskInstancesBatch(const Call& c) {
    return contract::ListTaskInstancesBatch(service_, options_, c);
  }

  Response GetTaskInstance(const Call& c) {
    if (auto refused = Unsupported(c, {})) return *refused;
    auto ti = service_.GetTaskInstance(c.params[0], c.params[1], c.params[2]);
    if (!ti.ok()) return ErrorResponse(ti.status());
    RunCache runs(service_);
    return JsonResponse(200, TaskInstanceToJson(*ti, runs.Get(ti->dag_id, ti->run_id)));
  }

  Response ListTries(const Call& c) {
    if (auto refused = Unsupported(c, {})) return *refused;
    auto ti = service_.GetTaskInstance(c.params[0], c.params[1], c.params[2]);
    if (!ti.ok()) return ErrorResponse(ti.status());
    auto tries = service_.ListTries(c.params[0], c.params[1], c.params[2]);
    if (!tries.ok()) return ErrorResponse(tries.status());
    Json out = Json::array();
    for (const auto& t : *tries) out.push_back(TaskTryToJson(t, *ti));
    const int64_t total = static_cast<int64_t>(out.size());
    return JsonResponse(200, {{"task_instances", std::move(out)}, {"total_entries", total}});
  }

  Response GetTry(const Call& c) {
    if (auto refused = Unsupported(c, {})) return *refused;
    Errors errors;
    auto n = PathInt(c.params[3], "try_number", errors, 1);
    if (!n) return errors.ToResponse();
    auto ti = service_.GetTaskInstance(c.params[0], c.params[1], c.params[2]);
    if (!ti.ok()) return ErrorResponse(ti.status());
    auto tries = service_.ListTries(c.params[0], c.params[1], c.params[2]);
    if (!tries.ok()) return ErrorResponse(tries.status());
    for (const auto& t : *tries) {
      if (t.try_number == *n) return JsonResponse(200, TaskTryToJson(t, *ti));
    }
    return Detail(404, "The Task Instance with dag_id: `" + c.params[0] + "`, run_id: `" +
                           c.params[1] + "`, task_id: `" + c.params[2] + "`, try_number: `" +
                           std::to_string(*n) + "` and map_index: `-1` was not found");
  }

  Response GetLog(const Call& c) {
    if (auto refused = Unsupported(c, {"full_content", "map_index", "token", "follow"})) {
      return *refused;
    }
    Errors errors;
    auto n = PathInt(c.params[3], "try_number", errors, 1);
    if (!n) return errors.ToResponse();
    return ServeTaskLog(service_, options_.streams, c.req, c.query,
                        TryId{c.params[0], c.params[1], c.params[2], static_cast<int>(*n)});
  }

  // Why the task instance is not running (Airflow's task instance dependencies). dagd maps no
  // tasks: only map_index -1 exists, any other is a task instance that is not found.
  Response GetDependencies(const Call& c) {
    if (auto refused = Unsupported(c, {"map_index"})) return *refused;
    Errors errors;
    const int map_index = c.query.Int("map_index", -1, std::numeric_limits<int>::min(), errors);
    if (!errors.empty()) return errors.ToResponse();
    return Dependencies(c, map_index);
  }

  Response GetDependenciesByMapIndex(const Call& c) {
    if (auto refused = Unsupported(c, {})) return *refused;
    Errors errors;
    auto v = PathInt(c.params[3], "map_index", errors);
    if (!v) return errors.ToResponse();
    return Dependencies(c, static_cast<int>(*v));
  }

  Response Dependencies(const Call& c, int map_index) {
    if (map_index != -1) {
      return Detail(404, "The Task Instance with dag_id: `" + c.params[0] + "`, run_id: `" +
                             c.params[1] + "`, task_id: `" + c.params[2] + "` and map_index: `" +
                             std::to_string(map_index) + "` was not found");
    }
    auto deps = service_.ExplainTaskInstance(c.params[0], c.params[1], c.params[2]);
    if (!deps.ok()) return ErrorResponse(deps.status());
    Json out = Json::array();
    for (const auto& d : *deps) out.push_back({{"name", d.name}, {"reason", d.reason}});
    return JsonResponse(200, {{"dependencies", std::move(out)}});
  }

  Response Events(const Call& c) {
    if (auto refused = Unsupported(c, {"dag_id", "dag_run_id", "task_id", "since", "until"})) {
      return *refused;
    }
    return StreamEvents(service_, options_.streams, c.req, c.query);
  }

  Response WaitRun(const Call& c) {
    if (auto refused = Unsupported(c, {"interval", "result"})) return *refused;
    return WaitForRun(service_, options_.streams, c.params[0], c.params[1], c.query);
  }
  Response ListDagVersions(const Call& c) {
    return contract::ListDagVersions(service_, options_, c);
  }
  Response GetDagVersion(const Call& c) { return contract::GetDagVersion(service_, options_, c); }
  Response DagStats(const Call& c) { return contract::DagStats(service_, options_, c); }
  Response Config(const Call& c) { return contract::Config(service_, options_, c); }
  Response Plugins(const Call& c) { return contract::Plugins(service_, options_, c); }
  Response Providers(const Call& c) { return contract::Providers(service_, options_, c); }
  Response OpenApi(const Call& c) { return contract::OpenApi(service_, options_, c); }
  Response ListEventLogs(const Call& c) { return audit::ListEventLogs(service_, options_, c); }
  Response GetEventLog(const Call& c) { return audit::GetEventLog(service_, options_, c); }

  Response Metrics(const Call& c) {
    if (auto refused = Unsupported(c, {})) return *refused;
    if (options_.metrics == nullptr) return Detail(503, "Metrics are not enabled on this daemon");
    return Response(200, "text/plain; version=0.0.4; charset=utf-8", options_.metrics->Render());
  }

  Response ListImportErrors(const Call& c) {
    if (auto refused = Unsupported(c, {"limit", "offset", "order_by"})) return *refused;
    Errors errors;
    scheduler::Page page = c.query.Page(options_.max_page_limit, errors);
    if (!errors.empty()) return errors.ToResponse();
    auto listing = service_.ListImportErrors(page);
    if (!listing.ok()) return ErrorResponse(listing.status());
    Json out = Json::array();
    for (const auto& e : listing->items) out.push_back(ImportErrorToJson(e));
    return JsonResponse(
        200, {{"import_errors", std::move(out)}, {"total_entries", listing->total_entries}});
  }

 private:
  // A 422 naming the query parameters not in `supported` (dagd never ignores a filter).
  static std::optional<Response> Unsupported(const Call& c,
                                             std::initializer_list<std::string_view> supported) {
    Errors errors;
    c.query.CheckSupported(supported, errors);
    if (errors.empty()) return std::nullopt;
    return errors.ToResponse();
  }

  Service& service_;
  const RouterOptions& options_;
};

using Handler = Response (Api::*)(const Call&);
using scheduler::Role;

struct Route {
  std::vector<std::string_view> pattern;  // segments after /api/v2; "{}" matches any one
  std::string_view method;
  Handler handler;
  // Who may call it: the least role, and what the 403 says a lesser role cannot do. A route
  // that names none needs admin (fail closed); kPublic routes need no credentials at all.
  Role role = Role::kAdmin;
  std::string_view action = "call this endpoint";
  // A write route's event in the audit log (audit_log.hpp): Airflow's name for the action (its
  // action_logging records the endpoint function's name). Empty: made of the method and path
  // ("put_dags"). kReadOnly: a POST that only reads, not recorded. Ignored for GET routes.
  std::string_view event = {};
  bool is_public = false;
};

constexpr bool kPublic = true;
constexpr std::string_view kReadOnly = "(reads only)";

bool IsRecorded(const Route& route) {
  return route.method != "GET" && route.event != kReadOnly;
}

// The one table of routes and the roles they need (scheduler/auth.hpp lists what each role is
// for): reads are viewer; trigger, clear, mark and pause are user; pools, variables and
// connections op; DAG upload and deletion, and users, admin.
const std::vector<Route>& Routes() {
  constexpr Role kViewer = Role::kViewer;
  constexpr Role kUser = Role::kUser;
  static const std::vector<Route> kRoutes = {
      {{"version"}, "GET", &Api::Version, kViewer, "", "", kPublic},
      {{"monitor", "health"}, "GET", &Api::Health, kViewer, "", "", kPublic},
      {{"openapi.json"}, "GET", &Api::OpenApi, kViewer, "", "", kPublic},
      {{"dags"}, "GET", &Api::ListDags, kViewer, "read DAGs"},
      {{"dags", "{}"}, "GET", &Api::GetDag, kViewer, "read DAGs"},
      {{"dags", "{}"}, "PATCH", &Api::PatchDag, kUser, "pause or unpause DAGs", "patch_dag"},
      {{"dags", "{}", "details"}, "GET", &Api::GetDagDetails, kViewer, "read DAGs"},
      {{"dags", "{}", "dagVersions"}, "GET", &Api::ListDagVersions, kViewer, "read DAGs"},
      {{"dags", "{}", "dagVersions", "{}"}, "GET", &Api::GetDagVersion, kViewer, "read DAGs"},
      {{"dags", "{}", "tasks"}, "GET", &Api::ListTasks, kViewer, "read DAGs"},
      {{"dags", "{}", "tasks", "{}"}, "GET", &Api::GetTask, kViewer, "read DAGs"},
      {{"dags", "{}", "dagRuns"}, "GET", &Api::ListRuns, kViewer, "read DAG runs"},
      {{"dags", "{}", "dagRuns"}, "POST", &Api::Trigger, kUser, "trigger DAG runs",
       "trigger_dag_run"},
      {{"dags", "{}", "dagRuns", "list"},
       "POST",
       &Api::ListRunsBatch,
       kViewer,
       "read DAG runs",
       kReadOnly},
      {{"dags", "{}", "dagRuns", "{}"}, "GET", &Api::GetRun, kViewer, "read DAG runs"},
      {{"dags", "{}", "dagRuns", "{}", "wait"}, "GET", &Api::WaitRun, kViewer, "read DAG runs"},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances"},
       "GET",
       &Api::ListTaskInstances,
       kViewer,
       "read task instances"},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "list"},
       "POST",
       &Api::ListTaskInstancesBatch,
       kViewer,
       "read task instances",
       kReadOnly},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}"},
       "GET",
       &Api::GetTaskInstance,
       kViewer,
       "read task instances"},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}", "tries"},
       "GET",
       &Api::ListTries,
       kViewer,
       "read task instances"},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}", "tries", "{}"},
       "GET",
       &Api::GetTry,
       kViewer,
       "read task instances"},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}", "logs", "{}"},
       "GET",
       &Api::GetLog,
       kViewer,
       "read task logs"},
      {{"importErrors"}, "GET", &Api::ListImportErrors, kViewer, "read import errors"},
      {{"events"}, "GET", &Api::Events, kViewer, "read events"},
      {{"dagStats"}, "GET", &Api::DagStats, kViewer, "read DAG runs"},
      {{"config"}, "GET", &Api::Config, kViewer, "read the configuration"},
      {{"plugins"}, "GET", &Api::Plugins, kViewer, "read plugins"},
      {{"providers"}, "GET", &Api::Providers, kViewer, "read providers"},
      {{"eventLogs"}, "GET", &Api::ListEventLogs, kViewer, "read the audit log"},
      {{"eventLogs", "{}"}, "GET", &Api::GetEventLog, kViewer, "read the audit log"},
      {{"dags", "{}"}, "PUT", &Api::UploadDag, Role::kAdmin, "upload DAGs", "put_dag"},
      {{"dags", "{}"}, "DELETE", &Api::DeleteDag, Role::kAdmin, "delete DAGs", "delete_dag"},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}", "dependencies"},
       "GET",
       &Api::GetDependencies,
       kViewer,
       "read task instances"},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}", "{}", "dependencies"},
       "GET",
       &Api::GetDependenciesByMapIndex,
       kViewer,
       "read task instances"},
      {{"dags", "{}", "dagRuns", "{}"}, "PATCH", &Api::PatchRun, kUser, "mark DAG runs",
       "patch_dag_run"},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}"},
       "PATCH",
       &Api::PatchTaskInstance,
       kUser,
       "mark task instances",
       "patch_task_instance"},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}", "dry_run"},
       "PATCH",
       &Api::PatchTaskInstanceDryRun,
       kUser,
       "mark task instances",
       kReadOnly},
      {{"backfills"}, "GET", &Api::ListBackfills, kViewer, "read backfills"},
      {{"backfills"}, "POST", &Api::CreateBackfill, kUser, "create backfills", "create_backfill"},
      {{"backfills", "dry_run"}, "POST", &Api::DryRunBackfill, kUser, "create backfills",
       kReadOnly},
      {{"backfills", "{}"}, "GET", &Api::GetBackfill, kViewer, "read backfills"},
      {{"backfills", "{}", "pause"}, "PUT", &Api::PauseBackfill, kUser, "pause backfills",
       "pause_backfill"},
      {{"backfills", "{}", "unpause"}, "PUT", &Api::UnpauseBackfill, kUser, "pause backfills",
       "unpause_backfill"},
      {{"backfills", "{}", "cancel"}, "PUT", &Api::CancelBackfill, kUser, "cancel backfills",
       "cancel_backfill"},
      {{"dags", "{}", "clearTaskInstances"},
       "POST",
       &Api::ClearTaskInstances,
       kUser,
       "clear task instances",
       "post_clear_task_instances"},
      {{"dags", "{}", "dagRuns", "{}", "clear"},
       "POST",
       &Api::ClearRun,
       kUser,
       "clear DAG runs",
       "clear_dag_run"},
  };
  return kRoutes;
}

// Routes outside /api/v2; patterns are the segments after "/".
const std::vector<Route>& RootRoutes() {
  static const std::vector<Route> kRoutes = {
      {{"metrics"}, "GET", &Api::Metrics, Role::kViewer, "read metrics"},
  };
  return kRoutes;
}

// A route's pattern as the metrics label it: /api/v2/dags/{dag_id}/dagRuns. Each "{}" is named
// for the collection before it.
std::string PatternText(std::string_view prefix, const Route& route) {
  static const std::map<std::string_view, std::string_view> kParams = {
      {"dags", "{dag_id}"},
      {"dagRuns", "{dag_run_id}"},
      {"taskInstances", "{task_id}"},
      {"tasks", "{task_id}"},
      {"tries", "{try_number}"},
      {"logs", "{try_number}"},
      {"dagVersions", "{version_number}"},
      {"backfills", "{backfill_id}"},
      {"{}", "{map_index}"}};  // .../taskInstances/{task_id}/{map_index}/...
  std::string out(prefix);
  for (size_t i = 0; i < route.pattern.size(); ++i) {
    if (i > 0) out += '/';
    if (route.pattern[i] != "{}") {
      out += route.pattern[i];
      continue;
    }
    auto name = i > 0 ? kParams.find(route.pattern[i - 1]) : kParams.end();
    out += name == kParams.end() ? std::string_view("{param}") : name->second;
  }
  return out;
}

// Labels of every route, and of what matched none; they live as long as the process.
std::string_view RouteLabel(const Route* route) {
  static const std::map<const Route*, std::string> kLabels = [] {
    std::map<const Route*, std::string> labels;
    for (const Route& r : Routes()) labels.emplace(&r, PatternText("/api/v2/", r));
    for (const Route& r : RootRoutes()) labels.emplace(&r, PatternText("/", r));
    return labels;
  }();
  if (route == nullptr) return "unmatched";
  return kLabels.at(route);
}

constexpr std::string_view kTokenRoute = "/auth/token";

// Matches decoded `segments` against `pattern`; fills `params` with the "{}" segments.
bool Match(const std::vector<std::string_view>& pattern, const std::vector<std::string>& segments,
           std::vector<std::string>& params) {
  if (pattern.size() != segments.size()) return false;
  params.clear();
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == "{}") {
      if (segments[i].empty()) return false;
      params.push_back(segments[i]);
    } else if (pattern[i] != segments[i]) {
      return false;
    }
  }
  return true;
}

// --- Authentication -----------------------------------------------------------------------------

Response Unauthorized(const std::string& detail) {
  Response r = Detail(401, detail);
  r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

// An Authenticator error: bad credentials are 401 with its sentence, the rest as Service errors.
Response AuthError(const Status& status) {
  if (status.code() == StatusCode::kInvalidArgument) return Unauthorized(status.message());
  if (status.code() == StatusCode::kDeadlineExceeded) {  // too many password checks at once
    Response busy = Detail(503, status.message());
    busy.headers.emplace_back("Retry-After", "1");
    return busy;
  }
  return ErrorResponse(status);
}

// The credential of `Authorization: Bearer <credential>` (the scheme in any case); nullopt when
// the header is missing, empty or names another scheme.
std::optional<std::string_view> BearerCredential(const Request& req) {
  auto it = req.headers.find("authorization");
  if (it == req.headers.end()) return std::nullopt;
  const std::string_view value = Trim(it->second);
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() || Lower(value.substr(0, kScheme.size())) != kScheme ||
      (value[kScheme.size()] != ' ' && value[kScheme.size()] != '\t')) {
    return std::nullopt;
  }
  const std::string_view credential = Trim(value.substr(kScheme.size()));
  if (credential.empty()) return std::nullopt;
  return credential;
}

// The caller of a protected route, or the 401/403/503 to answer instead (`principal` is set for
// a 403 too).
std::optional<Response> Admit(const RouterOptions& options, const Route& route,
                              std::optional<scheduler::Principal>& principal, const Request& req) {
  const auto credential = BearerCredential(req);
  if (!credential || options.authenticator == nullptr) return Unauthorized("Not authenticated");
  auto who = options.authenticator->Authenticate(*credential);
  if (!who.ok()) return AuthError(who.status());
  principal = std::move(*who);  // also for a 403: the audit log names who was refused
  if (principal->role < route.role) {
    return Detail(403, fmt::format("{} role cannot {}; it needs {}",
                                   scheduler::ToString(principal->role), route.action,
                                   scheduler::ToString(route.role)));
  }
  return std::nullopt;
}

// The fields OAuth2's password form may carry besides username and password (RFC 6749 4.3.2);
// a client library sends them, and they change nothing here.
bool IsOAuthFormField(std::string_view name) {
  return name == "grant_type" || name == "scope" || name == "client_id" || name == "client_secret";
}

// POST /auth/token: {"username", "password"} as JSON or as a form → 201 {"access_token"}.
Response IssueToken(const RouterOptions& options, LoginThrottle& throttle, const Request& req) {
  if (req.method != "POST") return Detail(405, "Method Not Allowed");
  if (auto refusal = RefuseNonJsonBody(req, /*allow_form=*/true)) return *refusal;
  Json fields = Json::object();
  Errors errors;
  auto type = req.headers.find("content-type");
  if (type != req.headers.end() && IsFormContentType(type->second)) {
    for (std::string_view pair : Split(req.body, '&')) {
      if (pair.empty()) continue;
      const size_t eq = pair.find('=');
      const std::string name = PercentDecode(pair.substr(0, eq), true);
      const std::string value =
          eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1), true);
      if (!IsCleanText(name) || !IsCleanText(value)) {
        errors.Add("string_type", {"body"}, "Form fields must be UTF-8 text without NUL bytes",
                   nullptr);
      } else if (fields.contains(name)) {
        errors.Add("value_error", {"body", name}, "The field is given more than once", nullptr);
      } else {
        fields[name] = value;
      }
    }
  } else {
    Response error;
    auto body = ParseBodyObject(req, error);
    if (!body) return error;
    fields = std::move(*body);
  }
  for (const char* name : {"username", "password"}) {
    auto it = fields.find(name);
    if (it == fields.end()) {
      errors.Add("missing", {"body", name}, "Field required", nullptr);
    } else if (!it->is_string()) {
      errors.Add("string_type", {"body", name}, "Input should be a valid string", *it);
    }
  }
  for (const auto& [key, value] : fields.items()) {
    if (key != "username" && key != "password" && !IsOAuthFormField(key)) {
      errors.Add("extra_forbidden", {"body", key}, "Extra inputs are not permitted", nullptr);
    }
  }
  if (!errors.empty()) return errors.ToResponse();
  if (options.authenticator == nullptr) {
    return Detail(503, "Authentication is not configured on this daemon");
  }
  const auto now = LoginThrottle::Clock::now();
  if (auto wait = throttle.RetryAfter(req.remote_address, now)) {
    Response refusal = Detail(
        429, fmt::format("Too many failed logins from this address ({} within {} s); try again "
                         "in {} s",
                         options.max_failed_logins, options.failed_login_window.count(),
                         wait->count()));
    refusal.headers.emplace_back("Retry-After", std::to_string(wait->count()));
    return refusal;
  }
  auto token = options.authenticator->IssueToken(fields["username"].get<std::string>(),
                                                 fields["password"].get<std::string>());
  if (!token.ok()) {
    if (token.status().code() == StatusCode::kInvalidArgument) {
      throttle.Failed(req.remote_address, now);
    }
    return AuthError(token.status());
  }
  throttle.Succeeded(req.remote_address);
  return JsonResponse(201, {{"access_token", *token}});
}

// What Dispatch learns of a request for the audit log and the request metrics.
struct Outcome {
  // The entry to record (router.hpp), set once the request reaches a route that writes.
  std::optional<scheduler::AuditEntry> audit;
  std::string_view route_label = RouteLabel(nullptr);  // the route the path matched
};

Response Dispatch(Service& service, const RouterOptions& options, LoginThrottle& throttle,
                  const Request& req, Outcome& outcome) {
  if (auto refusal = RefuseForeignOrigin(req, options)) return *refusal;

  std::string_view target = req.target;
  const size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  const Query query(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));

  if (path == "/auth/token" || path == "/auth/token/") {
    if (req.method == "POST") outcome.audit = audit::ForLogin(req, path);
    outcome.route_label = kTokenRoute;
    return IssueToken(options, throttle, req);
  }

  constexpr std::string_view kPrefix = "/api/v2/";
  const std::vector<Route>* table = &Routes();
  if (path.starts_with(kPrefix)) {
    path.remove_prefix(kPrefix.size());
  } else if (path == "/metrics" || path == "/metrics/") {
    table = &RootRoutes();
    path.remove_prefix(1);
  } else {
    return NotFound();
  }
  if (path.ends_with('/')) path.remove_suffix(1);  // tolerate one trailing slash
  std::vector<std::string> segments;
  for (std::string_view raw : Split(path, '/')) {
    segments.push_back(PercentDecode(raw, false));
    // No object has such an id; passed on, a NUL would cut the id short in the database.
    if (!IsCleanText(segments.back())) {
      return Detail(404, "Not Found: the path holds a NUL byte or text that is not valid UTF-8");
    }
  }

  bool path_known = false;
  std::vector<std::string> params;
  for (const Route& route : *table) {
    if (!Match(route.pattern, segments, params)) continue;
    if (!path_known) outcome.route_label = RouteLabel(&route);
    path_known = true;
    if (route.method != req.method) continue;
    std::optional<scheduler::Principal> principal;
    if (IsRecorded(route)) {
      outcome.audit =
          audit::ForWrite(route.event, route.pattern, params, req, target.substr(0, q));
    }
    if (!route.is_public) {
      auto refusal = Admit(options, route, principal, req);
      if (outcome.audit) audit::SetCaller(*outcome.audit, principal);
      if (refusal) return *refusal;
    }
    if (auto refusal = RefuseNonJsonBody(req)) return *refusal;
    Errors errors;
    query.CheckText(errors);
    if (!errors.empty()) return errors.ToResponse();
    Api api(service, options);
    if (!principal) return (api.*route.handler)(Call{req, params, query});
    // Handlers take the request as it came with its caller added.
    Request admitted = req;
    admitted.principal = std::move(principal);
    return (api.*route.handler)(Call{admitted, params, query});
  }
  return path_known ? Detail(405, "Method Not Allowed") : NotFound();
}

}  // namespace

Router::Router(scheduler::Service& service, RouterOptions options)
    : service_(service),
      options_(std::move(options)),
      http_metrics_(options_.metrics ? std::make_unique<HttpMetrics>(*options_.metrics) : nullptr),
      login_throttle_(std::make_unique<LoginThrottle>(std::max(1, options_.max_failed_logins),
                                                      options_.failed_login_window)) {}

Router::~Router() = default;

Response Router::Handle(const Request& req) const {
  const auto began = std::chrono::steady_clock::now();
  Outcome outcome;
  std::optional<Response> response;
  try {
    response = Dispatch(service_, options_, *login_throttle_, req, outcome);
  } catch (const std::exception& e) {
    Log()->error("request failed method={} error=\"{}\"", req.method, e.what());
  } catch (...) {
    Log()->error("request failed method={} error=\"unknown exception\"", req.method);
  }
  if (!response) response = Detail(500, "Internal error; the daemon's log has the details");
  if (outcome.audit) audit::Record(service_, std::move(*outcome.audit), *response);
  if (http_metrics_) {
    http_metrics_->Observe(
        outcome.route_label, req.method, response->status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
  }
  return std::move(*response);
}

}  // namespace dagd::api
