#include "dagd/scheduler/dag_parser.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include "dag_graph.hpp"

namespace dagd::scheduler {

std::optional<size_t> Dag::IndexOf(std::string_view task_id) const {
  auto it = index_.find(std::string(task_id));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

const TaskSpec* Dag::Find(std::string_view task_id) const {
  auto index = IndexOf(task_id);
  return index ? &tasks[*index] : nullptr;
}

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > 250) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

namespace {

// Nesting beyond this is refused before anything recursive (dump, comparisons) touches it.
constexpr size_t kMaxDepth = 64;
// Cycles reported per document; one dense knot could otherwise produce thousands of lines.
constexpr size_t kMaxCyclesReported = 10;
// NUL characters reported per document: one per place is enough to find them.
constexpr size_t kMaxNulReported = 10;
// Accounts a bash task may name: a portable user name (POSIX, as useradd accepts by default).
constexpr size_t kMaxAccountName = 32;

constexpr std::string_view kInvalidIdHint = "use letters, digits, '_', '.', '-' (at most 250)";
constexpr std::string_view kDurationHint = "(use e.g. 30s, 10m, 2h)";

const std::set<std::string, std::less<>> kTopLevelFields = {"dag_id",
                                                            "description",
                                                            "schedule",
                                                            "timezone",
                                                            "start_date",
                                                            "catchup",
                                                            "max_active_runs",
                                                            "max_active_tasks",
                                                            "dagrun_timeout",
                                                            "tags",
                                                            "owner",
                                                            "owners",
                                                            "params",
                                                            "is_paused_upon_creation",
                                                            "default_args",
                                                            "doc_md",
                                                            "tasks",
                                                            "end_date",
                                                            "timetable"};

// Task fields every operator accepts.
const std::set<std::string, std::less<>> kCommonTaskFields = {"task_id",
                                                              "operator",
                                                              "upstream",
                                                              "downstream",
                                                              "trigger_rule",
                                                              "retries",
                                                              "retry_delay",
                                                              "retry_exponential_backoff",
                                                              "max_retry_delay",
                                                              "execution_timeout",
                                                              "pool",
                                                              "pool_slots",
                                                              "priority_weight",
                                                              "doc_md",
                                                              "owner"};

// The fields default_args may set: task fields that are not identity, wiring or operator input.
const std::set<std::string, std::less<>> kDefaultableFields = {"retries",
                                                               "retry_delay",
                                                               "retry_exponential_backoff",
                                                               "max_retry_delay",
                                                               "execution_timeout",
                                                               "trigger_rule",
                                                               "pool",
                                                               "pool_slots",
                                                               "priority_weight",
                                                               "owner"};

struct OperatorFields {
  std::string_view name;
  std::vector<std::string_view> fields;
};

const std::array<OperatorFields, 3> kOperators = {{
    {kOperatorTransform, {"job", "args"}},
    {kOperatorBash, {"bash_command", "env", "cwd", "run_as_user"}},
    {kOperatorEmpty, {}},
}};

const OperatorFields* FindOperator(std::string_view name) {
  for (const auto& op : kOperators) {
    if (op.name == name) return &op;
  }
  return nullptr;
}

// The operator that owns an operator-specific field, or nullptr for any other field.
const OperatorFields* OperatorOfField(std::string_view field) {
  for (const auto& op : kOperators) {
    if (std::find(op.fields.begin(), op.fields.end(), field) != op.fields.end()) return &op;
  }
  return nullptr;
}

// User text echoed in messages is cut short: an error list must stay readable.
std::string Shown(std::string_view text) {
  constexpr size_t kMax = 80;
  if (text.size() <= kMax) return std::string(text);
  return std::string(text.substr(0, kMax)) + "...";
}

std::string ShowJson(const Json& value) {
  return Shown(value.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::string Quoted(std::string_view text) { return "'" + Shown(text) + "'"; }

// start_date / end_date: RFC 3339 with an offset is an instant; a date or a date and time without
// one is a wall-clock time in the DAG's zone (as Airflow reads naive dates in the DAG's timezone).
std::optional<TimePoint> ParseDagDate(std::string_view text, const TimeZone* zone) {
  size_t time_at = text.find_first_of("Tt ");
  bool has_offset = time_at != std::string_view::npos &&
                    text.find_first_of("Zz+-", time_at) != std::string_view::npos;
  if (has_offset) return ParseRfc3339(text);
  auto wall =
      ParseRfc3339(time_at == std::string_view::npos ? std::string(text) : std::string(text) + "Z");
  if (!wall || zone == nullptr) return wall;
  return zone->FromLocal(wall->time_since_epoch());
}

std::string JoinedTriggerRules() {
  std::string out;
  for (int i = 0; i <= static_cast<int>(TriggerRule::kAlways); ++i) {
    if (!out.empty()) out += ", ";
    out += ToString(static_cast<TriggerRule>(i));
  }
  return out;
}

std::string HexDigest(std::string_view data) {
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, hash >>= 4) out[static_cast<size_t>(i)] = kHex[hash & 0xF];
  return out;
}

bool DeeperThan(const Json& root, size_t limit) {
  // Iterative, because the point is to survive documents that would overflow a recursive walk.
  std::vector<std::pair<const Json*, size_t>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (!node->is_structured()) continue;
    if (depth > limit) return true;
    for (const auto& child : *node) stack.emplace_back(&child, depth + 1);
  }
  return false;
}

bool HasNul(std::string_view text) { return text.find('\0') != std::string_view::npos; }

// The errors of one document, each with the path of the value it is about (ParseResult).
class ErrorList {
 public:
  explicit ErrorList(ParseResult& result) : result_(result) {}
  void Add(std::string message, Json path = Json::array()) {
    result_.errors.push_back(std::move(message));
    result_.error_paths.push_back(std::move(path));
  }
  bool empty() const { return result_.errors.empty(); }

