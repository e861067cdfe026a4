#include "dagd/storage/pg_state_store.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "group_commit.hpp"
#include "migrations.hpp"
#include "not_found.hpp"
#include "pg.hpp"
#include "sql_values.hpp"

namespace dagd::storage {

using scheduler::DagRecord;
using scheduler::DagRun;
using scheduler::DagVersionRecord;
using scheduler::ImportError;
using scheduler::Json;
using scheduler::Listing;
using scheduler::Page;
using scheduler::RunState;
using scheduler::TaskInstance;
using scheduler::TaskState;
using scheduler::TaskTry;
using scheduler::TimePoint;
using scheduler::XcomEntry;

namespace {

// Any fixed number, distinct from the migrations lock: held by the one scheduler of a database.
constexpr int64_t kSchedulerLockKey = 0x64616764'73636864;  // "dagdschd"

// --- Values in and out ---------------------------------------------------------------------------
// Times cross the wire as bigint microseconds since the epoch (dagd_us / dagd_ts in the schema):
// exact both ways, no time-zone or text parsing involved.

// JSON text for a parameter. Invalid UTF-8 (from a URL or a job) becomes U+FFFD instead of an
// exception: PostgreSQL would refuse those bytes anyway.
Json Us(const std::optional<TimePoint>& t) {
  if (!t) return nullptr;
  return static_cast<int64_t>(t->time_since_epoch().count());
}

Json Us(TimePoint t) { return static_cast<int64_t>(t.time_since_epoch().count()); }

Json OptText(const std::optional<std::string>& s) {
  if (!s) return nullptr;
  return *s;
}

Json StateJson(TaskState s) {
  if (s == TaskState::kNone) return nullptr;
  return std::string(scheduler::ToString(s));
}

TimePoint TimeOf(const pqxx::field& f) {
  return TimePoint(std::chrono::microseconds(f.as<int64_t>()));
}

std::optional<TimePoint> OptTimeOf(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return TimeOf(f);
}

std::optional<std::string> OptTextOf(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::string>();
}

std::string TextOf(const pqxx::field& f) {
  return f.is_null() ? std::string() : f.as<std::string>();
}

std::vector<std::string> TextArrayOf(const pqxx::field& f) {
  // Selected as to_json(text[]): a JSON array of strings.
  std::vector<std::string> out;
  if (f.is_null()) return out;
  for (const auto& v : Json::parse(f.c_str())) out.push_back(v.get<std::string>());
  return out;
}

// A state the store itself wrote is always valid; anything else is corruption, reported as
// internal by the exception mapping.
RunState RunStateOf(const pqxx::field& f) {
  auto s = scheduler::ParseRunState(f.c_str());
  if (!s) throw std::runtime_error("unknown run state in database: " + f.as<std::string>());
  return *s;
}

scheduler::RunType RunTypeOf(const pqxx::field& f) {
  auto t = scheduler::ParseRunType(f.c_str());
  if (!t) throw std::runtime_error("unknown run type in database: " + f.as<std::string>());
  return *t;
}

TaskState TaskStateOf(const pqxx::field& f) {
  if (f.is_null()) return TaskState::kNone;
  auto s = scheduler::ParseTaskState(f.c_str());
  if (!s) throw std::runtime_error("unknown task state in database: " + f.as<std::string>());
  return *s;
}

// --- Rows ----------------------------------------------------------------------------------------
// Column lists are unqualified so they serve SELECT ... FROM <table> and INSERT ... RETURNING.

// The dag row's next scheduled run (DagRecord::next_dagrun).
std::optional<scheduler::RunSlot> NextDagRunOf(const pqxx::row& r) {
  const std::optional<TimePoint> logical = OptTimeOf(r["next_dagrun"]);
  if (!logical) return std::nullopt;
  scheduler::RunSlot slot;
  slot.logical_date = *logical;
  slot.data_interval_start = OptTimeOf(r["next_dagrun_data_interval_start"]).value_or(*logical);
  slot.data_interval_end = OptTimeOf(r["next_dagrun_data_interval_end"]).value_or(*logical);
  slot.run_after = OptTimeOf(r["next_dagrun_create_after"]).value_or(*logical);
  return slot;
}

constexpr std::string_view kDagColumns =
    "dag_id, is_paused, is_stale, fileloc, source, dagd_us(last_parsed_time) AS last_parsed_time, "
    "description, to_json(tags)::text AS tags, to_json(owners)::text AS owners, schedule, "
    "max_active_runs, max_active_tasks, latest_version, "
    "(SELECT dagd_us(v.created_at) FROM dag_version v WHERE v.dag_id = dag.dag_id "
    "  AND v.version_number = dag.latest_version) AS latest_version_created_at, "
    "EXISTS (SELECT 1 FROM import_error e WHERE e.filename = dag.fileloc) AS has_import_errors, "
    "timetable_description, dagd_us(next_dagrun) AS next_dagrun, "
    "dagd_us(next_dagrun_data_interval_start) AS next_dagrun_data_interval_start, "
    "dagd_us(next_dagrun_data_interval_end) AS next_dagrun_data_interval_end, "
    "dagd_us(next_dagrun_create_after) AS next_dagrun_create_after";

DagRecord DagOf(const pqxx::row& r) {
  DagRecord d;
  d.dag_id = r["dag_id"].as<std::string>();
  d.is_paused = r["is_paused"].as<bool>();
  d.is_stale = r["is_stale"].as<bool>();
  d.fileloc = r["fileloc"].as<std::string>();
  d.source = r["source"].as<std::string>() == "api" ? scheduler::DagSource::kApi
                                                    : scheduler::DagSource::kFile;
  d.last_parsed_time = OptTimeOf(r["last_parsed_time"]);
  d.description = r["description"].as<std::string>();
  d.tags = TextArrayOf(r["tags"]);
  d.owners = TextArrayOf(r["owners"]);
  d.schedule = OptTextOf(r["schedule"]);
  d.max_active_runs = r["max_active_runs"].as<int>();
  d.max_active_tasks = r["max_active_tasks"].as<int>();
  d.latest_version = r["latest_version"].as<int>();
  d.latest_version_created_at = OptTimeOf(r["latest_version_created_at"]);
  d.has_import_errors = r["has_import_errors"].as<bool>();
  d.timetable_description = OptTextOf(r["timetable_description"]);
  d.next_dagrun = NextDagRunOf(r);
  return d;
}

constexpr std::string_view kRunColumns =
    "id, dag_id, run_id, version_number, state, run_type, "
    "dagd_us(logical_date) AS logical_date, dagd_us(queued_at) AS queued_at, "
    "dagd_us(start_date) AS start_date, dagd_us(end_date) AS end_date, "
    "dagd_us(data_interval_start) AS data_interval_start, "
    "dagd_us(data_interval_end) AS data_interval_end, dagd_us(run_after) AS run_after, "
    "dagd_us(last_scheduling_decision) AS last_scheduling_decision, conf::text AS conf, note, "
    "triggered_by, backfill_id";

DagRun RunOf(const pqxx::row& r) {
  DagRun run;
  run.id = r["id"].as<int64_t>();
  run.dag_id = r["dag_id"].as<std::string>();
  run.run_id = r["run_id"].as<std::string>();
  run.version_number = r["version_number"].as<int>();
  run.state = RunStateOf(r["state"]);
  run.run_type = RunTypeOf(r["run_type"]);
  run.logical_date = OptTimeOf(r["logical_date"]);
  run.queued_at = OptTimeOf(r["queued_at"]);
  run.start_date = OptTimeOf(r["start_date"]);
  run.end_date = OptTimeOf(r["end_date"]);
  run.data_interval_start = OptTimeOf(r["data_interval_start"]);
  run.data_interval_end = OptTimeOf(r["data_interval_end"]);
  run.run_after = OptTimeOf(r["run_after"]);
  run.last_scheduling_decision = OptTimeOf(r["last_scheduling_decision"]);
  run.conf = Json::parse(r["conf"].c_str());
  run.note = OptTextOf(r["note"]);
  run.triggered_by = r["triggered_by"].as<std::string>();
  if (!r["backfill_id"].is_null()) run.backfill_id = r["backfill_id"].as<int64_t>();
  return run;
}

// The API's reads of runs and task instances also show their version's creation time.
std::string WithVersionCreatedAt(std::string_view columns, std::string_view table) {
  const std::string t(table);
  return std::string(columns) +
         ", (SELECT dagd_us(v.created_at) FROM dag_version v WHERE v.dag_id = " + t +
         ".dag_id AND v.version_number = " + t + ".version_number) AS version_created_at";
}

DagRun RunWithVersionOf(const pqxx::row& r) {
  DagRun run = RunOf(r);
  run.version_created_at = OptTimeOf(r["version_created_at"]);
  return run;
}

constexpr std::string_view kTaskInstanceColumns =
    "id::text AS id, dag_run_id, dag_id, run_id, task_id, version_number, state, try_number, "
    "max_tries, dagd_us(scheduled_when) AS scheduled_when, dagd_us(queued_when) AS queued_when, "
    "dagd_us(start_date) AS start_date, dagd_us(end_date) AS end_date, duration, "
    "dagd_us(next_retry_at) AS next_retry_at, hostname, unixname, pid, operator, pool, "
    "pool_slots, priority_weight, note, process_pgid, process_start_key, owner_epoch";

TaskInstance TaskInstanceOf(const pqxx::row& r) {
  TaskInstance ti;
  ti.id = r["id"].as<std::string>();
  ti.run_id_key = r["dag_run_id"].as<int64_t>();
  ti.dag_id = r["dag_id"].as<std::string>();
  ti.run_id = r["run_id"].as<std::string>();
  ti.task_id = r["task_id"].as<std::string>();
  ti.version_number = r["version_number"].as<int>();
  ti.state = TaskStateOf(r["state"]);
  ti.try_number = r["try_number"].as<int>();
  ti.max_tries = r["max_tries"].as<int>();
  ti.scheduled_when = OptTimeOf(r["scheduled_when"]);
  ti.queued_when = OptTimeOf(r["queued_when"]);
  ti.start_date = OptTimeOf(r["start_date"]);
  ti.end_date = OptTimeOf(r["end_date"]);
  if (!r["duration"].is_null()) ti.duration = r["duration"].as<double>();
  ti.next_retry_at = OptTimeOf(r["next_retry_at"]);
  ti.hostname = r["hostname"].as<std::string>();
  ti.unixname = r["unixname"].as<std::string>();
  if (!r["pid"].is_null()) ti.pid = r["pid"].as<int>();
  ti.operator_name = r["operator"].as<std::string>();
  ti.pool = r["pool"].as<std::string>();
  ti.pool_slots = r["pool_slots"].as<int>();
  ti.priority_weight = r["priority_weight"].as<int>();
  ti.note = OptTextOf(r["note"]);
  if (!r["process_pgid"].is_null()) {
    ti.process = scheduler::TryProcess{r["process_pgid"].as<int>(), TextOf(r["process_start_key"])};
  }
  if (!r["owner_epoch"].is_null()) ti.owner_epoch = r["owner_epoch"].as<int64_t>();
  return ti;
}

TaskInstance TaskInstanceWithVersionOf(const pqxx::row& r) {
  TaskInstance ti = TaskInstanceOf(r);
  ti.version_created_at = OptTimeOf(r["version_created_at"]);
  return ti;
}

// The columns of a task instance, as one element of a JSON batch (CreateRun, dagd_apply).
Json TaskInstanceJson(const TaskInstance& ti) {
  return Json{{"task_id", ti.task_id},
              {"version_number", ti.version_number},
              {"state", StateJson(ti.state)},
              {"try_number", ti.try_number},
              {"max_tries", ti.max_tries},
              {"scheduled_when", Us(ti.scheduled_when)},
              {"queued_when", Us(ti.queued_when)},
              {"start_date", Us(ti.start_date)},
              {"end_date", Us(ti.end_date)},
              {"duration", ti.duration ? Json(*ti.duration) : Json(nullptr)},
              {"next_retry_at", Us(ti.next_retry_at)},
              {"hostname", ti.hostname},
              {"unixname", ti.unixname},
              {"pid", ti.pid ? Json(*ti.pid) : Json(nullptr)},
              {"operator", ti.operator_name},
              {"pool", ti.pool},
              {"pool_slots", ti.pool_slots},
              {"priority_weight", ti.priority_weight},
              {"note", OptText(ti.note)},
              {"process_pgid", ti.process ? Json(ti.process->pgid) : Json(nullptr)},
              {"process_start_key", ti.process ? Json(ti.process->start_key) : Json(nullptr)},
              {"owner_epoch", ti.owner_epoch ? Json(*ti.owner_epoch) : Json(nullptr)}};
}

// The record definition matching TaskInstanceJson, for json_to_recordset(...) AS x(<this>).
constexpr std::string_view kTaskInstanceRecord =
    "task_id text, version_number integer, state text, try_number integer, max_tries integer, "
    "scheduled_when bigint, queued_when bigint, start_date bigint, end_date bigint, "
    "duration double precision, next_retry_at bigint, hostname text, unixname text, pid integer, "
    "operator text, pool text, pool_slots integer, priority_weight integer, note text, "
    "process_pgid integer, process_start_key text, owner_epoch bigint";

// Selected by the event readers; decoded by EventOf.
constexpr std::string_view kEventColumns =
    "seq, dagd_us(at) AS at, kind, run_key, dag_id, run_id, task_id, ti_id::text AS ti_id, "
    "try_number, state, origin, payload::text AS payload";

scheduler::EventRecord EventOf(const pqxx::row& row) {
  scheduler::EventRecord e;
  e.seq = row["seq"].as<int64_t>();
  e.at = TimeOf(row["at"]);
  e.kind = row["kind"].as<std::string>();
  if (!row["run_key"].is_null()) e.run_key = row["run_key"].as<int64_t>();
  e.dag_id = row["dag_id"].as<std::string>();
  e.run_id = row["run_id"].as<std::string>();
  e.task_id = TextOf(row["task_id"]);
  e.ti_id = TextOf(row["ti_id"]);
  if (!row["try_number"].is_null()) e.try_number = row["try_number"].as<int>();
  e.state = TextOf(row["state"]);
  if (!row["origin"].is_null()) e.origin = row["origin"].as<int64_t>();
  e.payload = Json::parse(row["payload"].c_str());
  return e;
}

// --- Queries -------------------------------------------------------------------------------------

// Positional parameters of a query built at run time; every value is non-null text.
class Params {
 public:
  std::string Add(std::string value) {
    values_.push_back(std::move(value));
    return "$" + std::to_string(values_.size());
  }
  std::string AddJsonArray(const Json& array) { return Add(Dump(array)); }
  const std::vector<std::string>& values() const { return values_; }

