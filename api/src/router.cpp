#include "dagd/api/router.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "dagd/api/codecs.hpp"
#include "dagd/scheduler/states.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::api {

namespace {

using scheduler::DagRun;
using scheduler::Service;
using scheduler::TimePoint;

// --- Text helpers -------------------------------------------------------------------------------

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX → byte; an invalid escape is kept verbatim. In a query string '+' also means a space.
std::string PercentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus_is_space && c == '+') ? ' ' : c;
  }
  return out;
}

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (true) {
    size_t end = text.find(sep, pos);
    parts.push_back(text.substr(pos, end == std::string_view::npos ? end : end - pos));
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return parts;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF) without NUL:
// what PostgreSQL's text columns hold without cutting or refusing it.
bool IsCleanText(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t length;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (i + length > s.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return false;
    }
    i += length;
  }
  return true;
}

std::shared_ptr<spdlog::logger> Log() {
  auto logger = spdlog::get("api");
  return logger ? logger : spdlog::default_logger();
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Response JsonResponse(int status, const Json& body) {
  return Response{status, "application/json", Dump(body)};
}

Response Detail(int status, const std::string& message) {
  return JsonResponse(status, Json{{"detail", message}});
}

Response NotFound() { return Detail(404, "Not Found"); }

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kAborted:
      return 409;
    case StatusCode::kUnavailable:
    case StatusCode::kCancelled:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

// Service messages are sentences for the client only for the codes service.hpp names; the
// others may quote a library and go to the log.
Response ErrorResponse(const Status& status) {
  const int http = HttpStatusFor(status.code());
  switch (status.code()) {
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
      return Detail(http, status.message());
    case StatusCode::kAborted:
      Log()->info("request conflicted error=\"{}\"", status.ToString());
      return Detail(http, "The request conflicted with a concurrent change; retry it");
    case StatusCode::kUnavailable:
    case StatusCode::kCancelled:
      Log()->warn("service unavailable error=\"{}\"", status.ToString());
      return Detail(http, "The database is unavailable; retry later");
    case StatusCode::kDeadlineExceeded:
      Log()->warn("request timed out error=\"{}\"", status.ToString());
      return Detail(http, "The request took too long; retry later");
    default:
      Log()->error("request failed error=\"{}\"", status.ToString());
      return Detail(http, "Internal error; the daemon's log has the details");
  }
}

// --- Validation (Pydantic's 422 shape) ----------------------------------------------------------

constexpr size_t kMaxEchoBytes = 200;  // of a client's input quoted back in an error
constexpr size_t kMaxErrors = 20;      // entries of one 422

// `text` cut to about kMaxEchoBytes at a character boundary, saying how long it was.
std::string Shorten(const std::string& text) {
  if (text.size() <= kMaxEchoBytes) return text;
  size_t cut = kMaxEchoBytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "... (" + std::to_string(text.size()) + " bytes)";
}

// A client's input as Pydantic's `input` shows it, bounded: short values as they are, a long
// string shortened, a large object or array replaced by a description.
Json Echo(const Json& input) {
  if (input.is_string()) return Shorten(input.get_ref<const std::string&>());
  if (!input.is_structured() || Dump(input).size() <= kMaxEchoBytes) return input;
  const std::string count = std::to_string(input.size());
  return (input.is_object() ? "an object of " + count + (input.size() == 1 ? " key" : " keys")
                            : "an array of " + count + (input.size() == 1 ? " item" : " items")) +
         " (too large to show)";
}

class Errors {
 public:
  void Add(std::string type, Json loc, std::string msg, const Json& input, Json ctx = nullptr) {
    if (list_.size() >= kMaxErrors) return;
    for (Json& part : loc) {
      if (part.is_string()) part = Shorten(part.get_ref<const std::string&>());
    }
    Json e = {{"type", std::move(type)},
              {"loc", std::move(loc)},
              {"msg", std::move(msg)},
              {"input", Echo(input)}};
    if (!ctx.is_null()) e["ctx"] = std::move(ctx);
    list_.push_back(std::move(e));
  }
  bool empty() const { return list_.empty(); }
  Response ToResponse() const { return JsonResponse(422, Json{{"detail", list_}}); }

 private:
  Json list_ = Json::array();
};

std::optional<int64_t> ParseInt(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// The query string, decoded; names may repeat.
class Query {
 public:
  explicit Query(std::string_view raw) {
    if (raw.empty()) return;
    for (std::string_view pair : Split(raw, '&')) {
      if (pair.empty()) continue;
      size_t eq = pair.find('=');
      std::string name = PercentDecode(pair.substr(0, eq), true);
      std::string value =
          eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1), true);
      values_.emplace_back(std::move(name), std::move(value));
    }
  }

  std::vector<std::string> All(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [n, v] : values_) {
      if (n == name) out.push_back(v);
    }
    return out;
  }
  std::optional<std::string> First(std::string_view name) const {
    for (const auto& [n, v] : values_) {
      if (n == name) return v;
    }
    return std::nullopt;
  }

  int Int(std::string_view name, int fallback, int minimum, Errors& errors) const {
    auto text = First(name);
    if (!text) return fallback;
    auto v = ParseInt(*text);
    if (!v || *v > std::numeric_limits<int>::max() || *v < std::numeric_limits<int>::min()) {
      errors.Add("int_parsing", {"query", name},
                 "Input should be a valid integer, unable to parse string as an integer", *text);
      return fallback;
    }
    if (*v < minimum) {
      errors.Add("greater_than_equal", {"query", name},
                 "Input should be greater than or equal to " + std::to_string(minimum), *text,
                 {{"ge", minimum}});
      return fallback;
    }
    return static_cast<int>(*v);
  }

  std::optional<bool> Bool(std::string_view name, Errors& errors) const {
    auto text = First(name);
    if (!text) return std::nullopt;
    const std::string v = Lower(*text);
    if (v == "true" || v == "1" || v == "yes" || v == "on" || v == "t" || v == "y") return true;
    if (v == "false" || v == "0" || v == "no" || v == "off" || v == "f" || v == "n") return false;
    errors.Add("bool_parsing", {"query", name},
               "Input should be a valid boolean, unable to interpret input", *text);
    return std::nullopt;
  }

  std::optional<TimePoint> Time(std::string_view name, Errors& errors) const {
    auto text = First(name);
    if (!text) return std::nullopt;
    auto t = scheduler::ParseRfc3339(*text);
    if (!t) {
      errors.Add("datetime_from_date_parsing", {"query", name},
                 "Input should be a valid datetime or date, with a timezone (RFC 3339)", *text);
    }
    return t;
  }

  // Every value of a repeatable enum filter, each parsed by `parse`.
  template <typename T, typename Parse>
  std::vector<T> Enums(std::string_view name, Parse parse, std::string_view expected,
                       Errors& errors) const {
    std::vector<T> out;
    for (const std::string& text : All(name)) {
      if (auto v = parse(text)) {
        out.push_back(*v);
      } else {
        errors.Add("enum", {"query", name}, "Input should be " + std::string(expected), text,
                   {{"expected", std::string(expected)}});
      }
    }
    return out;
  }

  // A limit above `max_limit` is reduced to it, as Airflow 3 does.
  // Names and values PostgreSQL would cut (NUL) or refuse (not UTF-8).
  void CheckText(Errors& errors) const {
    for (const auto& [name, value] : values_) {
      if (!IsCleanText(name)) {
        errors.Add("string_unicode", {"query"},
                   "A query parameter name is not valid UTF-8 or holds a NUL byte", nullptr);
      } else if (!IsCleanText(value)) {
        errors.Add("string_unicode", {"query", name},
                   "Input should be a valid string: not valid UTF-8 or holds a NUL byte", nullptr);
      }
    }
  }

  scheduler::Page Page(int max_limit, Errors& errors) const {
    scheduler::Page page;
    page.limit = std::min(Int("limit", 50, 0, errors), max_limit);
    page.offset = Int("offset", 0, 0, errors);
    page.order_by = All("order_by");
    return page;
  }

 private:
  std::vector<std::pair<std::string, std::string>> values_;
};