 private:
  ParseResult& result_;
};

// `path` with `key` (a field name or an array index) appended.
Json Child(Json path, Json key) {
  path.push_back(std::move(key));
  return path;
}

// Where the value at `path` sits, for messages: "description", "tasks[2].env.HOME".
std::string PlaceOf(const Json& path) {
  std::string place;
  for (const Json& key : path) {
    if (key.is_string()) {
      place += (place.empty() ? "" : ".") + Shown(key.get_ref<const std::string&>());
    } else {
      place += "[" + std::to_string(key.get<size_t>()) + "]";
    }
  }
  return place;
}

// A key or string with a NUL character: PostgreSQL stores neither text nor jsonb with one, and a
// NUL would cut the value short wherever it reaches C strings (an environment, a command line).
// Iterative, like DeeperThan; call it only on documents that passed DeeperThan (the places stay
// short). Keys with a NUL are shown with it escaped.
void FindNulCharacters(const Json& root, ErrorList& errors) {
  auto escaped = [](std::string_view key) {
    std::string out;
    for (char c : key) out += c == '\0' ? std::string("\\u0000") : std::string(1, c);
    return Shown(out);
  };
  size_t found = 0;
  std::vector<std::pair<const Json*, Json>> stack{{&root, Json::array()}};
  while (!stack.empty() && found < kMaxNulReported) {
    auto [node, path] = std::move(stack.back());
    stack.pop_back();
    if (node->is_string()) {
      if (HasNul(node->get_ref<const std::string&>())) {
        errors.Add("field '" + PlaceOf(path) + "' contains a NUL character (\\u0000)", path);
        ++found;
      }
    } else if (node->is_object()) {
      for (auto it = node->begin(); it != node->end(); ++it) {
        if (HasNul(it.key())) {
          const std::string place = PlaceOf(path);
          errors.Add("key '" + escaped(it.key()) + "'" +
                         (place.empty() ? std::string() : " in '" + place + "'") +
                         " contains a NUL character (\\u0000)",
                     path);
          ++found;
          continue;
        }
        stack.emplace_back(&*it, Child(path, it.key()));
      }
    } else if (node->is_array()) {
      for (size_t i = node->size(); i > 0; --i) {
        stack.emplace_back(&(*node)[i - 1], Child(path, i - 1));
      }
    }
  }
}

// Reads typed fields of one JSON object; every mismatch becomes an error naming `place_`
// ("task 'b'", "default_args", "DAG"), at `path_` (the object's path in the document) or the
// field's. Absent fields read as nullopt without an error.
class FieldReader {
 public:
  FieldReader(const Json& object, std::string place, Json path, ErrorList& errors)
      : object_(object), place_(std::move(place)), path_(std::move(path)), errors_(errors) {}

  const std::string& place() const { return place_; }

  const Json* Get(std::string_view key) const {
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }
  bool Has(std::string_view key) const { return Get(key) != nullptr; }
  bool IsNull(std::string_view key) const {
    const Json* value = Get(key);
    return value != nullptr && value->is_null();
  }

  const Json& path() const { return path_; }

  void FieldError(std::string_view key, const std::string& what) {
    errors_.Add(place_ + " field '" + std::string(key) + "': " + what, Child(path_, key));
  }
  void PlaceError(const std::string& what) { errors_.Add(place_ + ": " + what, path_); }
  // An error about the object's field `key` (unknown, misplaced), said of the object.
  void PlaceError(const std::string& what, std::string_view key) {
    errors_.Add(place_ + ": " + what, Child(path_, key));
  }