 private:
  std::vector<std::string> values_;
};

// A query built per request (a listing's filters, order and page): planned for its own values,
// unlike the session's generic plans (Connect in pg.cpp).
pqxx::result Exec(pqxx::work& tx, const std::string& sql, const Params& params) {
  tx.exec("SET LOCAL plan_cache_mode = auto");
  return tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params.values()));
}

std::string Where(const std::vector<std::string>& conditions) {
  if (conditions.empty()) return "";
  std::string out = " WHERE ";
  for (size_t i = 0; i < conditions.size(); ++i) {
    if (i > 0) out += " AND ";
    out += "(" + conditions[i] + ")";
  }
  return out;
}

using OrderFields = std::map<std::string_view, std::string_view>;  // API name → SQL expression

// "ORDER BY ..." from API field names ("-" prefix: descending), then `tiebreak` so pages are
// stable. Unknown names are the caller's error, worded as Airflow words it.
StatusOr<std::string> OrderBy(const std::vector<std::string>& order_by, const OrderFields& fields,
                              std::string_view default_order, std::string_view tiebreak) {
  std::string out;
  for (const std::string& item : order_by) {
    if (item.empty()) continue;
    const bool desc = item[0] == '-';
    const std::string name = desc ? item.substr(1) : item;
    auto it = fields.find(name);
    if (it == fields.end()) {
      return Status::InvalidArgument("Ordering with '" + name +
                                     "' is disallowed or the attribute does not exist on the "
                                     "model");
    }
    out += out.empty() ? " ORDER BY " : ", ";
    out += std::string(it->second) + (desc ? " DESC" : " ASC");
  }
  if (out.empty()) out = " ORDER BY " + std::string(default_order);
  out += ", " + std::string(tiebreak);
  return out;
}

std::string LimitOffset(const Page& page, Params& params) {
  return " LIMIT " + params.Add(std::to_string(std::max(page.limit, 0))) + " OFFSET " +
         params.Add(std::to_string(std::max(page.offset, 0)));
}

// A time parameter, as the timestamptz it stands for.
std::string TimeParam(TimePoint t, Params& params) {
  return "dagd_ts(" + params.Add(std::to_string(t.time_since_epoch().count())) + "::bigint)";
}

// What a Bound's field is in SQL: an expression, and whether it is a time (else a number).
struct BoundColumn {
  std::string_view sql;
  bool time;
};
using BoundFields = std::map<std::string_view, BoundColumn, std::less<>>;

// Adds one condition per bound to `where`; invalid_argument for a field not in `fields`.
Status AddBounds(const std::vector<scheduler::Bound>& bounds, const BoundFields& fields,
                 Params& params, std::vector<std::string>& where) {
  for (const scheduler::Bound& b : bounds) {
    auto it = fields.find(b.field);
    if (it == fields.end() || it->second.time != b.time.has_value()) {
      return Status::InvalidArgument("Filtering on '" + b.field + "' is not supported here");
    }
    std::string_view op = ">=";
    switch (b.op) {
      case scheduler::Bound::Op::kGt:
        op = ">";
        break;
      case scheduler::Bound::Op::kGte:
        op = ">=";
        break;
      case scheduler::Bound::Op::kLt:
        op = "<";
        break;
      case scheduler::Bound::Op::kLte:
        op = "<=";
        break;
    }
    const std::string value =
        b.time ? TimeParam(*b.time, params)
               : params.Add(Json(b.number.value_or(0)).dump()) + "::double precision";
    where.push_back(std::string(it->second.sql) + " " + std::string(op) + " " + value);
  }
  return Status::Ok();
}

// `column = value` when there is a value: a text or an integer.
template <typename T>
void AddEquals(std::string_view column, const std::optional<T>& value, Params& params,
               std::vector<std::string>& where) {
  if (!value) return;
  if constexpr (std::is_same_v<T, std::string>) {
    where.push_back(std::string(column) + " = " + params.Add(*value));
  } else {
    where.push_back(std::string(column) + " = " + params.Add(std::to_string(*value)) + "::integer");
  }
}

// `column IN (values)` (`NOT IN` with `none_of`) for a non-empty list of texts or integers.
template <typename T>
void AddAnyOf(std::string_view column, const std::vector<T>& values, Params& params,
              std::vector<std::string>& where, bool none_of = false) {
  if (values.empty()) return;
  constexpr bool kText = std::is_same_v<T, std::string>;
  where.push_back(std::string(column) + (none_of ? " NOT IN" : " IN") +
                  " (SELECT json_array_elements_text(" + params.AddJsonArray(Json(values)) +
                  "::json)" + (kText ? "" : "::integer") + ")");
}

void AddPattern(std::string_view column, const std::string& pattern, Params& params,
                std::vector<std::string>& where) {
  if (pattern.empty()) return;
  where.push_back(std::string(column) + " ILIKE '%' || " + params.Add(pattern) + " || '%'");
}

// One page of `columns FROM from_where order`, with total_entries from count(*) OVER (), or from
// a count query when the page itself is empty but rows may exist before it.
template <typename T, typename RowFn>
Listing<T> ListPage(pqxx::work& tx, std::string_view columns, const std::string& from_where,
                    const std::string& order, const Page& page, Params params, RowFn row_fn) {
  Params counted = params;
  const std::string sql = "SELECT " + std::string(columns) + ", count(*) OVER () AS total_entries" +
                          from_where + order + LimitOffset(page, params);
  const pqxx::result rows = Exec(tx, sql, params);
  Listing<T> listing;
  listing.items.reserve(rows.size());
  for (const auto& row : rows) listing.items.push_back(row_fn(row));
  if (!rows.empty()) {
    listing.total_entries = rows[0]["total_entries"].as<int64_t>();
  } else if (page.offset > 0 || page.limit <= 0) {
    listing.total_entries = Exec(tx, "SELECT count(*)" + from_where, counted)[0][0].as<int64_t>();
  }
  return listing;
}

bool IsAll(const std::string& id) { return id.empty() || id == "~"; }

// A task-instance id as the store issues it (uuid text). Checked before it reaches SQL, so a
// malformed id from a URL is "not found" rather than a database error.
bool LooksLikeUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

// Names of the prepared statements.
constexpr const char* kGetDag = "dagd_get_dag";
constexpr const char* kCreateRuns = "dagd_create_runs";
constexpr const char* kLoadRuns = "dagd_load_runs";
constexpr const char* kLoadRunTaskInstances = "dagd_load_run_task_instances";
constexpr const char* kApply = "dagd_apply";
constexpr const char* kReadOtherEvents = "dagd_read_other_events";

// The hot statements (name, SQL), planned once per connection; defined with CreateRunsSql.
std::vector<std::pair<std::string, std::string>> PreparedStatements();

}  // namespace

std::vector<TaskInstance> pg::TaskInstancesIn(pqxx::work& tx, const std::string& id_array) {
  const pqxx::result r = tx.exec(
      "SELECT " + WithVersionCreatedAt(kTaskInstanceColumns, "task_instance") +
      " FROM task_instance WHERE id = ANY(" + id_array + ") ORDER BY dag_id, dag_run_id, task_id");
  std::vector<TaskInstance> out;
  out.reserve(r.size());
  for (const auto& row : r) out.push_back(TaskInstanceWithVersionOf(row));
  return out;
}

// --- Lifecycle -----------------------------------------------------------------------------------