constexpr std::string_view kRunStates = "'queued', 'running', 'success' or 'failed'";
constexpr std::string_view kRunTypes = "'manual', 'scheduled', 'backfill' or 'asset_triggered'";
constexpr std::string_view kTaskStates =
    "'none', 'scheduled', 'queued', 'running', 'success', 'failed', 'up_for_retry', "
    "'up_for_reschedule', 'upstream_failed', 'skipped', 'deferred', 'removed' or 'restarting'";

// Adds an error for every string (key or value) in `value` holding a NUL character, which
// PostgreSQL would cut (text) or refuse (jsonb). Recursion is bounded by kMaxJsonDepth.
void CheckNul(const Json& value, Json& loc, Errors& errors) {
  auto nul_error = [&](const Json& input) {
    errors.Add("string_nul", loc, "String should not contain a NUL character (\\u0000)", input);
  };
  if (value.is_string()) {
    if (value.get_ref<const std::string&>().find('\0') != std::string::npos) nul_error(value);
  } else if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      loc.push_back(key);
      if (key.find('\0') != std::string::npos) nul_error(key);
      CheckNul(item, loc, errors);
      loc.erase(loc.size() - 1);
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      loc.push_back(i);
      CheckNul(value[i], loc, errors);
      loc.erase(loc.size() - 1);
    }
  }
}