  std::optional<std::string> String(std::string_view key, bool non_empty = false) {
    const Json* value = Get(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_string() || (non_empty && value->get_ref<const std::string&>().empty())) {
      FieldError(key, std::string(non_empty ? "expected a non-empty string" : "expected a string") +
                          ", got " + ShowJson(*value));
      return std::nullopt;
    }
    return value->get<std::string>();
  }

  std::optional<bool> Bool(std::string_view key) {
    const Json* value = Get(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_boolean()) {
      FieldError(key, "expected a boolean, got " + ShowJson(*value));
      return std::nullopt;
    }
    return value->get<bool>();
  }

  // An int no smaller than `min`: min 0 reads as "non-negative", 1 as "positive".
  std::optional<int> Int(std::string_view key, std::optional<int> min) {
    const Json* value = Get(key);
    if (value == nullptr) return std::nullopt;
    std::optional<int64_t> number;
    if (value->is_number_unsigned()) {
      uint64_t u = value->get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int>::max())) {
        number = static_cast<int64_t>(u);
      }
    } else if (value->is_number_integer()) {
      number = value->get<int64_t>();
    }
    bool fits = number && *number >= std::numeric_limits<int>::min() &&
                *number <= std::numeric_limits<int>::max() && (!min || *number >= *min);
    if (!fits) {
      std::string expected = !min        ? "an integer"
                             : *min == 0 ? "a non-negative integer"
                             : *min == 1 ? "a positive integer"
                                         : "an integer ≥ " + std::to_string(*min);
      FieldError(key, "expected " + expected + ", got " + ShowJson(*value));
      return std::nullopt;
    }
    return static_cast<int>(*number);
  }

  // A number of seconds or duration text. Outer nullopt: absent or invalid; inner: JSON null.
  std::optional<std::optional<Duration>> DurationField(std::string_view key, bool nullable) {
    const Json* value = Get(key);
    if (value == nullptr) return std::nullopt;
    if (value->is_null() && nullable) return std::optional<Duration>{};
    if (value->is_number()) {
      double seconds = value->get<double>();
      // Same ceiling as duration text: about 100 years.
      if (!std::isfinite(seconds) || seconds < 0 || seconds > 100.0 * 366 * 86400) {
        FieldError(key, "expected a non-negative duration, got " + ShowJson(*value));
        return std::nullopt;
      }
      return std::optional<Duration>{Duration{std::llround(seconds * 1e6)}};
    }
    if (value->is_string()) {
      const auto& text = value->get_ref<const std::string&>();
      if (auto parsed = ParseDurationText(text)) return std::optional<Duration>{*parsed};
      FieldError(key, "invalid duration " + Quoted(text) + " " + std::string(kDurationHint));
      return std::nullopt;
    }
    FieldError(key,
               "expected a duration (seconds, or text like 30s, 10m, 2h), got " + ShowJson(*value));
    return std::nullopt;
  }

  std::optional<TriggerRule> Rule(std::string_view key) {
    auto text = String(key);
    if (!text) return std::nullopt;
    auto rule = ParseTriggerRule(*text);
    if (!rule) {
      FieldError(
          key, "unknown trigger rule " + Quoted(*text) + " (known: " + JoinedTriggerRules() + ")");
    }
    return rule;
  }

  std::optional<std::vector<std::string>> StringArray(std::string_view key,
                                                      std::string_view what = "strings") {
    const Json* value = Get(key);
    if (value == nullptr) return std::nullopt;
    bool ok = value->is_array() && std::all_of(value->begin(), value->end(),
                                               [](const Json& v) { return v.is_string(); });
    if (!ok) {
      FieldError(key, "expected an array of " + std::string(what) + ", got " + ShowJson(*value));
      return std::nullopt;
    }
    return value->get<std::vector<std::string>>();
  }

  std::optional<Json> Object(std::string_view key) {
    const Json* value = Get(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_object()) {
      FieldError(key, "expected an object, got " + ShowJson(*value));
      return std::nullopt;
    }
    return *value;
  }

 private:
  const Json& object_;
  std::string place_;
  Json path_;
  ErrorList& errors_;
};

