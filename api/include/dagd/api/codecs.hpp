// JSON codecs: scheduler records → Airflow 3 public API objects (/api/v2).
//
// Every object carries exactly the fields Airflow's response models have (API.md "Objects");
// nullable fields are present with null, never omitted. Datetimes are RFC 3339 UTC with `Z`,
// durations of task specs are Airflow's TimeDelta objects. Pure functions: no I/O, never throw
// for well-formed records; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/service.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::api {

using Json = nlohmann::json;

// The bundle every DAG of the dags folder belongs to (Airflow's default bundle name).
inline constexpr std::string_view kBundleName = "dags-folder";

// Airflow's class names: bash → "BashOperator", empty → "EmptyOperator",
// transform → "TransformOperator"; anything else is returned unchanged.
std::string OperatorClassName(std::string_view operator_name);

// RFC 3339 text or null.
Json TimeOrNull(const std::optional<scheduler::TimePoint>& t);
// {"__type": "TimeDelta", "days", "seconds", "microseconds"} (Python timedelta normalisation).
Json TimeDeltaToJson(scheduler::Duration d);

// DagVersionResponse. `created_at` is null when the caller does not know it; `id` is a stable
// UUID derived from (dag_id, version_number), since dagd keys versions by number.
Json DagVersionToJson(const std::string& dag_id, int version_number,
                      const std::optional<scheduler::TimePoint>& created_at = std::nullopt);

Json DagToJson(const scheduler::DagRecord& record);                           // DAGResponse
Json DagDetailsToJson(const scheduler::DagDetails& details);                  // DAGDetailsResponse
Json TaskToJson(const scheduler::Dag& dag, const scheduler::TaskSpec& task);  // TaskResponse
Json DagRunToJson(const scheduler::DagRun& run);                              // DAGRunResponse

// TaskInstanceResponse. `run` supplies logical_date and run_after (null when unknown).
Json TaskInstanceToJson(const scheduler::TaskInstance& ti, const scheduler::DagRun* run);
// TaskInstanceHistoryResponse: one try; `ti` supplies what the try row does not hold
// (max_tries, unixname, pool, priority, version).
Json TaskTryToJson(const scheduler::TaskTry& attempt, const scheduler::TaskInstance& ti);
Json ImportErrorToJson(const scheduler::ImportError& error);  // ImportErrorResponse

// TaskInstancesLogResponse: {"content": [{"timestamp"?, "event", ...}], "continuation_token":
// null}. A line that is a JSON object with "event" is passed through; any other line becomes
// {"event": line}. A trailing newline does not make an empty event.
Json LogToJson(std::string_view text);

}  // namespace dagd::api
