#include "pg.hpp"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dagd::storage::pg {
namespace {

// PostgreSQL's own words for an error, as one line. libpq's text is "ERROR:  primary\n" then
// optional "DETAIL:  ...", "HINT:  ...", "CONTEXT:  ..." lines; only primary, detail and hint are
// kept: CONTEXT quotes the statement's input, which for a batch can be megabytes of JSON.
std::string ServerMessage(const pqxx::sql_error& e) {
  auto after = [](std::string_view line,
                  std::string_view prefix) -> std::optional<std::string_view> {
    if (line.substr(0, prefix.size()) != prefix) return std::nullopt;
    line.remove_prefix(prefix.size());
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    return line;
  };
  std::string out;
  std::string_view text = e.what();
  for (bool first = true; !text.empty(); first = false) {
    const size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (first) {
      out = std::string(after(line, "ERROR:").value_or(line));
      continue;
    }
    auto extra = after(line, "DETAIL:");
    if (!extra) extra = after(line, "HINT:");
    if (extra && !extra->empty()) out += ": " + std::string(*extra);
  }
  return out;
}

// "5 s" or "250 ms".
std::string Duration(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

// libpq parameters appended to the caller's connection string; a later key wins in libpq, so
// these override the same keys in the URL.
std::string WithParameters(const std::string& url,
                           const std::vector<std::pair<std::string, std::string>>& params) {
  const bool uri = url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
  std::string out = url;
  for (const auto& [key, value] : params) {
    if (uri) {
      out += out.find('?') == std::string::npos ? '?' : '&';
      out += key + "=" + value;
    } else {
      out += " " + key + "=" + value;
    }
  }
  return out;
}

}  // namespace

std::unique_ptr<pqxx::connection> Connect(const PgOptions& options,
                                          const std::string& application_name) {
  const auto connect_s = std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(options.connect_timeout).count());
  const std::string conninfo = WithParameters(
      options.url, {{"connect_timeout", std::to_string(connect_s)},
                    {"keepalives", "1"},
                    {"keepalives_idle", std::to_string(options.keepalives_idle.count())},
                    {"keepalives_interval", std::to_string(options.keepalives_interval.count())},
                    {"keepalives_count", std::to_string(options.keepalives_count)}});
  auto conn = std::make_unique<pqxx::connection>(conninfo);
  // Session settings rather than an `options` connection parameter: the URL may carry its own.
  // plan_cache_mode: dagd's statements look rows up by key, so one generic plan per connection
  // serves every call; by default PostgreSQL plans the first five executions of each statement
  // on each connection anew, and a pool of short-lived bursts never gets past them (planning
  // cost more than running in a trigger burst: 2 ms per CreateRun group). Listings, whose
  // filters vary per request, ask for custom plans (Exec in pg_state_store.cpp).
  pqxx::nontransaction tx(*conn);
  tx.exec_params(
      "SELECT set_config('statement_timeout', $1, false), "
      "set_config('idle_in_transaction_session_timeout', $2, false), "
      "set_config('plan_cache_mode', 'force_generic_plan', false), "
      "CASE WHEN $3 <> '' THEN set_config('application_name', $3, false) END",
      std::to_string(options.statement_timeout.count()),
      std::to_string(options.idle_in_transaction_timeout.count()), application_name);
  return conn;
}