// Fields shared by default_args and tasks. Each present, valid field overwrites `spec`.
void ReadDefaultableFields(FieldReader& reader, TaskSpec& spec, std::string& owner) {
  if (auto v = reader.Int("retries", 0)) spec.retries = *v;
  if (auto v = reader.DurationField("retry_delay", false)) spec.retry_delay = **v;
  if (auto v = reader.Bool("retry_exponential_backoff")) spec.retry_exponential_backoff = *v;
  if (auto v = reader.DurationField("max_retry_delay", true)) spec.max_retry_delay = *v;
  if (auto v = reader.DurationField("execution_timeout", true)) spec.execution_timeout = *v;
  if (auto v = reader.Rule("trigger_rule")) spec.trigger_rule = *v;
  // dagd has one pool of worker slots: a named pool or a task taking several slots would be
  // accepted and not enforced.
  if (auto v = reader.String("pool", true)) {
    if (*v == "default_pool") {
      spec.pool = *v;
    } else {
      reader.FieldError("pool", "pools are not supported yet; only \"default_pool\" is accepted");
    }
  }
  if (auto v = reader.Int("pool_slots", 1)) {
    if (*v == 1) {
      spec.pool_slots = *v;
    } else {
      reader.FieldError("pool_slots", "pools are not supported yet; only 1 is accepted");
    }
  }
  if (auto v = reader.Int("priority_weight", std::nullopt)) spec.priority_weight = *v;
  if (auto v = reader.String("owner", true)) owner = *v;
}

// A user name useradd accepts: [A-Za-z_][A-Za-z0-9_.-]*, optionally ending in '$' (Samba
// machine accounts), not all digits (it would read as a uid).
bool IsAccountName(std::string_view name) {
  if (name.empty() || name.size() > kMaxAccountName) return false;
  std::string_view body = name.back() == '$' ? name.substr(0, name.size() - 1) : name;
  if (body.empty()) return false;
  auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!letter(body.front())) return false;
  return std::all_of(body.begin(), body.end(),
                     [&](char c) { return letter(c) || digit(c) || c == '-' || c == '.'; });
}

// One task as read from the file, before the graph is resolved.
struct TaskDraft {
  bool has_id = false;  // task_id is a string (valid or not): it can be named and referenced
  std::string place;    // "task 'b'" or "task 3"
  TaskSpec spec;
  std::string owner;
  std::vector<std::string> downstream;
};

TaskDraft ReadTask(const Json& item, size_t position, const TaskSpec& defaults,
                   const std::string& default_owner, const ParseOptions& options,
                   ErrorList& errors) {
  TaskDraft draft;
  const Json path = {"tasks", position - 1};
  draft.spec = defaults;
  draft.owner = default_owner;
  draft.place = "task " + std::to_string(position);
  if (!item.is_object()) {
    errors.Add(draft.place + ": expected an object, got " + ShowJson(item), path);
    return draft;
  }

  auto id_it = item.find("task_id");
  if (id_it == item.end()) {
    errors.Add(draft.place + ": missing required field 'task_id'", Child(path, "task_id"));
  } else if (!id_it->is_string()) {
    errors.Add(draft.place + " field 'task_id': expected a string, got " + ShowJson(*id_it),
               Child(path, "task_id"));
  } else {
    draft.has_id = true;
    draft.spec.task_id = id_it->get<std::string>();
    draft.place = "task " + Quoted(draft.spec.task_id);
    if (!IsValidId(draft.spec.task_id)) {
      errors.Add(
          "task id " + Quoted(draft.spec.task_id) + " is invalid: " + std::string(kInvalidIdHint),
          Child(path, "task_id"));
    }
  }

  FieldReader reader(item, draft.place, path, errors);
  for (const auto& [key, value] : item.items()) {
    if (!kCommonTaskFields.contains(key) && OperatorOfField(key) == nullptr) {
      reader.PlaceError("unknown field " + Quoted(key), key);
    }
  }

  const OperatorFields* op = nullptr;
  if (!reader.Has("operator")) {
    reader.PlaceError("missing required field 'operator'", "operator");
  } else if (auto name = reader.String("operator")) {
    op = FindOperator(*name);
    if (op == nullptr) {
      reader.PlaceError("unknown operator " + Quoted(*name) + " (known: transform, bash, empty)",
                        "operator");
    } else {
      draft.spec.operator_name = *name;
    }
  }

  if (op != nullptr) {
    for (const auto& [key, value] : item.items()) {
      const OperatorFields* owner_op = OperatorOfField(key);
      if (owner_op != nullptr && owner_op != op) {
        reader.PlaceError(
            "field " + Quoted(key) + " does not apply to operator " + Quoted(op->name), key);
      }
    }
    if (op->name == kOperatorTransform) {
      if (!reader.Has("job")) {
        reader.PlaceError("operator 'transform' needs field 'job'", "job");
      } else if (auto job = reader.String("job", true)) {
        draft.spec.job = *job;
        if (options.job_exists && !options.job_exists(*job)) {
          reader.PlaceError("unknown job " + Quoted(*job), "job");
        }
      }
      if (auto args = reader.Object("args")) draft.spec.args = std::move(*args);
    } else if (op->name == kOperatorBash) {
      if (!reader.Has("bash_command")) {
        reader.PlaceError("operator 'bash' needs field 'bash_command'", "bash_command");
      } else if (auto command = reader.String("bash_command", true)) {
        draft.spec.bash_command = *command;
      }
      if (auto env = reader.Object("env")) {
        for (const auto& [name, value] : env->items()) {
          // A name with '=' or NUL cannot be put into an environment block.
          if (name.empty() || name.find_first_of(std::string_view("=\0", 2)) != std::string::npos) {
            reader.FieldError("env", "invalid variable name " + Quoted(name));
          } else if (!value.is_string()) {
            reader.FieldError(
                "env", "variable " + Quoted(name) + ": expected a string, got " + ShowJson(value));
          } else {
            draft.spec.env[name] = value.get<std::string>();
          }
        }
      }
      if (auto cwd = reader.String("cwd")) draft.spec.cwd = *cwd;
      if (auto user = reader.String("run_as_user", true)) {
        if (!IsAccountName(*user)) {
          reader.FieldError("run_as_user", "invalid account name " + Quoted(*user) +
                                               " (letters, digits, '_', '-', '.', at most " +
                                               std::to_string(kMaxAccountName) + ")");
        } else if (*user == "root") {
          reader.FieldError("run_as_user", "tasks never run as root");
        } else if (options.run_as_allowed && !options.run_as_allowed(*user)) {
          reader.FieldError("run_as_user", "account " + Quoted(*user) +
                                               " is not one this daemon lets tasks run as");
        } else {
          draft.spec.run_as_user = *user;
        }
      }
    }
  }

  if (auto upstream = reader.StringArray("upstream", "task ids")) draft.spec.upstream = *upstream;
  if (auto downstream = reader.StringArray("downstream", "task ids")) {
    draft.downstream = *downstream;
  }
  ReadDefaultableFields(reader, draft.spec, draft.owner);
  if (!reader.IsNull("doc_md")) {
    if (auto doc = reader.String("doc_md")) draft.spec.doc = *doc;
  }
  return draft;
}