// Parses a JSON request body that must be an object. On failure `error` holds the 422.
std::optional<Json> ParseBodyObject(const Request& req, Response& error) {
  Errors errors;
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    errors.Add("missing", {"body"}, "Field required", nullptr);
    error = errors.ToResponse();
    return std::nullopt;
  }
  ParsedJson parsed = ParseUntrustedJson(req.body);
  if (!parsed.value) {
    Json loc = {"body"};
    if (parsed.byte) loc.push_back(*parsed.byte);
    errors.Add("json_invalid", std::move(loc), "JSON decode error", Json::object(),
               {{"error", parsed.error}});
    error = errors.ToResponse();
    return std::nullopt;
  }
  Json& body = *parsed.value;
  if (!body.is_object()) {
    errors.Add("model_attributes_type", {"body"},
               "Input should be a valid dictionary or object to extract fields from", body);
  } else {
    Json loc = {"body"};
    CheckNul(body, loc, errors);
  }
  if (!errors.empty()) {
    error = errors.ToResponse();
    return std::nullopt;
  }
  return std::move(body);
}

// --- Routing ------------------------------------------------------------------------------------

struct Call {
  const Request& req;
  std::vector<std::string> params;  // the decoded path segments matched by "{}"
  const Query& query;
};

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
    auto details = service_.GetDag(c.params[0]);
    if (!details.ok()) return ErrorResponse(details.status());
    return JsonResponse(200, DagToJson(details->record));
  }

  Response GetDagDetails(const Call& c) {
    auto details = service_.GetDag(c.params[0]);
    if (!details.ok()) return ErrorResponse(details.status());
    return JsonResponse(200, DagDetailsToJson(*details));
  }

  Response PatchDag(const Call& c) {
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

  Response ListTasks(const Call& c) {
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
    auto details = service_.GetDag(c.params[0]);
    if (!details.ok()) return ErrorResponse(details.status());
    const scheduler::TaskSpec* task = details->dag ? details->dag->Find(c.params[1]) : nullptr;
    if (!task) return Detail(404, "Task with id " + c.params[1] + " not found");
    return JsonResponse(200, TaskToJson(*details->dag, *task));
  }

  Response Trigger(const Call& c) {
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

  Response ListRuns(const Call& c) {
    Errors errors;
    scheduler::RunQuery q;
    q.page = c.query.Page(options_.max_page_limit, errors);
    q.dag_id = c.params[0];
    q.states =
        c.query.Enums<scheduler::RunState>("state", scheduler::ParseRunState, kRunStates, errors);
    q.run_types =
        c.query.Enums<scheduler::RunType>("run_type", scheduler::ParseRunType, kRunTypes, errors);
    q.logical_date_gte = c.query.Time("logical_date_gte", errors);
    q.logical_date_lte = c.query.Time("logical_date_lte", errors);
    q.start_date_gte = c.query.Time("start_date_gte", errors);
    q.start_date_lte = c.query.Time("start_date_lte", errors);
    if (!errors.empty()) return errors.ToResponse();
    if (q.dag_id != "~") {
      // Airflow answers 404 for an unknown DAG rather than an empty list.
      auto dag = service_.GetDag(q.dag_id);
      if (!dag.ok()) return ErrorResponse(dag.status());
    }
    auto listing = service_.ListRuns(q);
    if (!listing.ok()) return ErrorResponse(listing.status());
    Json runs = Json::array();
    for (const auto& r : listing->items) runs.push_back(DagRunToJson(r));
    return JsonResponse(200,
                        {{"dag_runs", std::move(runs)}, {"total_entries", listing->total_entries}});
  }

  Response GetRun(const Call& c) {
    auto run = service_.GetRun(c.params[0], c.params[1]);
    if (!run.ok()) return ErrorResponse(run.status());
    return JsonResponse(200, DagRunToJson(*run));
  }

  Response ListTaskInstances(const Call& c) {
    Errors errors;
    scheduler::TaskInstanceQuery q;
    q.page = c.query.Page(options_.max_page_limit, errors);
    q.dag_id = c.params[0];
    q.run_id = c.params[1];
    q.states = c.query.Enums<scheduler::TaskState>("state", scheduler::ParseTaskState, kTaskStates,
                                                   errors);
    q.task_ids = c.query.All("task_id");
    if (!errors.empty()) return errors.ToResponse();
    RunCache runs(service_);
    if (q.dag_id != "~" && q.run_id != "~") {
      auto run = service_.GetRun(q.dag_id, q.run_id);
      if (!run.ok()) return ErrorResponse(run.status());
      runs.Put(std::move(*run));
    }
    auto listing = service_.ListTaskInstances(q);
    if (!listing.ok()) return ErrorResponse(listing.status());
    Json tis = Json::array();
    for (const auto& ti : listing->items) {
      tis.push_back(TaskInstanceToJson(ti, runs.Get(ti.dag_id, ti.run_id)));
    }
    return JsonResponse(
        200, {{"task_instances", std::move(tis)}, {"total_entries", listing->total_entries}});
  }

  Response GetTaskInstance(const Call& c) {
    auto ti = service_.GetTaskInstance(c.params[0], c.params[1], c.params[2]);
    if (!ti.ok()) return ErrorResponse(ti.status());
    RunCache runs(service_);
    return JsonResponse(200, TaskInstanceToJson(*ti, runs.Get(ti->dag_id, ti->run_id)));
  }

  Response ListTries(const Call& c) {
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
    Response error;
    auto n = ParsePathInt(c.params[3], "try_number", error);
    if (!n) return error;
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
    Response error;
    auto n = ParsePathInt(c.params[3], "try_number", error);
    if (!n) return error;
    auto log = service_.OpenLog(c.params[0], c.params[1], c.params[2], *n);
    if (!log.ok()) return ErrorResponse(log.status());
    auto it = c.req.headers.find("accept");
    const std::string accept = it == c.req.headers.end() ? "" : Lower(it->second);
    const bool wants_json = accept.empty() || accept.find("application/json") != std::string::npos;
    if (!wants_json && accept.find("application/x-ndjson") != std::string::npos) {
      return Response{200, "application/x-ndjson", "",
                      EncodedLog(std::move(*log), LogFormat::kNdjson)};
    }
    if (!wants_json && accept.find("text/plain") != std::string::npos) {
      return Response{200, "text/plain; charset=utf-8", "", PlainLog(std::move(*log))};
    }
    return Response{200, "application/json", "", EncodedLog(std::move(*log), LogFormat::kJson)};
  }

  Response ListImportErrors(const Call& c) {
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
  // Runs looked up once per request: task instances show their run's logical_date/run_after.
  class RunCache {
   public:
    explicit RunCache(Service& service) : service_(service) {}
    void Put(DagRun run) {
      auto key = std::make_pair(run.dag_id, run.run_id);
      runs_[std::move(key)] = std::move(run);
    }
    const DagRun* Get(const std::string& dag_id, const std::string& run_id) {
      auto key = std::make_pair(dag_id, run_id);
      auto it = runs_.find(key);
      if (it == runs_.end()) {
        auto run = service_.GetRun(dag_id, run_id);
        std::optional<DagRun> value;
        if (run.ok()) value = std::move(*run);
        it = runs_.emplace(std::move(key), std::move(value)).first;
      }
      return it->second ? &*it->second : nullptr;
    }

   private:
    Service& service_;
    std::map<std::pair<std::string, std::string>, std::optional<DagRun>> runs_;
  };

  // Bytes read from a log file at a time: what a streamed log costs while the client reads it.
  static constexpr size_t kLogReadBytes = 64 << 10;

  // BodySource must be copyable while the reader is not: the state is shared by the copies.
  static BodySource PlainLog(scheduler::LogReader log) {
    auto reader = std::make_shared<scheduler::LogReader>(std::move(log));
    return [reader]() -> std::optional<std::string> {
      std::string piece = reader->Read(kLogReadBytes);
      if (piece.empty()) return std::nullopt;
      return piece;
    };
  }

  static BodySource EncodedLog(scheduler::LogReader log, LogFormat format) {
    struct State {
      scheduler::LogReader reader;
      LogEncoder encoder;
      bool finished = false;
    };
    auto state = std::make_shared<State>(State{std::move(log), LogEncoder(format), false});
    return [state]() -> std::optional<std::string> {
      while (!state->finished) {
        const std::string piece = state->reader.Read(kLogReadBytes);
        if (piece.empty()) {
          state->finished = true;
          std::string rest = state->encoder.Finish();
          if (rest.empty()) break;  // an empty chunk would end a chunked body
          return rest;
        }
        std::string out = state->encoder.Feed(piece);
        if (!out.empty()) return out;  // else the piece only extended a line: read on
      }
      return std::nullopt;
    };
  }

  // A positive integer path parameter; on failure `error` holds the 422.
  static std::optional<int> ParsePathInt(const std::string& text, const char* name,
                                         Response& error) {
    auto v = ParseInt(text);
    Errors errors;
    if (!v || *v > std::numeric_limits<int>::max() || *v < std::numeric_limits<int>::min()) {
      errors.Add("int_parsing", {"path", name},
                 "Input should be a valid integer, unable to parse string as an integer", text);
    } else if (*v < 1) {
      errors.Add("greater_than", {"path", name}, "Input should be greater than 0", text,
                 {{"gt", 0}});
    } else {
      return static_cast<int>(*v);
    }
    error = errors.ToResponse();
    return std::nullopt;
  }

  Service& service_;
  const RouterOptions& options_;
};

using Handler = Response (Api::*)(const Call&);

struct Route {
  std::vector<std::string_view> pattern;  // segments after /api/v2; "{}" matches any one
  std::string_view method;
  Handler handler;
};

const std::vector<Route>& Routes() {
  static const std::vector<Route> kRoutes = {
      {{"version"}, "GET", &Api::Version},
      {{"monitor", "health"}, "GET", &Api::Health},
      {{"dags"}, "GET", &Api::ListDags},
      {{"dags", "{}"}, "GET", &Api::GetDag},
      {{"dags", "{}"}, "PATCH", &Api::PatchDag},
      {{"dags", "{}", "details"}, "GET", &Api::GetDagDetails},
      {{"dags", "{}", "tasks"}, "GET", &Api::ListTasks},
      {{"dags", "{}", "tasks", "{}"}, "GET", &Api::GetTask},
      {{"dags", "{}", "dagRuns"}, "GET", &Api::ListRuns},
      {{"dags", "{}", "dagRuns"}, "POST", &Api::Trigger},
      {{"dags", "{}", "dagRuns", "{}"}, "GET", &Api::GetRun},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances"}, "GET", &Api::ListTaskInstances},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}"}, "GET", &Api::GetTaskInstance},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}", "tries"}, "GET", &Api::ListTries},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}", "tries", "{}"}, "GET", &Api::GetTry},
      {{"dags", "{}", "dagRuns", "{}", "taskInstances", "{}", "logs", "{}"}, "GET", &Api::GetLog},
      {{"importErrors"}, "GET", &Api::ListImportErrors},
  };
  return kRoutes;
}

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

