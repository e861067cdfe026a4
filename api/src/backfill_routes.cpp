// /api/v2/backfills: Airflow 3's backfill resource (BackfillPostBody → BackfillResponse,
// BackfillCollectionResponse, DryRunBackfillCollectionResponse). A request Airflow refuses as
// invalid (a DAG without a periodic schedule, dates in the wrong order or in the future) is
// answered 422 with the sentence, in Pydantic's shape; a completed backfill's pause, unpause or
// cancel 409.
#include <limits>
#include <set>
#include <string>

#include "dagd/api/codecs.hpp"
#include "handlers.hpp"
#include "responses.hpp"

namespace dagd::api::backfills {

namespace {

using scheduler::BackfillRecord;

Json BackfillToJson(const BackfillRecord& b) {
  return {{"id", b.id},
          {"dag_id", b.dag_id},
          {"from_date", TimeOrNull(b.from_date)},
          {"to_date", TimeOrNull(b.to_date)},
          {"dag_run_conf", b.dag_run_conf},
          {"is_paused", b.is_paused},
          {"reprocess_behavior", std::string(scheduler::ToString(b.reprocess_behavior))},
          {"max_active_runs", b.max_active_runs},
          {"created_at", TimeOrNull(b.created_at)},
          {"completed_at", TimeOrNull(b.completed_at)},
          {"updated_at", TimeOrNull(b.updated_at)},
          {"dag_display_name", b.dag_id}};
}

// The service's invalid_argument is a sentence about the request (Airflow raises it as a
// RequestValidationError): a 422 in Pydantic's shape.
Response BackfillError(const Status& status, const Json& body) {
  if (status.code() != StatusCode::kInvalidArgument) return ErrorResponse(status);
  Errors errors;
  errors.Add("value_error", {"body"}, status.message(), body, {{"error", Json::object()}});
  return errors.ToResponse();
}

// BackfillPostBody; nullopt with `error` set when the body is refused.
std::optional<scheduler::BackfillRequest> ParseBody(const Call& c, Response& error,
                                                    Json& body_out) {
  Errors errors;
  c.query.CheckSupported({}, errors);
  if (!errors.empty()) {
    error = errors.ToResponse();
    return std::nullopt;
  }
  auto body = ParseBodyObject(c.req, error);
  if (!body) return std::nullopt;
  static const std::set<std::string, std::less<>> kFields = {
      "dag_id",       "from_date",          "to_date",         "run_backwards",
      "dag_run_conf", "reprocess_behavior", "max_active_runs", "run_on_latest_version"};
  ForbidExtraFields(*body, kFields, errors);
  scheduler::BackfillRequest request;
  auto required = [&](const char* name) -> const Json* {
    auto it = body->find(name);
    if (it == body->end()) {
      errors.Add("missing", {"body", name}, "Field required", *body);
      return nullptr;
    }
    return &*it;
  };
  if (const Json* v = required("dag_id")) {
    if (v->is_string()) {
      request.dag_id = v->get<std::string>();
    } else {
      errors.Add("string_type", {"body", "dag_id"}, "Input should be a valid string", *v);
    }
  }
  auto time = [&](const char* name, scheduler::TimePoint& out) {
    const Json* v = required(name);
    if (!v) return;
    if (!v->is_string()) {
      errors.Add("datetime_type", {"body", name}, "Input should be a valid datetime", *v);
      return;
    }
    auto t = scheduler::ParseRfc3339(v->get<std::string>());
    if (!t) {
      errors.Add("datetime_from_date_parsing", {"body", name},
                 "Input should be a valid datetime or date, with a timezone (RFC 3339)", *v);
      return;
    }
    out = *t;
  };
  time("from_date", request.from_date);
  time("to_date", request.to_date);
  auto flag = [&](const char* name, bool& out) {
    auto it = body->find(name);
    if (it == body->end()) return;
    if (!it->is_boolean()) {
      errors.Add("bool_type", {"body", name}, "Input should be a valid boolean", *it);
      return;
    }
    out = it->get<bool>();
  };
  flag("run_backwards", request.run_backwards);
  flag("run_on_latest_version", request.run_on_latest_version);
  if (auto it = body->find("dag_run_conf"); it != body->end()) {
    if (it->is_object()) {
      request.dag_run_conf = *it;
    } else {
      errors.Add("dict_type", {"body", "dag_run_conf"}, "Input should be a valid dictionary", *it);
    }
  }
  if (auto it = body->find("reprocess_behavior"); it != body->end()) {
    auto b =
        it->is_string() ? scheduler::ParseReprocessBehavior(it->get<std::string>()) : std::nullopt;
    if (b) {
      request.reprocess_behavior = *b;
    } else {
      errors.Add("enum", {"body", "reprocess_behavior"},
                 "Input should be 'failed', 'completed' or 'none'", *it,
                 {{"expected", "'failed', 'completed' or 'none'"}});
    }
  }
  if (auto it = body->find("max_active_runs"); it != body->end()) {
    if (it->is_number_integer() && *it >= std::numeric_limits<int>::min() &&
        *it <= std::numeric_limits<int>::max()) {
      request.max_active_runs = it->get<int>();
    } else {
      errors.Add("int_type", {"body", "max_active_runs"}, "Input should be a valid integer", *it);
    }
  }
  if (!errors.empty()) {
    error = errors.ToResponse();
    return std::nullopt;
  }
  if (c.req.principal) request.triggering_user_name = c.req.principal->name;
  body_out = std::move(*body);
  return request;
}

// The backfill_id path parameter (an integer >= 0); nullopt with `error` set otherwise.
std::optional<int64_t> BackfillId(const Call& c, Response& error) {
  Errors errors;
  c.query.CheckSupported({}, errors);
  auto id = ParseInt(c.params[0]);
  if (!id) {
    errors.Add("int_parsing", {"path", "backfill_id"},
               "Input should be a valid integer, unable to parse string as an integer",
               c.params[0]);
  } else if (*id < 0) {
    errors.Add("greater_than_equal", {"path", "backfill_id"},
               "Input should be greater than or equal to 0", c.params[0], {{"ge", 0}});
  }
  if (!errors.empty()) {
    error = errors.ToResponse();
    return std::nullopt;
  }
  return *id;
}

// Pause, unpause and cancel answer Airflow's 409 for a completed backfill.
Response Changed(const StatusOr<BackfillRecord>& b) {
  if (b.ok()) return JsonResponse(200, BackfillToJson(*b));
  if (b.status().code() == StatusCode::kFailedPrecondition) {
    return Detail(409, b.status().message());
  }
  return ErrorResponse(b.status());
}

}  // namespace

Response Create(Service& service, const RouterOptions&, const Call& c) {
  Response error;
  Json body;
  auto request = ParseBody(c, error, body);
  if (!request) return error;
  auto created = service.CreateBackfill(*request);
  if (!created.ok()) return BackfillError(created.status(), body);
  return JsonResponse(200, BackfillToJson(*created));
}

Response DryRun(Service& service, const RouterOptions&, const Call& c) {
  Response error;
  Json body;
  auto request = ParseBody(c, error, body);
  if (!request) return error;
  auto dates = service.DryRunBackfill(*request);
  if (!dates.ok()) return BackfillError(dates.status(), body);
  Json items = Json::array();
  for (scheduler::TimePoint t : *dates) {
    items.push_back(
        {{"logical_date", TimeOrNull(t)}, {"partition_key", nullptr}, {"partition_date", nullptr}});
  }
  const size_t total = items.size();
  return JsonResponse(200, {{"backfills", std::move(items)}, {"total_entries", total}});
}

Response List(Service& service, const RouterOptions& options, const Call& c) {
  Errors errors;
  c.query.CheckSupported({"dag_id", "limit", "offset", "order_by"}, errors);
  scheduler::BackfillQuery q;
  q.page = c.query.Page(options.max_page_limit, errors);
  if (auto dag_id = c.query.First("dag_id")) {
    q.dag_id = *dag_id;
  } else {
    errors.Add("missing", {"query", "dag_id"}, "Field required", nullptr);
  }
  if (!errors.empty()) return errors.ToResponse();
  auto listed = service.ListBackfills(q);
  if (!listed.ok()) return ErrorResponse(listed.status());
  Json items = Json::array();
  for (const BackfillRecord& b : listed->items) items.push_back(BackfillToJson(b));
  return JsonResponse(200,
                      {{"backfills", std::move(items)}, {"total_entries", listed->total_entries}});
}

Response Get(Service& service, const RouterOptions&, const Call& c) {
  Response error;
  auto id = BackfillId(c, error);
  if (!id) return error;
  auto b = service.GetBackfill(*id);
  if (!b.ok()) return ErrorResponse(b.status());
  return JsonResponse(200, BackfillToJson(*b));
}

Response Pause(Service& service, const RouterOptions&, const Call& c) {
  Response error;
  auto id = BackfillId(c, error);
  if (!id) return error;
  return Changed(service.SetBackfillPaused(*id, true));
}

Response Unpause(Service& service, const RouterOptions&, const Call& c) {
  Response error;
  auto id = BackfillId(c, error);
  if (!id) return error;
  return Changed(service.SetBackfillPaused(*id, false));
}

Response Cancel(Service& service, const RouterOptions&, const Call& c) {
  Response error;
  auto id = BackfillId(c, error);
  if (!id) return error;
  return Changed(service.CancelBackfill(*id));
}

}  // namespace dagd::api::backfills