Status MapCurrentException() {
  try {
    throw;
  } catch (const pqxx::in_doubt_error& e) {
    return Status::Internal(std::string("commit outcome unknown: ") + e.what());
  } catch (const pqxx::broken_connection& e) {
    return Status::Unavailable(std::string("database unavailable: ") + e.what());
  } catch (const pqxx::statement_completion_unknown& e) {
    return Status::Internal(std::string("statement outcome unknown: ") + e.what());
  } catch (const pqxx::serialization_failure& e) {
    return Status::Aborted(std::string("transaction conflict: ") + e.what());
  } catch (const pqxx::deadlock_detected& e) {
    return Status::Aborted(std::string("deadlock: ") + e.what());
  } catch (const pqxx::transaction_rollback& e) {
    return Status::Aborted(std::string("transaction rolled back: ") + e.what());
  } catch (const pqxx::unique_violation& e) {
    return Status::AlreadyExists(e.what());
  } catch (const pqxx::data_exception& e) {
    return Status::InvalidArgument(ServerMessage(e));
  } catch (const pqxx::sql_error& e) {
    // Values PostgreSQL refuses (class 22: \u0000 in JSON, a string too long, a bad date) are
    // the caller's data, not a fault of the store; libpqxx maps only some of class 22 to
    // data_exception, so the SQLSTATE decides.
    if (e.sqlstate().rfind("22", 0) == 0) return Status::InvalidArgument(ServerMessage(e));
    const std::string& state = e.sqlstate();
    if (state == kFencedSqlstate) return Status::FailedPrecondition(ServerMessage(e));
    if (state == "57014") {
      return Status::Unavailable("the database did not answer in time (statement_timeout): " +
                                 ServerMessage(e));
    }
    // Server errors during a shutdown or restart (admin_shutdown, cannot_connect_now) mean the
    // database is going away, not that our SQL is wrong.
    if (state.rfind("57P", 0) == 0 || state.rfind("08", 0) == 0) {
      return Status::Unavailable(std::string("database unavailable: ") + e.what());
    }
    return Status::Internal(std::string("database error: ") + e.what());
  } catch (const std::exception& e) {
    return Status::Internal(std::string("storage error: ") + e.what());
  } catch (...) {
    return Status::Internal("storage error: unknown exception");
  }
}

Pool::Pool(PgOptions options, std::vector<std::pair<std::string, std::string>> prepared)
    : options_(std::move(options)), prepared_(std::move(prepared)) {
  slots_.resize(static_cast<size_t>(std::max(options_.pool_size, 1)));
  // Hand out low indices first so a lightly loaded store keeps reusing few connections.
  for (size_t i = slots_.size(); i > 0; --i) free_.push_back(i - 1);
}

std::optional<size_t> Pool::TakeSlot() {
  const auto deadline = std::chrono::steady_clock::now() + options_.pool_wait_timeout;
  std::unique_lock lock(mu_);
  while (free_.empty()) {
    if (slot_freed_.wait_until(lock, deadline) == std::cv_status::timeout && free_.empty()) {
      return std::nullopt;
    }
  }
  const size_t slot = free_.back();
  free_.pop_back();
  return slot;
}

size_t Pool::InUse() const {
  std::lock_guard lock(mu_);
  return slots_.size() - free_.size();
}

Status Pool::Busy() const {
  return Status::Unavailable("the database is busy: no connection became free within " +
                             Duration(options_.pool_wait_timeout));
}

Pool::Lease::~Lease() {
  {
    std::lock_guard lock(pool_.mu_);
    pool_.free_.push_back(slot_);
  }
  pool_.slot_freed_.notify_one();
}

pqxx::connection& Pool::Lease::Connection() {
  auto& conn = pool_.slots_[slot_];
  if (conn && !conn->is_open()) conn.reset();
  if (!conn) {
    conn = Connect(pool_.options_, "dagd");
    for (const auto& [name, sql] : pool_.prepared_) conn->prepare(name, sql);
  }
  return *conn;
}

void Pool::Lease::DiscardIfClosed() {
  auto& conn = pool_.slots_[slot_];
  if (!conn) return;
  pollfd p{conn->sock(), POLLIN, 0};
  if (p.fd < 0) {
    conn.reset();
    return;
  }
  // An idle connection has nothing to read; something readable is the server's goodbye (or a
  // parameter report): consume it and see whether the connection survived.
  if (::poll(&p, 1, 0) <= 0) return;
  try {
    conn->get_notifs();
  } catch (...) {
    conn.reset();
    return;
  }
  if (!conn->is_open()) conn.reset();
}

}  // namespace dagd::storage::pg
