#include "config.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <vector>

#include "dagd/api/http_server.hpp"
#include "dagd/executors/system_account.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::daemon {
namespace {

std::filesystem::path DefaultStateDir() {
  if (geteuid() == 0) return "/var/lib/dagd";
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::filesystem::path(xdg) / "dagd";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::filesystem::path(home) / ".local/state/dagd";
  }
  return ".dagd";
}

// An account tasks may run as (as root): it exists, is not root, and is not the account that
// owns the embedded PostgreSQL's files. Returns the reason it is refused, or "".
std::string RefuseTaskAccount(const std::string& flag, const std::string& name,
                              const std::optional<std::string>& pg_user) {
  auto account = executors::FindAccount(name);
  if (!account) {
    return "--" + flag + " '" + name + "': no such account; create it (deploy/install-deps.sh " +
           "creates 'dagd') or name another";
  }
  if (account->uid == 0) {
    return "--" + flag + " '" + name + "' has uid 0: tasks never run as root; name an " +
           "unprivileged account";
  }
  if (pg_user) {
    auto pg = executors::FindAccount(*pg_user);
    if (pg && pg->uid == account->uid) {
      return "--" + flag + " '" + name + "' is the PostgreSQL account (--pg-user), which owns " +
             "the database files; name another account";
    }
  }
  return "";
}

// Resolves c.run_as and checks both account flags; returns the first refusal, or "".
std::string CheckTaskAccounts(Config& c, const std::string& run_as) {
  if (geteuid() != 0) {
    const std::string self = executors::AccountName(geteuid());
    for (const std::string& name : c.allow_run_as) {
      if (name != self) {
        return "--allow-run-as '" + name + "' needs root: dagd runs as '" + self +
               "', so tasks run as '" + self + "' too; drop it or start dagd as root";
      }
    }
    if (!run_as.empty() && run_as != self) {
      return "--run-as '" + run_as + "' needs root: dagd runs as '" + self +
             "', so tasks run as '" + self + "' too; drop --run-as or start dagd as root";
    }
    c.run_as = self;
    return "";
  }
  c.run_as = run_as.empty() ? "dagd" : run_as;
  if (auto refused = RefuseTaskAccount("run-as", c.run_as, c.pg_user); !refused.empty()) {
    return refused;
  }
  for (const std::string& name : c.allow_run_as) {
    if (auto refused = RefuseTaskAccount("allow-run-as", name, c.pg_user); !refused.empty()) {
      return refused;
    }
  }
  return "";
}

// A host as the Host and Origin checks compare it: a DNS name, an IPv4 address, an IPv6 address
// (bare or in brackets) or "*"; never a scheme, a path or a port, which would never match.
bool IsHostName(std::string_view host) {
  if (host == "*") return true;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host.size() > 253) return false;
  const bool ipv6 = host.find(':') != std::string_view::npos;
  return host.find_first_not_of(ipv6 ? "0123456789abcdefABCDEF:."
                                     : "abcdefghijklmnopqrstuvwxyz"
                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789-.") == std::string_view::npos &&
         (!ipv6 || host.find(':') != host.rfind(':'));  // "host:8080" is not IPv6
}

// Both TLS flags or neither, and files the server can serve with; returns the refusal, or "".
std::string CheckTls(const Config& c) {
  if (c.tls_cert_file.empty() && c.tls_key_file.empty()) return "";
  if (c.tls_cert_file.empty() || c.tls_key_file.empty()) {
    return std::string("--tls-cert and --tls-key go together: ") +
           (c.tls_cert_file.empty() ? "--tls-key was given without --tls-cert"
                                    : "--tls-cert was given without --tls-key");
  }
  if (Status s = api::CheckTlsFiles(c.tls_cert_file, c.tls_key_file); !s.ok()) {
    return "cannot serve HTTPS: " + s.message();
  }
  return "";
}

}  // namespace

bool ParseListen(const std::string& text, std::string& host, uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string h = text.substr(0, colon);
  std::string p = text.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) h = "127.0.0.1";
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  long value = std::stol(p);
  if (value > 65535) return false;
  host = h;
  port = static_cast<uint16_t>(value);
  return true;
}

