// The handlers of GET /api/v2/events and GET /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/wait
// (README "Event stream"): they validate the request, read where the stream starts, and answer
// with a LiveBody driven by an EventCursor / RunWaiter (event_cursor.hpp) that reads the event
// log through the Service and is woken by its change notifications. The Service must outlive
// the responses' bodies. Safe from any thread (Router::Handle's rules).
#pragma once

#include <string>

#include "dagd/api/router.hpp"
#include "dagd/scheduler/service.hpp"
#include "validation.hpp"

namespace dagd::api {

// Query: dag_id, dag_run_id, task_id (filters), since (a seq; default the newest), until
// (terminal; needs dag_id and dag_run_id). Header Last-Event-ID wins over since; Accept
// text/event-stream answers SSE, anything else NDJSON. 422 for malformed values, 404 for an
// unknown DAG or run, 400 for a since ahead of the newest event, 410 with oldest_available for
// one older than the oldest event kept.
Response StreamEvents(scheduler::Service& service, const StreamOptions& options,
                      const Request& req, const Query& query);

// Query: interval (seconds, > 0 and at most kMaxWaitInterval; default 1), result (task ids,
// repeatable). 404 for an unknown run or result task, 422 for malformed values.
Response WaitForRun(scheduler::Service& service, const StreamOptions& options,
                    const std::string& dag_id, const std::string& run_id, const Query& query);

inline constexpr double kMaxWaitInterval = 3600;
inline constexpr size_t kMaxWaitResults = 100;

}  // namespace dagd::api
