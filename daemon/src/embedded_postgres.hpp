// EmbeddedPostgres: a private PostgreSQL cluster run by dagd when no database URL is configured.
//
// Start() runs initdb into <state_dir>/postgres/data on first use (and creates the database
// "dagd"), then starts `postgres` as a child process listening on a unix socket only, and returns
// once PQping answers PQPING_OK. Stop() asks for a fast shutdown (SIGINT) and reaps the child.
// The server's output goes to <state_dir>/postgres/postgres.log; every error message points there.
//
// Supervision: after Start, a thread notices within 0.1 s when the postmaster exits on its own
// (kill -9, a crash) and starts it again after a backoff; PostgreSQL's crash recovery replays the
// WAL, and clients reconnect (the store does on its next call). When it cannot be started again
// (restart_attempts in a row without staying up for stable_after), on_give_up is called once, from
// that thread, and the cluster stays down: the daemon is expected to exit non-zero then.
//
// Errors from Start():
//   failed_precondition  no server binaries; running as root without run_as_user; the PostgreSQL
//                        user cannot reach the state directory; the data directory belongs to
//                        another user or is in use by another live postgres; the cluster was made
//                        by a PostgreSQL major version that is not installed
//   invalid_argument     run_as_user names no account (or, when not root, another account: only
//                        root can switch users, so that is refused rather than ignored)
//   internal             initdb failed, or a system call failed
//   unavailable          postgres exited during startup
//   deadline_exceeded    postgres did not accept connections within start_timeout
//
// Process rules: the postgres child gets PR_SET_PDEATHSIG=SIGINT, and Linux delivers it when the
// *thread* that forked it exits — so call Start() from a thread that outlives the cluster (main).
// The child runs in its own process group, so a terminal's Ctrl-C reaches only dagd, which then
// stops the cluster last, after draining. Nothing else in the process may reap this child
// (no waitpid(-1, ...), no SIGCHLD=SIG_IGN).
// Thread-safety: Start/Stop/destructor from one thread; conninfo() and running() are safe from any
// thread after Start returns ok.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dagd/scheduler/status.hpp"

namespace dagd::daemon {

struct EmbeddedPostgresOptions {
  std::filesystem::path state_dir;  // cluster in state_dir/"postgres" (created when missing)
  // Required when dagd runs as root (PostgreSQL refuses to): initdb and postgres run as this
  // account, which must be able to traverse every parent directory of state_dir.
  std::optional<std::string> run_as_user;
  std::chrono::seconds start_timeout{30};
  // Server binaries; default: the highest /usr/lib/postgresql/<major>/bin (or the cluster's major).
  std::optional<std::filesystem::path> bin_dir;
  // Extra server settings passed as `-c name=value`. Tests pass "fsync=off" (exactly that
  // spelling), which also makes the first-start initdb skip its sync (--no-sync).
  std::vector<std::string> settings;
  // Restarts after the server exited on its own: the n-th waits restart_backoff · 2^(n-1), at
  // most max_restart_backoff; after restart_attempts restarts without the server staying up for
  // stable_after, on_give_up(last error) is called and no more are tried.
  int restart_attempts = 5;
  std::chrono::milliseconds restart_backoff{500};
  std::chrono::milliseconds max_restart_backoff{8000};
  std::chrono::seconds stable_after{60};
  std::function<void(const Status&)> on_give_up;
};

class EmbeddedPostgres {
 public:
  explicit EmbeddedPostgres(EmbeddedPostgresOptions options);
  ~EmbeddedPostgres();  // Stop()
  EmbeddedPostgres(const EmbeddedPostgres&) = delete;
  EmbeddedPostgres& operator=(const EmbeddedPostgres&) = delete;

  // Blocks until the server accepts connections on database "dagd" (first start ≈0.5 s, later
  // ≈0.1 s). Calling Start on a running instance returns ok.
  Status Start();
  // The conninfo of a server that already serves this state directory (a running dagd's), or
  // nullopt when none answers on its socket; for commands that work on a daemon's database
  // whether or not it runs. Prepares the cluster as Start does (first use: initdb), with the
  // same errors.
  StatusOr<std::optional<std::string>> FindRunning();
  // Fast shutdown: SIGINT, then SIGQUIT after 10 s, then SIGKILL after 5 more; reaps the child.
  // Idempotent; a no-op when not started.
  void Stop();

  bool running() const { return pid_.load() > 0; }
  // libpq conninfo of database "dagd": "host=<socket dir> port=5432 user=dagd dbname=dagd".
  std::string conninfo() const;
  // Where initdb and postgres write; quoted in error messages.
  std::filesystem::path log_path() const;

 private:
  struct Prepared;
  using SteadyClock = std::chrono::steady_clock;

  std::string Conninfo(const std::string& dbname) const;
  // Once: the account, directories, binaries and (first use) initdb.
  StatusOr<Prepared> Prepare(bool& first_start);
  // Each start of the server: spawn, wait until ready, ensure the database. Sets pid_.
  Status Launch();
  Status WaitUntilReady(pid_t pid);
  Status EnsureDatabase();
  // SIGINT, then SIGQUIT, then SIGKILL, each after a wait; reaps the child.
  void Terminate(pid_t pid);
  // The supervisor thread's loop.
  void Supervise();
  // Sleeps up to `how_long`; true (at once) when Stop was called.
  bool SleepUnlessStopping(SteadyClock::duration how_long);
  bool stopping_requested();

  EmbeddedPostgresOptions options_;
  std::filesystem::path cluster_dir_;   // state_dir/postgres
  std::filesystem::path socket_dir_;    // set by Start
  std::unique_ptr<Prepared> prepared_;  // set by the first successful Prepare
  // The postmaster while it runs, else -1. Written by Start/Stop (before the supervisor starts,
  // after it is joined) and by the supervisor thread.
  std::atomic<pid_t> pid_{-1};
  std::mutex mu_;  // guards stopping_
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread supervisor_;  // runs Supervise between a successful Start and Stop
};

}  // namespace dagd::daemon
