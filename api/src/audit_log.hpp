// The audit log's API side: what an entry records about a request, recording it once the
// request is answered, and the two endpoints that serve it as Airflow's eventLogs.
//
// What is recorded of a request body (never a secret): for a JSON object, each of its first 32
// top-level keys with its value when that value is a boolean, a number, null, a string (cut to
// 256 bytes) or an array of at most 20 such scalars, and "***" instead when the value is an
// object or a longer or nested array, or when the key names something secret (password,
// secret, token, key, credential, auth, conf, value, extra, cookie, session, cert, private).
// A DAG run's conf is therefore never stored. A body that is not a JSON object is recorded as
// {"_bytes": <size>}. A summary longer than 4 KiB keeps only the key names. The query string
// is not recorded.
//
// Pure functions except Record, which makes one Service call. Safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dagd/api/router.hpp"
#include "dagd/scheduler/audit.hpp"
#include "dagd/scheduler/service.hpp"
#include "handlers.hpp"

namespace dagd::api::audit {

// The entry for a request to a write route, before the caller and the answer are known: the
// route's `event`, and dag_id, run_id, task_id and try_number from the "{}" segments of
// `pattern` that follow "dags", "dagRuns", "taskInstances" and "tries"/"logs" ("~" = none),
// then from the body's top-level "dag_id", "dag_run_id" and "task_id" strings.
scheduler::AuditEntry ForWrite(std::string_view event, const std::vector<std::string_view>& pattern,
                               const std::vector<std::string>& params, const Request& req,
                               std::string_view path);

// The entry for POST /auth/token; Record names it login or login_failed by the answer.
scheduler::AuditEntry ForLogin(const Request& req, std::string_view path);

// Sets owner and via from the caller, once authentication ran (a 403's caller included).
void SetCaller(scheduler::AuditEntry& entry, const std::optional<scheduler::Principal>& caller);

// Stores `entry` with the answer's status (and, for a 2xx JSON answer describing a run, its
// run id and logical date when the request did not name them): one Service call. A failure is
// logged with the entry's content and changes nothing else. Never throws.
void Record(scheduler::Service& service, scheduler::AuditEntry entry, const Response& answer);

// GET /eventLogs and /eventLogs/{event_log_id}: EventLogCollectionResponse, EventLogResponse.
Response ListEventLogs(scheduler::Service& service, const RouterOptions& options, const Call& c);
Response GetEventLog(scheduler::Service& service, const RouterOptions& options, const Call& c);

}  // namespace dagd::api::audit