// The scheduler lock's connection lives outside the pool: the pool discards and reopens
// connections on errors, and closing this one would silently release the lock.
struct PgStateStore::SchedulerLock {
  std::mutex mu;                           // guards conn and the writes of epoch
  std::unique_ptr<pqxx::connection> conn;  // open ⇔ (as far as we know) the lock is held
  std::atomic<int64_t> epoch{0};           // 0: none yet; read by Apply without mu
};

// The LISTEN side of Subscribe: one connection on one thread, replaced (with backoff) when lost,
// whose notifications go to every subscription.
class PgStateStore::Listener {
 public:
  explicit Listener(PgOptions options) : options_(std::move(options)) {}
  ~Listener() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    receiver_.reset();  // before the connection it listens on
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Connects and listens, then starts the thread.
  Status Start() {
    try {
      Connect();
    } catch (...) {
      receiver_.reset();
      conn_.reset();
      return pg::MapCurrentException();
    }
    thread_ = std::thread([this] { Loop(); });
    return Status::Ok();
  }

  void Add(SubscriptionId id, ChangeCallback on_change) {
    std::lock_guard guard(callbacks_mu_);
    callbacks_.emplace(id, std::move(on_change));
  }

  // Returns once no call of `id` is in progress (calls run under callbacks_mu_); true when no
  // subscription is left.
  bool Remove(SubscriptionId id) {
    std::lock_guard guard(callbacks_mu_);
    callbacks_.erase(id);
    return callbacks_.empty();
  }

 private:
  class Receiver final : public pqxx::notification_receiver {
   public:
    Receiver(pqxx::connection_base& conn, Listener& listener)
        : pqxx::notification_receiver(conn, "dagd_change"), listener_(listener) {}
    void operator()(const std::string& payload, int) override {
      std::optional<int64_t> origin;
      if (!payload.empty()) {
        char* end = nullptr;
        const long long v = std::strtoll(payload.c_str(), &end, 10);
        if (end != nullptr && *end == '\0') origin = v;
      }
      listener_.Notify(origin);
    }

   private:
    Listener& listener_;
  };

  void Notify(std::optional<int64_t> origin) {
    std::lock_guard guard(callbacks_mu_);
    for (const auto& [id, on_change] : callbacks_) on_change(origin);
  }

  void Connect() {
    conn_ = pg::Connect(options_, "dagd-listener");
    receiver_ = std::make_unique<Receiver>(*conn_, *this);  // sends LISTEN
  }

  void Loop() {
    constexpr auto kMinBackoff = std::chrono::milliseconds(100);
    constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);
    auto backoff = kMinBackoff;
    while (!stop_) {
      if (!conn_) {
        try {
          Connect();
        } catch (...) {
          receiver_.reset();
          conn_.reset();
          // Sleep in short steps so that Unsubscribe is not held up by the backoff.
          const auto until = std::chrono::steady_clock::now() + backoff;
          while (!stop_ && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
          backoff = std::min(backoff * 2, kMaxBackoff);
          continue;
        }
        backoff = kMinBackoff;
        Notify(std::nullopt);  // whatever happened while nobody listened
        continue;
      }
      bool lost = false;
      try {
        // A short wait, so that stop_ is seen quickly.
        conn_->await_notification(0, 50000);
        lost = !conn_->is_open();
      } catch (...) {
        lost = true;
      }
      if (lost) {
        receiver_.reset();
        conn_.reset();
      }
    }
  }

  const PgOptions options_;
  std::atomic<bool> stop_{false};
  // Guards callbacks_; held during every call, so that Remove waits for a call in progress.
  std::mutex callbacks_mu_;
  std::map<SubscriptionId, ChangeCallback> callbacks_;
  // Used by Start, then only by the thread.
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<Receiver> receiver_;
  std::thread thread_;
};

PgStateStore::PgStateStore(PgOptions options, std::unique_ptr<pg::Pool> pool)
    : options_(std::move(options)),
      pool_(std::move(pool)),
      run_commits_(std::make_unique<pg::GroupCommit<NewRun, DagRun>>(
          pg::GroupCommit<NewRun, DagRun>::Limits{
              static_cast<size_t>(std::max(options_.create_run_group_max_runs, 1)),
              static_cast<size_t>(std::max(options_.create_run_group_max_task_instances, 0))},
          [this](const std::vector<NewRun*>& group) {
            const auto began = std::chrono::steady_clock::now();
            auto results = WriteRuns(group);
            if (run_commit_seconds_ != nullptr) {
              run_commit_seconds_->Observe(
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - began)
                      .count());
            }
            return results;
          })),
      scheduler_lock_(std::make_unique<SchedulerLock>()) {
  if (options_.metrics != nullptr) RegisterMetrics(*options_.metrics);
}

PgStateStore::~PgStateStore() {
  listener_.reset();  // joins its thread: no call of a subscription outlives the store
  // Release explicitly: the server frees a closed session's locks only when its backend has
  // exited, a moment after the client hangs up; a successor started right after this store is
  // destroyed should find the lock free.
  std::lock_guard guard(scheduler_lock_->mu);
  if (!scheduler_lock_->conn) return;
  try {
    pqxx::nontransaction tx(*scheduler_lock_->conn);
    tx.exec("SELECT pg_advisory_unlock_all()");
  } catch (...) {
    // The connection is gone, and the lock with it.
  }
}

StatusOr<std::unique_ptr<PgStateStore>> PgStateStore::Open(const PgOptions& options) {
  auto pool = std::make_unique<pg::Pool>(options, PreparedStatements());
  Status migrated = pool->WithConnection(
      [](pqxx::connection_base& conn) { ApplyMigrations(conn, EmbeddedMigrations()); });
  if (!migrated.ok()) return migrated;
  return std::unique_ptr<PgStateStore>(new PgStateStore(options, std::move(pool)));
}

Status PgStateStore::Ping() {
  return pool_->Run([](pqxx::work& tx) -> Status {
    tx.exec("SELECT 1");
    return Status::Ok();
  });
}

std::optional<int64_t> PgStateStore::SchedulerEpoch() const {
  const int64_t epoch = scheduler_lock_->epoch.load();
  if (epoch == 0) return std::nullopt;
  return epoch;
}

Status PgStateStore::AcquireSchedulerLock() {
  std::lock_guard guard(scheduler_lock_->mu);
  auto& conn = scheduler_lock_->conn;
  if (conn) {
    // Held as long as its session lives.
    try {
      pqxx::nontransaction tx(*conn);
      tx.exec("SELECT 1");
      return Status::Ok();
    } catch (...) {
      conn.reset();
      Status status = pg::MapCurrentException();
      if (status.code() != StatusCode::kUnavailable) return status;
    }
  }
  const int64_t epoch = scheduler_lock_->epoch.load();
  try {
    conn = pg::Connect(options_, "dagd-scheduler");
    pqxx::nontransaction tx(*conn);
    if (!tx.exec_params1("SELECT pg_try_advisory_lock($1)", kSchedulerLockKey)[0].as<bool>()) {
      std::string holder;
      const pqxx::result found = tx.exec_params(
          "SELECT a.pid, a.application_name, host(a.client_addr), "
          "  to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
          "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
          "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
          "  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
          "  AND l.classid::bigint = ($1::bigint >> 32) "
          "  AND l.objid::bigint = ($1::bigint & 4294967295) "
          "LIMIT 1",
          kSchedulerLockKey);
      if (!found.empty()) {
        const pqxx::row r = found[0];
        holder = " (PostgreSQL backend pid " + r[0].as<std::string>();
        const std::string app = TextOf(r[1]);
        if (!app.empty() && app != "dagd-scheduler") holder += ", application '" + app + "'";
        if (!r[2].is_null()) holder += ", client " + r[2].as<std::string>();
        if (!r[3].is_null()) holder += ", connected since " + r[3].as<std::string>();
        holder += ")";
      }
      conn.reset();
      return Status::FailedPrecondition("another dagd scheduler already runs on this database" +
                                        holder +
                                        "; stop it first or point this one at another database");
    }
    if (epoch == 0) {
      char host[256] = {};
      if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
      const pqxx::row r = tx.exec_params1(
          "WITH e AS (INSERT INTO scheduler_epoch (hostname, pid) VALUES ($1, $2) "
          "  RETURNING epoch) "
          "UPDATE scheduler_lease SET epoch = (SELECT epoch FROM e) RETURNING epoch",
          std::string(host), static_cast<int>(::getpid()));
      scheduler_lock_->epoch = r[0].as<int64_t>();
      return Status::Ok();
    }
    // The lock was lost for a while: another scheduler may have run meanwhile.
    const pqxx::row r = tx.exec1(
        "SELECT l.epoch, e.hostname, e.pid FROM scheduler_lease l "
        "LEFT JOIN scheduler_epoch e ON e.epoch = l.epoch");
    if (!r[0].is_null() && r[0].as<int64_t>() == epoch) return Status::Ok();
    tx.exec("SELECT pg_advisory_unlock_all()");
    conn.reset();
    return Status::FailedPrecondition(
        "fenced: another scheduler (epoch " + (r[0].is_null() ? "none" : r[0].as<std::string>()) +
        ", host " + (r[1].is_null() ? "?" : r[1].as<std::string>()) + " pid " +
        (r[2].is_null() ? "?" : r[2].as<std::string>()) + ") took over");
  } catch (...) {
    conn.reset();
    return pg::MapCurrentException();
  }
}

// --- DAGs ----------------------------------------------------------------------------------------

