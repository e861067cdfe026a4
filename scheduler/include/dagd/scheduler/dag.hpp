// The DAG model: a validated, immutable DAG version as the scheduler uses it.
//
// A Dag is built only by ParseDag (dag_parser.hpp), so every Dag in memory has unique valid ids,
// known operators, resolved upstreams and no cycle. Share it as shared_ptr<const Dag>.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dagd/scheduler/states.hpp"
#include "dagd/scheduler/time.hpp"
#include "dagd/scheduler/timetable.hpp"

namespace dagd::scheduler {

using Json = nlohmann::json;

// Operators the executor understands. Parse rejects any other name.
inline constexpr std::string_view kOperatorTransform = "transform";
inline constexpr std::string_view kOperatorBash = "bash";
inline constexpr std::string_view kOperatorEmpty = "empty";

struct TaskSpec {
  std::string task_id;
  std::string operator_name;               // "transform" | "bash" | "empty"
  std::string job;                         // transform: registered job name
  std::string bash_command;                // bash: command line run by /bin/bash -c (templated)
  Json args = Json::object();              // transform: job arguments (templated strings)
  std::map<std::string, std::string> env;  // bash: extra environment (templated values)
  std::string cwd;                         // bash: working directory ("" = a fresh temporary one)
  // bash: the account the command runs as ("" = the daemon's task account). Accepted only when
  // the daemon's configuration allows that account (ParseOptions::allowed_run_as).
  std::string run_as_user;
  std::vector<std::string> upstream;  // task ids, as written
  TriggerRule trigger_rule = TriggerRule::kAllSuccess;
  int retries = 0;
  Duration retry_delay = std::chrono::seconds(300);
  bool retry_exponential_backoff = false;
  std::optional<Duration> max_retry_delay;
  std::optional<Duration> execution_timeout;
  std::string pool = "default_pool";
  int pool_slots = 1;
  int priority_weight = 1;
  std::string doc;  // optional task documentation ("doc_md")
};

struct Dag {
  std::string dag_id;
  std::string description;
  std::string doc_md;  // optional DAG documentation, served in the DAG details
  std::vector<std::string> tags;
  std::vector<std::string> owners;
  Json params = Json::object();
  std::optional<std::string> schedule;  // as written; null = manual runs only
  std::string timezone = "UTC";         // an IANA name, checked
  // start_date / end_date written without an offset are wall-clock times in `timezone`.
  std::optional<TimePoint> start_date;
  std::optional<TimePoint> end_date;  // no scheduled run with a later logical date
  bool catchup = false;
  TimetableMode timetable_mode = TimetableMode::kTrigger;  // the field "timetable"
  TimetablePtr timetable;  // from schedule, timezone and timetable_mode; always set by ParseDag
  bool is_paused_upon_creation = false;
  int max_active_runs = 16;
  int max_active_tasks = 16;
  std::optional<Duration> dagrun_timeout;

  // Tasks in a topological order (every upstream before its downstreams; ties keep file order).
  std::vector<TaskSpec> tasks;
  // upstream[i] / downstream[i]: indices into tasks.
  std::vector<std::vector<size_t>> upstream;
  std::vector<std::vector<size_t>> downstream;

  std::string document;  // the canonical JSON text of the document (sorted keys)
  std::string hash;      // hex digest of `document`; a changed hash is a new dag_version

  // Index of task_id in tasks, or nullopt.
  std::optional<size_t> IndexOf(std::string_view task_id) const;
  const TaskSpec* Find(std::string_view task_id) const;

  std::unordered_map<std::string, size_t> index_;  // task_id → index; filled by ParseDag
};

using DagPtr = std::shared_ptr<const Dag>;

}  // namespace dagd::scheduler
