#include "audit_log.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <exception>
#include <limits>
#include <utility>

#include "dagd/api/codecs.hpp"
#include "dagd/scheduler/time.hpp"
#include "request_guard.hpp"
#include "request_text.hpp"
#include "responses.hpp"
#include "validation.hpp"

namespace dagd::api::audit {

namespace {

using scheduler::AuditEntry;
using scheduler::Json;

constexpr size_t kMaxKeys = 32;
constexpr size_t kMaxKeyBytes = 64;
constexpr size_t kMaxStringBytes = 256;
constexpr size_t kMaxArrayItems = 20;
constexpr size_t kMaxSummaryBytes = 4096;
constexpr size_t kMaxIdBytes = 1024;
constexpr size_t kMaxPathBytes = 2048;
constexpr size_t kMaxAnswerBytes = 1 << 20;  // answers larger than this are not read for a run id
constexpr std::string_view kRedacted = "***";

// `text` (valid UTF-8) cut to at most `max` bytes at a character boundary.
std::string Cut(std::string_view text, size_t max) { return std::string(Utf8Prefix(text, max)); }

// Names that may hold a secret: their values are never stored, whatever their type.
bool LooksSecret(std::string_view key) {
  static constexpr std::array<std::string_view, 14> kWords = {
      "password", "passwd", "secret", "token",  "key",  "credential", "auth",
      "conf",     "value",  "extra",  "cookie", "cert", "private",    "session"};
  const std::string lower = Lower(key);
  return std::any_of(kWords.begin(), kWords.end(),
                     [&](std::string_view w) { return lower.find(w) != std::string::npos; });
}

// A scalar as stored, or nullopt when it is not one that may be stored.
std::optional<Json> StoredScalar(const Json& v) {
  if (v.is_boolean() || v.is_number() || v.is_null()) return v;
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (!IsCleanText(s)) return Json(kRedacted);  // PostgreSQL cannot hold a NUL
    return Json(Cut(s, kMaxStringBytes));
  }
  return std::nullopt;
}

Json StoredValue(const std::string& key, const Json& v) {
  if (LooksSecret(key)) return kRedacted;
  if (auto scalar = StoredScalar(v)) return *scalar;
  if (v.is_array() && v.size() <= kMaxArrayItems) {
    Json out = Json::array();
    for (const Json& item : v) {
      auto scalar = StoredScalar(item);
      if (!scalar) return kRedacted;
      out.push_back(std::move(*scalar));
    }
    return out;
  }
  return kRedacted;
}

std::optional<std::string> CleanId(std::string_view id) {
  if (id.empty() || id == "~" || !IsCleanText(id)) return std::nullopt;
  return Cut(id, kMaxIdBytes);
}

std::optional<std::string> BodyString(const Json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || !it->is_string()) return std::nullopt;
  return CleanId(it->get_ref<const std::string&>());
}

// The route's event name, or one made of the method and the path's fixed segments
// ("put_dags") for a write route that names none.
std::string EventName(std::string_view event, const std::vector<std::string_view>& pattern,
                      std::string_view method) {
  if (!event.empty()) return std::string(event);
  std::string out = Lower(method);
  for (std::string_view segment : pattern) {
    if (segment != "{}") out += "_" + std::string(segment);
  }
  return out;
}

AuditEntry Common(const Request& req, std::string_view path) {
  AuditEntry e;
  e.method = req.method;
  e.path = IsCleanText(path) ? Cut(path, kMaxPathBytes) : "(not text)";
  e.remote_address = req.remote_address;
  return e;
}