StatusOr<int> PgStateStore::SyncDag(const scheduler::Dag& dag, const std::string& fileloc,
                                    TimePoint parsed_at, scheduler::DagSource source) {
  const bool uploaded = source == scheduler::DagSource::kApi;
  const std::string source_text = uploaded ? "api" : "file";
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<int> {
    tx.exec_params(
        "INSERT INTO dag (dag_id, is_paused, source) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        dag.dag_id, dag.is_paused_upon_creation, source_text);
    // The row lock serialises concurrent syncs of one DAG, so version numbers never collide, and
    // an upload cannot slip in between the check below and a file's sync.
    const pqxx::row row = tx.exec_params1(
        "SELECT source, is_stale, fileloc FROM dag WHERE dag_id = $1 FOR UPDATE", dag.dag_id);
    if (uploaded && row[0].as<std::string>() == "file" && !row[1].as<bool>()) {
      return Status::FailedPrecondition(
          "DAG '" + dag.dag_id + "' is defined by the file " + row[2].as<std::string>() +
          " in the DAGs folder, and a file wins over an upload: change that file instead, or "
          "remove it and rescan the folder (SIGHUP) before uploading");
    }
    const pqxx::result latest = tx.exec_params(
        "SELECT version_number, hash FROM dag_version WHERE dag_id = $1 "
        "ORDER BY version_number DESC LIMIT 1",
        dag.dag_id);
    int version = latest.empty() ? 0 : latest[0][0].as<int>();
    if (latest.empty() || latest[0][1].as<std::string>() != dag.hash) {
      ++version;
      tx.exec_params(
          "INSERT INTO dag_version (dag_id, version_number, hash, document) "
          "VALUES ($1, $2, $3, $4)",
          dag.dag_id, version, dag.hash, dag.document);
    }
    const Json fields = {{"fileloc", uploaded ? std::string() : fileloc},
                         {"source", source_text},
                         {"last_parsed_time", Us(parsed_at)},
                         {"description", dag.description},
                         {"tags", dag.tags},
                         {"owners", dag.owners},
                         {"schedule", OptText(dag.schedule)},
                         {"max_active_runs", dag.max_active_runs},
                         {"max_active_tasks", dag.max_active_tasks},
                         {"timetable_description",
                          dag.timetable ? Json(dag.timetable->Description()) : Json(nullptr)}};
    tx.exec_params(
        "UPDATE dag SET fileloc = x.fileloc, source = x.source, "
        "  last_parsed_time = dagd_ts(x.last_parsed_time), "
        "  description = x.description, "
        "  tags = ARRAY(SELECT jsonb_array_elements_text(x.tags)), "
        "  owners = ARRAY(SELECT jsonb_array_elements_text(x.owners)), "
        "  schedule = x.schedule, max_active_runs = x.max_active_runs, "
        "  max_active_tasks = x.max_active_tasks, latest_version = $2, is_stale = false, "
        "  timetable_description = x.timetable_description, "
        // A DAG that lost its schedule has no next run; otherwise the scheduler replans.
        "  next_dagrun = CASE WHEN x.schedule IS NULL THEN NULL ELSE next_dagrun END, "
        "  next_dagrun_data_interval_start = CASE WHEN x.schedule IS NULL THEN NULL "
        "    ELSE next_dagrun_data_interval_start END, "
        "  next_dagrun_data_interval_end = CASE WHEN x.schedule IS NULL THEN NULL "
        "    ELSE next_dagrun_data_interval_end END, "
        "  next_dagrun_create_after = CASE WHEN x.schedule IS NULL THEN NULL "
        "    ELSE next_dagrun_create_after END "
        "FROM jsonb_to_record($1::jsonb) AS x(fileloc text, source text, last_parsed_time bigint, "
        "  description text, tags jsonb, owners jsonb, schedule text, max_active_runs integer, "
        "  max_active_tasks integer, timetable_description text) "
        "WHERE dag.dag_id = $3",
        Dump(fields), version, dag.dag_id);
    return version;
  });
}

Status PgStateStore::MarkStaleExcept(const std::vector<std::string>& present_dag_ids) {
  return pool_->Run([&](pqxx::work& tx) -> Status {
    tx.exec_params(
        "UPDATE dag SET is_stale = true WHERE NOT is_stale AND source = 'file' "
        "AND dag_id NOT IN (SELECT json_array_elements_text($1::json))",
        Dump(Json(present_dag_ids)));
    return Status::Ok();
  });
}

Status PgStateStore::DeleteDag(const std::string& dag_id) {
  return pool_->Run([&](pqxx::work& tx) -> Status {
    // The row lock keeps a run from being created meanwhile: CreateRun's foreign-key check waits
    // for it, and then finds no DAG.
    const pqxx::result row = tx.exec_params(
        "SELECT source, is_stale, fileloc FROM dag WHERE dag_id = $1 FOR UPDATE", dag_id);
    if (row.empty()) return DagNotFound(dag_id);
    if (row[0][0].as<std::string>() == "file" && !row[0][1].as<bool>()) {
      return Status::FailedPrecondition(
          "DAG '" + dag_id + "' is defined by the file " + row[0][2].as<std::string>() +
          " in the DAGs folder and would come back at the next scan: remove the file, rescan "
          "the folder (SIGHUP), then delete the DAG");
    }
    const pqxx::row active = tx.exec_params1(
        "SELECT count(*) FROM dag_run WHERE dag_id = $1 AND state IN ('queued', 'running')",
        dag_id);
    if (const int64_t n = active[0].as<int64_t>(); n > 0) {
      return Status::FailedPrecondition(
          "DAG '" + dag_id + "' has " + std::to_string(n) + " queued or running run" +
          (n == 1 ? "" : "s") + ": wait for them to end (or mark them failed), then delete it");
    }
    // Versions, runs, task instances, tries and XComs go with the row (ON DELETE CASCADE); the
    // event log keeps its rows (StateStore::DeleteDag).
    tx.exec_params("DELETE FROM dag WHERE dag_id = $1", dag_id);
    return Status::Ok();
  });
}

Status PgStateStore::ReplaceImportErrors(const std::vector<ImportError>& errors) {
  Json rows = Json::array();
  for (size_t i = 0; i < errors.size(); ++i) {
    const ImportError& e = errors[i];
    rows.push_back(
        {{"ord", i}, {"filename", e.filename}, {"message", e.message}, {"ts", Us(e.timestamp)}});
  }
  return pool_->Run([&](pqxx::work& tx) -> Status {
    tx.exec("DELETE FROM import_error");
    tx.exec_params(
        "INSERT INTO import_error (filename, message, timestamp) "
        "SELECT x.filename, x.message, dagd_ts(x.ts) "
        "FROM json_to_recordset($1::json) AS x(ord bigint, filename text, message text, "
        "  ts bigint) ORDER BY x.ord",
        Dump(rows));
    return Status::Ok();
  });
}

StatusOr<Listing<ImportError>> PgStateStore::ListImportErrors(const Page& page) {
  static const OrderFields kFields = {{"id", "id"},
                                      {"import_error_id", "id"},
                                      {"filename", "filename"},
                                      {"timestamp", "timestamp"}};
  auto order = OrderBy(page.order_by, kFields, "id", "id");
  if (!order.ok()) return order.status();
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<Listing<ImportError>> {
    return ListPage<ImportError>(tx, "id, filename, message, dagd_us(timestamp) AS ts",
                                 " FROM import_error", *order, page, Params(),
                                 [](const pqxx::row& r) {
                                   ImportError e;
                                   e.id = r["id"].as<int64_t>();
                                   e.filename = r["filename"].as<std::string>();
                                   e.message = r["message"].as<std::string>();
                                   e.timestamp = TimeOf(r["ts"]);
                                   return e;
                                 });
  });
}

StatusOr<Listing<DagRecord>> PgStateStore::ListDags(const scheduler::DagQuery& query) {
  static const OrderFields kFields = {
      {"dag_id", "dag.dag_id"},
      {"dag_display_name", "dag.dag_id"},
      {"is_paused", "dag.is_paused"},
      {"is_stale", "dag.is_stale"},
      {"fileloc", "dag.fileloc"},
      {"last_parsed_time", "dag.last_parsed_time"},
      {"description", "dag.description"},
      {"max_active_runs", "dag.max_active_runs"},
      {"max_active_tasks", "dag.max_active_tasks"},
  };
  auto order = OrderBy(query.page.order_by, kFields, "dag.dag_id", "dag.dag_id");
  if (!order.ok()) return order.status();
  Params params;
  std::vector<std::string> where;
  if (!query.include_stale) where.push_back("NOT dag.is_stale");
  if (query.paused) where.push_back("dag.is_paused = " + params.Add(*query.paused ? "t" : "f"));
  if (!query.dag_id_pattern.empty()) {
    where.push_back("dag.dag_id ILIKE '%' || " + params.Add(query.dag_id_pattern) + " || '%'");
  }
  if (!query.tags.empty()) {
    where.push_back("dag.tags && ARRAY(SELECT json_array_elements_text(" +
                    params.AddJsonArray(query.tags) + "::json))");
  }
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<Listing<DagRecord>> {
    return ListPage<DagRecord>(tx, kDagColumns, " FROM dag" + Where(where), *order, query.page,
                               params, DagOf);
  });
}

StatusOr<DagRecord> PgStateStore::GetDag(const std::string& dag_id) {
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> StatusOr<DagRecord> {
    const pqxx::result r = tx.exec_prepared(kGetDag, dag_id);
    if (r.empty()) return DagNotFound(dag_id);
    return DagOf(r[0]);
  });
}

Status PgStateStore::SetPaused(const std::string& dag_id, bool paused) {
  return pool_->Run([&](pqxx::work& tx) -> Status {
    const pqxx::result r = tx.exec_params(
        "UPDATE dag SET is_paused = $2 WHERE dag_id = $1 RETURNING 1", dag_id, paused);
    if (r.empty()) return DagNotFound(dag_id);
    return Status::Ok();
  });
}

StatusOr<std::vector<scheduler::ScheduledDag>> PgStateStore::ListScheduledDags() {
  return pool_->RunAutocommit(
      [&](pqxx::nontransaction& tx) -> StatusOr<std::vector<scheduler::ScheduledDag>> {
        // Active runs are counted in one pass over the state index, not once per DAG.
        const pqxx::result rows = tx.exec(
            "SELECT " + std::string(kDagColumns) +
            ", coalesce(a.active, 0) AS active_runs, "
            "(SELECT dagd_us(max(r.logical_date)) FROM dag_run r WHERE r.dag_id = dag.dag_id "
            "  AND r.run_type = 'scheduled') AS last_scheduled "
            "FROM dag LEFT JOIN (SELECT dag_id AS active_dag, count(*) AS active FROM dag_run "
            "  WHERE state IN ('queued', 'running') AND run_type <> 'backfill' GROUP BY dag_id) a"
            "  ON a.active_dag = dag.dag_id "
            "WHERE schedule IS NOT NULL AND NOT is_stale AND latest_version > 0 ORDER BY dag_id");
        std::vector<scheduler::ScheduledDag> out;
        out.reserve(rows.size());
        for (const auto& row : rows) {
          scheduler::ScheduledDag d;
          d.record = DagOf(row);
          d.active_runs = row["active_runs"].as<int>();
          d.last_scheduled_logical_date = OptTimeOf(row["last_scheduled"]);
          out.push_back(std::move(d));
        }
        return out;
      });
}

Status PgStateStore::SetNextDagRun(const std::string& dag_id,
                                   const std::optional<scheduler::RunSlot>& next) {
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> Status {
    auto at = [&](TimePoint scheduler::RunSlot::*field) {
      return next ? Us(*next.*field) : Json(nullptr);
    };
    const pqxx::result r = tx.exec_params(
        "UPDATE dag SET next_dagrun = dagd_ts(x.l), next_dagrun_data_interval_start = "
        "  dagd_ts(x.s), next_dagrun_data_interval_end = dagd_ts(x.e), "
        "  next_dagrun_create_after = dagd_ts(x.a) "
        "FROM jsonb_to_record($2::jsonb) AS x(l bigint, s bigint, e bigint, a bigint) "
        "WHERE dag_id = $1 RETURNING 1",
        dag_id,
        Dump(Json{{"l", at(&scheduler::RunSlot::logical_date)},
                  {"s", at(&scheduler::RunSlot::data_interval_start)},
                  {"e", at(&scheduler::RunSlot::data_interval_end)},
                  {"a", at(&scheduler::RunSlot::run_after)}}));
    if (r.empty()) return DagNotFound(dag_id);
    return Status::Ok();
  });
}

