#include "dagd/api/codecs.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>

#include "request_text.hpp"

namespace dagd::api {

namespace {

using scheduler::Dag;
using scheduler::DagRecord;
using scheduler::DagRun;
using scheduler::TaskInstance;
using scheduler::TaskSpec;
using scheduler::TaskState;
using scheduler::TaskTry;

Json StringOrNull(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

Json OptionalStringOrNull(const std::optional<std::string>& s) {
  return s ? Json(*s) : Json(nullptr);
}

Json StateOrNull(TaskState s) {
  return s == TaskState::kNone ? Json(nullptr) : Json(std::string(scheduler::ToString(s)));
}

template <typename T>
Json OptionalOrNull(const std::optional<T>& v) {
  return v ? Json(*v) : Json(nullptr);
}

// Seconds between two optional time points, or null when either is missing.
Json DurationBetween(const std::optional<scheduler::TimePoint>& start,
                     const std::optional<scheduler::TimePoint>& end) {
  if (!start || !end) return nullptr;
  return std::chrono::duration<double>(*end - *start).count();
}

uint64_t Fnv1a64(std::string_view text, uint64_t seed) {
  uint64_t h = seed;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// A stable RFC 9562 version-8 (custom) UUID from `name`: clients parse dag_version.id as a UUID,
// and dagd has no uuid column for versions, so derive one the same way every time.
std::string StableUuid(std::string_view name) {
  uint64_t hi = Fnv1a64(name, 14695981039346656037ULL);
  uint64_t lo = Fnv1a64(name, 0x9e3779b97f4a7c15ULL);
  hi = (hi & ~0xF000ULL) | 0x8000ULL;                         // version 8
  lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // variant 10
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return buf;
}

std::string RelativeFileloc(const std::string& fileloc) {
  return std::filesystem::path(fileloc).filename().string();
}

// Airflow serialises DAG params as Param.dump(): the value plus its (empty) schema.
Json ParamsToJson(const Json& params) {
  Json out = Json::object();
  if (!params.is_object()) return out;
  for (const auto& [key, value] : params.items()) {
    out[key] = {{"__class", "airflow.sdk.definitions.param.Param"},
                {"value", value},
                {"description", nullptr},
                {"schema", Json::object()}};
  }
  return out;
}

// Which fields of an operator are templated (Airflow's template_fields).
Json TemplateFields(std::string_view operator_name) {
  if (operator_name == scheduler::kOperatorBash) return {"bash_command", "env", "cwd"};
  if (operator_name == scheduler::kOperatorTransform) return {"args"};
  return Json::array();
}

// Airflow requires created_at: a version whose time is unknown (none can be: the store reads it
// with the row) is left out rather than shown with a null.
Json VersionOrNull(const std::string& dag_id, int version_number,
                   const std::optional<scheduler::TimePoint>& created_at) {
  if (version_number <= 0 || !created_at) return nullptr;
  return DagVersionToJson(dag_id, version_number, *created_at);
}

// ISO 8601 duration as pydantic writes a timedelta ("P1DT2H3M4.5S", "PT0S"): the form of
// Airflow's `format: duration` strings.
Json Iso8601Duration(scheduler::Duration d) {
  const int64_t signed_us = d.count();
  std::string out = signed_us < 0 ? "-P" : "P";
  // Unsigned, so that the magnitude of the most negative count is representable.
  uint64_t us = signed_us < 0 ? 0 - static_cast<uint64_t>(signed_us) : signed_us;
  constexpr uint64_t kSecond = 1000000;
  const uint64_t days = us / (86400 * kSecond);
  us %= 86400 * kSecond;
  const uint64_t hours = us / (3600 * kSecond);
  us %= 3600 * kSecond;
  const uint64_t minutes = us / (60 * kSecond);
  us %= 60 * kSecond;
  if (days) out += std::to_string(days) + "D";
  out += "T";
  if (hours) out += std::to_string(hours) + "H";
  if (minutes) out += std::to_string(minutes) + "M";
  if (us || (!days && !hours && !minutes)) {
    out += std::to_string(us / kSecond);
    if (const uint64_t micros = us % kSecond) {
      char frac[8];
      std::snprintf(frac, sizeof frac, ".%06llu", static_cast<unsigned long long>(micros));
      std::string f = frac;
      while (f.back() == '0') f.pop_back();
      out += f;
    }
    out += "S";
  }
  if (out.back() == 'T') out.pop_back();
  return out;
}

}  // namespace

std::string OperatorClassName(std::string_view operator_name) {
  if (operator_name == scheduler::kOperatorBash) return "BashOperator";
  if (operator_name == scheduler::kOperatorEmpty) return "EmptyOperator";
  if (operator_name == scheduler::kOperatorTransform) return "TransformOperator";
  return std::string(operator_name);
}

Json TimeOrNull(const std::optional<scheduler::TimePoint>& t) {
  return t ? Json(scheduler::FormatRfc3339(*t)) : Json(nullptr);
}

Json TimeDeltaToJson(scheduler::Duration d) {
  constexpr int64_t kMicrosPerSecond = 1000000;
  constexpr int64_t kMicrosPerDay = 86400 * kMicrosPerSecond;
  int64_t us = d.count();
  // Python's timedelta keeps seconds and microseconds non-negative; days carries the sign.
  int64_t days = us / kMicrosPerDay;
  int64_t rest = us % kMicrosPerDay;
  if (rest < 0) {
    rest += kMicrosPerDay;
    --days;
  }
  return {{"__type", "TimeDelta"},
          {"days", days},
          {"seconds", rest / kMicrosPerSecond},
          {"microseconds", rest % kMicrosPerSecond}};
}

Json DagVersionToJson(const std::string& dag_id, int version_number,
                      scheduler::TimePoint created_at) {
  return {{"id", StableUuid(dag_id + "\n" + std::to_string(version_number))},
          {"version_number", version_number},
          {"dag_id", dag_id},
          {"bundle_name", kBundleName},
          {"bundle_version", nullptr},
          {"created_at", scheduler::FormatRfc3339(created_at)},
          {"dag_display_name", dag_id},
          {"bundle_url", nullptr}};
}

Json DagToJson(const DagRecord& r) {
  Json tags = Json::array();
  for (const auto& tag : r.tags) {
    tags.push_back({{"name", tag}, {"dag_id", r.dag_id}, {"dag_display_name", r.dag_id}});
  }
  const std::string relative = RelativeFileloc(r.fileloc);
  const Json file_token_payload = {{"bundle_name", kBundleName}, {"relative_fileloc", relative}};
  const std::optional<scheduler::RunSlot>& next = r.next_dagrun;
  return {
      {"dag_id", r.dag_id},
      {"dag_display_name", r.dag_id},
      {"is_paused", r.is_paused},
      {"is_stale", r.is_stale},
      {"last_parsed_time", TimeOrNull(r.last_parsed_time)},
      {"last_expired", nullptr},
      {"bundle_name", kBundleName},
      {"bundle_version", nullptr},
      {"relative_fileloc", StringOrNull(relative)},
      {"fileloc", r.fileloc},
      {"description", StringOrNull(r.description)},
      {"timetable_summary", OptionalStringOrNull(r.schedule)},
      {"timetable_description", OptionalStringOrNull(r.timetable_description)},
      // Partitioned timetables (Airflow 3.2) do not exist in dagd.
      {"timetable_partitioned", false},
      {"tags", std::move(tags)},
      {"max_active_tasks", r.max_active_tasks},
      {"max_active_runs", r.max_active_runs},
      {"max_consecutive_failed_dag_runs", 0},
      {"has_task_concurrency_limits", false},
      {"has_import_errors", r.has_import_errors},
      {"next_dagrun_logical_date", next ? TimeOrNull(next->logical_date) : Json(nullptr)},
      {"next_dagrun_data_interval_start",
       next ? TimeOrNull(next->data_interval_start) : Json(nullptr)},
      {"next_dagrun_data_interval_end", next ? TimeOrNull(next->data_interval_end) : Json(nullptr)},
      {"next_dagrun_run_after", next ? TimeOrNull(next->run_after) : Json(nullptr)},
      {"owners", r.owners},
      {"file_token", Base64Url(file_token_payload.dump())},
  };
}

Json DagDetailsToJson(const scheduler::DagDetails& details) {
  const DagRecord& r = details.record;
  Json out = DagToJson(r);
  const Dag* dag = details.dag.get();
  out["catchup"] = dag ? dag->catchup : false;
  out["dag_run_timeout"] =
      dag && dag->dagrun_timeout ? Iso8601Duration(*dag->dagrun_timeout) : Json(nullptr);
  out["asset_expression"] = nullptr;
  out["doc_md"] = dag && !dag->doc_md.empty() ? Json(dag->doc_md) : Json(nullptr);
  out["start_date"] = dag ? TimeOrNull(dag->start_date) : Json(nullptr);
  out["end_date"] = dag ? TimeOrNull(dag->end_date) : Json(nullptr);
  out["is_paused_upon_creation"] = dag ? Json(dag->is_paused_upon_creation) : Json(nullptr);
  out["params"] = dag ? ParamsToJson(dag->params) : Json::object();
  out["render_template_as_native_obj"] = false;
  out["template_search_path"] = nullptr;
  out["timezone"] = dag ? Json(dag->timezone) : Json(nullptr);
  out["last_parsed"] = TimeOrNull(r.last_parsed_time);
  out["concurrency"] = r.max_active_tasks;
  out["latest_dag_version"] =
      VersionOrNull(r.dag_id, r.latest_version, r.latest_version_created_at);
  out["owner_links"] = nullptr;
  return out;
}

Json TaskToJson(const Dag& dag, const TaskSpec& task) {
  Json downstream = Json::array();
  if (auto index = dag.IndexOf(task.task_id); index && *index < dag.downstream.size()) {
    for (size_t d : dag.downstream[*index]) downstream.push_back(dag.tasks[d].task_id);
  }
  const std::string class_name = OperatorClassName(task.operator_name);
  return {
      {"task_id", task.task_id},
      {"task_display_name", task.task_id},
      {"owner", dag.owners.empty() ? std::string("airflow") : dag.owners.front()},
      {"start_date", TimeOrNull(dag.start_date)},
      {"end_date", TimeOrNull(dag.end_date)},
      {"trigger_rule", std::string(scheduler::ToString(task.trigger_rule))},
      {"depends_on_past", false},
      {"wait_for_downstream", false},
      {"retries", task.retries},
      {"queue", "default"},
      {"pool", task.pool},
      {"pool_slots", task.pool_slots},
      {"execution_timeout",
       task.execution_timeout ? TimeDeltaToJson(*task.execution_timeout) : Json(nullptr)},
      {"retry_delay", TimeDeltaToJson(task.retry_delay)},
      // Airflow 3.1 turned this into a backoff multiplier; true meant 2.0.
      {"retry_exponential_backoff", task.retry_exponential_backoff ? 2.0 : 0.0},
      {"priority_weight", task.priority_weight},
      {"weight_rule", "downstream"},
      {"ui_color", "#fff"},
      {"ui_fgcolor", "#000"},
      {"template_fields", TemplateFields(task.operator_name)},
      {"downstream_task_ids", std::move(downstream)},
      {"doc_md", StringOrNull(task.doc)},
      {"operator_name", class_name},
      {"params", ParamsToJson(dag.params)},
      {"class_ref", {{"module_path", "dagd.operators"}, {"class_name", class_name}}},
      {"is_mapped", false},
      {"extra_links", Json::array()},
  };
}

Json DagRunToJson(const DagRun& run) {
  Json versions = Json::array();
  if (Json v = VersionOrNull(run.dag_id, run.version_number, run.version_created_at);
      !v.is_null()) {
    versions.push_back(std::move(v));
  }
  return {
      {"dag_run_id", run.run_id},
      {"dag_id", run.dag_id},
      {"logical_date", TimeOrNull(run.logical_date)},
      {"queued_at", TimeOrNull(run.queued_at)},
      {"start_date", TimeOrNull(run.start_date)},
      {"end_date", TimeOrNull(run.end_date)},
      {"duration", DurationBetween(run.start_date, run.end_date)},
      {"data_interval_start", TimeOrNull(run.data_interval_start)},
      {"data_interval_end", TimeOrNull(run.data_interval_end)},
      {"run_after", TimeOrNull(run.run_after)},
      {"last_scheduling_decision", TimeOrNull(run.last_scheduling_decision)},
      {"run_type", std::string(scheduler::ToString(run.run_type))},
      {"state", std::string(scheduler::ToString(run.state))},
      {"triggered_by", StringOrNull(run.triggered_by)},
      {"triggering_user_name", nullptr},
      {"conf", run.conf.is_null() ? Json::object() : run.conf},
      {"note", OptionalStringOrNull(run.note)},
      {"dag_versions", std::move(versions)},
      {"bundle_version", nullptr},
      {"dag_display_name", run.dag_id},
      {"partition_key", nullptr},
      {"backfill_id", run.backfill_id ? Json(*run.backfill_id) : Json(nullptr)},
  };
}

Json TaskInstanceToJson(const TaskInstance& ti, const DagRun* run) {
  const std::string class_name = OperatorClassName(ti.operator_name);
  return {
      {"id", ti.id},
      {"task_id", ti.task_id},
      {"dag_id", ti.dag_id},
      {"dag_run_id", ti.run_id},
      {"map_index", -1},
      {"logical_date", run ? TimeOrNull(run->logical_date) : Json(nullptr)},
      {"run_after", run ? TimeOrNull(run->run_after) : Json(nullptr)},
      {"start_date", TimeOrNull(ti.start_date)},
      {"end_date", TimeOrNull(ti.end_date)},
      {"duration", OptionalOrNull(ti.duration)},
      {"state", StateOrNull(ti.state)},
      {"try_number", ti.try_number},
      {"max_tries", ti.max_tries},
      {"task_display_name", ti.task_id},
      {"dag_display_name", ti.dag_id},
      {"hostname", StringOrNull(ti.hostname)},
      {"unixname", StringOrNull(ti.unixname)},
      {"pool", ti.pool},
      {"pool_slots", ti.pool_slots},
      {"queue", "default"},
      {"priority_weight", ti.priority_weight},
      {"operator", StringOrNull(class_name)},
      {"operator_name", StringOrNull(class_name)},
      {"queued_when", TimeOrNull(ti.queued_when)},
      {"scheduled_when", TimeOrNull(ti.scheduled_when)},
      {"pid", OptionalOrNull(ti.pid)},
      {"executor", nullptr},
      {"executor_config", "{}"},
      {"note", OptionalStringOrNull(ti.note)},
      {"rendered_map_index", nullptr},
      {"rendered_fields", Json::object()},
      {"trigger", nullptr},
      {"triggerer_job", nullptr},
      {"dag_version", VersionOrNull(ti.dag_id, ti.version_number, ti.version_created_at)},
  };
}

Json TaskTryToJson(const TaskTry& attempt, const TaskInstance& ti) {
  // A history entry is a task instance as it was during that try, minus the fields Airflow's
  // TaskInstanceHistoryResponse does not have.
  TaskInstance as_tried = ti;
  as_tried.task_id = attempt.task_id;
  as_tried.dag_id = attempt.dag_id;
  as_tried.run_id = attempt.run_id;
  as_tried.try_number = attempt.try_number;
  as_tried.state = attempt.state;
  as_tried.start_date = attempt.start_date;
  as_tried.end_date = attempt.end_date;
  as_tried.duration = attempt.duration;
  as_tried.hostname = attempt.hostname;
  as_tried.pid = attempt.pid;
  as_tried.queued_when = attempt.queued_when;
  as_tried.scheduled_when.reset();
  if (!attempt.operator_name.empty()) as_tried.operator_name = attempt.operator_name;
  Json json = TaskInstanceToJson(as_tried, nullptr);
  for (const char* field : {"id", "logical_date", "run_after", "note", "rendered_map_index",
                            "rendered_fields", "trigger", "triggerer_job"}) {
    json.erase(field);
  }
  return json;
}

Json ImportErrorToJson(const scheduler::ImportError& error) {
  return {{"import_error_id", error.id},
          {"timestamp", scheduler::FormatRfc3339(error.timestamp)},
          {"filename", error.filename},
          {"bundle_name", kBundleName},
          {"stack_trace", error.message}};
}

ParsedJson ParseUntrustedJson(std::string_view text, int max_depth) {
  // Brackets are counted outside strings only; a backslash in a string escapes the next byte.
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return {std::nullopt, "The JSON nests deeper than " + std::to_string(max_depth) + " levels",
                i};
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  try {
    return {Json::parse(text), "", std::nullopt};
  } catch (const Json::parse_error& e) {
    // nlohmann's message quotes the input; only its kind is kept.
    const bool utf8 = std::string_view(e.what()).find("UTF-8") != std::string_view::npos;
    return {std::nullopt, utf8 ? "The JSON is not valid UTF-8" : "The JSON is not valid", e.byte};
  } catch (const Json::out_of_range&) {
    return {std::nullopt, "The JSON holds a number too large to represent", std::nullopt};
  } catch (const Json::exception&) {
    return {std::nullopt, "The JSON could not be parsed", std::nullopt};
  }
}

namespace {

// How many bytes at the end of `s` start a UTF-8 sequence that the next piece completes.
size_t IncompleteUtf8Tail(std::string_view s) {
  for (size_t i = 1; i <= std::min<size_t>(3, s.size()); ++i) {
    const auto c = static_cast<unsigned char>(s[s.size() - i]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    if (c < 0xC0) return 0;
    const size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    return length > i ? i : 0;
  }
  return 0;
}

// `text` as the inside of a JSON string.
void AppendEscaped(std::string_view text, std::string& out) {
  const std::string quoted =
      Json(std::string(text)).dump(-1, ' ', false, Json::error_handler_t::replace);
  out.append(quoted, 1, quoted.size() - 2);
}

constexpr std::string_view kEventOpen = R"({"event":")";
constexpr std::string_view kEventClose = R"("})";

}  // namespace

LogEncoder::LogEncoder(LogFormat format, size_t max_line_bytes)
    : format_(format), max_line_bytes_(max_line_bytes) {}

void LogEncoder::Open(std::string& out) {
  if (opened_) return;
  opened_ = true;
  if (format_ == LogFormat::kJson) out += R"({"content":[)";
}

void LogEncoder::BeginItem(std::string& out) {
  if (format_ == LogFormat::kJson && !first_item_) out += ',';
  first_item_ = false;
}

void LogEncoder::EndItem(std::string& out) {
  if (format_ == LogFormat::kNdjson) out += '\n';
}

// Emits the current line, complete in `line_` (or its rest, when it is long).
void LogEncoder::EndLine(std::string& out) {
  std::string_view line = line_;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (long_line_) {
    AppendEscaped(line, out);
    out += kEventClose;
    EndItem(out);
    long_line_ = false;
    line_.clear();
    return;
  }
  BeginItem(out);
  if (!line.empty() && line.front() == '{' && line.size() <= max_line_bytes_) {
    ParsedJson parsed = ParseUntrustedJson(line);
    if (parsed.value && parsed.value->is_object()) {
      auto event = parsed.value->find("event");
      if (event != parsed.value->end() && event->is_string()) {
        out += parsed.value->dump(-1, ' ', false, Json::error_handler_t::replace);
        EndItem(out);
        line_.clear();
        return;
      }
    }
  }
  out += kEventOpen;
  AppendEscaped(line, out);
  out += kEventClose;
  EndItem(out);
  line_.clear();
}

// Emits what is known of a long line, keeping back a split UTF-8 sequence and a '\r' that may
// be the start of "\r\n".
void LogEncoder::FlushLongLine(std::string& out) {
  if (!long_line_) {
    BeginItem(out);
    out += kEventOpen;
    long_line_ = true;
  }
  size_t keep = IncompleteUtf8Tail(line_);
  if (keep == 0 && !line_.empty() && line_.back() == '\r') keep = 1;
  AppendEscaped(std::string_view(line_).substr(0, line_.size() - keep), out);
  line_.erase(0, line_.size() - keep);
}

std::string LogEncoder::Feed(std::string_view bytes) {
  std::string out;
  Open(out);
  while (!bytes.empty()) {
    const size_t end = bytes.find('\n');
    line_.append(bytes.substr(0, end));
    if (end == std::string_view::npos) {
      if (long_line_ || line_.size() > max_line_bytes_) FlushLongLine(out);
      break;
    }
    EndLine(out);
    bytes.remove_prefix(end + 1);
  }
  return out;
}

std::string LogEncoder::Finish(const Json& continuation_token) {
  std::string out;
  Open(out);
  if (long_line_ || !line_.empty()) EndLine(out);
  if (format_ == LogFormat::kJson) {
    out += R"(],"continuation_token":)";
    out += continuation_token.dump();
    out += '}';
  }
  return out;
}

}  // namespace dagd::api