std::string CycleText(const std::vector<size_t>& cycle, const std::vector<TaskDraft>& drafts) {
  std::string text = "cycle: ";
  for (size_t i = 0; i < cycle.size(); ++i) {
    if (i > 0) text += " → ";
    text += Shown(drafts[cycle[i]].spec.task_id);
  }
  return text;
}

void AppendUnique(std::vector<std::string>& list, const std::string& value) {
  if (std::find(list.begin(), list.end(), value) == list.end()) list.push_back(value);
}

ParseResult Validate(const Json& doc, const ParseOptions& options) {
  ParseResult result;
  ErrorList errors(result);
  if (!doc.is_object()) {
    errors.Add("a DAG document must be a JSON object, got " + std::string(doc.type_name()));
    return result;
  }
  if (DeeperThan(doc, kMaxDepth)) {
    errors.Add("the document nests deeper than " + std::to_string(kMaxDepth) + " levels");
    return result;
  }
  FindNulCharacters(doc, errors);
  if (!errors.empty()) return result;

  auto dag = std::make_shared<Dag>();
  FieldReader top(doc, "DAG", Json::array(), errors);
  for (const auto& [key, value] : doc.items()) {
    if (!kTopLevelFields.contains(key)) errors.Add("unknown field " + Quoted(key), {key});
  }

  if (!top.Has("dag_id")) {
    errors.Add("missing required field 'dag_id'", {"dag_id"});
  } else if (auto id = top.String("dag_id")) {
    dag->dag_id = *id;
    if (!IsValidId(*id)) {
      errors.Add("dag_id " + Quoted(*id) + " is invalid: " + std::string(kInvalidIdHint),
                 {"dag_id"});
    }
  }
  if (!top.IsNull("description")) {
    if (auto v = top.String("description")) dag->description = *v;
  }
  if (!top.IsNull("schedule")) {
    if (auto v = top.String("schedule", true)) dag->schedule = *v;
  }
  if (auto v = top.String("timezone", true)) dag->timezone = *v;
  std::optional<TimeZone> zone;
  if (auto found = TimeZone::Find(dag->timezone); found.ok()) {
    zone = *found;
  } else {
    top.FieldError("timezone", found.status().message());
  }
  for (auto [field, target] :
       {std::pair{"start_date", &dag->start_date}, std::pair{"end_date", &dag->end_date}}) {
    if (top.IsNull(field)) continue;
    if (auto text = top.String(field)) {
      *target = ParseDagDate(*text, zone ? &*zone : nullptr);
      if (!*target) {
        top.FieldError(field, "invalid timestamp " + Quoted(*text) +
                                  " (use RFC 3339, e.g. 2026-01-01T00:00:00Z)");
      }
    }
  }
  if (dag->start_date && dag->end_date && *dag->end_date < *dag->start_date) {
    top.FieldError("end_date", "is before start_date");
  }
  if (auto v = top.String("timetable", true)) {
    if (auto mode = ParseTimetableMode(*v)) {
      dag->timetable_mode = *mode;
    } else {
      top.FieldError("timetable", "expected 'trigger' or 'data_interval', got " + Quoted(*v));
    }
  }
  if (zone) {
    auto timetable = Timetable::Make(dag->schedule, *zone, dag->timetable_mode);
    if (timetable.ok()) {
      dag->timetable = *timetable;
    } else {
      top.FieldError("schedule", timetable.status().message());
    }
  }
  if (auto v = top.Bool("catchup")) dag->catchup = *v;
  if (auto v = top.Bool("is_paused_upon_creation")) dag->is_paused_upon_creation = *v;
  if (auto v = top.Int("max_active_runs", 1)) dag->max_active_runs = *v;
  if (auto v = top.Int("max_active_tasks", 1)) dag->max_active_tasks = *v;
  if (auto v = top.DurationField("dagrun_timeout", true)) dag->dagrun_timeout = *v;
  if (auto v = top.StringArray("tags")) dag->tags = *v;
  if (auto v = top.Object("params")) dag->params = std::move(*v);
  if (!top.IsNull("doc_md")) {
    if (auto v = top.String("doc_md")) dag->doc_md = *v;
  }

  std::vector<std::string> owners;
  if (auto owner = top.String("owner", true)) AppendUnique(owners, *owner);
  if (const Json* value = top.Get("owners"); value != nullptr && value->is_string()) {
    if (auto owner = top.String("owners", true)) AppendUnique(owners, *owner);
  } else if (auto list = top.StringArray("owners")) {
    for (const auto& owner : *list) AppendUnique(owners, owner);
  }

  TaskSpec defaults;
  std::string default_owner;
  if (auto default_args = top.Object("default_args")) {
    FieldReader reader(*default_args, "default_args", {"default_args"}, errors);
    for (const auto& [key, value] : default_args->items()) {
      if (kDefaultableFields.contains(key)) continue;
      if (kCommonTaskFields.contains(key) || OperatorOfField(key) != nullptr) {
        reader.PlaceError("field " + Quoted(key) + " cannot be defaulted (set it on each task)",
                          key);
      } else {
        reader.PlaceError("unknown field " + Quoted(key), key);
      }
    }
    ReadDefaultableFields(reader, defaults, default_owner);
  }

  std::vector<TaskDraft> drafts;
  const Json* tasks = top.Get("tasks");
  if (tasks == nullptr) {
    errors.Add("missing required field 'tasks'", {"tasks"});
  } else if (!tasks->is_array() || tasks->empty()) {
    top.FieldError("tasks", "expected a non-empty array of tasks, got " + ShowJson(*tasks));
  } else {
    drafts.reserve(tasks->size());
    for (size_t i = 0; i < tasks->size(); ++i) {
      drafts.push_back(ReadTask((*tasks)[i], i + 1, defaults, default_owner, options, errors));
    }
  }

  // Ids → first position in the file; later duplicates are errors and never referenced.
  std::unordered_map<std::string, size_t> first_index;
  for (size_t i = 0; i < drafts.size(); ++i) {
    if (!drafts[i].has_id) continue;
    auto [it, inserted] = first_index.emplace(drafts[i].spec.task_id, i);
    if (!inserted) {
      errors.Add("duplicate task id " + Quoted(drafts[i].spec.task_id) + " (tasks " +
                     std::to_string(it->second + 1) + " and " + std::to_string(i + 1) + ")",
                 {"tasks", i, "task_id"});
    }
  }

  // Edges u → v in file positions; `downstream` lists declare the same edges from the other end.
  graph::Adjacency edges(drafts.size());
  std::vector<std::vector<std::string>> upstream_ids(drafts.size());
  for (size_t v = 0; v < drafts.size(); ++v) {
    for (const auto& id : drafts[v].spec.upstream) {
      auto it = first_index.find(id);
      if (it == first_index.end()) {
        errors.Add(drafts[v].place + ": unknown upstream " + Quoted(id), {"tasks", v, "upstream"});
        continue;
      }
      edges[it->second].push_back(v);
      AppendUnique(upstream_ids[v], id);
    }
  }
  for (size_t u = 0; u < drafts.size(); ++u) {
    for (const auto& id : drafts[u].downstream) {
      auto it = first_index.find(id);
      if (it == first_index.end()) {
        errors.Add(drafts[u].place + ": unknown downstream " + Quoted(id),
                   {"tasks", u, "downstream"});
        continue;
      }
      edges[u].push_back(it->second);
      AppendUnique(upstream_ids[it->second], drafts[u].spec.task_id);
    }
  }
  for (auto& targets : edges) {
    std::sort(targets.begin(), targets.end());
    targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  }

  auto cycles = graph::FindCycles(edges);
  for (size_t i = 0; i < cycles.size() && i < kMaxCyclesReported; ++i) {
    errors.Add(CycleText(cycles[i], drafts), {"tasks"});
  }
  if (cycles.size() > kMaxCyclesReported) {
    errors.Add("... and " + std::to_string(cycles.size() - kMaxCyclesReported) + " more cycles",
               {"tasks"});
  }

  if (!errors.empty()) return result;

  std::vector<size_t> order = graph::StableTopologicalOrder(edges);
  std::vector<size_t> position_of(drafts.size());
  for (size_t i = 0; i < order.size(); ++i) position_of[order[i]] = i;

  dag->tasks.reserve(order.size());
  dag->upstream.assign(order.size(), {});
  dag->downstream.assign(order.size(), {});
  for (size_t i = 0; i < order.size(); ++i) {
    TaskDraft& draft = drafts[order[i]];
    draft.spec.upstream = std::move(upstream_ids[order[i]]);
    dag->index_.emplace(draft.spec.task_id, i);
    dag->tasks.push_back(std::move(draft.spec));
    for (size_t target : edges[order[i]]) {
      dag->downstream[i].push_back(position_of[target]);
      dag->upstream[position_of[target]].push_back(i);
    }
  }
  for (auto& list : dag->downstream) std::sort(list.begin(), list.end());
  for (auto& list : dag->upstream) std::sort(list.begin(), list.end());

  // Airflow's DAG owners: stated ones, else the tasks' owners, else its default owner.
  if (owners.empty()) {
    for (const auto& draft : drafts) {
      if (!draft.owner.empty()) AppendUnique(owners, draft.owner);
    }
  }
  if (owners.empty()) owners.push_back("airflow");
  dag->owners = std::move(owners);

  dag->document = doc.dump(-1, ' ', false, Json::error_handler_t::replace);
  dag->hash = HexDigest(dag->document);
  result.dag = std::move(dag);
  return result;
}

