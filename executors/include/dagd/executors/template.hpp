// Rendering of templated task fields (bash_command, env values, transform args).
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

// Renders every string inside `value` (object values and array elements, recursively; keys and
// non-string scalars are kept).
StatusOr<Json> RenderJson(const Json& value, const TemplateContext& ctx);

}  // namespace dagd::executors