StatusOr<DagVersionRecord> PgStateStore::GetDagVersion(const std::string& dag_id,
                                                       int version_number) {
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<DagVersionRecord> {
    const pqxx::result r = tx.exec_params(
        "SELECT hash, document, dagd_us(created_at) FROM dag_version "
        "WHERE dag_id = $1 AND version_number = $2",
        dag_id, version_number);
    if (r.empty()) {
      return Status::NotFound("The DagVersion with dag_id: '" + dag_id + "' and version_number: '" +
                              std::to_string(version_number) + "' was not found");
    }
    DagVersionRecord v;
    v.dag_id = dag_id;
    v.version_number = version_number;
    v.hash = r[0][0].as<std::string>();
    v.document = r[0][1].as<std::string>();
    v.created_at = TimeOf(r[0][2]);
    return v;
  });
}

StatusOr<Listing<DagVersionRecord>> PgStateStore::ListDagVersions(
    const scheduler::DagVersionQuery& query) {
  static const OrderFields kFields = {{"id", "version_number"},
                                      {"dag_id", "dag_id"},
                                      {"version_number", "version_number"},
                                      {"created_at", "created_at"},
                                      {"bundle_name", "version_number"},
                                      {"bundle_version", "version_number"}};
  auto order =
      OrderBy(query.page.order_by, kFields, "dag_id, version_number", "dag_id, version_number");
  if (!order.ok()) return order.status();
  Params params;
  std::vector<std::string> where;
  if (!IsAll(query.dag_id)) where.push_back("dag_id = " + params.Add(query.dag_id));
  AddEquals("version_number", query.version_number, params, where);
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<Listing<DagVersionRecord>> {
    if (!IsAll(query.dag_id) &&
        tx.exec_params("SELECT 1 FROM dag WHERE dag_id = $1", query.dag_id).empty()) {
      return DagNotFound(query.dag_id);
    }
    return ListPage<DagVersionRecord>(
        tx, "dag_id, version_number, hash, dagd_us(created_at) AS created_at",
        " FROM dag_version" + Where(where), *order, query.page, params, [](const pqxx::row& r) {
          DagVersionRecord v;
          v.dag_id = r["dag_id"].as<std::string>();
          v.version_number = r["version_number"].as<int>();
          v.hash = r["hash"].as<std::string>();
          v.created_at = TimeOf(r["created_at"]);
          return v;
        });
  });
}

StatusOr<std::vector<scheduler::DagRunStats>> PgStateStore::CountRunsByState(
    const std::vector<std::string>& dag_ids) {
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<std::vector<scheduler::DagRunStats>> {
    const pqxx::result r = tx.exec_params(
        "SELECT dag.dag_id, r.state, count(r.id) FROM dag "
        "LEFT JOIN dag_run r ON r.dag_id = dag.dag_id "
        "WHERE CASE WHEN $2 THEN NOT dag.is_stale "
        "  ELSE dag.dag_id IN (SELECT json_array_elements_text($1::json)) END "
        "GROUP BY dag.dag_id, r.state ORDER BY dag.dag_id",
        Dump(Json(dag_ids)), dag_ids.empty());
    std::vector<scheduler::DagRunStats> out;
    for (const auto& row : r) {
      const std::string dag_id = row[0].as<std::string>();
      if (out.empty() || out.back().dag_id != dag_id) out.push_back({dag_id, {}});
      if (!row[1].is_null()) out.back().counts[RunStateOf(row[1])] = row[2].as<int64_t>();
    }
    return out;
  });
}

// --- Runs ----------------------------------------------------------------------------------------

struct PgStateStore::NewRun {
  const DagRun* run;
  std::vector<TaskInstance>* tis;  // ids filled by WriteRuns on success
};

StatusOr<DagRun> PgStateStore::CreateRun(const DagRun& run, std::vector<TaskInstance>& tis) {
  NewRun request{&run, &tis};
  StatusOr<DagRun> created = run_commits_->Submit(request, tis.size());
  if (created.ok()) {
    for (TaskInstance& ti : tis) {
      ti.run_id_key = created->id;
      ti.dag_id = created->dag_id;
      ti.run_id = created->run_id;
    }
  } else {
    for (TaskInstance& ti : tis) ti.id.clear();  // nothing was stored
  }
  return created;
}

namespace {

Json NewRunJson(const DagRun& run, size_t ord) {
  return {{"ord", ord},
          {"dag_id", run.dag_id},
          {"run_id", run.run_id},
          {"version_number", run.version_number},
          {"state", std::string(scheduler::ToString(run.state))},
          {"run_type", std::string(scheduler::ToString(run.run_type))},
          {"logical_date", Us(run.logical_date)},
          {"queued_at", Us(run.queued_at)},
          {"start_date", Us(run.start_date)},
          {"end_date", Us(run.end_date)},
          {"data_interval_start", Us(run.data_interval_start)},
          {"data_interval_end", Us(run.data_interval_end)},
          {"run_after", Us(run.run_after)},
          {"last_scheduling_decision", Us(run.last_scheduling_decision)},
          {"conf", run.conf.is_null() ? Json::object() : run.conf},
          {"note", OptText(run.note)},
          {"triggered_by", run.triggered_by}};
}

Status RunExists(const DagRun& run) {
  return Status::AlreadyExists("DAG run '" + run.run_id + "' already exists for DAG '" +
                               run.dag_id + "'");
}

// The run's logical date is taken by another run of its DAG (dag_run_dag_id_logical_date_key).
Status LogicalDateTaken(const DagRun& run) {
  return Status::AlreadyExists("DAG '" + run.dag_id + "' already has a run with logical date " +
                               scheduler::FormatRfc3339(*run.logical_date) +
                               " (a DAG has one run per logical date)");
}

// One statement for a group of new runs ($1: their rows, each with its index `ord` in the
// group; $2: all their task instances, each with its run's ord and its own). ON CONFLICT turns a
// taken run id or logical date into "no row" instead of an error, so that the others go on; the
// final SELECT yields one row per request, in ord order: the stored run (id NULL when none was
// inserted), its task instances' [id, task_id] pairs, whether its DAG exists, and whether a
// committed run already has its run id (when not, its logical date was taken). The triggers number the
// events of all the runs, then of all the task instances.
const std::string& CreateRunsSql() {
  static const std::string kSql =
      "WITH x AS MATERIALIZED ("
      "  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(ord integer, dag_id text, run_id text,"
      "    version_number integer, state text, run_type text, logical_date bigint,"
      "    queued_at bigint, start_date bigint, end_date bigint, data_interval_start bigint,"
      "    data_interval_end bigint, run_after bigint, last_scheduling_decision bigint,"
      "    conf jsonb, note text, triggered_by text)),"
      " r AS ("
      "  INSERT INTO dag_run (dag_id, run_id, version_number, state, run_type, logical_date,"
      "    queued_at, start_date, end_date, data_interval_start, data_interval_end, run_after,"
      "    last_scheduling_decision, conf, note, triggered_by)"
      "  SELECT x.dag_id, x.run_id, x.version_number, x.state, x.run_type,"
      "    dagd_ts(x.logical_date), dagd_ts(x.queued_at), dagd_ts(x.start_date),"
      "    dagd_ts(x.end_date), dagd_ts(x.data_interval_start), dagd_ts(x.data_interval_end),"
      "    dagd_ts(x.run_after), dagd_ts(x.last_scheduling_decision), x.conf, x.note,"
      "    x.triggered_by"
      "  FROM x WHERE EXISTS (SELECT 1 FROM dag WHERE dag.dag_id = x.dag_id)"
      "  ORDER BY x.ord"
      "  ON CONFLICT DO NOTHING"
      "  RETURNING *),"
      " t AS ("
      "  INSERT INTO task_instance (dag_run_id, dag_id, run_id, task_id, version_number, state,"
      "    try_number, max_tries, scheduled_when, queued_when, start_date, end_date,"
      "    duration, next_retry_at, hostname, unixname, pid, operator, pool, pool_slots,"
      "    priority_weight, note, owner_epoch)"
      "  SELECT r.id, r.dag_id, r.run_id, y.task_id, y.version_number, y.state, y.try_number,"
      "    y.max_tries, dagd_ts(y.scheduled_when), dagd_ts(y.queued_when),"
      "    dagd_ts(y.start_date), dagd_ts(y.end_date), y.duration, dagd_ts(y.next_retry_at),"
      "    y.hostname, y.unixname, y.pid, y.operator, y.pool, y.pool_slots,"
      "    y.priority_weight, y.note, y.owner_epoch"
      "  FROM json_to_recordset($2::json) AS y(run_ord integer, ord integer, " +
      std::string(kTaskInstanceRecord) +
      ")"
      "  JOIN x ON x.ord = y.run_ord"
      "  JOIN r ON r.dag_id = x.dag_id AND r.run_id = x.run_id"
      "  ORDER BY y.run_ord, y.ord"
      "  RETURNING dag_run_id, id, task_id),"
      " ta AS ("
      "  SELECT dag_run_id, json_agg(json_build_array(id, task_id)) AS tis FROM t"
      "  GROUP BY dag_run_id) "
      "SELECT x.ord AS ord, rr.*, ta.tis::text AS tis,"
      "  EXISTS (SELECT 1 FROM dag WHERE dag.dag_id = x.dag_id) AS dag_exists,"
      "  EXISTS (SELECT 1 FROM dag_run d WHERE d.dag_id = x.dag_id AND d.run_id = x.run_id)"
      "    AS run_id_taken "
      "FROM x LEFT JOIN (SELECT " +
      std::string(kRunColumns) +
      " FROM r) AS rr ON rr.dag_id = x.dag_id AND rr.run_id = x.run_id"
      "  LEFT JOIN ta ON ta.dag_run_id = rr.id "
      "ORDER BY x.ord";
  return kSql;
}

std::vector<std::pair<std::string, std::string>> PreparedStatements() {
  return {
      {kGetDag, "SELECT " + std::string(kDagColumns) + " FROM dag WHERE dag_id = $1"},
      {kCreateRuns, CreateRunsSql()},
      {kLoadRuns,
       "SELECT " + std::string(kRunColumns) +
           ", coalesce((SELECT is_paused FROM dag WHERE dag.dag_id = dag_run.dag_id), false) "
           "AS dag_paused FROM dag_run WHERE id = ANY ($1::bigint[])"},
      {kLoadRunTaskInstances, "SELECT " + std::string(kTaskInstanceColumns) +
                                  " FROM task_instance WHERE dag_run_id = ANY ($1::bigint[]) "
                                  "ORDER BY dag_run_id, task_id"},
      {kApply, "SELECT unnest(dagd_apply($1, $2::json, $3::json, $4::json))"},
      {kReadOtherEvents,
       "SELECT c.last AS counter, e.* FROM event_counter c LEFT JOIN LATERAL ("
       "  SELECT " +
           std::string(kEventColumns) +
           " FROM event WHERE seq > $1 AND seq <= c.last AND origin IS DISTINCT FROM $3"
           "  ORDER BY seq LIMIT $2) e ON true"},
  };
}

}  // namespace

