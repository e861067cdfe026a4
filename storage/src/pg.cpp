#include "pg.hpp"

#include <exception>
#include <optional>
#include <string>
#include <string_view>

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

}  // namespace

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
    // Server errors during a shutdown or restart (admin_shutdown, cannot_connect_now) mean the
    // database is going away, not that our SQL is wrong.
    const std::string& state = e.sqlstate();
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

Pool::Pool(std::string url, int size) : url_(std::move(url)) {
  if (size < 1) size = 1;
  slots_.resize(static_cast<size_t>(size));
  // Hand out low indices first so a lightly loaded store keeps reusing few connections.
  for (size_t i = slots_.size(); i > 0; --i) free_.push_back(i - 1);
}

Pool::Lease::Lease(Pool& pool) : pool_(pool) {
  std::unique_lock lock(pool_.mu_);
  while (pool_.free_.empty()) pool_.slot_freed_.wait(lock);
  slot_ = pool_.free_.back();
  pool_.free_.pop_back();
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
    conn = std::make_unique<pqxx::connection>(pool_.url_);
  }
  return *conn;
}

}  // namespace dagd::storage::pg