// EventLogResponse; `extra` is a JSON text of what Airflow's columns do not hold.
Json EntryToJson(const AuditEntry& e) {
  auto opt = [](const auto& v) { return v ? Json(*v) : Json(nullptr); };
  const Json extra = {{"method", e.method},
                      {"path", e.path},
                      {"status", e.status},
                      {"remote_address", e.remote_address},
                      {"via", e.via.empty() ? Json(nullptr) : Json(e.via)},
                      {"body", e.body}};
  return {{"event_log_id", e.id},
          {"when", scheduler::FormatRfc3339(e.at)},
          {"dag_id", opt(e.dag_id)},
          {"dag_display_name", opt(e.dag_id)},
          {"task_id", opt(e.task_id)},
          {"task_display_name", opt(e.task_id)},
          {"run_id", opt(e.run_id)},
          {"map_index", opt(e.map_index)},
          {"try_number", opt(e.try_number)},
          {"event", e.event},
          {"logical_date", TimeOrNull(e.logical_date)},
          {"owner", opt(e.owner)},
          {"extra", Dump(extra)}};
}

// A run described by a successful JSON answer (a triggered run): its id and logical date.
void TakeRunFromAnswer(AuditEntry& e, const Response& answer) {
  if (answer.status < 200 || answer.status >= 300 || answer.body.size() > kMaxAnswerBytes ||
      !answer.content_type.starts_with("application/json")) {
    return;
  }
  const ParsedJson parsed = ParseUntrustedJson(answer.body);
  if (!parsed.value || !parsed.value->is_object()) return;
  const Json& run = *parsed.value;
  const auto run_id = BodyString(run, "dag_run_id");
  const auto dag_id = BodyString(run, "dag_id");
  if (!run_id || (e.dag_id && dag_id != e.dag_id)) return;
  e.run_id = run_id;
  auto date = run.find("logical_date");
  if (date != run.end() && date->is_string()) {
    e.logical_date = scheduler::ParseRfc3339(date->get_ref<const std::string&>());
  }
}

// The summary of `body` the header describes; `parsed` is `body` parsed.
Json SummarizeBody(std::string_view body, const ParsedJson& parsed) {
  if (body.empty()) return Json::object();
  if (!parsed.value || !parsed.value->is_object()) return {{"_bytes", body.size()}};
  Json out = Json::object();
  Json keys = Json::array();
  for (const auto& [key, value] : parsed.value->items()) {
    if (keys.size() == kMaxKeys) break;
    if (!IsCleanText(key)) continue;
    const std::string name = Cut(key, kMaxKeyBytes);
    keys.push_back(name);
    out[name] = StoredValue(key, value);
  }
  if (Dump(out).size() > kMaxSummaryBytes) return {{"_keys", std::move(keys)}};
  return out;
}

}  // namespace

AuditEntry ForWrite(std::string_view event, const std::vector<std::string_view>& pattern,
                    const std::vector<std::string>& params, const Request& req,
                    std::string_view path) {
  AuditEntry e = Common(req, path);
  e.event = EventName(event, pattern, req.method);
  size_t p = 0;
  for (size_t i = 0; i < pattern.size() && p < params.size(); ++i) {
    if (pattern[i] != "{}") continue;
    const std::string& value = params[p++];
    const std::string_view before = i > 0 ? pattern[i - 1] : std::string_view();
    if (before == "dags") {
      e.dag_id = CleanId(value);
    } else if (before == "dagRuns") {
      e.run_id = CleanId(value);
    } else if (before == "taskInstances") {
      e.task_id = CleanId(value);
    } else if (before == "tries" || before == "logs") {
      auto n = ParseInt(value);
      if (n && *n >= 0 && *n <= std::numeric_limits<int>::max())
        e.try_number = static_cast<int>(*n);
    }
  }
  const ParsedJson parsed = ParseUntrustedJson(req.body);
  e.body = SummarizeBody(req.body, parsed);
  if (parsed.value && parsed.value->is_object()) {
    if (!e.dag_id) e.dag_id = BodyString(*parsed.value, "dag_id");
    if (!e.run_id) e.run_id = BodyString(*parsed.value, "dag_run_id");
    if (!e.task_id) e.task_id = BodyString(*parsed.value, "task_id");
  }
  return e;
}

