// POST /dags/{dag_id}/clearTaskInstances and POST .../dagRuns/{dag_run_id}/clear: clearing task
// instances with Airflow's bodies (ClearTaskInstancesBody, DAGRunClearBody: unknown fields are
// extra_forbidden) and its model checks, worded as Airflow's.
#include <set>
#include <string_view>

#include "dagd/api/codecs.hpp"
#include "handlers.hpp"
#include "responses.hpp"

namespace dagd::api::clears {

namespace {

using scheduler::TimePoint;
using Schema = std::set<std::string, std::less<>>;

// A boolean field: `fallback` when absent; an error (and `fallback`) when not a boolean.
bool Flag(const Json& body, const char* name, bool fallback, Errors& errors) {
  auto it = body.find(name);
  if (it == body.end()) return fallback;
  if (!it->is_boolean()) {
    errors.Add("bool_type", {"body", name}, "Input should be a valid boolean", *it);
    return fallback;
  }
  return it->get<bool>();
}

std::optional<TimePoint> Time(const Json& body, const char* name, Errors& errors) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    errors.Add("datetime_type", {"body", name}, "Input should be a valid datetime", *it);
    return std::nullopt;
  }
  auto t = scheduler::ParseRfc3339(it->get<std::string>());
  if (!t) {
    errors.Add("datetime_from_date_parsing", {"body", name},
               "Input should be a valid datetime or date, with a timezone (RFC 3339)", *it);
  }
  return t;
}

// task_ids: strings, or [task_id, map_index] pairs; dagd has no mapped tasks, so a pair is
// accepted only with map_index -1 (the task instance itself).
std::optional<std::vector<std::string>> TaskIds(const Json& body, Errors& errors) {
  auto it = body.find("task_ids");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_array()) {
    errors.Add("list_type", {"body", "task_ids"}, "Input should be a valid list", *it);
    return std::nullopt;
  }
  std::vector<std::string> ids;
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& item = (*it)[i];
    if (item.is_string()) {
      ids.push_back(item.get<std::string>());
      continue;
    }
    const bool pair = item.is_array() && item.size() == 2 && item[0].is_string() &&
                      item[1].is_number_integer();
    if (!pair) {
      errors.Add("string_type", {"body", "task_ids", i, "str"}, "Input should be a valid string",
                 item);
      errors.Add("tuple_type", {"body", "task_ids", i, "tuple[str,int]"},
                 "Input should be a valid tuple of a task id (string) and a map index (integer)",
                 item);
      continue;
    }
    if (item[1].get<int64_t>() != -1) {
      errors.Add("value_error", {"body", "task_ids", i},
                 "Value error, dagd has no mapped tasks: a map index other than -1 selects "
                 "nothing",
                 item, {{"error", Json::object()}});
      continue;
    }
    ids.push_back(item[0].get<std::string>());
  }
  return ids;
}

Response Collection(Service& service, const std::vector<scheduler::TaskInstance>& tis) {
  RunCache runs(service);
  runs.Prefetch(tis);
  Json out = Json::array();
  for (const auto& ti : tis) out.push_back(TaskInstanceToJson(ti, runs.Get(ti.dag_id, ti.run_id)));
  const size_t total = out.size();
  return JsonResponse(200, {{"task_instances", std::move(out)}, {"total_entries", total}});
}

Response ClearError(const Status& status) {
  // Airflow answers a refused running task (prevent_running_task) with 409.
  if (status.code() == StatusCode::kFailedPrecondition) return Detail(409, status.message());
  return ErrorResponse(status);
}

// Both endpoints take no query parameter and a JSON object body: nullopt with `error` set
// (422 naming a query parameter, or the body's problem) otherwise.
std::optional<Json> BodyWithoutQuery(const Call& c, Errors& errors, Response& error) {
  c.query.CheckSupported({}, errors);
  if (!errors.empty()) {
    error = errors.ToResponse();
    return std::nullopt;
  }
  return ParseBodyObject(c.req, error);
}

}  // namespace