std::vector<StatusOr<DagRun>> PgStateStore::WriteRuns(const std::vector<NewRun*>& group) {
  std::vector<StatusOr<DagRun>> results(group.size(), Status::Internal("CreateRun: not written"));
  // Of two requests for one (dag_id, run_id), only the first is sent; the later ones wait for
  // its outcome (below).
  std::vector<size_t> sent;
  std::vector<std::pair<size_t, size_t>> repeats;  // (request, the earlier one it repeats)
  {
    std::unordered_map<std::string, size_t> first;
    for (size_t i = 0; i < group.size(); ++i) {
      const DagRun& run = *group[i]->run;
      // Text holds no NUL, so the separator cannot be part of either id.
      auto [it, fresh] = first.emplace(run.dag_id + '\0' + run.run_id, i);
      if (fresh) {
        sent.push_back(i);
      } else {
        repeats.emplace_back(i, it->second);
      }
    }
  }
  Json runs = Json::array();
  Json tis = Json::array();
  for (size_t ord = 0; ord < sent.size(); ++ord) {
    const NewRun& request = *group[sent[ord]];
    runs.push_back(NewRunJson(*request.run, ord));
    for (size_t i = 0; i < request.tis->size(); ++i) {
      Json row = TaskInstanceJson((*request.tis)[i]);
      row["run_ord"] = ord;
      row["ord"] = i;
      tis.push_back(std::move(row));
    }
  }
  const Status written = pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> Status {
    const pqxx::result rows = tx.exec_prepared(kCreateRuns, Dump(runs), Dump(tis));
    if (rows.size() != sent.size()) {
      return Status::Internal("CreateRun: " + std::to_string(rows.size()) + " rows for " +
                              std::to_string(sent.size()) + " requests");
    }
    for (const auto& row : rows) {
      const size_t index = sent.at(row["ord"].as<size_t>());
      const NewRun& request = *group[index];
      if (row["id"].is_null()) {
        const DagRun& run = *request.run;
        if (!row["dag_exists"].as<bool>()) {
          results[index] = DagNotFound(run.dag_id);
        } else if (row["run_id_taken"].as<bool>() || !run.logical_date) {
          results[index] = RunExists(run);
        } else {
          results[index] = LogicalDateTaken(run);
        }
        continue;
      }
      std::unordered_map<std::string, std::string> id_of;
      if (!row["tis"].is_null()) {
        for (const auto& pair : Json::parse(row["tis"].c_str())) {
          id_of[pair[1].get<std::string>()] = pair[0].get<std::string>();
        }
      }
      if (id_of.size() != request.tis->size()) {
        results[index] = Status::Internal(
            "CreateRun: inserted " + std::to_string(id_of.size()) + " of " +
            std::to_string(request.tis->size()) + " task instances");
        continue;
      }
      for (TaskInstance& ti : *request.tis) ti.id = id_of[ti.task_id];
      results[index] = RunOf(row);
    }
    return Status::Ok();
  });
  if (!written.ok()) {
    // Nothing of the statement took effect. A request that made it fail (a value PostgreSQL
    // refuses, a DAG deleted meanwhile) must not fail the others: each is written on its own.
    // When the database itself is out of reach, that is everyone's answer.
    if (sent.size() == 1 || written.code() == StatusCode::kUnavailable) {
      for (size_t index : sent) results[index] = written;
    } else {
      for (size_t index : sent) results[index] = std::move(WriteRuns({group[index]}).front());
    }
  }
  // A repeated request finds the run taken when the earlier one stored it (or found it taken);
  // when the earlier one failed otherwise, the repeat is written on its own and stands for the
  // ones after it.
  std::unordered_map<size_t, size_t> stands_for;  // earliest request → latest one written
  for (const auto& [index, earlier] : repeats) {
    auto it = stands_for.emplace(earlier, earlier).first;
    const StatusOr<DagRun>& before = results[it->second];
    if (before.ok() || before.status().code() == StatusCode::kAlreadyExists) {
      results[index] = RunExists(*group[index]->run);
    } else {
      results[index] = std::move(WriteRuns({group[index]}).front());
      it->second = index;
    }
  }
  return results;
}

StatusOr<DagRun> PgStateStore::GetRun(const std::string& dag_id, const std::string& run_id) {
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<DagRun> {
    const pqxx::result r = tx.exec_params("SELECT " + WithVersionCreatedAt(kRunColumns, "dag_run") +
                                              " FROM dag_run WHERE dag_id = $1 AND run_id = $2",
                                          dag_id, run_id);
    if (r.empty()) return RunNotFound(dag_id, run_id);
    return RunWithVersionOf(r[0]);
  });
}

StatusOr<std::vector<scheduler::RunRows>> PgStateStore::LoadRuns(
    const std::vector<int64_t>& run_keys) {
  if (run_keys.empty()) return std::vector<scheduler::RunRows>{};
  const std::string keys = BigintArray(run_keys);
  return pool_->Run<pg::SnapshotRead>(
      [&](pg::SnapshotRead& tx) -> StatusOr<std::vector<scheduler::RunRows>> {
        const pqxx::result runs = tx.exec_prepared(kLoadRuns, keys);
        std::unordered_map<int64_t, scheduler::RunRows> by_key;
        by_key.reserve(runs.size());
        for (const auto& row : runs) {
          DagRun run = RunOf(row);
          const int64_t key = run.id;
          by_key[key].run = std::move(run);
          by_key[key].dag_paused = row["dag_paused"].as<bool>();
        }
        if (!by_key.empty()) {
          const pqxx::result tis = tx.exec_prepared(kLoadRunTaskInstances, keys);
          for (const auto& row : tis) {
            TaskInstance ti = TaskInstanceOf(row);
            by_key[ti.run_id_key].task_instances.push_back(std::move(ti));
          }
        }
        // In the caller's order, each run once.
        std::vector<scheduler::RunRows> out;
        out.reserve(by_key.size());
        for (int64_t key : run_keys) {
          auto it = by_key.find(key);
          if (it == by_key.end()) continue;
          out.push_back(std::move(it->second));
          by_key.erase(it);
        }
        return out;
      });
}

StatusOr<Listing<DagRun>> PgStateStore::ListRuns(const scheduler::RunQuery& query) {
  static const OrderFields kFields = {
      {"id", "dag_run.id"},
      {"dag_id", "dag_run.dag_id"},
      {"dag_run_id", "dag_run.run_id"},
      {"run_id", "dag_run.run_id"},
      {"state", "dag_run.state"},
      {"run_type", "dag_run.run_type"},
      {"logical_date", "dag_run.logical_date"},
      {"queued_at", "dag_run.queued_at"},
      {"start_date", "dag_run.start_date"},
      {"end_date", "dag_run.end_date"},
      {"run_after", "dag_run.run_after"},
      {"data_interval_start", "dag_run.data_interval_start"},
      {"data_interval_end", "dag_run.data_interval_end"},
      {"last_scheduling_decision", "dag_run.last_scheduling_decision"},
      {"conf", "dag_run.conf"},
  };
  auto order = OrderBy(query.page.order_by, kFields, "dag_run.id", "dag_run.id");
  if (!order.ok()) return order.status();
  Params params;
  std::vector<std::string> where;
  if (!IsAll(query.dag_id)) where.push_back("dag_run.dag_id = " + params.Add(query.dag_id));
  AddAnyOf("dag_run.dag_id", query.dag_ids, params, where);
  AddAnyOf("dag_run.run_id", query.run_ids, params, where);
  AddAnyOf("dag_run.version_number", query.version_numbers, params, where);
  AddPattern("dag_run.dag_id", query.dag_id_pattern, params, where);
  AddPattern("dag_run.run_id", query.run_id_pattern, params, where);
  static const BoundFields kBounds = {
      {"logical_date", {"dag_run.logical_date", true}},
      {"run_after", {"dag_run.run_after", true}},
      {"start_date", {"dag_run.start_date", true}},
      {"end_date", {"dag_run.end_date", true}},
      {"duration", {"extract(epoch FROM dag_run.end_date - dag_run.start_date)", false}},
  };
  if (Status s = AddBounds(query.bounds, kBounds, params, where); !s.ok()) return s;
  if (!query.states.empty()) {
    Json states = Json::array();
    for (RunState s : query.states) states.push_back(std::string(scheduler::ToString(s)));
    where.push_back("dag_run.state IN (SELECT json_array_elements_text(" +
                    params.AddJsonArray(states) + "::json))");
  }
  if (!query.run_types.empty()) {
    Json types = Json::array();
    for (auto t : query.run_types) types.push_back(std::string(scheduler::ToString(t)));
    where.push_back("dag_run.run_type IN (SELECT json_array_elements_text(" +
                    params.AddJsonArray(types) + "::json))");
  }
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<Listing<DagRun>> {
    return ListPage<DagRun>(tx, WithVersionCreatedAt(kRunColumns, "dag_run"),
                            " FROM dag_run" + Where(where), *order, query.page, params,
                            RunWithVersionOf);
  });
}

StatusOr<std::vector<DagRun>> PgStateStore::LoadActiveRuns() {
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<std::vector<DagRun>> {
    const pqxx::result r = tx.exec("SELECT " + std::string(kRunColumns) +
                                   " FROM dag_run WHERE state IN ('queued', 'running') "
                                   "ORDER BY queued_at, id");
    std::vector<DagRun> runs;
    runs.reserve(r.size());
    for (const auto& row : r) runs.push_back(RunOf(row));
    return runs;
  });
}

// --- Task instances ------------------------------------------------------------------------------

StatusOr<Listing<TaskInstance>> PgStateStore::ListTaskInstances(
    const scheduler::TaskInstanceQuery& query) {
  static const OrderFields kFields = {
      {"id", "task_instance.id"},
      {"task_id", "task_instance.task_id"},
      {"dag_id", "task_instance.dag_id"},
      {"dag_run_id", "task_instance.run_id"},
      {"run_id", "task_instance.run_id"},
      {"state", "task_instance.state"},
      {"try_number", "task_instance.try_number"},
      {"max_tries", "task_instance.max_tries"},
      {"start_date", "task_instance.start_date"},
      {"end_date", "task_instance.end_date"},
      {"duration", "task_instance.duration"},
      {"queued_when", "task_instance.queued_when"},
      {"scheduled_when", "task_instance.scheduled_when"},
      {"hostname", "task_instance.hostname"},
      {"pid", "task_instance.pid"},
      {"pool", "task_instance.pool"},
      {"pool_slots", "task_instance.pool_slots"},
      {"priority_weight", "task_instance.priority_weight"},
      {"operator", "task_instance.operator"},
      {"map_index", "task_instance.task_id"},  // dagd has no mapped tasks: map_index is always -1
  };
  auto order = OrderBy(query.page.order_by, kFields,
                       "task_instance.dag_id, task_instance.dag_run_id, task_instance.task_id",
                       "task_instance.id");
  if (!order.ok()) return order.status();
  Params params;
  std::vector<std::string> where;
  if (!IsAll(query.dag_id)) where.push_back("task_instance.dag_id = " + params.Add(query.dag_id));
  if (!IsAll(query.run_id)) where.push_back("task_instance.run_id = " + params.Add(query.run_id));
  AddAnyOf("task_instance.dag_id", query.dag_ids, params, where);
  AddAnyOf("task_instance.run_id", query.run_ids, params, where);
  AddAnyOf("task_instance.pool", query.pools, params, where);
  AddAnyOf("task_instance.try_number", query.try_numbers, params, where);
  AddAnyOf("task_instance.version_number", query.version_numbers, params, where);
  AddPattern("task_instance.dag_id", query.dag_id_pattern, params, where);
  AddPattern("task_instance.run_id", query.run_id_pattern, params, where);
  static const BoundFields kBounds = {
      {"start_date", {"task_instance.start_date", true}},
      {"end_date", {"task_instance.end_date", true}},
      {"duration", {"task_instance.duration", false}},
  };
  if (Status s = AddBounds(query.bounds, kBounds, params, where); !s.ok()) return s;
  if (!query.states.empty()) {
    Json states = Json::array();
    bool none = false;
    for (TaskState s : query.states) {
      if (s == TaskState::kNone) {
        none = true;
      } else {
        states.push_back(std::string(scheduler::ToString(s)));
      }
    }
    std::string cond = "task_instance.state IN (SELECT json_array_elements_text(" +
                       params.AddJsonArray(states) + "::json))";
    if (none) cond += " OR task_instance.state IS NULL";
    where.push_back(cond);
  }
  AddAnyOf("task_instance.task_id", query.task_ids, params, where);
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<Listing<TaskInstance>> {
    return ListPage<TaskInstance>(tx, WithVersionCreatedAt(kTaskInstanceColumns, "task_instance"),
                                  " FROM task_instance" + Where(where), *order, query.page, params,
                                  TaskInstanceWithVersionOf);
  });
}

