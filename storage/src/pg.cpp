#include "pg.hpp"

#include <exception>

namespace dagd::storage::pg {

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
  } catch (const pqxx::sql_error& e) {
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
