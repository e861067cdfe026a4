// The audit log: one entry per write through the API (and per login attempt), served as
// Airflow's eventLogs. Plain values; copy freely. The API decides what an entry holds (api's
// router.hpp says what is recorded and what never is); the store keeps it as given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::scheduler {

struct AuditEntry {
  int64_t id = 0;     // assigned by the store
  TimePoint at;       // when the API answered
  std::string event;  // Airflow's action name: "trigger_dag_run", "patch_dag", "login", ...
  std::optional<std::string> owner;  // the caller's name; none when unauthenticated
  std::string via;  // Principal::via ("password", "token:<name>"); empty when unauthenticated
  std::optional<std::string> dag_id;
  std::optional<std::string> run_id;
  std::optional<std::string> task_id;
  std::optional<int> map_index;
  std::optional<int> try_number;
  std::optional<TimePoint> logical_date;
  std::string method;          // "POST", ...
  std::string path;            // the request's path, without its query string
  int status = 0;              // the HTTP status answered
  std::string remote_address;  // the peer of the TCP connection (no port)
  Json body = Json::object();  // the bounded, redacted summary of the request body
};

// Filters of GET /eventLogs; an empty field (or list) matches every entry.
struct AuditQuery {
  Page page;  // order_by: id, dttm/when, dag_id, task_id, run_id, event, logical_date, owner,
              // extra, event_log_id
  std::optional<std::string> dag_id;
  std::optional<std::string> task_id;
  std::optional<std::string> run_id;
  std::optional<int> map_index;
  std::optional<int> try_number;
  std::optional<std::string> owner;
  std::optional<std::string> event;
  std::vector<std::string> excluded_events;
  std::vector<std::string> included_events;  // any of
  std::optional<TimePoint> before;           // at < before
  std::optional<TimePoint> after;            // at > after
  // SQL LIKE-style substrings ("%" wildcards), as the other listings take them; empty = all.
  std::string dag_id_pattern;
  std::string task_id_pattern;
  std::string run_id_pattern;
  std::string owner_pattern;
  std::string event_pattern;
};

}  // namespace dagd::scheduler