StatusOr<TaskInstance> PgStateStore::GetTaskInstance(const std::string& dag_id,
                                                     const std::string& run_id,
                                                     const std::string& task_id) {
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<TaskInstance> {
    const pqxx::result r =
        tx.exec_params("SELECT " + WithVersionCreatedAt(kTaskInstanceColumns, "task_instance") +
                           " FROM task_instance WHERE dag_id = $1 AND run_id = $2 AND task_id = $3",
                       dag_id, run_id, task_id);
    if (r.empty()) return TaskInstanceNotFound(dag_id, run_id, task_id);
    return TaskInstanceWithVersionOf(r[0]);
  });
}

StatusOr<std::vector<TaskTry>> PgStateStore::ListTries(const std::string& dag_id,
                                                       const std::string& run_id,
                                                       const std::string& task_id) {
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<std::vector<TaskTry>> {
    // LEFT JOIN: one query tells "unknown task instance" (no row) from "no tries yet". A try
    // settled without a worker (an `empty` task's success) has no try row of its own: the task
    // instance stands for its current try when no row has that number.
    const pqxx::result r = tx.exec_params(
        "SELECT ti.id::text AS ti_id, t.try_number, t.state, "
        "  dagd_us(t.queued_when) AS queued_when, dagd_us(t.start_date) AS start_date, "
        "  dagd_us(t.end_date) AS end_date, t.duration, t.hostname, t.pid, t.operator "
        "FROM task_instance ti LEFT JOIN LATERAL ("
        "  SELECT y.try_number, y.state, y.queued_when, y.start_date, y.end_date, y.duration,"
        "    y.hostname, y.pid, y.operator"
        "  FROM task_instance_try y WHERE y.ti_id = ti.id"
        "  UNION ALL"
        "  SELECT ti.try_number, ti.state, ti.queued_when, ti.start_date, ti.end_date,"
        "    ti.duration, ti.hostname, ti.pid, ti.operator"
        "  WHERE ti.try_number > 0 AND NOT EXISTS (SELECT 1 FROM task_instance_try z"
        "    WHERE z.ti_id = ti.id AND z.try_number = ti.try_number)) t ON true "
        "WHERE ti.dag_id = $1 AND ti.run_id = $2 AND ti.task_id = $3 "
        "ORDER BY t.try_number",
        dag_id, run_id, task_id);
    if (r.empty()) return TaskInstanceNotFound(dag_id, run_id, task_id);
    std::vector<TaskTry> tries;
    for (const auto& row : r) {
      if (row["try_number"].is_null()) continue;
      TaskTry t;
      t.ti_id = row["ti_id"].as<std::string>();
      t.dag_id = dag_id;
      t.run_id = run_id;
      t.task_id = task_id;
      t.try_number = row["try_number"].as<int>();
      t.state = TaskStateOf(row["state"]);
      t.queued_when = OptTimeOf(row["queued_when"]);
      t.start_date = OptTimeOf(row["start_date"]);
      t.end_date = OptTimeOf(row["end_date"]);
      if (!row["duration"].is_null()) t.duration = row["duration"].as<double>();
      t.hostname = TextOf(row["hostname"]);
      if (!row["pid"].is_null()) t.pid = row["pid"].as<int>();
      t.operator_name = TextOf(row["operator"]);
      tries.push_back(std::move(t));
    }
    return tries;
  });
}

StatusOr<std::vector<XcomEntry>> PgStateStore::ListXcom(const std::string& ti_id) {
  if (!LooksLikeUuid(ti_id)) return std::vector<XcomEntry>{};
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<std::vector<XcomEntry>> {
    const pqxx::result r = tx.exec_params(
        "SELECT key, value::text FROM xcom WHERE ti_id = $1::uuid ORDER BY key", ti_id);
    std::vector<XcomEntry> out;
    out.reserve(r.size());
    for (const auto& row : r) {
      out.push_back({row[0].as<std::string>(),
                     row[1].is_null() ? Json(nullptr) : Json::parse(row[1].c_str())});
    }
    return out;
  });
}

// --- Transitions ---------------------------------------------------------------------------------

namespace {

std::string_view KindName(scheduler::TiTransition::Kind kind) {
  switch (kind) {
    case scheduler::TiTransition::Kind::kQueue:
      return "queue";
    case scheduler::TiTransition::Kind::kStart:
      return "start";
    case scheduler::TiTransition::Kind::kFinish:
      return "finish";
    case scheduler::TiTransition::Kind::kSettle:
      return "settle";
  }
  return "";
}

}  // namespace

StatusOr<scheduler::ApplyResult> PgStateStore::Apply(const scheduler::Transition& t) {
  if (t.empty()) return scheduler::ApplyResult{};
  const int64_t epoch = scheduler_lock_->epoch.load();
  if (epoch == 0) {
    return Status::FailedPrecondition(
        "Apply needs a scheduler epoch: AcquireSchedulerLock has not succeeded");
  }
  // The whole batch goes to dagd_apply (migration 003) as three JSON arrays: one statement, one
  // round trip, one commit, however many rows the batch holds.
  std::unordered_set<int64_t> run_keys;
  Json runs = Json::array();
  for (const scheduler::RunTransition& r : t.runs) {
    if (!run_keys.insert(r.after.id).second) {
      return Status::Internal("Apply: run " + std::to_string(r.after.id) +
                              " appears twice in one batch");
    }
    const bool finish = r.kind == scheduler::RunTransition::Kind::kFinish;
    runs.push_back({{"kind", finish ? "finish" : "start"},
                    {"id", r.after.id},
                    {"expect_state", std::string(scheduler::ToString(r.expect_state))},
                    {"state", std::string(scheduler::ToString(r.after.state))},
                    {"start_date", Us(r.after.start_date)},
                    {"end_date", Us(r.after.end_date)},
                    {"last_scheduling_decision", Us(r.after.last_scheduling_decision)}});
  }
  std::unordered_set<std::string> ti_ids;
  Json tis = Json::array();
  for (const scheduler::TiTransition& x : t.task_instances) {
    const TaskInstance& ti = x.after;
    if (!LooksLikeUuid(ti.id) || !ti_ids.insert(ti.id).second) {
      return Status::Internal("Apply: task instance '" + ti.id +
                              "' is not a stored id or appears twice in one batch");
    }
    // The row's columns as CreateRun sends them (dagd_apply reads those its kind owns) and the
    // expectation.
    Json row = TaskInstanceJson(ti);
    row["kind"] = KindName(x.kind);
    row["id"] = ti.id;
    row["run_key"] = ti.run_id_key;
    row["expect_state"] = StateJson(x.expect_state);
    row["expect_try"] = x.expect_try;
    row["expect_epoch"] = x.expect_epoch ? Json(*x.expect_epoch) : Json(nullptr);
    tis.push_back(std::move(row));
  }
  // One row per (task instance, key): the last value given wins.
  std::map<std::pair<std::string, std::string>, const scheduler::Transition::Xcom*> last_xcom;
  for (const auto& x : t.xcoms) {
    if (!LooksLikeUuid(x.ti_id)) {
      return Status::Internal("Apply: xcom of task instance '" + x.ti_id + "' is not a stored id");
    }
    last_xcom[{x.ti_id, x.entry.key}] = &x;
  }
  Json xcoms = Json::array();
  for (const auto& [key, x] : last_xcom) {
    xcoms.push_back(
        {{"run_key", x->run_key}, {"ti_id", key.first}, {"key", key.second}, {"value", x->entry.value}});
  }
  return pool_->RunAutocommit(
      [&](pqxx::nontransaction& tx) -> StatusOr<scheduler::ApplyResult> {
        const pqxx::result r =
            tx.exec_prepared(kApply, epoch, Dump(runs), Dump(tis), Dump(xcoms));
        scheduler::ApplyResult result;
        result.conflicts.reserve(r.size());
        for (const auto& row : r) result.conflicts.push_back(row[0].as<int64_t>());
        return result;
      });
}

// --- Event log -----------------------------------------------------------------------------------

StatusOr<std::vector<scheduler::EventRecord>> PgStateStore::ReadEvents(int64_t after_seq,
                                                                       int limit) {
  return pool_->RunAutocommit(
      [&](pqxx::nontransaction& tx) -> StatusOr<std::vector<scheduler::EventRecord>> {
        const pqxx::result r =
            tx.exec_params("SELECT " + std::string(kEventColumns) +
                               " FROM event WHERE seq > $1 ORDER BY seq LIMIT $2",
                           after_seq, std::max(limit, 0));
        std::vector<scheduler::EventRecord> events;
        events.reserve(r.size());
        for (const auto& row : r) events.push_back(EventOf(row));
        return events;
      });
}

StatusOr<scheduler::EventPage> PgStateStore::ReadOtherEvents(int64_t after_seq, int limit,
                                                             int64_t skip_origin) {
  if (limit <= 0) return scheduler::EventPage{{}, after_seq};
  // The counter and the events come from one statement, hence one snapshot; the LEFT JOIN
  // yields the counter even when no event is returned.
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> StatusOr<scheduler::EventPage> {
    const pqxx::result r = tx.exec_prepared(kReadOtherEvents, after_seq, limit, skip_origin);
    scheduler::EventPage page;
    if (r.empty()) return Status::Internal("ReadOtherEvents: the event counter row is missing");
    for (const auto& row : r) {
      if (row["seq"].is_null()) break;  // no event: the one row only carries the counter
      page.events.push_back(EventOf(row));
    }
    const int64_t counter = r[0]["counter"].as<int64_t>();
    if (page.events.size() == static_cast<size_t>(limit)) {
      page.last_seq = page.events.back().seq;
    } else {
      // A reader ahead of the counter (the database was replaced under it) is not sent back.
      page.last_seq = std::max(counter, after_seq);
    }
    page.head = counter;
    return page;
  });
}

