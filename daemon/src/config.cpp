#include "config.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

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
  app.add_option("--listen", listen, "HTTP address HOST:PORT (loopback only for now)")
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
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error")
      ->envname("DAGD_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();

  auto* dags = app.add_subcommand("dags", "Work with DAG documents");
  auto* validate =
      dags->add_subcommand("validate", "Check DAG files offline; non-zero exit on errors");
  validate->add_option("files", inv.validate_files, "DAG files")->required();
  dags->require_subcommand(1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    inv.command = Command::kExit;
    inv.exit_code = app.exit(e);
    return inv;
  }
  if (!ParseListen(listen, c.listen_host, c.listen_port)) {
    std::cerr << "dagd: --listen '" << listen << "' is not HOST:PORT (e.g. 127.0.0.1:8080)\n";
    inv.command = Command::kExit;
    inv.exit_code = 2;
    return inv;
  }
  // Absolute, so DAG file locations and log paths do not depend on a later working directory.
  c.dags_folder = std::filesystem::absolute(dags_folder).lexically_normal();
  c.state_dir = std::filesystem::absolute(state_dir.empty() ? DefaultStateDir()
                                                            : std::filesystem::path(state_dir))
                    .lexically_normal();
  if (!pg_user.empty()) c.pg_user = pg_user;
  c.shutdown_grace = std::chrono::seconds(grace);
  inv.command = validate->parsed() ? Command::kValidate : Command::kServe;
  return inv;
}

}  // namespace dagd::daemon