AuditEntry ForLogin(const Request& req, std::string_view path) {
  AuditEntry e = Common(req, path);
  e.event = "login";
  e.via = "password";
  // Only the username is taken from the body: its owner. The password is never read here.
  auto type = req.headers.find("content-type");
  if (type != req.headers.end() && IsFormContentType(type->second)) {
    for (std::string_view pair : Split(req.body, '&')) {
      const size_t eq = pair.find('=');
      if (eq == std::string_view::npos || PercentDecode(pair.substr(0, eq), true) != "username") {
        continue;
      }
      const std::string name = PercentDecode(pair.substr(eq + 1), true);
      if (IsCleanText(name)) e.owner = Cut(name, kMaxStringBytes);
      break;
    }
  } else {
    const ParsedJson parsed = ParseUntrustedJson(req.body);
    if (parsed.value && parsed.value->is_object()) {
      auto it = parsed.value->find("username");
      if (it != parsed.value->end() && it->is_string() &&
          IsCleanText(it->get_ref<const std::string&>())) {
        e.owner = Cut(it->get_ref<const std::string&>(), kMaxStringBytes);
      }
    }
  }
  return e;
}

void SetCaller(AuditEntry& entry, const std::optional<scheduler::Principal>& caller) {
  if (!caller) return;
  entry.owner = caller->name;
  entry.via = caller->via;
}

void Record(scheduler::Service& service, AuditEntry entry, const Response& answer) {
  try {
    entry.status = answer.status;
    if (entry.event == "login" && answer.status != 201) entry.event = "login_failed";
    if (!entry.run_id || !entry.logical_date) TakeRunFromAnswer(entry, answer);
    auto stored = service.RecordAudit(entry);
    if (!stored.ok()) {
      Log()->error("audit log entry not stored error=\"{}\" entry={}", stored.status().ToString(),
                   Dump(EntryToJson(entry)));
    }
  } catch (const std::exception& e) {
    Log()->error("audit log entry not stored error=\"{}\" event={} path={} status={}", e.what(),
                 entry.event, entry.path, entry.status);
  }
}

Response ListEventLogs(scheduler::Service& service, const RouterOptions& options, const Call& c) {
  Errors errors;
  c.query.CheckSupported(
      {"limit", "offset", "order_by", "dag_id", "task_id", "run_id", "map_index", "try_number",
       "owner", "event", "excluded_events", "included_events", "before", "after", "dag_id_pattern",
       "task_id_pattern", "run_id_pattern", "owner_pattern", "event_pattern"},
      errors);
  scheduler::AuditQuery q;
  q.page = c.query.Page(options.max_page_limit, errors);
  q.dag_id = c.query.First("dag_id");
  q.task_id = c.query.First("task_id");
  q.run_id = c.query.First("run_id");
  constexpr int kMin = std::numeric_limits<int>::min();
  if (c.query.First("map_index")) q.map_index = c.query.Int("map_index", 0, kMin, errors);
  if (c.query.First("try_number")) q.try_number = c.query.Int("try_number", 0, kMin, errors);
  q.owner = c.query.First("owner");
  q.event = c.query.First("event");
  q.excluded_events = c.query.All("excluded_events");
  q.included_events = c.query.All("included_events");
  q.before = c.query.Time("before", errors);
  q.after = c.query.Time("after", errors);
  q.dag_id_pattern = c.query.First("dag_id_pattern").value_or("");
  q.task_id_pattern = c.query.First("task_id_pattern").value_or("");
  q.run_id_pattern = c.query.First("run_id_pattern").value_or("");
  q.owner_pattern = c.query.First("owner_pattern").value_or("");
  q.event_pattern = c.query.First("event_pattern").value_or("");
  if (!errors.empty()) return errors.ToResponse();
  return ListingResponse(service.ListAudit(q), "event_logs", EntryToJson);
}

Response GetEventLog(scheduler::Service& service, const RouterOptions&, const Call& c) {
  Errors errors;
  c.query.CheckSupported({}, errors);
  auto id = PathInt(c.params[0], "event_log_id", errors, std::numeric_limits<int64_t>::min(),
                    /*wide=*/true);
  if (!errors.empty()) return errors.ToResponse();
  auto entry = service.GetAudit(*id);
  if (!entry.ok()) return ErrorResponse(entry.status());
  return JsonResponse(200, EntryToJson(*entry));
}

}  // namespace dagd::api::audit