StatusOr<scheduler::EventPage> PgStateStore::ReadEventsMatching(
    int64_t after_seq, int limit, const scheduler::EventFilter& filter, int64_t scan_window) {
  if (limit <= 0) return Status::Internal("ReadEventsMatching: limit must be positive");
  const bool by_run = !filter.dag_id.empty() && !filter.run_id.empty();
  const int64_t window = std::max<int64_t>(scan_window, 1);
  // Only the conditions the filter needs, so that each shape of filter has a plan of its own.
  Params params;
  const std::string after = params.Add(std::to_string(after_seq)) + "::bigint";
  std::string where = "seq > " + after + " AND seq <= c.last";
  if (by_run) {
    where += " AND run_key = (SELECT id FROM dag_run WHERE dag_id = " + params.Add(filter.dag_id) +
             " AND run_id = " + params.Add(filter.run_id) + ")";
  } else {
    where += " AND seq <= " + after + " + " + params.Add(std::to_string(window)) + "::bigint";
    if (!filter.dag_id.empty()) where += " AND dag_id = " + params.Add(filter.dag_id);
    if (!filter.run_id.empty()) where += " AND run_id = " + params.Add(filter.run_id);
  }
  if (!filter.task_id.empty()) where += " AND task_id = " + params.Add(filter.task_id);
  const std::string sql =
      "SELECT c.last AS counter, (SELECT min(seq) FROM event) AS oldest, e.* "
      "FROM event_counter c LEFT JOIN LATERAL (SELECT " +
      std::string(kEventColumns) + " FROM event WHERE " + where + " ORDER BY seq LIMIT " +
      params.Add(std::to_string(limit)) + "::integer) e ON true";
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> StatusOr<scheduler::EventPage> {
    const pqxx::result r =
        tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params.values()));
    if (r.empty()) return Status::Internal("ReadEventsMatching: the event counter row is missing");
    scheduler::EventPage page;
    for (const auto& row : r) {
      if (row["seq"].is_null()) break;  // no event: the one row only carries the counter
      page.events.push_back(EventOf(row));
    }
    page.head = r[0]["counter"].as<int64_t>();
    page.oldest = r[0]["oldest"].is_null() ? page.head + 1 : r[0]["oldest"].as<int64_t>();
    if (page.events.size() == static_cast<size_t>(limit)) {
      page.last_seq = page.events.back().seq;
    } else {
      const int64_t covered = by_run ? page.head : std::min(page.head, after_seq + window);
      page.last_seq = std::max(covered, after_seq);
    }
    return page;
  });
}

StatusOr<scheduler::EventBounds> PgStateStore::ReadEventBounds() {
  return pool_->RunAutocommit([](pqxx::nontransaction& tx) -> StatusOr<scheduler::EventBounds> {
    // min(seq) reads one end of the primary key.
    const pqxx::row row =
        tx.exec1("SELECT c.last, (SELECT min(seq) FROM event) FROM event_counter c");
    scheduler::EventBounds bounds;
    bounds.latest = row[0].as<int64_t>();
    bounds.oldest = row[1].is_null() ? bounds.latest + 1 : row[1].as<int64_t>();
    return bounds;
  });
}

StatusOr<int64_t> PgStateStore::PruneEvents(TimePoint before, int64_t max_events) {
  if (max_events <= 0) return int64_t{0};
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> StatusOr<int64_t> {
    // A prefix of the log, found within the next `max_events` seqs by the primary key: the
    // removal stops at the first event young enough to keep, even if older ones follow it
    // (`at` is the insert time, not quite commit order), so that the kept part has no gap.
    const pqxx::result r = tx.exec_params(
        "WITH lo AS (SELECT min(seq) AS seq FROM event), "
        "stop AS (SELECT coalesce(min(e.seq), lo.seq + $2) AS seq FROM lo "
        "  LEFT JOIN event e ON e.seq >= lo.seq AND e.seq < lo.seq + $2 AND e.at >= dagd_ts($1) "
        "  GROUP BY lo.seq) "
        "DELETE FROM event WHERE seq >= (SELECT seq FROM lo) AND seq < (SELECT seq FROM stop)",
        before.time_since_epoch().count(), max_events);
    return static_cast<int64_t>(r.affected_rows());
  });
}

StatusOr<int64_t> PgStateStore::LatestEventSeq() {
  // The counter commits with the events it numbered, so it never runs ahead of what is visible.
  return pool_->RunAutocommit([](pqxx::nontransaction& tx) -> StatusOr<int64_t> {
    return tx.exec1("SELECT last FROM event_counter")[0].as<int64_t>();
  });
}

StatusOr<PgStateStore::SubscriptionId> PgStateStore::Subscribe(ChangeCallback on_change) {
  std::lock_guard guard(listener_mu_);
  if (!listener_) {
    auto listener = std::make_unique<Listener>(options_);
    if (Status started = listener->Start(); !started.ok()) return started;
    listener_ = std::move(listener);
  }
  const SubscriptionId id = next_subscription_++;
  listener_->Add(id, std::move(on_change));
  return id;
}

void PgStateStore::Unsubscribe(SubscriptionId id) {
  std::unique_ptr<Listener> last;
  {
    std::lock_guard guard(listener_mu_);
    if (listener_ && listener_->Remove(id)) last = std::move(listener_);
  }
  last.reset();  // joins its thread outside the mutex
}

// --- Audit log -----------------------------------------------------------------------------------

namespace {

constexpr std::string_view kAuditColumns =
    "id, dagd_us(dttm) AS at, event, owner, via, dag_id, run_id, task_id, map_index, try_number, "
    "dagd_us(logical_date) AS logical_date, method, path, status, remote_address, body";

scheduler::AuditEntry AuditOf(const pqxx::row& r) {
  scheduler::AuditEntry e;
  e.id = r["id"].as<int64_t>();
  e.at = TimeOf(r["at"]);
  e.event = r["event"].as<std::string>();
  e.owner = OptTextOf(r["owner"]);
  e.via = r["via"].as<std::string>();
  e.dag_id = OptTextOf(r["dag_id"]);
  e.run_id = OptTextOf(r["run_id"]);
  e.task_id = OptTextOf(r["task_id"]);
  if (!r["map_index"].is_null()) e.map_index = r["map_index"].as<int>();
  if (!r["try_number"].is_null()) e.try_number = r["try_number"].as<int>();
  e.logical_date = OptTimeOf(r["logical_date"]);
  e.method = r["method"].as<std::string>();
  e.path = r["path"].as<std::string>();
  e.status = r["status"].as<int>();
  e.remote_address = r["remote_address"].as<std::string>();
  e.body = Json::parse(r["body"].c_str());
  return e;
}

}  // namespace

StatusOr<int64_t> PgStateStore::AppendAudit(const scheduler::AuditEntry& e) {
  // One statement: the row comes as one JSON parameter so that absent values are NULLs.
  const Json row = {{"at", Us(e.at)},
                    {"event", e.event},
                    {"owner", OptText(e.owner)},
                    {"via", e.via},
                    {"dag_id", OptText(e.dag_id)},
                    {"run_id", OptText(e.run_id)},
                    {"task_id", OptText(e.task_id)},
                    {"map_index", e.map_index ? Json(*e.map_index) : Json(nullptr)},
                    {"try_number", e.try_number ? Json(*e.try_number) : Json(nullptr)},
                    {"logical_date", Us(e.logical_date)},
                    {"method", e.method},
                    {"path", e.path},
                    {"status", e.status},
                    {"remote_address", e.remote_address},
                    {"body", e.body}};
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> StatusOr<int64_t> {
    return tx
        .exec_params1(
            "INSERT INTO audit_log (dttm, event, owner, via, dag_id, run_id, task_id, map_index, "
            "  try_number, logical_date, method, path, status, remote_address, body) "
            "SELECT dagd_ts(x.at), x.event, x.owner, x.via, x.dag_id, x.run_id, x.task_id, "
            "  x.map_index, x.try_number, dagd_ts(x.logical_date), x.method, x.path, x.status, "
            "  x.remote_address, coalesce(x.body, '{}') "
            "FROM json_to_record($1::json) AS x(at bigint, event text, owner text, via text, "
            "  dag_id text, run_id text, task_id text, map_index integer, try_number integer, "
            "  logical_date bigint, method text, path text, status integer, "
            "  remote_address text, body jsonb) "
            "RETURNING id",
            Dump(row))[0]
        .as<int64_t>();
  });
}

StatusOr<Listing<scheduler::AuditEntry>> PgStateStore::ListAudit(
    const scheduler::AuditQuery& query) {
  static const OrderFields kFields = {
      {"id", "id"},
      {"event_log_id", "id"},
      {"dttm", "dttm"},
      {"when", "dttm"},
      {"dag_id", "dag_id"},
      {"task_id", "task_id"},
      {"run_id", "run_id"},
      {"event", "event"},
      {"logical_date", "logical_date"},
      {"owner", "owner"},
      // What the API shows as `extra` holds these, the body summary first.
      {"extra", "body::text, method, path, remote_address, status, via"},
  };
  auto order = OrderBy(query.page.order_by, kFields, "id", "id");
  if (!order.ok()) return order.status();
  Params params;
  std::vector<std::string> where;
  AddEquals("dag_id", query.dag_id, params, where);
  AddEquals("task_id", query.task_id, params, where);
  AddEquals("run_id", query.run_id, params, where);
  AddEquals("map_index", query.map_index, params, where);
  AddEquals("try_number", query.try_number, params, where);
  AddEquals("owner", query.owner, params, where);
  AddEquals("event", query.event, params, where);
  AddAnyOf("event", query.included_events, params, where);
  AddAnyOf("event", query.excluded_events, params, where, /*none_of=*/true);
  if (query.before) where.push_back("dttm < " + TimeParam(*query.before, params));
  if (query.after) where.push_back("dttm > " + TimeParam(*query.after, params));
  AddPattern("dag_id", query.dag_id_pattern, params, where);
  AddPattern("task_id", query.task_id_pattern, params, where);
  AddPattern("run_id", query.run_id_pattern, params, where);
  AddPattern("owner", query.owner_pattern, params, where);
  AddPattern("event", query.event_pattern, params, where);
  return pool_->Run([&](pqxx::work& tx) -> StatusOr<Listing<scheduler::AuditEntry>> {
    return ListPage<scheduler::AuditEntry>(tx, kAuditColumns, " FROM audit_log" + Where(where),
                                           *order, query.page, params, AuditOf);
  });
}

StatusOr<scheduler::AuditEntry> PgStateStore::GetAudit(int64_t id) {
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> StatusOr<scheduler::AuditEntry> {
    const pqxx::result r = tx.exec_params(
        "SELECT " + std::string(kAuditColumns) + " FROM audit_log WHERE id = $1", id);
    if (r.empty()) return Status::NotFound("no audit log entry " + std::to_string(id));
    return AuditOf(r[0]);
  });
}

}  // namespace dagd::storage
