// GET /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}
// (README "Task logs"): Airflow's query (full_content, map_index, token) plus dagd's follow.
//
// Without follow: the log from the token's offset (or from the start) as it is now, streamed
// in 64 KiB reads: JSON {"content", "continuation_token"} by default, NDJSON events for Accept
// application/x-ndjson, raw text for text/plain. While the try runs, a JSON or NDJSON answer ends
// after the last complete line, and a continuation token (in the JSON, or in the
// Airflow-Continuation-Token header) names where the next read starts; once the try is over and
// all is read, the token is null / the header absent, as Airflow marks the end of a log.
// full_content=true serves the whole file from its first byte (the token's try is still
// checked). A response serves at most the service's limit (its last bytes, after a note).
//
// follow=true: the same framings, but the body grows as the try writes and ends when the try is
// over and its file drained (JSON: one document whose continuation_token is null). A try that is
// queued is waited for; a try number never queued is 404 as without follow.
//
// 422 for malformed values, 404 for a map_index other than -1 (dagd maps no task, so no such
// task instance exists), 400 for a token not given by this server, for another try, or past the
// log's end. The Service must outlive the
// responses' bodies. Safe from any thread (Router::Handle's rules).
#pragma once

#include <string>

#include "dagd/api/router.hpp"
#include "dagd/scheduler/service.hpp"
#include "validation.hpp"

namespace dagd::api {

struct TryId {
  std::string dag_id;
  std::string run_id;
  std::string task_id;
  int try_number = 0;
};

Response ServeTaskLog(scheduler::Service& service, const StreamOptions& options, const Request& req,
                      const Query& query, const TryId& id);

}  // namespace dagd::api
