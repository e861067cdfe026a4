#include "serve.hpp"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>

#include "dagd/api/http_server.hpp"
#include "dagd/api/router.hpp"
#include "dagd/dags/register.hpp"
#include "dagd/executors/job_registry.hpp"
#include "dagd/executors/thread_pool_executor.hpp"
#include "dagd/scheduler/dag_sync.hpp"
#include "dagd/scheduler/event_retention.hpp"
#include "dagd/scheduler/metrics.hpp"
#include "dagd/scheduler/process_metrics.hpp"
#include "dagd/scheduler/scheduler.hpp"
#include "dagd/scheduler/scheduler_service.hpp"
#include "dagd/scheduler/token_authenticator.hpp"
#include "dagd/storage/pg_state_store.hpp"
#include "dagd/storage/pg_user_store.hpp"
#include "embedded_postgres.hpp"
#include "jwt_key.hpp"
#include "logging.hpp"
#include "state_dir.hpp"

namespace dagd::daemon {
namespace {

int Fail(const std::string& what, const Status& status) {
  Log()->critical("{} error=\"{}\"", what, status.message());
  return 1;
}

// Returns the versions synced, parsed (empty if the sync failed).
std::vector<std::pair<int, scheduler::DagPtr>> SyncFolder(scheduler::StateStore& store,
                                                          const Config& config,
                                                          const scheduler::ParseOptions& options,
                                                          const scheduler::Clock& clock) {
  auto report = scheduler::SyncDagFolder(store, config.dags_folder, options, clock);
  if (!report.ok()) {
    Log()->error("DAG folder sync failed folder={} error=\"{}\"", config.dags_folder.string(),
                 report.status().message());
    return {};
  }
  return std::move(report->versions);
}

// Each API connection is a descriptor, on top of the database pool, logs and bash pipes. The
// usual soft limit (1024) is below the connection cap, so the soft limit goes up to the hard one
// (systemd's default hard limit is 524288): otherwise accept fails with EMFILE before the cap
// and its idle-connection eviction are ever reached.
void RaiseDescriptorLimit(int max_connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t wanted = static_cast<rlim_t>(max_connections) + 1024;
  if (limit.rlim_cur >= wanted) return;
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = std::min(wanted, limit.rlim_max);
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur < wanted) {
    Log()->warn("open-file limit below what --api-max-connections needs limit={} needed={}",
                limit.rlim_cur, wanted);
  } else {
    Log()->debug("open-file limit raised from={} to={}", before, limit.rlim_cur);
  }
}

bool IsLoopback(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

// How to make the first admin, said once at start while the database has no user and no token.
void AdviseFirstAdmin(scheduler::UserStore& users, const Config& config) {
  auto listed = users.ListUsers();
  auto tokens = users.ListTokens();
  if (!listed.ok() || !tokens.ok() || !listed->empty() || !tokens->empty()) return;
  std::string flags = " --state-dir " + config.state_dir.string();
  if (!config.database_url.empty()) flags += " --database-url <the same URL>";
  if (config.pg_user) flags += " --pg-user " + *config.pg_user;
  Log()->warn(
      "no API users yet: every endpoint but version and health answers 401. Create the first "
      "admin with `dagd{} users add admin --role admin` (it asks for the password), then get a "
      "token with POST /auth/token {{\"username\": \"admin\", \"password\": \"...\"}}; or "
      "make a long-lived token with `dagd{} tokens create --name NAME --role admin`",
      flags, flags);
}

}  // namespace

int Serve(const Config& config) {
  if (!SetUpLogging(config.log_level)) return 2;

  // Signals are taken synchronously by this thread (sigwait); every thread started from here on
  // inherits the blocked mask, so no other thread is interrupted by them.
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Not dumpable: another process of the same account (a task, when dagd is not root) cannot
  // read /proc/<pid>/environ or attach to dagd to take its database password. No core dumps,
  // which would hold the same secrets.
  prctl(PR_SET_DUMPABLE, 0);
  RaiseDescriptorLimit(config.api_max_connections);

  // Private to this account; the embedded PostgreSQL's own account (dagd as root) may pass through.
  const bool embedded_as_other_account =
      config.database_url.empty() && geteuid() == 0 && config.pg_user.has_value();
  if (Status s = PrepareStateDir(config.state_dir,
                                 embedded_as_other_account ? config.pg_user : std::nullopt);
      !s.ok()) {
    return Fail("cannot prepare the state directory " + config.state_dir.string(), s);
  }

  std::string database_url = config.database_url;
  std::atomic<bool> database_lost{false};  // the embedded PostgreSQL is down for good
  std::atomic<bool> fenced{false};         // another dagd took over the scheduler lease
  std::unique_ptr<EmbeddedPostgres> embedded;
  if (database_url.empty()) {
    if (geteuid() == 0 && !config.pg_user) {
      Log()->critical(
          "refusing to start: dagd runs as root without --database-url, and PostgreSQL will not "
          "run as root; pass --pg-user postgres (the account for the embedded PostgreSQL) or "
          "--database-url");
      return 1;
    }
    EmbeddedPostgresOptions pg_options;
    pg_options.state_dir = config.state_dir;
    pg_options.run_as_user = config.pg_user;
    // A cluster that cannot be restarted ends the daemon, non-zero, so that its service manager
    // (Restart=on-failure) can take over: the loop below wakes as on SIGTERM.
    pg_options.on_give_up = [&database_lost](const Status&) {
      database_lost = true;
      ::kill(::getpid(), SIGTERM);
    };
    embedded = std::make_unique<EmbeddedPostgres>(pg_options);
    if (Status s = embedded->Start(); !s.ok()) return Fail("embedded PostgreSQL did not start", s);
    database_url = embedded->conninfo();
  }

  // Declared before everything that records into it, so that it outlives them all.
  scheduler::MetricsRegistry metrics;
  const auto process_metrics = scheduler::RegisterProcessMetrics(metrics);

  storage::PgOptions pg;
  pg.url = database_url;
  pg.pool_size = config.api_threads + 2;
  pg.metrics = &metrics;
  auto store = storage::PgStateStore::Open(pg);
  if (!store.ok()) return Fail("cannot open the database", store.status());

  // One scheduler per database: a second dagd on the same database would take the first one's
  // running tries for orphans. Checked before anything is changed.
  if (Status s = (*store)->AcquireSchedulerLock(); !s.ok()) {
    return Fail("cannot become this database's scheduler", s);
  }

  scheduler::SystemClock clock;
  auto jwt_secret = LoadJwtSecret(config.jwt_secret, config.state_dir);
  if (!jwt_secret.ok()) return Fail("refusing to start: no usable JWT key", jwt_secret.status());
  storage::PgOptions user_pg = pg;
  user_pg.metrics = nullptr;  // the state store's pool is the one reported
  user_pg.pool_size = 4;  // one lookup per request that carries an API token
  auto users = storage::PgUserStore::Open(user_pg);
  if (!users.ok()) return Fail("cannot open the database", users.status());
  scheduler::JwtOptions jwt_options;
  jwt_options.secret = std::move(*jwt_secret);
  jwt_options.lifetime = config.jwt_expiration;
  auto authenticator =
      scheduler::TokenAuthenticator::Create(std::move(jwt_options), **users, clock);
  if (!authenticator.ok()) return Fail("cannot set up authentication", authenticator.status());
  AdviseFirstAdmin(**users, config);

  executors::JobRegistry jobs;
  dags::RegisterAllJobs(jobs);
  scheduler::ParseOptions parse_options;
  parse_options.job_exists = [&jobs](std::string_view job) { return jobs.Contains(job); };
  // Only names that passed the start-up check (config.cpp: not root, not the PostgreSQL account).
  parse_options.run_as_allowed = [&config](std::string_view user) {
    return user == config.run_as ||
           std::find(config.allow_run_as.begin(), config.allow_run_as.end(), user) !=
               config.allow_run_as.end();
  };
  auto synced = SyncFolder(**store, config, parse_options, clock);

  executors::ExecutorOptions executor_options;
  executor_options.parallelism = config.parallelism;
  executor_options.run_as_user = config.run_as;
  executor_options.allowed_run_as = {config.allow_run_as.begin(), config.allow_run_as.end()};
  executor_options.postgres_account = config.pg_user.value_or("");
  executor_options.max_log_bytes = config.max_log_bytes;
  executor_options.cancel_grace = config.task_cancel_grace;
  executor_options.metrics = &metrics;
  executors::ThreadPoolExecutor executor(executor_options, jobs, clock);

  scheduler::SchedulerOptions scheduler_options;
  scheduler_options.logs_root = config.state_dir / "logs";
  scheduler_options.metrics = &metrics;
  // Another process scheduling this database now: stop, non-zero, so that the service manager
  // shows it (the loop below wakes as on SIGTERM).
  scheduler_options.on_fenced = [&fenced] {
    fenced = true;
    ::kill(::getpid(), SIGTERM);
  };
  scheduler::Scheduler sched(scheduler_options, **store, executor, clock);
  for (auto& [version, dag] : synced) sched.RememberDag(version, std::move(dag));
  scheduler::ServiceOptions service_options;
  service_options.logs_root = scheduler_options.logs_root;
  service_options.max_conf_bytes = static_cast<size_t>(config.max_conf_bytes);
  service_options.parse_options = parse_options;  // an upload is validated as a file is
  scheduler::SchedulerService service(service_options, **store, sched, clock);
  api::RouterOptions router_options;
  router_options.allowed_hosts = config.allowed_hosts;
  router_options.max_page_limit = config.max_page_limit;
  router_options.authenticator = authenticator->get();
  router_options.metrics = &metrics;
  // What GET /api/v2/config shows: settings a client may plan around; no secret, and no path
  // beyond the DAGs folder, which every DAG's fileloc already shows.
  router_options.config = {
      {"core", "executor", "dagd"},
      {"core", "parallelism", std::to_string(config.parallelism)},
      {"core", "dags_folder", config.dags_folder.string()},
      {"api", "auth_jwt_expiration_time", std::to_string(config.jwt_expiration.count())},
      {"api", "ssl_enabled", config.tls_cert_file.empty() ? "False" : "True"}};
  api::Router router(service, router_options);
  api::ServerOptions server_options;
  server_options.address = config.listen_host;
  server_options.port = config.listen_port;
  server_options.handler_threads = config.api_threads;
  // A scrape is cheap (bounded queries) and should not time out behind slow listings.
  server_options.fast_paths.push_back("/metrics");
  server_options.max_connections = static_cast<size_t>(config.api_max_connections);
  server_options.request_timeout = config.api_request_timeout;
  server_options.idle_timeout = config.api_idle_timeout;
  server_options.tls_cert_file = config.tls_cert_file;
  server_options.tls_key_file = config.tls_key_file;
  server_options.max_live_streams = static_cast<size_t>(config.max_live_streams);
  api::HttpServer server(server_options, router);
  // After the server and the service: removed (waiting for a scrape) before they go.
  const auto live_streams = metrics.AddCallback(
      "dagd_http_live_streams", "Live HTTP responses open now (event streams, run waits).",
      scheduler::MetricType::kGauge, [&server] {
        return std::vector<scheduler::Sample>{{{}, double(server.live_streams())}};
      });
  const auto watchers = metrics.AddCallback(
      "dagd_event_log_watchers", "Watchers of the event log (event streams and waits) now.",
      scheduler::MetricType::kGauge, [&service] {
        return std::vector<scheduler::Sample>{{{}, double(service.WatcherCount())}};
      });
  // The port first: a daemon that cannot serve stops before it has touched any run.
  if (Status s = server.Start(); !s.ok()) return Fail("cannot serve HTTP", s);
  if (Status s = sched.Start(); !s.ok()) {
    server.Stop();
    return Fail("scheduler did not start", s);
  }
  std::optional<scheduler::EventRetention> retention;
  if (config.event_retention) {
    scheduler::RetentionOptions retention_options;
    retention_options.keep = *config.event_retention;
    retention_options.interval = scheduler::EventRetention::IntervalFor(retention_options.keep);
    retention.emplace(retention_options, **store, clock);
    retention->Start();
  }
  if (!IsLoopback(config.listen_host) && config.tls_cert_file.empty()) {
    Log()->warn(
        "LISTENING ON A NON-LOOPBACK ADDRESS WITHOUT TLS listen={}:{}: passwords and tokens "
        "travel in clear text to anyone on the network path; serve HTTPS (--tls-cert/--tls-key) "
        "or put a TLS proxy in front",
        config.listen_host, server.port());
  }
  Log()->info("dagd ready listen={}://{}:{} dags_folder={} state_dir={} database={} parallelism={}",
              config.tls_cert_file.empty() ? "http" : "https", config.listen_host, server.port(),
              config.dags_folder.string(), config.state_dir.string(),
              embedded ? "embedded" : "external", config.parallelism);

  while (true) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      Log()->info("SIGHUP: reloading DAGs folder={}", config.dags_folder.string());
      for (auto& [version, dag] : SyncFolder(**store, config, parse_options, clock)) {
        sched.RememberDag(version, std::move(dag));
      }
      sched.Wake();
      if (!config.tls_cert_file.empty()) {
        // A renewed certificate for new connections; open ones keep theirs.
        if (Status s = server.ReloadTls(); s.ok()) {
          Log()->info("SIGHUP: TLS certificate reloaded cert={} key={}", config.tls_cert_file,
                      config.tls_key_file);
        } else {
          Log()->error(
              "SIGHUP: TLS certificate not reloaded, still serving the previous one "
              "error=\"{}\"",
              s.message());
        }
      }
      continue;
    }
    if (database_lost) {
      Log()->critical("stopping: the embedded PostgreSQL is down and could not be restarted");
    } else if (fenced) {
      Log()->critical("stopping: another dagd took over scheduling this database");
    } else {
      Log()->info("{}: stopping grace_s={}", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                  config.shutdown_grace.count());
    }
    break;
  }
  // Shutdown order: stop accepting requests → stop starting tasks → drain or cancel within the
  // grace period → flush the store → stop PostgreSQL.
  server.Stop();
  sched.Shutdown(config.shutdown_grace);
  if (database_lost || fenced) {
    Log()->critical("dagd stopped: {} exit_code=1", fenced ? "fenced off" : "database lost");
    return 1;
  }
  Log()->info("dagd stopped");
  return 0;
}

}  // namespace dagd::daemon
