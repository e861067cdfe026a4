#include <algorithm>
#include <set>
#include <string_view>

#include "dagd/api/codecs.hpp"
#include "dagd/scheduler/states.hpp"
#include "dagd/scheduler/time.hpp"
#include "handlers.hpp"
#include "openapi_document.hpp"
#include "request_text.hpp"
#include "responses.hpp"

namespace dagd::api::contract {

namespace {

using scheduler::Bound;

constexpr std::string_view kRunStates = "'queued', 'running', 'success' or 'failed'";
constexpr std::string_view kRunTypes = "'manual', 'scheduled', 'backfill' or 'asset_triggered'";
constexpr std::string_view kTaskStates =
    "'none', 'scheduled', 'queued', 'running', 'success', 'failed', 'up_for_retry', "
    "'up_for_reschedule', 'upstream_failed', 'skipped', 'deferred', 'removed' or 'restarting'";

constexpr std::pair<std::string_view, Bound::Op> kBoundSuffixes[] = {{"_gte", Bound::Op::kGte},
                                                                     {"_gt", Bound::Op::kGt},
                                                                     {"_lte", Bound::Op::kLte},
                                                                     {"_lt", Bound::Op::kLt}};

// The bounds `<field>_gte|_gt|_lte|_lt` of the query string, times or (duration) numbers.
void QueryBounds(const Query& query, std::initializer_list<std::string_view> fields,
                 std::vector<Bound>& out, Errors& errors) {
  for (std::string_view field : fields) {
    for (const auto& [suffix, op] : kBoundSuffixes) {
      const std::string name = std::string(field) + std::string(suffix);
      Bound b{std::string(field), op, std::nullopt, std::nullopt};
      if (field == "duration") {
        b.number = query.Number(name, errors);
        if (b.number) out.push_back(std::move(b));
      } else {
        b.time = query.Time(name, errors);
        if (b.time) out.push_back(std::move(b));
      }
    }
  }
}

// Bodies of the batch POSTs: typed getters that add Pydantic-style errors.
class Body {
 public:
  Body(const Json& json, Errors& errors) : json_(json), errors_(errors) {}

  const Json* Get(std::string_view name) {
    seen_.insert(std::string(name));
    auto it = json_.find(name);
    return it == json_.end() || it->is_null() ? nullptr : &*it;
  }

  std::vector<std::string> Strings(std::string_view name) {
    std::vector<std::string> out;
    const Json* v = Get(name);
    if (!v) return out;
    if (!v->is_array()) {
      errors_.Add("list_type", {"body", name}, "Input should be a valid list", *v);
      return out;
    }
    for (size_t i = 0; i < v->size(); ++i) {
      if ((*v)[i].is_string()) {
        out.push_back((*v)[i].get<std::string>());
      } else {
        errors_.Add("string_type", {"body", name, i}, "Input should be a valid string", (*v)[i]);
      }
    }
    return out;
  }

  int Int(std::string_view name, int fallback, int minimum) {
    const Json* v = Get(name);
    if (!v) return fallback;
    if (!v->is_number_integer() || v->get<int64_t>() < minimum ||
        v->get<int64_t>() > std::numeric_limits<int>::max()) {
      errors_.Add("int_type", {"body", name},
                  "Input should be an integer of at least " + std::to_string(minimum), *v);
      return fallback;
    }
    return v->get<int>();
  }

  void Bounds(std::initializer_list<std::string_view> fields, std::vector<Bound>& out) {
    for (std::string_view field : fields) {
      for (const auto& [suffix, op] : kBoundSuffixes) {
        const std::string name = std::string(field) + std::string(suffix);
        const Json* v = Get(name);
        if (!v) continue;
        Bound b{std::string(field), op, std::nullopt, std::nullopt};
        if (field == "duration") {
          if (v->is_number()) {
            b.number = v->get<double>();
          } else {
            errors_.Add("float_type", {"body", name}, "Input should be a valid number", *v);
          }
        } else if (v->is_string()) {
          b.time = scheduler::ParseRfc3339(v->get<std::string>());
          if (!b.time) {
            errors_.Add("datetime_from_date_parsing", {"body", name},
                        "Input should be a valid datetime or date, with a timezone (RFC 3339)", *v);
          }
        } else {
          errors_.Add("datetime_type", {"body", name}, "Input should be a valid datetime", *v);
        }
        if (b.time || b.number) out.push_back(std::move(b));
      }
    }
  }

  // Airflow's body takes one order_by text (comma-separated fields, "-" for descending).
  std::vector<std::string> OrderBy() {
    std::vector<std::string> out;
    const Json* v = Get("order_by");
    if (!v) return out;
    if (!v->is_string()) {
      errors_.Add("string_type", {"body", "order_by"}, "Input should be a valid string", *v);
      return out;
    }
    const std::string text = v->get<std::string>();
    for (std::string_view f : Split(text, ',')) {
      if (!f.empty()) out.emplace_back(f);
    }
    return out;
  }

