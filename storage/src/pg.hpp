// The one thin wrapper between dagd and libpqxx: a fixed-size connection pool and Run(fn), which
// executes fn in one transaction and maps libpqxx exceptions to Status exactly once. Every other
// file in storage/ talks to PostgreSQL through this, so a move to libpqxx 7 touches little.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dagd/scheduler/status.hpp"

namespace dagd::storage::pg {

// Maps the exception currently being handled (call only inside a catch block):
// broken_connection → unavailable; serialization_failure, deadlock_detected → aborted;
// unique_violation → already_exists; data exceptions (SQLSTATE class 22: \u0000 in JSON, string
// too long, bad datetime) → invalid_argument with PostgreSQL's message; in_doubt_error and
// everything else → internal.
Status MapCurrentException();

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const StatusOr<T>& s) {
  return s.status();
}

class Pool {
 public:
  // Connections are opened lazily; call Check() to verify the database is reachable.
  Pool(std::string url, int size);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs fn(pqxx::work&) in one transaction; commits when it returns an ok Status / StatusOr,
  // rolls back otherwise. fn returns Status or StatusOr<T>; so does Run. Never throws.
  template <typename Fn>
  auto Run(Fn&& fn) -> std::invoke_result_t<Fn, pqxx::work&> {
    using Result = std::invoke_result_t<Fn, pqxx::work&>;
    Lease lease(*this);
    try {
      std::optional<pqxx::work> tx;
      Begin(lease, tx);
      Result result = fn(*tx);
      if (StatusOf(result).ok()) tx->commit();
      return result;
    } catch (...) {
      Status status = MapCurrentException();
      // A lost connection is re-opened by the next user of this slot (a commit of unknown
      // outcome also leaves the connection closed, which Connection() notices).
      if (status.code() == StatusCode::kUnavailable) lease.Discard();
      return Result(std::move(status));
    }
  }

  // Runs fn(pqxx::connection_base&) on a pooled connection, outside any transaction (for
  // migrations, which manage their own). Same error mapping as Run.
  template <typename Fn>
  Status WithConnection(Fn&& fn) {
    Lease lease(*this);
    try {
      fn(lease.Connection());
      return Status::Ok();
    } catch (...) {
      lease.Discard();
      return MapCurrentException();
    }
  }

 private:
  // One connection, borrowed by one thread at a time; returned to the pool when destroyed.
  class Lease {
   public:
    explicit Lease(Pool& pool);
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    // Opens the connection if needed (throws broken_connection when it cannot).
    pqxx::connection& Connection();
    // Closes the connection; the next user of this slot reconnects.
    void Discard() { pool_.slots_[slot_].reset(); }
    bool HasConnection() const { return pool_.slots_[slot_] != nullptr; }

   private:
    Pool& pool_;
    size_t slot_;
  };

  // Begins a transaction on the lease's connection. A pooled connection that broke while it sat
  // idle (the server restarted, its backend was terminated) fails at BEGIN, before anything that
  // could take effect was sent: it is replaced by a fresh connection, once, instead of failing
  // the caller.
  static void Begin(Lease& lease, std::optional<pqxx::work>& tx) {
    const bool pooled = lease.HasConnection();
    try {
      tx.emplace(lease.Connection());
    } catch (...) {
      if (!pooled || MapCurrentException().code() != StatusCode::kUnavailable) throw;
      lease.Discard();
      tx.emplace(lease.Connection());
    }
  }

  const std::string url_;
  // Only the lease holding slot i touches slots_[i]; mu_ guards free_.
  std::vector<std::unique_ptr<pqxx::connection>> slots_;
  std::mutex mu_;
  std::condition_variable slot_freed_;
  std::vector<size_t> free_;  // indices of slots no lease holds
};

}  // namespace dagd::storage::pg