Invocation ParseCommandLine(int argc, char** argv) {
  Invocation inv;
  Config& c = inv.config;
  CLI::App app{"dagd: a DAG scheduler daemon with Airflow's REST API and PostgreSQL state"};
  app.set_version_flag("--version", "dagd " DAGD_DAEMON_VERSION);
  app.set_config("--config", "", "Config file (TOML/INI; keys are the long flag names)");

  std::string state_dir, listen = "127.0.0.1:8080", pg_user, dags_folder = c.dags_folder;
  int grace = static_cast<int>(c.shutdown_grace.count());
  int cancel_grace = static_cast<int>(c.task_cancel_grace.count());
  app.add_option("--dags-folder", dags_folder, "Folder of DAG documents (*.json)")
      ->envname("DAGD_DAGS_FOLDER")
      ->capture_default_str();
  app.add_option("--state-dir", state_dir,
                 "State directory: per-try logs and the embedded PostgreSQL "
                 "(default /var/lib/dagd as root, ~/.local/state/dagd otherwise)")
      ->envname("DAGD_STATE_DIR");
  app.add_option("--database-url", c.database_url,
                 "PostgreSQL connection string (URI or key=value); unset: embedded PostgreSQL")
      ->envname("DAGD_DATABASE_URL");
  app.add_option("--pg-user", pg_user,
                 "Account that runs the embedded PostgreSQL when dagd runs as root")
      ->envname("DAGD_PG_USER");
  app.add_option("--listen", listen,
                 "HTTP address HOST:PORT; a non-loopback one without TLS is warned about "
                 "(credentials travel in clear text)")
      ->envname("DAGD_LISTEN")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->capture_default_str();
  app.add_option("--parallelism", c.parallelism, "Tasks that run at once")
      ->envname("DAGD_PARALLELISM")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--api-threads", c.api_threads, "Threads that serve API requests")
      ->envname("DAGD_API_THREADS")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--shutdown-grace", grace,
                 "Seconds running tasks get to finish on SIGTERM before they are stopped")
      ->envname("DAGD_SHUTDOWN_GRACE")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  app.add_option("--task-cancel-grace", cancel_grace,
                 "Seconds a transform job may run on after its cancellation (execution_timeout, "
                 "dagrun_timeout, shutdown) before its try is failed and its thread counted in "
                 "dagd_executor_abandoned_threads")
      ->envname("DAGD_TASK_CANCEL_GRACE")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  std::string run_as;
  app.add_option("--run-as", run_as,
                 "Account bash tasks run as when dagd runs as root (default dagd; never root, "
                 "nor the --pg-user account); otherwise tasks run as dagd's own account")
      ->envname("DAGD_RUN_AS");
  app.add_option("--allow-run-as", c.allow_run_as,
                 "Further accounts a DAG task may name in run_as_user, comma-separated (root only)")
      ->envname("DAGD_ALLOW_RUN_AS")
      ->delimiter(',');
  app.add_option("--allowed-hosts", c.allowed_hosts,
                 "Host names the API answers to besides localhost, 127.0.0.1 and ::1, "
                 "comma-separated (\"*\": any); other Host or Origin headers get 403")
      ->envname("DAGD_ALLOWED_HOSTS")
      ->delimiter(',');
  app.add_option("--max-page-limit", c.max_page_limit,
                 "Most items a list returns; a larger `limit` is reduced to it")
      ->envname("DAGD_MAX_PAGE_LIMIT")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--max-conf-bytes", c.max_conf_bytes,
                 "Largest run conf (its JSON) a trigger may carry, e.g. 65536 or 64KiB")
      ->envname("DAGD_MAX_CONF_BYTES")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{2}, uint64_t{1} << 20))
      ->capture_default_str();
  app.add_option("--api-max-connections", c.api_max_connections,
                 "Open API connections at most; near it, idle keep-alive ones are closed first")
      ->envname("DAGD_API_MAX_CONNECTIONS")
      ->check(CLI::Range(8, 1 << 20))
      ->capture_default_str();
  int request_timeout = static_cast<int>(c.api_request_timeout.count());
  app.add_option("--api-request-timeout", request_timeout,
                 "Seconds a request may wait for a handler thread before it is answered 503 "
                 "(0: no limit)")
      ->envname("DAGD_API_REQUEST_TIMEOUT")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  int idle_timeout = static_cast<int>(c.api_idle_timeout.count());
  app.add_option("--api-idle-timeout", idle_timeout,
                 "Seconds an idle keep-alive connection stays open")
      ->envname("DAGD_API_IDLE_TIMEOUT")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--max-live-streams", c.max_live_streams,
                 "Event streams, run waits and log follows served at once; more are answered 503")
      ->envname("DAGD_MAX_LIVE_STREAMS")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  std::string event_retention = "7d";
  app.add_option("--event-retention", event_retention,
                 "How long the event log keeps events (e.g. 7d, 12h, 30m) or never; a stream "
                 "resuming before the oldest kept event is told so (410)")
      ->envname("DAGD_EVENT_RETENTION")
      ->capture_default_str();
  app.add_option("--tls-cert", c.tls_cert_file,
                 "PEM certificate (chain) file: serve HTTPS only, with --tls-key; SIGHUP re-reads "
                 "both")
      ->envname("DAGD_TLS_CERT");
  app.add_option("--tls-key", c.tls_key_file,
                 "PEM private key file (unencrypted) of the --tls-cert certificate")
      ->envname("DAGD_TLS_KEY");
  app.add_option("--max-log-bytes", c.max_log_bytes,
                 "Per-try log size cap (e.g. 104857600, 100MiB); output beyond it is dropped "
                 "and counted in a note at the end of the log")
      ->envname("DAGD_MAX_LOG_BYTES")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error")
      ->envname("DAGD_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();

  int jwt_expiration = static_cast<int>(c.jwt_expiration.count());
  app.add_option("--jwt-expiration", jwt_expiration,
                 "Seconds a token from POST /auth/token stays valid (the signing key is "
                 "DAGD_JWT_SECRET, else <state-dir>/jwt.key)")
      ->envname("DAGD_JWT_EXPIRATION")
      ->check(CLI::Range(1, 366 * 86400))
      ->capture_default_str();

  // Account commands work on the daemon's database: the same --state-dir, --database-url and
  // --pg-user as the daemon.
  const std::vector<std::string> kRoles = {"viewer", "user", "op", "admin"};
  AccountCommand& a = inv.account;
  auto* users = app.add_subcommand("users", "Manage API users (same database flags as the daemon)");
  users->require_subcommand(1);
  auto* user_add = users->add_subcommand(
      "add", "Add a user; the password is read from stdin, or asked twice on a terminal");
  user_add->add_option("name", a.name, "User name")->required();
  user_add->add_option("--role", a.role, "viewer, user, op or admin")
      ->required()
      ->check(CLI::IsMember(kRoles));
  user_add->add_flag("--password-stdin", a.password_stdin,
                     "Read the password from stdin (one line) even from a terminal");
  auto* user_list = users->add_subcommand("list", "List users and their roles");
  auto* user_delete = users->add_subcommand("delete", "Delete a user");
  user_delete->add_option("name", a.name, "User name")->required();
  auto* user_set_role = users->add_subcommand("set-role", "Change a user's role");
  user_set_role->add_option("name", a.name, "User name")->required();
  user_set_role->add_option("role", a.role, "viewer, user, op or admin")
      ->required()
      ->check(CLI::IsMember(kRoles));

  auto* user_set_password = users->add_subcommand(
      "set-password", "Change a user's password; read from stdin, or asked twice on a terminal");
  user_set_password->add_option("name", a.name, "User name")->required();
  user_set_password->add_flag("--password-stdin", a.password_stdin,
                              "Read the password from stdin (one line) even from a terminal");

  auto* tokens =
      app.add_subcommand("tokens", "Manage long-lived API tokens for scripts, cron and CI");
  tokens->require_subcommand(1);
  auto* token_create =
      tokens->add_subcommand("create", "Create a token; it is printed once, on stdout");
  token_create->add_option("--name", a.name, "Token name")->required();
  token_create->add_option("--role", a.role, "viewer, user, op or admin")
      ->required()
      ->check(CLI::IsMember(kRoles));
  token_create->add_option("--expires", a.expires, "Lifetime (90d, 12h, 30m) or never")
      ->capture_default_str();
  auto* token_list = tokens->add_subcommand("list", "List tokens (never their secrets)");
  auto* token_revoke = tokens->add_subcommand("revoke", "Revoke a token at once");
  token_revoke->add_option("name", a.name, "Token name")->required();

  auto* dags = app.add_subcommand("dags", "Work with DAG documents");
  auto* validate =
      dags->add_subcommand("validate", "Check DAG files offline; non-zero exit on errors");
  validate->add_option("files", inv.validate_files, "DAG files")->required();
  auto* next_runs = dags->add_subcommand(
      "next-runs", "Print a DAG's next scheduled runs offline (UTC and the DAG's time zone)");
  next_runs->add_option("dag", inv.next_runs_target, "A DAG file, or a dag_id in --dags-folder")
      ->required();
  next_runs->add_option("-n", inv.next_runs_count, "How many runs")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  dags->require_subcommand(1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    inv.command = Command::kExit;
    inv.exit_code = app.exit(e);
    return inv;
  }
  if (event_retention == "never") {
    c.event_retention.reset();
  } else if (auto keep = scheduler::ParseDurationText(event_retention);
             keep && *keep >= std::chrono::seconds(1)) {
    c.event_retention = std::chrono::duration_cast<std::chrono::seconds>(*keep);
  } else {
    std::cerr << "dagd: --event-retention '" << event_retention
              << "' is not a duration of at least 1s (such as 7d, 12h or 30m) nor 'never'\n";
    inv.command = Command::kExit;
    inv.exit_code = 2;
    return inv;
  }
  if (!ParseListen(listen, c.listen_host, c.listen_port)) {
    std::cerr << "dagd: --listen '" << listen << "' is not HOST:PORT (e.g. 127.0.0.1:8080)\n";
    inv.command = Command::kExit;
    inv.exit_code = 2;
    return inv;
  }
  for (const std::string& host : c.allowed_hosts) {
    if (!IsHostName(host)) {
      std::cerr << "dagd: --allowed-hosts '" << host
                << "' is not a host name: give names or addresses without scheme or port, "
                   "e.g. dagd.internal,10.0.0.5 (or * for any)\n";
      inv.command = Command::kExit;
      inv.exit_code = 2;
      return inv;
    }
  }
  // Absolute, so DAG file locations and log paths do not depend on a later working directory.
  c.dags_folder = std::filesystem::absolute(dags_folder).lexically_normal();
  c.state_dir = std::filesystem::absolute(state_dir.empty() ? DefaultStateDir()
                                                            : std::filesystem::path(state_dir))
                    .lexically_normal();
  if (!pg_user.empty()) c.pg_user = pg_user;
  c.shutdown_grace = std::chrono::seconds(grace);
  c.task_cancel_grace = std::chrono::seconds(cancel_grace);
  c.api_request_timeout = std::chrono::seconds(request_timeout);
  c.api_idle_timeout = std::chrono::seconds(idle_timeout);
  c.jwt_expiration = std::chrono::seconds(jwt_expiration);
  if (const char* secret = std::getenv("DAGD_JWT_SECRET"); secret != nullptr) {
    c.jwt_secret = secret;
    ::unsetenv("DAGD_JWT_SECRET");
  }
  inv.command = validate->parsed() ? Command::kValidate : Command::kServe;
  if (next_runs->parsed()) inv.command = Command::kNextRuns;
  for (auto [sub, verb] : {std::pair{user_add, "add"},
                           {user_list, "list"},
                           {user_delete, "delete"},
                           {user_set_role, "set-role"},
                           {user_set_password, "set-password"}}) {
    if (sub->parsed()) {
      inv.command = Command::kUsers;
      a.verb = verb;
    }
  }
  for (auto [sub, verb] :
       {std::pair{token_create, "create"}, {token_list, "list"}, {token_revoke, "revoke"}}) {
    if (sub->parsed()) {
      inv.command = Command::kTokens;
      a.verb = verb;
    }
  }
  if (inv.command == Command::kServe) {
    std::string refused = CheckTaskAccounts(c, run_as);
    if (refused.empty()) refused = CheckTls(c);
    if (!refused.empty()) {
      std::cerr << "dagd: " << refused << "\n";
      inv.command = Command::kExit;
      inv.exit_code = 2;
    }
  }
  return inv;
}

}  // namespace dagd::daemon
