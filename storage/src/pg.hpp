// The one thin wrapper between dagd and libpqxx: Connect (every connection dagd opens, with its
// timeouts), a fixed-size connection pool, Run(fn), which executes fn in one transaction, and
// RunAutocommit(fn), which executes fn's single statements outside any transaction; both map
// libpqxx exceptions to Status exactly once. Every other file in storage/ talks to PostgreSQL
// through this, so a move to libpqxx 7 touches little.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dagd/scheduler/status.hpp"
#include "dagd/storage/pg_state_store.hpp"

namespace dagd::storage::pg {

// The SQLSTATE dagd_apply raises when the scheduler lease names another epoch.
inline constexpr std::string_view kFencedSqlstate = "DGD01";

// Maps the exception currently being handled (call only inside a catch block):
// broken_connection, statement timeout (57014), server shutdown → unavailable;
// serialization_failure, deadlock_detected → aborted; unique_violation → already_exists; data
// exceptions (SQLSTATE class 22: \u0000 in JSON, string too long, bad datetime) →
// invalid_argument with PostgreSQL's message; kFencedSqlstate → failed_precondition with
// PostgreSQL's message; in_doubt_error and everything else → internal.
Status MapCurrentException();

// Opens a connection with the options' connect timeout and TCP keepalives (as libpq connection
// parameters; they override the same keys in options.url) and sets the session's
// statement_timeout and idle_in_transaction_session_timeout, and application_name when not
// empty. Throws libpqxx exceptions (broken_connection when the database is unreachable).
std::unique_ptr<pqxx::connection> Connect(const PgOptions& options,
                                          const std::string& application_name = "");

// The task instances that `id_array` (a uuid[] SQL expression) names, as the API shows them,
// ordered by DAG, run and task. Read in `tx`, so a writer answers with its own changes as it
// made them, before the scheduler, woken by the commit, moves them on.
std::vector<scheduler::TaskInstance> TaskInstancesIn(pqxx::work& tx, const std::string& id_array);

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const StatusOr<T>& s) {
  return s.status();
}

// A read-only transaction on one snapshot (repeatable read): several queries that must agree
// with each other. libpqxx sends its BEGIN and SET TRANSACTION in one round trip.
using SnapshotRead = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;

class Pool {
 public:
  // Connections (options.pool_size, at least 1) are opened lazily, with Connect(options), and
  // declare the `prepared` statements (name → SQL): hot statements are planned once per
  // connection instead of on every call (Tx::exec_prepared(name, ...)).
  explicit Pool(PgOptions options, std::vector<std::pair<std::string, std::string>> prepared = {});
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs fn(Tx&) in one transaction (Tx: pqxx::work, read committed, unless the caller names
  // another pqxx::transaction<...>, e.g. SnapshotRead); commits when it returns an ok Status /
  // StatusOr, rolls back otherwise. fn returns Status or StatusOr<T>; so does Run. Never throws.
  template <typename Tx = pqxx::work, typename Fn>
  auto Run(Fn&& fn) -> std::invoke_result_t<Fn, Tx&> {
    using Result = std::invoke_result_t<Fn, Tx&>;
    auto slot = TakeSlot();
    if (!slot) return Result(Busy());
    Lease lease(*this, *slot);
    try {
      std::optional<Tx> tx;
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

  // Runs fn(pqxx::nontransaction&) on a pooled connection in autocommit mode: each statement
  // fn sends commits on its own (one round trip for a single statement, no BEGIN/COMMIT). A
  // pooled connection found closed before anything is sent is replaced first. Same error
  // mapping as Run; a connection lost mid-statement is unavailable (the statement may or may
  // not have taken effect).
  template <typename Fn>
  auto RunAutocommit(Fn&& fn) -> std::invoke_result_t<Fn, pqxx::nontransaction&> {
    using Result = std::invoke_result_t<Fn, pqxx::nontransaction&>;
    auto slot = TakeSlot();
    if (!slot) return Result(Busy());
    Lease lease(*this, *slot);
    try {
      lease.DiscardIfClosed();
      pqxx::nontransaction tx(lease.Connection());
      return fn(tx);
    } catch (...) {
      Status status = MapCurrentException();
      if (!lease.IsOpen()) lease.Discard();
      return Result(std::move(status));
    }
  }

  // Runs fn(pqxx::connection_base&) on a pooled connection, outside any transaction (for
  // migrations, which manage their own). Same error mapping as Run.
  template <typename Fn>
  Status WithConnection(Fn&& fn) {
    auto slot = TakeSlot();
    if (!slot) return Busy();
    Lease lease(*this, *slot);
    try {
      fn(lease.Connection());
      return Status::Ok();
    } catch (...) {
      lease.Discard();
      return MapCurrentException();
    }
  }

  size_t size() const { return slots_.size(); }
  size_t InUse() const;  // connections leased now

 private:
  // One connection, borrowed by one thread at a time; returned to the pool when destroyed.
  class Lease {
   public:
    Lease(Pool& pool, size_t slot) : pool_(pool), slot_(slot) {}
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    // Opens the connection if needed (throws broken_connection when it cannot).
    pqxx::connection& Connection();
    // Closes the connection; the next user of this slot reconnects.
    void Discard() { pool_.slots_[slot_].reset(); }
    bool HasConnection() const { return pool_.slots_[slot_] != nullptr; }
    bool IsOpen() const { return HasConnection() && pool_.slots_[slot_]->is_open(); }
    // Closes the connection if the server has hung up on it while it sat idle (a restart, a
    // terminated backend): checked without a round trip.
    void DiscardIfClosed();

   private:
    Pool& pool_;
    size_t slot_;
  };

  // Begins a transaction on the lease's connection. A pooled connection that broke while it sat
  // idle (the server restarted, its backend was terminated) fails at BEGIN, before anything that
  // could take effect was sent: it is replaced by a fresh connection, once, instead of failing
  // the caller.
  template <typename Tx>
  static void Begin(Lease& lease, std::optional<Tx>& tx) {
    const bool pooled = lease.HasConnection();
    try {
      tx.emplace(lease.Connection());
    } catch (...) {
      if (!pooled || MapCurrentException().code() != StatusCode::kUnavailable) throw;
      lease.Discard();
      tx.emplace(lease.Connection());
    }
  }

  // A free slot, waiting at most options_.pool_wait_timeout; none when none became free.
  std::optional<size_t> TakeSlot();
  Status Busy() const;

  const PgOptions options_;
  const std::vector<std::pair<std::string, std::string>> prepared_;
  // Only the lease holding slot i touches slots_[i]; mu_ guards free_.
  std::vector<std::unique_ptr<pqxx::connection>> slots_;
  mutable std::mutex mu_;
  std::condition_variable slot_freed_;
  std::vector<size_t> free_;  // indices of slots no lease holds
};

}  // namespace dagd::storage::pg
