// PATCH .../dagRuns/{dag_run_id} and PATCH .../taskInstances/{task_id}[/dry_run]: marking runs
// and task instances, and their notes, with Airflow's bodies (DAGRunPatchBody,
// PatchTaskInstanceBody: unknown fields are extra_forbidden) and update_mask.
#include <functional>
#include <limits>
#include <set>
#include <string_view>

#include "dagd/api/codecs.hpp"
#include "dagd/scheduler/states.hpp"
#include "handlers.hpp"
#include "request_text.hpp"
#include "responses.hpp"

namespace dagd::api::marks {

namespace {

using scheduler::RunState;
using scheduler::TaskState;

constexpr size_t kMaxNote = 1000;  // Airflow's maxLength of a note

// The body fields to apply: those the body sets, narrowed to update_mask when one is given. A
// mask entry naming no field of the body's schema is refused (400), never ignored.
using Schema = std::set<std::string, std::less<>>;

std::optional<std::set<std::string>> FieldsToUpdate(const Call& c, const Json& body,
                                                    const Schema& schema, Response& error) {
  std::set<std::string> fields;
  for (const auto& [key, value] : body.items()) fields.insert(key);
  const std::vector<std::string> masks = c.query.All("update_mask");
  if (masks.empty()) return fields;
  std::set<std::string> mask;
  for (const std::string& entry : masks) {
    for (std::string_view f : Split(entry, ',')) {
      if (!schema.contains(f)) {
        error = Detail(
            400, "update_mask names '" + std::string(f) + "', which is not a field of this body");
        return std::nullopt;
      }
      mask.insert(std::string(f));
    }
  }
  std::set<std::string> out;
  for (const std::string& f : fields) {
    if (mask.count(f) != 0) out.insert(f);
  }
  return out;
}

// Characters, as Pydantic counts a string's length (the body is valid UTF-8 once parsed).
size_t Utf8Length(const std::string& text) {
  size_t n = 0;
  for (unsigned char ch : text) n += (ch & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// The note field: a string of at most 1000 characters or null.
std::optional<std::optional<std::string>> Note(const Json& body, Errors& errors) {
  auto it = body.find("note");
  if (it == body.end()) return std::nullopt;
  if (it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) {
    errors.Add("string_type", {"body", "note"}, "Input should be a valid string", *it);
    return std::nullopt;
  }
  const std::string& text = it->get_ref<const std::string&>();
  if (Utf8Length(text) > kMaxNote) {
    errors.Add("string_too_long", {"body", "note"}, "String should have at most 1000 characters",
               *it, {{"max_length", kMaxNote}});
    return std::nullopt;
  }
  return std::optional<std::string>(text);
}

bool Flag(const Json& body, const char* name, Errors& errors) {
  auto it = body.find(name);
  if (it == body.end()) return false;
  if (!it->is_boolean()) {
    errors.Add("bool_type", {"body", name}, "Input should be a valid boolean", *it);
    return false;
  }
  return it->get<bool>();
}

}  // namespace

Response PatchRun(Service& service, const RouterOptions&, const Call& c) {
  Errors errors;
  c.query.CheckSupported({"update_mask"}, errors);
  if (!errors.empty()) return errors.ToResponse();
  Response error;
  auto body = ParseBodyObject(c.req, error);
  if (!body) return error;
  static const Schema kSchema = {"state", "note"};
  ForbidExtraFields(*body, kSchema, errors);
  scheduler::RunPatch patch;
  if (auto it = body->find("state"); it != body->end() && !it->is_null()) {
    const std::optional<RunState> state =
        it->is_string() ? scheduler::ParseRunState(it->get<std::string>()) : std::nullopt;
    if (state != RunState::kQueued && state != RunState::kSuccess && state != RunState::kFailed) {
      errors.Add("enum", {"body", "state"}, "Input should be 'queued', 'success' or 'failed'", *it,
                 {{"expected", "'queued', 'success' or 'failed'"}});
    } else {
      patch.state = state;
    }
  }
  auto note = Note(*body, errors);
  if (!errors.empty()) return errors.ToResponse();
  auto fields = FieldsToUpdate(c, *body, kSchema, error);
  if (!fields) return error;
  if (fields->count("state") == 0) patch.state.reset();
  if (fields->count("note") != 0) patch.note = note;
  auto run = service.PatchRun(c.params[0], c.params[1], patch);
  if (!run.ok()) return ErrorResponse(run.status());
  return JsonResponse(200, DagRunToJson(*run));
}

namespace {

Response PatchTaskInstances(Service& service, const Call& c, bool dry_run) {
  Errors errors;
  c.query.CheckSupported({"update_mask", "map_index"}, errors);
  const int map_index = c.query.Int("map_index", -1, std::numeric_limits<int>::min(), errors);
  if (!errors.empty()) return errors.ToResponse();
  if (map_index != -1) {
    // dagd has no mapped tasks: every task instance's map_index is -1.
    return Detail(404, "The Task Instance with dag_id: '" + c.params[0] + "', dag_run_id: '" +
                           c.params[1] + "', task_id: '" + c.params[2] + "' and map_index: '" +
                           std::to_string(map_index) + "' was not found");
  }
  Response error;
  auto body = ParseBodyObject(c.req, error);
  if (!body) return error;
  static const Schema kSchema = {"new_state",          "note",           "include_upstream",
                                 "include_downstream", "include_future", "include_past"};
  ForbidExtraFields(*body, kSchema, errors);
  scheduler::TaskInstanceMark mark;
  if (auto it = body->find("new_state"); it != body->end() && !it->is_null()) {
    const std::optional<TaskState> state =
        it->is_string() ? scheduler::ParseTaskState(it->get<std::string>()) : std::nullopt;
    if (!it->is_string()) {
      errors.Add("string_type", {"body", "new_state"}, "Input should be a valid string", *it);
    } else if (state != TaskState::kSuccess && state != TaskState::kFailed &&
               state != TaskState::kSkipped) {
      errors.Add("value_error", {"body", "new_state"},
                 "Value error, '" + it->get<std::string>() +
                     "' is not one of ['success', 'failed', 'skipped']",
                 *it, {{"error", Json::object()}});
    } else {
      mark.new_state = state;
    }
  }
  auto note = Note(*body, errors);
  mark.include_upstream = Flag(*body, "include_upstream", errors);
  mark.include_downstream = Flag(*body, "include_downstream", errors);
  for (const char* name : {"include_future", "include_past"}) {
    if (Flag(*body, name, errors)) {
      errors.Add("value_error", {"body", name},
                 std::string("Value error, ") + name +
                     " (task instances of other runs) is not supported by dagd yet",
                 true, {{"error", Json::object()}});
    }
  }
  if (!errors.empty()) return errors.ToResponse();
  auto fields = FieldsToUpdate(c, *body, kSchema, error);
  if (!fields) return error;
  if (fields->count("new_state") == 0) mark.new_state.reset();
  if (fields->count("note") != 0) mark.note = note;
  mark.dry_run = dry_run;
  auto changed = service.PatchTaskInstance(c.params[0], c.params[1], c.params[2], mark);
  if (!changed.ok()) return ErrorResponse(changed.status());
  RunCache runs(service);
  Json out = Json::array();
  for (const auto& ti : *changed) {
    out.push_back(TaskInstanceToJson(ti, runs.Get(ti.dag_id, ti.run_id)));
  }
  const size_t total = out.size();
  return JsonResponse(200, {{"task_instances", std::move(out)}, {"total_entries", total}});
}

}  // namespace

Response PatchTaskInstance(Service& service, const RouterOptions&, const Call& c) {
  return PatchTaskInstances(service, c, false);
}

Response PatchTaskInstanceDryRun(Service& service, const RouterOptions&, const Call& c) {
  return PatchTaskInstances(service, c, true);
}

}  // namespace dagd::api::marks
