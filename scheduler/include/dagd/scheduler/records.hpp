// Records of run state as the store holds them: DAG rows, runs, task instances, tries, import
// errors, and the queries that list them. Plain values; copy freely.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/states.hpp"
#include "dagd/scheduler/time.hpp"
#include "dagd/scheduler/timetable.hpp"

namespace dagd::scheduler {

// Where a DAG's latest version came from: a file of the DAGs folder, or an upload through the
// API (PUT /api/v2/dags/{dag_id}).
enum class DagSource { kFile, kApi };

// One row of `dag`: what the DAG list shows, denormalised from its latest version.
struct DagRecord {
  std::string dag_id;
  bool is_paused = false;
  bool is_stale = false;  // its file is gone from the dags folder
  std::string fileloc;    // empty for an uploaded DAG
  DagSource source = DagSource::kFile;
  std::optional<TimePoint> last_parsed_time;
  std::string description;
  std::vector<std::string> tags;
  std::vector<std::string> owners;
  std::optional<std::string> schedule;
  int max_active_runs = 16;
  int max_active_tasks = 16;
  int latest_version = 0;
  std::optional<TimePoint> latest_version_created_at;  // none while it has no version
  bool has_import_errors = false;
  std::optional<std::string> timetable_description;  // Airflow's, from the latest version
  // The next scheduled run as the scheduler last planned it (StateStore::SetNextDagRun); none
  // when no run is left to create or the scheduler has not planned this DAG yet.
  std::optional<RunSlot> next_dagrun;
};

// What the scheduler reads to plan a DAG's scheduled runs (StateStore::ListScheduledDags).
struct ScheduledDag {
  DagRecord record;
  // The logical date of its latest scheduled run; none before the first.
  std::optional<TimePoint> last_scheduled_logical_date;
  int active_runs = 0;  // queued and running runs other than backfills
};

struct DagVersionRecord {
  std::string dag_id;
  int version_number = 0;
  std::string hash;
  std::string document;  // empty in listings (StateStore::ListDagVersions)
  TimePoint created_at;
};

// How many runs of one DAG are in each state (dagStats); states without runs count 0.
struct DagRunStats {
  std::string dag_id;
  std::map<RunState, int64_t> counts;
};

struct DagRun {
  int64_t id = 0;  // store key
  std::string dag_id;
  std::string run_id;
  int version_number = 0;  // the dag_version this run is pinned to
  // That version's creation time; read by the API's lookups (GetRun, ListRuns), none elsewhere.
  std::optional<TimePoint> version_created_at;
  RunState state = RunState::kQueued;
  RunType run_type = RunType::kManual;
  std::optional<TimePoint> logical_date;
  std::optional<TimePoint> queued_at;
  std::optional<TimePoint> start_date;
  std::optional<TimePoint> end_date;
  std::optional<TimePoint> data_interval_start;
  std::optional<TimePoint> data_interval_end;
  std::optional<TimePoint> run_after;
  std::optional<TimePoint> last_scheduling_decision;
  Json conf = Json::object();
  std::optional<std::string> note;
  std::string triggered_by = "rest_api";
  std::optional<int64_t> backfill_id;  // the backfill that owns it
};

// The process group a try's command runs in, recorded so that a restarted daemon can stop a try
// that its predecessor left running (kill -9, crash) before it starts the retry.
struct TryProcess {
  int pgid = 0;           // the group id (= the pid of its leader, /bin/bash)
  std::string start_key;  // "<boot id>:<start time in clock ticks>" of the leader: tells the
                          // recorded group from a later one that reuses its id
  bool operator==(const TryProcess&) const = default;
};

struct TaskInstance {
  std::string id;          // uuid, assigned by the store
  int64_t run_id_key = 0;  // DagRun::id
  std::string dag_id;
  std::string run_id;
  std::string task_id;
  int version_number = 0;
  // That version's creation time; read by the API's lookups (GetTaskInstance,
  // ListTaskInstances), none elsewhere.
  std::optional<TimePoint> version_created_at;
  TaskState state = TaskState::kNone;
  int try_number = 0;  // 0 until first queued; each new try increments it
  int max_tries = 0;   // retries (+1 per interrupted try that did not count)
  std::optional<TimePoint> scheduled_when;
  std::optional<TimePoint> queued_when;
  std::optional<TimePoint> start_date;
  std::optional<TimePoint> end_date;
  std::optional<double> duration;          // seconds
  std::optional<TimePoint> next_retry_at;  // up_for_retry: not before this
  std::string hostname;
  std::string unixname;
  std::optional<int> pid;
  std::optional<TryProcess> process;  // running bash tries: the command's process group
  std::optional<int64_t> owner_epoch;  // the scheduler epoch that queued the current try
  std::string operator_name;
  std::string pool = "default_pool";
  int pool_slots = 1;
  int priority_weight = 1;
  std::optional<std::string> note;
};

// One try of a task instance (task_instance_try); written with every transition of that try.
struct TaskTry {
  std::string ti_id;
  std::string dag_id;
  std::string run_id;
  std::string task_id;
  int try_number = 0;
  TaskState state = TaskState::kNone;
  std::optional<TimePoint> queued_when;
  std::optional<TimePoint> start_date;
  std::optional<TimePoint> end_date;
  std::optional<double> duration;
  std::string hostname;
  std::optional<int> pid;
  std::string operator_name;
};

struct ImportError {
  int64_t id = 0;
  std::string filename;
  std::string message;  // all errors of the file, one per line
  TimePoint timestamp;
};

struct XcomEntry {
  std::string key;
  Json value;
};

// --- Queries ------------------------------------------------------------------------------------

struct Page {
  int limit = 50;
  int offset = 0;
  // Field names as the API spells them, "-" prefix for descending. The store rejects unknown
  // names with invalid_argument naming the field.
  std::vector<std::string> order_by;
};

template <typename T>
struct Listing {
  std::vector<T> items;
  int64_t total_entries = 0;
};

struct DagQuery {
  Page page;
  std::vector<std::string> tags;  // any of
  std::string dag_id_pattern;     // SQL LIKE-style substring ("%" wildcards); empty = all
  std::optional<bool> paused;
  bool include_stale = false;
};

// `field op value`, a filter on a time or a number. Field names as the API spells them; each
// query lists the fields it accepts (the store rejects others with invalid_argument).
struct Bound {
  enum class Op { kGt, kGte, kLt, kLte };
  std::string field;
  Op op = Op::kGte;
  std::optional<TimePoint> time;  // exactly one of time and number is set
  std::optional<double> number;
};

struct RunQuery {
  Page page;
  std::string dag_id;                // "~" or empty = all
  std::vector<std::string> dag_ids;  // any of; empty = all
  std::vector<std::string> run_ids;  // any of; empty = all
  std::vector<RunState> states;
  std::vector<RunType> run_types;
  std::vector<int> version_numbers;  // any of; empty = all
  std::string dag_id_pattern;        // SQL LIKE-style substring ("%" wildcards); empty = all
  std::string run_id_pattern;
  // logical_date, run_after, start_date, end_date (times); duration (seconds).
  std::vector<Bound> bounds;
};

struct TaskInstanceQuery {
  Page page;
  std::string dag_id;                // "~" or empty = all
  std::string run_id;                // "~" or empty = all
  std::vector<std::string> dag_ids;  // any of; empty = all
  std::vector<std::string> run_ids;  // any of; empty = all
  std::vector<TaskState> states;
  std::vector<std::string> task_ids;
  std::vector<std::string> pools;    // any of; empty = all
  std::vector<int> try_numbers;      // any of; empty = all
  std::vector<int> version_numbers;  // any of; empty = all
  std::string dag_id_pattern;        // SQL LIKE-style substring ("%" wildcards); empty = all
  std::string run_id_pattern;
  std::vector<Bound> bounds;  // start_date, end_date (times); duration (seconds)
};

struct DagVersionQuery {
  Page page;
  std::string dag_id;  // "~" or empty = all
  std::optional<int> version_number;
};

}  // namespace dagd::scheduler