Response ClearTaskInstances(Service& service, const RouterOptions&, const Call& c) {
  Errors errors;
  Response error;
  auto body = BodyWithoutQuery(c, errors, error);
  if (!body) return error;
  static const Schema kSchema = {
      "dry_run",          "start_date",         "end_date",       "only_failed",
      "only_running",     "reset_dag_runs",     "task_ids",       "dag_run_id",
      "include_upstream", "include_downstream", "include_future", "include_past",
      "run_on_latest_version", "prevent_running_task"};
  ForbidExtraFields(*body, kSchema, errors);
  scheduler::ClearRequest request;
  request.dry_run = Flag(*body, "dry_run", true, errors);
  request.only_failed = Flag(*body, "only_failed", true, errors);
  request.only_running = Flag(*body, "only_running", false, errors);
  request.reset_dag_runs = Flag(*body, "reset_dag_runs", true, errors);
  request.include_upstream = Flag(*body, "include_upstream", false, errors);
  request.include_downstream = Flag(*body, "include_downstream", false, errors);
  request.include_future = Flag(*body, "include_future", false, errors);
  request.include_past = Flag(*body, "include_past", false, errors);
  request.prevent_running_task = Flag(*body, "prevent_running_task", false, errors);
  request.run_on_latest_version = Flag(*body, "run_on_latest_version", false, errors);
  request.start_date = Time(*body, "start_date", errors);
  request.end_date = Time(*body, "end_date", errors);
  if (auto it = body->find("dag_run_id"); it != body->end() && !it->is_null()) {
    if (it->is_string()) {
      request.dag_run_id = it->get<std::string>();
    } else {
      errors.Add("string_type", {"body", "dag_run_id"}, "Input should be a valid string", *it);
    }
  }
  request.task_ids = TaskIds(*body, errors);
  if (!errors.empty()) return errors.ToResponse();
  // The body's model checks, on the values the client sent (not the defaults), as Airflow's.
  auto given = [&](const char* name) {
    auto it = body->find(name);
    return it != body->end() && !it->is_null() && *it != false;
  };
  auto refuse = [&](const std::string& why) {
    errors.Add("value_error", {"body"}, "Value error, " + why, *body, {{"error", Json::object()}});
    return errors.ToResponse();
  };
  if (given("only_failed") && given("only_running")) {
    return refuse("only_failed and only_running both are set to True");
  }
  if (request.start_date && request.end_date && *request.start_date > *request.end_date) {
    return refuse("end_date is sooner than start_date");
  }
  if (request.dag_run_id && request.start_date && request.end_date) {
    return refuse("Exactly one of dag_run_id or (start_date and end_date) must be provided");
  }
  if (request.dag_run_id && request.start_date) {
    return refuse("Exactly one of dag_run_id or start_date must be provided");
  }
  if (request.dag_run_id && request.end_date) {
    return refuse("Exactly one of dag_run_id or end_date must be provided");
  }
  if (request.task_ids && request.task_ids->empty()) {
    return refuse("task_ids list should have at least 1 element.");
  }
  auto cleared = service.ClearTaskInstances(c.params[0], request);
  if (!cleared.ok()) return ClearError(cleared.status());
  return Collection(service, *cleared);
}

Response ClearRun(Service& service, const RouterOptions&, const Call& c) {
  Errors errors;
  Response error;
  auto body = BodyWithoutQuery(c, errors, error);
  if (!body) return error;
  static const Schema kSchema = {"dry_run", "only_failed", "run_on_latest_version"};
  ForbidExtraFields(*body, kSchema, errors);
  scheduler::ClearRequest request;
  request.dry_run = Flag(*body, "dry_run", true, errors);
  request.only_failed = Flag(*body, "only_failed", false, errors);
  request.run_on_latest_version = Flag(*body, "run_on_latest_version", false, errors);
  if (!errors.empty()) return errors.ToResponse();
  auto run = service.GetRun(c.params[0], c.params[1]);
  if (!run.ok()) return ErrorResponse(run.status());
  request.dag_run_id = c.params[1];
  auto cleared = service.ClearTaskInstances(c.params[0], request);
  if (!cleared.ok()) return ClearError(cleared.status());
  if (request.dry_run) return Collection(service, *cleared);
  run = service.GetRun(c.params[0], c.params[1]);
  if (!run.ok()) return ErrorResponse(run.status());
  return JsonResponse(200, DagRunToJson(*run));
}

}  // namespace dagd::api::clears
