// The daemon's configuration: flags, DAGD_* environment variables and an optional config file
// (TOML/INI, the same names as the flags without dashes), in that order of precedence.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dagd::daemon {

struct Config {
  std::filesystem::path dags_folder = "dags";
  std::filesystem::path state_dir;  // default: /var/lib/dagd as root, ~/.local/state/dagd else
  std::string database_url;         // empty: run the embedded PostgreSQL
  std::optional<std::string> pg_user;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  int parallelism = 8;
  int api_threads = 16;  // they mostly wait on PostgreSQL; concurrent triggers share commits
  std::chrono::seconds shutdown_grace{30};
  // How long a transform job may run on after its cancellation before its try is failed and
  // its thread counted as abandoned (ExecutorOptions::cancel_grace).
  std::chrono::seconds task_cancel_grace{10};
  std::string log_level = "info";
  // The account bash tasks run as: as root --run-as (default "dagd"), checked to exist and to be
  // neither root nor the --pg-user account; otherwise the daemon's own account (no switch).
  std::string run_as;
  std::vector<std::string> allow_run_as;         // further accounts a task may name (as root only)
  uint64_t max_log_bytes = uint64_t{100} << 20;  // per-try log cap
  // Host names the API answers to besides the loopback names (Host and Origin checks).
  std::vector<std::string> allowed_hosts;
  int max_page_limit = 100;            // a larger `limit` is reduced to it
  uint64_t max_conf_bytes = 64 << 10;  // a trigger with a larger run conf is refused
  int api_max_connections = 1024;
  std::chrono::seconds api_request_timeout{30};  // longest wait for a handler before 503
  std::chrono::seconds api_idle_timeout{30};     // keep-alive connections idle longer are closed
  int max_live_streams = 256;  // event streams, waits and log follows open at once
  // Events older than this are removed from the event log; nullopt keeps them all.
  std::optional<std::chrono::seconds> event_retention = std::chrono::hours(24 * 7);
  // The HS256 key of the API's JWTs, from DAGD_JWT_SECRET (never a flag: argv is public), which
  // is removed from the environment once read so that no child process inherits it. Unset: the
  // key in <state_dir>/jwt.key (jwt_key.hpp).
  std::optional<std::string> jwt_secret;
  std::chrono::seconds jwt_expiration{86400};  // lifetime of a JWT from POST /auth/token
  // HTTPS: PEM certificate chain and private key, both or neither (checked to load and match).
  std::string tls_cert_file;
  std::string tls_key_file;
};

enum class Command { kServe, kValidate, kUsers, kTokens, kNextRuns, kExit };

// `dagd users add|list|delete|set-role|set-password` and `dagd tokens create|list|revoke`
// (accounts.hpp).
struct AccountCommand {
  std::string verb;  // "add", "list", "delete", "set-role", "set-password", "create", "revoke"
  std::string name;
  std::string role;
  std::string expires = "90d";  // tokens create: a duration ("90d", "12h") or "never"
  bool password_stdin = false;  // users add/set-password: read stdin even from a terminal
};

struct Invocation {
  Command command = Command::kServe;
  Config config;
  std::vector<std::string> validate_files;  // `dagd dags validate FILE...`
  AccountCommand account;                   // kUsers, kTokens
  std::string next_runs_target;             // `dagd dags next-runs DAG_FILE_OR_ID`
  int next_runs_count = 10;                 // its -n
  int exit_code = 0;                        // kExit: --help, --version or a usage error
};

// Parses argv (CLI11 lives in this one translation unit: it is slow to compile). Usage errors
// print to stderr and yield Command::kExit with a non-zero exit code; so does, for `serve`, a
// task account that cannot be used (missing, root, the PostgreSQL account, or another account
// while dagd is not root), and TLS files that cannot serve (only one given, unreadable, not PEM,
// a key that does not match the certificate).
Invocation ParseCommandLine(int argc, char** argv);

// "127.0.0.1:8080", "localhost:8080", "[::1]:8080", ":8080" (host defaults to 127.0.0.1).
bool ParseListen(const std::string& text, std::string& host, uint16_t& port);

}  // namespace dagd::daemon
