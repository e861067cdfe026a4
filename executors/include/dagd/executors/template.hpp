// Rendering of templated task fields (bash_command, env values, transform args).
//
// A bash_command is never rendered as text: see RenderBashCommand, which keeps every templated
// value out of the code bash parses.
//
// Text outside `{{ ... }}` is copied verbatim. Inside, one expression (surrounding spaces ignored):
//   params[.key...]             DAG params, top-level keys overridden by run conf
//   dag_run.conf[.key...]       the run's conf (also `conf[.key...]`)
//   ds, ds_nodash               YYYY-MM-DD / YYYYMMDD of logical_date (of run_after when null)
//   ts                          logical_date (run_after when null) as 2026-01-02T03:04:05+00:00
//   logical_date                RFC 3339; error when the run has none
//   data_interval_start, data_interval_end   RFC 3339; error when the run has none
//   run_id, dag_run.run_id, dag_id, dag.dag_id, task_id, task.task_id, ti.try_number
// Key paths walk JSON objects by key and arrays by index. A string value renders as the string,
// any other JSON as its compact dump. No filters, no statements: anything else is an error.
//
// Errors: invalid_argument with one sentence naming the template and the task, e.g.
// "template '{{ params.nope }}' in task 'x': params has no key 'nope'". Pure; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/status.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::executors {

using Json = scheduler::Json;

struct TemplateContext {
  std::string dag_id;
  std::string run_id;
  std::string task_id;
  int try_number = 1;
  Json params = Json::object();  // already merged with conf (MergeParams)
  Json conf = Json::object();
  std::optional<scheduler::TimePoint> logical_date;
  std::optional<scheduler::TimePoint> run_after;
  std::optional<scheduler::TimePoint> data_interval_start;
  std::optional<scheduler::TimePoint> data_interval_end;
};

// `dag_params` with every top-level key of `conf` (when it is an object) replacing the param of
// the same name. Other conf keys are added too, so `params.x` sees everything the run was given.
Json MergeParams(const Json& dag_params, const Json& conf);

// The context of one try.
TemplateContext MakeTemplateContext(const scheduler::TaskAssignment& assignment);

StatusOr<std::string> RenderTemplate(std::string_view text, const TemplateContext& ctx);

// A bash command whose templated values reach bash only through its environment.
inline constexpr std::string_view kTemplateVariablePrefix = "AIRFLOW_TEMPLATE_";
struct BashTemplate {
  std::string command;  // the text with each `{{ expr }}` replaced by `${AIRFLOW_TEMPLATE_<n>}`
  std::vector<std::pair<std::string, std::string>> variables;  // AIRFLOW_TEMPLATE_<n> → value
};

// Renders a bash_command so that no templated value is ever parsed by the shell: the n-th
// `{{ expr }}` (counting from 1, every occurrence) becomes the parameter expansion
// `${AIRFLOW_TEMPLATE_<n>}` and its rendered value becomes that environment variable. bash
// expands it like any variable: the value is never run as code (no `$(...)`, backticks, `;`,
// quotes or `${...}` inside it take effect). As with any shell variable, write it in double
// quotes ("{{ params.path }}") to keep it one word; unquoted, it is split on spaces and globbed;
// inside single quotes or a quoted here-document it is not expanded at all.
// bash does parse a variable's value where it evaluates it as arithmetic or as a name ($(( )),
// (( )), let, [[ -gt ]], ${!x}): an array subscript there is expanded, so "a[$(id)]" would run
// `id`. A value holding '$' or '`' inside '[...]' (or after an unclosed '[') is refused.
// Errors: those of RenderTemplate, and invalid_argument when a value holds a NUL byte (an
// environment variable cannot) or '$' or '`' inside '[...]'. Pure; thread-safe.
StatusOr<BashTemplate> RenderBashCommand(std::string_view text, const TemplateContext& ctx);

// A bash task's `env` value: rendered as RenderTemplate does, with each templated value checked
// as RenderBashCommand checks it (the command may use the variable anywhere).
StatusOr<std::string> RenderBashValue(std::string_view text, const TemplateContext& ctx);

// Airflow's datetime.isoformat() of a UTC time: 2026-01-02T03:04:05+00:00 (with .ffffff when the
// time has microseconds).
std::string IsoFormat(scheduler::TimePoint t);

// Renders every string inside `value` (object values and array elements, recursively; keys and
// non-string scalars are kept).
StatusOr<Json> RenderJson(const Json& value, const TemplateContext& ctx);

}  // namespace dagd::executors