  // An error for every field not read: a field of Airflow's body that dagd does not implement,
  // or one Airflow does not have.
  void RejectRest() {
    for (const auto& [key, value] : json_.items()) {
      if (seen_.contains(key)) continue;
      errors_.Add("unsupported_field", {"body", key},
                  "dagd does not support the field '" + Shorten(key) + "' in this body", value);
    }
  }

 private:
  const Json& json_;
  Errors& errors_;
  std::set<std::string, std::less<>> seen_;
};

template <typename T, typename Parse>
std::vector<T> BodyEnums(Body& body, std::string_view name, Parse parse, std::string_view expected,
                         Errors& errors) {
  std::vector<T> out;
  for (const std::string& text : body.Strings(name)) {
    if (auto v = parse(text)) {
      out.push_back(*v);
    } else {
      errors.Add("enum", {"body", name}, "Input should be " + std::string(expected), text,
                 {{"expected", std::string(expected)}});
    }
  }
  return out;
}

Response RunListing(Service& service, const scheduler::RunQuery& q) {
  return ListingResponse(service.ListRuns(q), "dag_runs", DagRunToJson);
}

Response TaskInstanceListing(Service& service, const scheduler::TaskInstanceQuery& q,
                             RunCache& runs) {
  auto listing = service.ListTaskInstances(q);
  if (listing.ok()) runs.Prefetch(listing->items);
  return ListingResponse(listing, "task_instances", [&](const scheduler::TaskInstance& ti) {
    return TaskInstanceToJson(ti, runs.Get(ti.dag_id, ti.run_id));
  });
}

// The batch endpoints exist only across DAGs (Airflow's path parameter is the constant "~").
std::optional<Response> RequireAll(const Call& c) {
  Errors errors;
  const char* names[] = {"dag_id", "dag_run_id"};
  for (size_t i = 0; i < c.params.size() && i < 2; ++i) {
    if (c.params[i] != "~") {
      errors.Add("literal_error", {"path", names[i]},
                 "Input should be '~': the list endpoints read across DAGs and runs; filter "
                 "with dag_ids and dag_run_ids in the body",
                 c.params[i], {{"expected", "'~'"}});
    }
  }
  if (errors.empty()) return std::nullopt;
  return errors.ToResponse();
}

std::optional<Response> ParseBatchBody(const Call& c, Json& body) {
  if (auto refused = RequireAll(c)) return refused;
  Response error;
  auto parsed = ParseBodyObject(c.req, error);
  if (!parsed) return error;
  body = std::move(*parsed);
  return std::nullopt;
}

Response EmptyCollection(const RouterOptions& options, const Call& c, const char* name) {
  Errors errors;
  c.query.CheckSupported({"limit", "offset"}, errors);
  c.query.Page(options.max_page_limit, errors);
  if (!errors.empty()) return errors.ToResponse();
  return JsonResponse(200, {{name, Json::array()}, {"total_entries", 0}});
}

}  // namespace

Response ListRuns(Service& service, const RouterOptions& options, const Call& c) {
  Errors errors;
  c.query.CheckSupported({"limit",           "offset",           "order_by",
                          "state",           "run_type",         "dag_version",
                          "dag_id_pattern",  "run_id_pattern",   "logical_date_gte",
                          "logical_date_gt", "logical_date_lte", "logical_date_lt",
                          "run_after_gte",   "run_after_gt",     "run_after_lte",
                          "run_after_lt",    "start_date_gte",   "start_date_gt",
                          "start_date_lte",  "start_date_lt",    "end_date_gte",
                          "end_date_gt",     "end_date_lte",     "end_date_lt",
                          "duration_gte",    "duration_gt",      "duration_lte",
                          "duration_lt"},
                         errors);
  scheduler::RunQuery q;
  q.page = c.query.Page(options.max_page_limit, errors);
  q.dag_id = c.params[0];
  q.states =
      c.query.Enums<scheduler::RunState>("state", scheduler::ParseRunState, kRunStates, errors);
  q.run_types =
      c.query.Enums<scheduler::RunType>("run_type", scheduler::ParseRunType, kRunTypes, errors);
  q.version_numbers = c.query.Ints("dag_version", errors);
  q.dag_id_pattern = c.query.First("dag_id_pattern").value_or("");
  q.run_id_pattern = c.query.First("run_id_pattern").value_or("");
  QueryBounds(c.query, {"logical_date", "run_after", "start_date", "end_date", "duration"},
              q.bounds, errors);
  if (!errors.empty()) return errors.ToResponse();
  if (q.dag_id != "~") {
    // Airflow answers 404 for an unknown DAG rather than an empty list.
    auto dag = service.GetDag(q.dag_id);
    if (!dag.ok()) return ErrorResponse(dag.status());
  }
  return RunListing(service, q);
}

Response ListRunsBatch(Service& service, const RouterOptions& options, const Call& c) {
  Json json;
  if (auto refused = ParseBatchBody(c, json)) return *refused;
  Errors errors;
  Body body(json, errors);
  scheduler::RunQuery q;
  q.dag_id = "~";
  q.dag_ids = body.Strings("dag_ids");
  q.states =
      BodyEnums<scheduler::RunState>(body, "states", scheduler::ParseRunState, kRunStates, errors);
  body.Bounds({"logical_date", "run_after", "start_date", "end_date", "duration"}, q.bounds);
  q.page.order_by = body.OrderBy();
  q.page.limit = std::min(body.Int("page_limit", 100, 0), options.max_page_limit);
  q.page.offset = body.Int("page_offset", 0, 0);
  body.RejectRest();
  if (!errors.empty()) return errors.ToResponse();
  return RunListing(service, q);
}

Response ListTaskInstances(Service& service, const RouterOptions& options, const Call& c) {
  Errors errors;
  c.query.CheckSupported(
      {"limit",          "offset",        "order_by",       "state",          "task_id",
       "pool",           "try_number",    "version_number", "dag_id_pattern", "run_id_pattern",
       "start_date_gte", "start_date_gt", "start_date_lte", "start_date_lt",  "end_date_gte",
       "end_date_gt",    "end_date_lte",  "end_date_lt",    "duration_gte",   "duration_gt",
       "duration_lte",   "duration_lt"},
      errors);
  scheduler::TaskInstanceQuery q;
  q.page = c.query.Page(options.max_page_limit, errors);
  q.dag_id = c.params[0];
  q.run_id = c.params[1];
  q.states =
      c.query.Enums<scheduler::TaskState>("state", scheduler::ParseTaskState, kTaskStates, errors);
  q.task_ids = c.query.All("task_id");
  q.pools = c.query.All("pool");
  q.try_numbers = c.query.Ints("try_number", errors);
  q.version_numbers = c.query.Ints("version_number", errors);
  q.dag_id_pattern = c.query.First("dag_id_pattern").value_or("");
  q.run_id_pattern = c.query.First("run_id_pattern").value_or("");
  QueryBounds(c.query, {"start_date", "end_date", "duration"}, q.bounds, errors);
  if (!errors.empty()) return errors.ToResponse();
  RunCache runs(service);
  if (q.dag_id != "~" && q.run_id != "~") {
    auto run = service.GetRun(q.dag_id, q.run_id);
    if (!run.ok()) return ErrorResponse(run.status());
    runs.Put(std::move(*run));
  }
  return TaskInstanceListing(service, q, runs);
}

Response ListTaskInstancesBatch(Service& service, const RouterOptions& options, const Call& c) {
  Json json;
  if (auto refused = ParseBatchBody(c, json)) return *refused;
  Errors errors;
  Body body(json, errors);
  scheduler::TaskInstanceQuery q;
  q.dag_id = "~";
  q.run_id = "~";
  q.dag_ids = body.Strings("dag_ids");
  q.run_ids = body.Strings("dag_run_ids");
  q.task_ids = body.Strings("task_ids");
  q.pools = body.Strings("pool");
  q.states = BodyEnums<scheduler::TaskState>(body, "state", scheduler::ParseTaskState, kTaskStates,
                                             errors);
  body.Bounds({"start_date", "end_date", "duration"}, q.bounds);
  q.page.order_by = body.OrderBy();
  q.page.limit = std::min(body.Int("page_limit", 100, 0), options.max_page_limit);
  q.page.offset = body.Int("page_offset", 0, 0);
  body.RejectRest();
  if (!errors.empty()) return errors.ToResponse();
  RunCache runs(service);
  return TaskInstanceListing(service, q, runs);
}

Response ListDagVersions(Service& service, const RouterOptions& options, const Call& c) {
  Errors errors;
  c.query.CheckSupported({"limit", "offset", "order_by", "version_number", "bundle_name"}, errors);
  scheduler::DagVersionQuery q;
  q.page = c.query.Page(options.max_page_limit, errors);
  q.dag_id = c.params[0];
  if (c.query.First("version_number"))
    q.version_number = c.query.Int("version_number", 0, 1, errors);
  const std::optional<std::string> bundle = c.query.First("bundle_name");
  if (!errors.empty()) return errors.ToResponse();
  auto listing = service.ListDagVersions(q);
  if (!listing.ok()) return ErrorResponse(listing.status());
  // Every version is in the one bundle dagd has: another name matches none.
  if (bundle && *bundle != kBundleName) {
    return JsonResponse(200, {{"dag_versions", Json::array()}, {"total_entries", 0}});
  }
  return ListingResponse(listing, "dag_versions", [](const scheduler::DagVersionRecord& v) {
    return DagVersionToJson(v.dag_id, v.version_number, v.created_at);
  });
}

Response GetDagVersion(Service& service, const RouterOptions&, const Call& c) {
  Errors errors;
  c.query.CheckSupported({}, errors);
  auto number = PathInt(c.params[1], "version_number", errors);
  if (!errors.empty()) return errors.ToResponse();
  auto version = service.GetDagVersion(c.params[0], static_cast<int>(*number));
  if (!version.ok()) return ErrorResponse(version.status());
  return JsonResponse(
      200, DagVersionToJson(version->dag_id, version->version_number, version->created_at));
}

Response DagStats(Service& service, const RouterOptions&, const Call& c) {
  Errors errors;
  c.query.CheckSupported({"dag_ids"}, errors);
  if (!errors.empty()) return errors.ToResponse();
  // Airflow takes both repeated parameters and comma-separated lists.
  std::vector<std::string> dag_ids;
  for (const std::string& value : c.query.All("dag_ids")) {
    for (std::string_view id : Split(value, ',')) {
      if (!id.empty()) dag_ids.emplace_back(id);
    }
  }
  auto stats = service.CountRunsByState(dag_ids);
  if (!stats.ok()) return ErrorResponse(stats.status());
  Json dags = Json::array();
  for (const auto& s : *stats) {
    Json states = Json::array();
    for (auto state : {scheduler::RunState::kQueued, scheduler::RunState::kRunning,
                       scheduler::RunState::kSuccess, scheduler::RunState::kFailed}) {
      auto it = s.counts.find(state);
      states.push_back({{"state", std::string(scheduler::ToString(state))},
                        {"count", it == s.counts.end() ? 0 : it->second}});
    }
    dags.push_back({{"dag_id", s.dag_id}, {"dag_display_name", s.dag_id}, {"stats", states}});
  }
  const int64_t total = static_cast<int64_t>(dags.size());
  return JsonResponse(200, {{"dags", std::move(dags)}, {"total_entries", total}});
}

Response Config(Service&, const RouterOptions& options, const Call& c) {
  Errors errors;
  c.query.CheckSupported({"section"}, errors);
  if (!errors.empty()) return errors.ToResponse();
  std::vector<ConfigOption> all = {
      {"api", "maximum_page_limit", std::to_string(options.max_page_limit)},
      {"api", "fallback_page_limit", "50"},
  };
  all.insert(all.end(), options.config.begin(), options.config.end());
  const std::optional<std::string> only = c.query.First("section");
  // Sections in first-seen order, as Airflow lists them.
  std::vector<std::pair<std::string, std::vector<const ConfigOption*>>> sections;
  for (const ConfigOption& o : all) {
    if (only && o.section != *only) continue;
    auto it = std::find_if(sections.begin(), sections.end(),
                           [&](const auto& s) { return s.first == o.section; });
    if (it == sections.end()) it = sections.insert(sections.end(), {o.section, {}});
    it->second.push_back(&o);
  }
  if (only && sections.empty()) return Detail(404, "Section " + Shorten(*only) + " not found.");

  auto accept_it = c.req.headers.find("accept");
  const std::string accept = accept_it == c.req.headers.end() ? "" : Lower(accept_it->second);
  const bool any = accept.empty() || accept.find("*/*") != std::string::npos ||
                   accept.find("application/json") != std::string::npos;
  if (!any && accept.find("text/plain") != std::string::npos) {
    std::string text;
    for (const auto& [name, options_of] : sections) {
      text += "[" + name + "]\n";
      for (const ConfigOption* o : options_of) text += o->key + " = " + o->value + "\n";
      text += "\n";
    }
    return Response{200, "text/plain; charset=utf-8", text};
  }
  if (!any) return Detail(406, "Only application/json or text/plain is supported");
  Json out = Json::array();
  for (const auto& [name, options_of] : sections) {
    Json opts = Json::array();
    for (const ConfigOption* o : options_of) opts.push_back({{"key", o->key}, {"value", o->value}});
    out.push_back({{"name", name}, {"options", std::move(opts)}});
  }
  return JsonResponse(200, {{"sections", std::move(out)}});
}

Response Plugins(Service&, const RouterOptions& options, const Call& c) {
  return EmptyCollection(options, c, "plugins");
}

Response Providers(Service&, const RouterOptions& options, const Call& c) {
  return EmptyCollection(options, c, "providers");
}

Response OpenApi(Service&, const RouterOptions&, const Call& c) {
  Errors errors;
  c.query.CheckSupported({}, errors);
  if (!errors.empty()) return errors.ToResponse();
  return Response{200, "application/json", std::string(OpenApiDocument())};
}

}  // namespace dagd::api::contract
