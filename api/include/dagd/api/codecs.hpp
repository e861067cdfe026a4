// JSON codecs: scheduler records → Airflow 3 public API objects (/api/v2).
//
// Every object carries exactly the fields Airflow's response models have (API.md "Objects");
// nullable fields are present with null, never omitted. Datetimes are RFC 3339 UTC with `Z`,
// durations of task specs are Airflow's TimeDelta objects. Pure functions: no I/O, never throw
// for well-formed records; safe from any thread. Also the parsing of untrusted JSON and the
// incremental encoding of logs.
#pragma once

#include <cstddef>
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

// DagVersionResponse. `id` is a stable UUID derived from (dag_id, version_number), since dagd
// keys versions by number.
Json DagVersionToJson(const std::string& dag_id, int version_number,
                      scheduler::TimePoint created_at);

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

// Deepest nesting of arrays and objects accepted in any JSON the API parses (bodies, log
// lines). nlohmann parses iteratively, but its dump, copy and comparison recurse: a deeper tree
// would overflow the stack later, so the depth is checked on the bytes before a tree is built.
inline constexpr int kMaxJsonDepth = 64;

// Untrusted JSON parsed: a value, or `error`, a sentence of ours naming the problem (library text
// never appears in it), with the byte offset where it was found when known.
struct ParsedJson {
  std::optional<Json> value;
  std::string error;
  std::optional<size_t> byte;
};
ParsedJson ParseUntrustedJson(std::string_view text, int max_depth = kMaxJsonDepth);

enum class LogFormat {
  kJson,    // TaskInstancesLogResponse: {"content": [event, ...], "continuation_token": ...}
  kNdjson,  // one event object a line
};

// A log's bytes, fed piece by piece, encoded as they come. Each line becomes one event: a line
// that is a JSON object with a string "event" (at most `max_line_bytes` long and kMaxJsonDepth
// deep) passes through, any other line becomes {"event": line} with invalid UTF-8 replaced by
// U+FFFD; "\r\n" ends a line too, and a trailing newline does not make an empty event. Memory stays
// under `max_line_bytes` plus one piece whatever the lines: a longer line is emitted as it comes.
class LogEncoder {
 public:
  explicit LogEncoder(LogFormat format, size_t max_line_bytes = 64 << 10);

  // The encoding of what `bytes` completes (possibly empty).
  std::string Feed(std::string_view bytes);
  // The rest, closing the document (kJson: with `continuation_token`, a string or null); call
  // once, after the last Feed.
  std::string Finish(const Json& continuation_token = nullptr);

 private:
  void Open(std::string& out);
  void BeginItem(std::string& out);
  void EndItem(std::string& out);
  void EndLine(std::string& out);
  void FlushLongLine(std::string& out);

  LogFormat format_;
  size_t max_line_bytes_;
  std::string line_;        // bytes of the current line not emitted yet
  bool long_line_ = false;  // the current line's event is open and emitted as it comes
  bool opened_ = false;     // the document's opening is emitted
  bool first_item_ = true;
};

}  // namespace dagd::api