// The host part of a Host header or an Origin's authority ("name", "name:port", "[v6]:port" or a
// bare "::1"), lower-case and without brackets; nullopt when malformed.
std::optional<std::string> HostName(std::string_view authority) {
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return std::nullopt;
    port = rest.empty() ? rest : rest.substr(1);
  } else if (std::count(authority.begin(), authority.end(), ':') == 1) {
    const size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return Lower(host);
}

bool HostAllowed(std::string_view authority, const RouterOptions& options) {
  const auto host = HostName(authority);
  if (!host) return false;
  if (*host == "localhost" || *host == "127.0.0.1" || *host == "::1") return true;
  for (const std::string& allowed : options.allowed_hosts) {
    if (allowed == "*") return true;
    std::string_view name = allowed;
    if (name.starts_with('[') && name.ends_with(']')) name = name.substr(1, name.size() - 2);
    if (Lower(name) == *host) return true;
  }
  return false;
}

// A refusal when Host or Origin name a host that is not this daemon (see router.hpp).
std::optional<Response> RefuseForeignOrigin(const Request& req, const RouterOptions& options) {
  if (auto it = req.headers.find("host");
      it != req.headers.end() && !HostAllowed(Trim(it->second), options)) {
    return Detail(403,
                  "The Host header does not name this daemon; a name it should accept must be "
                  "added to its allowed hosts");
  }
  if (auto it = req.headers.find("origin"); it != req.headers.end()) {
    const std::string origin = Lower(Trim(it->second));
    std::string_view authority = origin;
    bool well_formed = false;
    for (std::string_view scheme : {"http://", "https://"}) {
      if (authority.starts_with(scheme)) {
        authority.remove_prefix(scheme.size());
        well_formed = true;
        break;
      }
    }
    if (!well_formed || !HostAllowed(authority, options)) {
      return Detail(403,
                    "Requests from web pages of other sites are refused: the Origin header does "
                    "not name this daemon");
    }
  }
  return std::nullopt;
}