// nlohmann reports a byte offset; people want line and column.
std::string JsonSyntaxError(std::string_view text, const Json::parse_error& e) {
  size_t offset = e.byte == 0 ? 0 : std::min<size_t>(e.byte - 1, text.size());
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  size_t column = offset - line_start + 1;
  // Keep nlohmann's description ("syntax error while parsing value - ...") but not its prefix.
  std::string what = e.what();
  size_t column_at = what.find("column ");
  size_t detail_at = what.find(": ", column_at == std::string::npos ? 0 : column_at);
  std::string detail = detail_at == std::string::npos ? what : what.substr(detail_at + 2);
  return "invalid JSON at line " + std::to_string(line) + " column " + std::to_string(column) +
         ": " + detail;
}

}  // namespace

ParseResult ParseDag(const Json& document, const ParseOptions& options) {
  try {
    return Validate(document, options);
  } catch (const std::exception& e) {
    // Validation reads only; anything thrown here is a bug, reported rather than propagated.
    ParseResult result;
    ErrorList(result).Add(std::string("internal error while validating the DAG: ") + e.what());
    return result;
  }
}

ParseResult ParseDag(std::string_view json_text, const ParseOptions& options) {
  ParseResult result;
  Json document;
  // nlohmann keeps the last of two equal keys; a repeated key is almost always a mistake.
  std::vector<std::set<std::string>> keys_per_object;
  std::vector<std::string> duplicate_keys;
  auto on_event = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      keys_per_object.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      if (!keys_per_object.empty()) keys_per_object.pop_back();
    } else if (event == Json::parse_event_t::key && !keys_per_object.empty() &&
               parsed.is_string()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!keys_per_object.back().insert(key).second) {
        duplicate_keys.push_back("duplicate key " + Quoted(key) + " in one object");
      }
    }
    return true;
  };
  try {
    document = Json::parse(json_text.begin(), json_text.end(), on_event);
  } catch (const Json::parse_error& e) {
    ErrorList(result).Add(JsonSyntaxError(json_text, e));
    return result;
  } catch (const std::exception& e) {
    ErrorList(result).Add(std::string("invalid JSON: ") + e.what());
    return result;
  }
  result = ParseDag(document, options);
  if (!duplicate_keys.empty()) {
    result.dag = nullptr;
    // Where a repeated key sits is not known here: the paths name the whole document.
    result.errors.insert(result.errors.begin(), duplicate_keys.begin(), duplicate_keys.end());
    result.error_paths.insert(result.error_paths.begin(), duplicate_keys.size(), Json::array());
  }
  return result;
}