bool IsWrite(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

// application/json, with parameters; a charset, if named, must be UTF-8.
bool IsJsonContentType(std::string_view value) {
  const std::vector<std::string_view> parts = Split(value, ';');
  if (Lower(Trim(parts[0])) != "application/json") return false;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string_view param = Trim(parts[i]);
    const size_t eq = param.find('=');
    if (eq == std::string_view::npos || Lower(Trim(param.substr(0, eq))) != "charset") continue;
    std::string_view charset = Trim(param.substr(eq + 1));
    if (charset.size() >= 2 && charset.front() == '"' && charset.back() == '"') {
      charset = charset.substr(1, charset.size() - 2);
    }
    const std::string name = Lower(charset);
    if (name != "utf-8" && name != "utf8") return false;
  }
  return true;
}

Response Dispatch(Service& service, const RouterOptions& options, const Request& req) {
  if (auto refusal = RefuseForeignOrigin(req, options)) return *refusal;

  std::string_view target = req.target;
  const size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  const Query query(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));

  constexpr std::string_view kPrefix = "/api/v2/";
  if (!path.starts_with(kPrefix)) return NotFound();
  path.remove_prefix(kPrefix.size());
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
  for (const Route& route : Routes()) {
    if (!Match(route.pattern, segments, params)) continue;
    path_known = true;
    if (route.method != req.method) continue;
    if (IsWrite(req.method)) {
      auto it = req.headers.find("content-type");
      if ((!req.body.empty() || it != req.headers.end()) &&
          (it == req.headers.end() || !IsJsonContentType(it->second))) {
        return Detail(415, "Request bodies must be JSON sent with Content-Type: application/json");
      }
    }
    Errors errors;
    query.CheckText(errors);
    if (!errors.empty()) return errors.ToResponse();
    Api api(service, options);
    return (api.*route.handler)(Call{req, params, query});
  }
  return path_known ? Detail(405, "Method Not Allowed") : NotFound();
}

}  // namespace

Router::Router(scheduler::Service& service, RouterOptions options)
    : service_(service), options_(std::move(options)) {}

Response Router::Handle(const Request& req) const {
  try {
    return Dispatch(service_, options_, req);
  } catch (const std::exception& e) {
    Log()->error("request failed method={} error=\"{}\"", req.method, e.what());
  } catch (...) {
    Log()->error("request failed method={} error=\"unknown exception\"", req.method);
  }
  return Detail(500, "Internal error; the daemon's log has the details");
}

}  // namespace dagd::api