namespace {

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string FileKind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISDIR(mode)) return "a directory";
  return "not a regular file";
}

Status CheckRegularFile(const struct stat& st) {
  if (!S_ISREG(st.st_mode)) {
    return Status::FailedPrecondition("cannot read the file: it is " + FileKind(st.st_mode) +
                                      ", and only regular files are read");
  }
  if (static_cast<std::uintmax_t>(st.st_size) > kMaxDagFileBytes) {
    return Status::FailedPrecondition("the file is larger than the limit of " +
                                      std::to_string(kMaxDagFileBytes >> 20) + " MiB");
  }
  return Status::Ok();
}

class FileCloser {
 public:
  explicit FileCloser(int fd) : fd_(fd) {}
  ~FileCloser() { ::close(fd_); }
  FileCloser(const FileCloser&) = delete;
  FileCloser& operator=(const FileCloser&) = delete;

 private:
  int fd_;
};

}  // namespace

StatusOr<std::string> ReadDagFile(const std::filesystem::path& path,
                                  const std::filesystem::path* confine_to) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    std::string message = "cannot read the file: " + ErrnoText(err);
    if (err == ENOENT) return Status::NotFound(message);
    return Status::Unavailable(message);
  }
  // Checked before opening: opening a FIFO blocks until a writer appears, and opening a device
  // can have effects of its own.
  if (Status s = CheckRegularFile(st); !s.ok()) return s;
  // The path may have been replaced since: O_NONBLOCK keeps a FIFO put there from blocking the
  // open, and the descriptor is checked again.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return Status::Unavailable("cannot read the file: " + ErrnoText(errno));
  FileCloser closer(fd);
  if (::fstat(fd, &st) != 0)
    return Status::Unavailable("cannot read the file: " + ErrnoText(errno));
  if (Status s = CheckRegularFile(st); !s.ok()) return s;
  if (confine_to != nullptr) {
    std::error_code ec;
    const auto opened = std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec);
    const auto folder = std::filesystem::canonical(*confine_to, ec);
    if (ec || opened.parent_path() != folder) {
      return Status::FailedPrecondition(
          "it leads outside the DAGs folder (a symbolic link); only files inside it are read");
    }
  }
  // Read at most one byte past the limit: a file that grew since fstat is still caught.
  std::string text;
  text.resize(static_cast<size_t>(st.st_size) + 1);
  size_t used = 0;
  while (true) {
    if (used == text.size()) {
      if (used > kMaxDagFileBytes) {
        return Status::FailedPrecondition("the file is larger than the limit of " +
                                          std::to_string(kMaxDagFileBytes >> 20) + " MiB");
      }
      text.resize(std::min<size_t>(text.size() * 2 + 4096, kMaxDagFileBytes + 1));
    }
    const ssize_t n = ::read(fd, text.data() + used, text.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Unavailable("cannot read the file: " + ErrnoText(errno));
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  text.resize(used);
  return text;
}

std::vector<LoadedFile> LoadDagFolder(const std::filesystem::path& folder,
                                      const ParseOptions& options) {
  namespace fs = std::filesystem;
  std::vector<LoadedFile> files;
  std::error_code ec;
  std::vector<fs::path> paths;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    // Directories are skipped; anything else named *.json is loaded or reported (a dangling
    // symlink must show up as an error, not vanish).
    std::error_code type_ec;
    if (it->path().extension() == ".json" && !it->is_directory(type_ec)) {
      paths.push_back(it->path());
    }
  }
  if (ec) {
    files.push_back({folder, nullptr, {"cannot read the dags folder: " + ec.message()}});
    return files;
  }
  std::sort(paths.begin(), paths.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });

  std::map<std::string, fs::path> defined_in;  // dag_id → the file that defined it first
  for (const auto& path : paths) {
    LoadedFile file{path, nullptr, {}};
    auto content = ReadDagFile(path, &folder);
    if (!content.ok()) {
      file.errors.push_back(content.status().message());
    } else {
      ParseResult parsed = ParseDag(std::string_view(*content), options);
      file.dag = std::move(parsed.dag);
      file.errors = std::move(parsed.errors);
    }
    if (file.dag) {
      auto [it, inserted] = defined_in.emplace(file.dag->dag_id, path);
      if (!inserted) {
        file.errors.push_back("DAG " + Quoted(file.dag->dag_id) + " is already defined in " +
                              it->second.string());
        file.dag = nullptr;
      }
    }
    files.push_back(std::move(file));
  }
  return files;
}

}  // namespace dagd::scheduler
