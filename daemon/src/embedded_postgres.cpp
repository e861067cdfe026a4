#include "embedded_postgres.hpp"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <grp.h>
#include <libpq-fe.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string_view>
#include <system_error>
#include <thread>

#include "dagd/executors/system_account.hpp"
#include "errno_text.hpp"

extern char** environ;

namespace dagd::daemon {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr int kPort = 5432;
// The bootstrap superuser and the database dagd uses. A fixed role name (instead of the OS
// account's) keeps conninfo stable when the cluster later runs under another account.
constexpr std::string_view kRole = "dagd";
constexpr std::string_view kDatabase = "dagd";
// sun_path holds 108 bytes including the terminating NUL.
constexpr std::size_t kMaxSocketPath = 107;
constexpr std::string_view kSocketFile = "/.s.PGSQL.5432";
constexpr std::uintmax_t kRotateLogAt = 10 * 1024 * 1024;
constexpr auto kPollInterval = 20ms;
constexpr auto kFastShutdownWait = 10s;
constexpr auto kImmediateShutdownWait = 5s;
// How often the supervisor looks whether the postmaster is still alive.
constexpr auto kSupervisePoll = 100ms;
// How long to wait for an orphaned postgres (its dagd died) to finish its fast shutdown.
constexpr auto kOrphanWait = 10s;
constexpr std::string_view kRootRefusal =
    "PostgreSQL refuses to run as root: pass --pg-user postgres (or another account)";

std::shared_ptr<spdlog::logger> Logger() {
  auto logger = spdlog::get("daemon");
  return logger ? logger : spdlog::default_logger();
}

// The OS account initdb and postgres run as.
struct Account : executors::SystemAccount {
  bool switch_to = false;  // dagd is root: setgid/setgroups/setuid in the child
};

StatusOr<Account> ResolveAccount(const std::optional<std::string>& run_as_user) {
  const uid_t euid = geteuid();
  if (euid == 0) {
    if (!run_as_user || run_as_user->empty())
      return Status::FailedPrecondition(std::string(kRootRefusal));
    auto found = executors::FindAccount(*run_as_user);
    if (!found) {
      return Status::InvalidArgument(
          fmt::format("PostgreSQL user '{}' does not exist: create it (useradd --system {}) or "
                      "name another account with --pg-user",
                      *run_as_user, *run_as_user));
    }
    if (found->uid == 0) return Status::FailedPrecondition(std::string(kRootRefusal));
    return Account{std::move(*found), true};
  }
  Account account;
  account.uid = euid;
  account.gid = getegid();
  // Containers may run with a uid that has no passwd entry; PostgreSQL copes, so do we.
  account.name = executors::AccountName(euid);
  if (run_as_user && !run_as_user->empty() && *run_as_user != account.name) {
    return Status::InvalidArgument(fmt::format(
        "--pg-user '{}' needs root: dagd runs as '{}', so PostgreSQL runs as '{}' too; drop "
        "--pg-user or start dagd as root",
        *run_as_user, account.name, account.name));
  }
  return account;
}

// "15" or "9.6" → comparable tuple; nullopt when the name is not a version.
std::optional<std::vector<int>> ParseVersion(std::string_view text) {
  std::vector<int> parts;
  while (!text.empty()) {
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end == text.data()) return std::nullopt;
    parts.push_back(value);
    text.remove_prefix(static_cast<std::size_t>(end - text.data()));
    if (text.empty()) break;
    if (text.front() != '.') return std::nullopt;
    text.remove_prefix(1);
  }
  if (parts.empty()) return std::nullopt;
  return parts;
}

bool IsExecutable(const fs::path& path) { return ::access(path.c_str(), X_OK) == 0; }

bool HasServerBinaries(const fs::path& bin_dir) {
  return IsExecutable(bin_dir / "postgres") && IsExecutable(bin_dir / "initdb");
}

// The bin directory to use: an explicit one, else the cluster's own major version, else the
// highest installed version.
StatusOr<fs::path> FindBinDir(const std::optional<fs::path>& configured,
                              const std::optional<std::string>& cluster_version,
                              const fs::path& data_dir) {
  if (configured) {
    if (!HasServerBinaries(*configured)) {
      return Status::FailedPrecondition(fmt::format(
          "PostgreSQL server binaries (postgres, initdb) not found in {}", configured->string()));
    }
    return *configured;
  }
  const fs::path root = "/usr/lib/postgresql";
  std::vector<std::pair<std::vector<int>, std::string>> installed;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    auto version = ParseVersion(name);
    if (version && HasServerBinaries(it->path() / "bin")) installed.emplace_back(*version, name);
  }
  if (installed.empty()) {
    return Status::FailedPrecondition(
        "PostgreSQL server binaries not found under /usr/lib/postgresql: install the postgresql "
        "package");
  }
  std::sort(installed.begin(), installed.end());
  if (cluster_version) {
    for (const auto& [version, name] : installed) {
      if (name == *cluster_version) return root / name / "bin";
    }
    std::string names;
    for (const auto& [version, name] : installed) names += (names.empty() ? "" : ", ") + name;
    return Status::FailedPrecondition(fmt::format(
        "the cluster in {} was created by PostgreSQL {}, which is not installed (installed: {}): "
        "install postgresql-{} or upgrade the cluster with pg_upgrade",
        data_dir.string(), *cluster_version, names, *cluster_version));
  }
  return root / installed.back().second / "bin";
}

std::optional<std::string> ReadFirstLine(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

// The last few non-empty lines of the log, for error messages ("FATAL: ..." is usually there).
std::string LogTail(const fs::path& log, int lines) {
  std::ifstream in(log, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::streamoff>(in.tellg());
  const std::streamoff start = std::max<std::streamoff>(0, size - 4096);
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> found;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) found.push_back(line);
  }
  if (start > 0 && !found.empty()) found.erase(found.begin());  // likely cut in the middle
  std::string out;
  const std::size_t first = found.size() > static_cast<std::size_t>(lines)
                                ? found.size() - static_cast<std::size_t>(lines)
                                : 0;
  for (std::size_t i = first; i < found.size(); ++i) out += (out.empty() ? "" : " | ") + found[i];
  return out;
}

std::string WithLogTail(std::string message, const fs::path& log) {
  const std::string tail = LogTail(log, 2);
  if (!tail.empty()) message += fmt::format(" (last log lines: {})", tail);
  message += fmt::format("; see {}", log.string());
  return message;
}

// Stable across builds and machines (unlike std::hash), so the /tmp socket dir is predictable.
std::uint64_t Fnv1a(std::string_view text) {
  std::uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

std::string QuoteConninfoValue(const std::string& value) {
  if (!value.empty() && value.find_first_of(" '\\\t\n") == std::string::npos) return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// Creates (or adopts) a 0700 directory owned by the account. An existing directory owned by
// someone else is chowned only when `adopt` (our own state dir); in /tmp it is refused, since
// anyone could have planted it.
Status MakePrivateDir(const fs::path& dir, const Account& account, bool adopt) {
  const bool created = ::mkdir(dir.c_str(), 0700) == 0;
  if (!created && errno != EEXIST) {
    return Status::Internal(fmt::format("could not create {}: {}", dir.string(), ErrnoText(errno)));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    return Status::Internal(fmt::format("could not stat {}: {}", dir.string(), ErrnoText(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::FailedPrecondition(
        fmt::format("{} exists but is not a directory; remove it", dir.string()));
  }
  if (st.st_uid != account.uid) {
    if (!(created || adopt) || !account.switch_to) {
      return Status::FailedPrecondition(fmt::format(
          "{} is owned by uid {}, not by the PostgreSQL user '{}' (uid {}); remove it or fix its "
          "owner",
          dir.string(), st.st_uid, account.name, account.uid));
    }
    if (::chown(dir.c_str(), account.uid, account.gid) != 0) {
      return Status::Internal(fmt::format("could not chown {} to {}: {}", dir.string(),
                                          account.name, ErrnoText(errno)));
    }
  }
  if ((st.st_mode & 07777) != 0700 && ::chmod(dir.c_str(), 0700) != 0) {
    return Status::Internal(fmt::format("could not chmod {}: {}", dir.string(), ErrnoText(errno)));
  }
  return Status::Ok();
}

// Moves fd out of the 0..9 range so the child's dup2 onto 0..3 can never clobber it.
int HighFd(int fd) {
  if (fd < 0 || fd >= 10) return fd;
  const int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return high;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// Privilege drop for a forked child: only async-signal-safe calls.
bool SwitchAccountInChild(const Account& account) {
  if (!account.switch_to) return true;
  return ::setgroups(account.groups.size(), account.groups.data()) == 0 &&
         ::setgid(account.gid) == 0 && ::setuid(account.uid) == 0;
}

// Which ancestor directory (if any) the account cannot search. Forks a child that drops to the
// account and asks the kernel, so ACLs and supplementary groups count exactly as for postgres.
StatusOr<std::optional<fs::path>> FindUnsearchableDir(const Account& account,
                                                      const std::vector<fs::path>& dirs) {
  const pid_t pid = ::fork();
  if (pid < 0) return Status::Internal(fmt::format("fork failed: {}", ErrnoText(errno)));
  if (pid == 0) {
    if (!SwitchAccountInChild(account)) ::_exit(1);
    for (std::size_t i = 0; i < dirs.size() && i < 250; ++i) {
      if (::access(dirs[i].c_str(), X_OK) != 0) ::_exit(static_cast<int>(2 + i));
    }
    ::_exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Status::Internal(fmt::format("waitpid: {}", ErrnoText(errno)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 1) {
    return Status::Internal(fmt::format("could not switch to PostgreSQL user '{}'", account.name));
  }
  const int code = WEXITSTATUS(status);
  if (code == 0) return std::optional<fs::path>();
  return std::optional<fs::path>(dirs[static_cast<std::size_t>(code - 2)]);
}

struct ChildSpec {
  fs::path program;
  std::vector<std::string> args;  // without argv[0]
  const Account* account = nullptr;
  int output_fd = -1;  // stdout and stderr
  fs::path cwd;
  int parent_death_signal = 0;  // 0: none
};

// What the child reports through the close-on-exec pipe when it fails before exec.
struct ChildFailure {
  int stage;
  int error;
};
constexpr const char* kStageNames[] = {"setpgid", "dup2",  "switching user",
                                       "prctl",   "chdir", "exec"};

// fork + exec with everything allocated before fork (the daemon is multi-threaded by now).
StatusOr<pid_t> Spawn(const ChildSpec& spec) {
  std::vector<std::string> args_storage;
  // The full path: initdb and postgres locate their sibling programs from argv[0], and PATH need
  // not contain the PostgreSQL bin directory.
  args_storage.push_back(spec.program.string());
  args_storage.insert(args_storage.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (auto& arg : args_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);

  // Drop PG* variables: PGDATA, PGPORT, PGOPTIONS... would change what the cluster does.
  std::vector<std::string> env_storage;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("PG")) continue;
    if (spec.account->switch_to &&
        (entry.starts_with("HOME=") || entry.starts_with("USER=") || entry.starts_with("LOGNAME=")))
      continue;
    env_storage.emplace_back(entry);
  }
  if (spec.account->switch_to) {
    env_storage.push_back("HOME=" + spec.account->home);
    env_storage.push_back("USER=" + spec.account->name);
    env_storage.push_back("LOGNAME=" + spec.account->name);
  }
  std::vector<char*> envp;
  for (auto& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);

  Fd devnull(HighFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  if (devnull.get() < 0)
    return Status::Internal(fmt::format("open /dev/null: {}", ErrnoText(errno)));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return Status::Internal(fmt::format("pipe2: {}", ErrnoText(errno)));
  }
  Fd report_read(HighFd(pipe_fds[0]));
  Fd report_write(HighFd(pipe_fds[1]));
  const int output_fd = spec.output_fd;  // already >= 10 (opened through HighFd)
  rlimit limit{};
  const int max_fd = (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
                         ? static_cast<int>(std::min<rlim_t>(limit.rlim_cur, 1 << 20))
                         : 65536;
  const pid_t parent = ::getpid();
  const Account& account = *spec.account;

  const pid_t pid = ::fork();
  if (pid < 0) return Status::Internal(fmt::format("fork failed: {}", ErrnoText(errno)));
  if (pid == 0) {
    int report_fd = report_write.get();
    auto fail = [&](int stage) {
      const ChildFailure failure{stage, errno};
      [[maybe_unused]] auto n = ::write(report_fd, &failure, sizeof failure);
      ::_exit(127);
    };
    // Own process group: a terminal's Ctrl-C must reach dagd only, which stops us after draining.
    if (::setpgid(0, 0) != 0) fail(0);
    // Ignored signals and the blocked mask survive exec; postgres expects defaults.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
    }
    sigset_t empty;
    ::sigemptyset(&empty);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    if (::dup2(devnull.get(), 0) < 0 || ::dup2(output_fd, 1) < 0 || ::dup2(output_fd, 2) < 0 ||
        ::dup2(report_fd, 3) < 0) {
      fail(1);
    }
    report_fd = 3;
    ::fcntl(3, F_SETFD, FD_CLOEXEC);
    // The daemon's sockets (the HTTP listener...) must not leak into the cluster.
    if (::close_range(4, ~0U, 0) != 0) {
      for (int fd = 4; fd < max_fd; ++fd) ::close(fd);
    }
    if (!SwitchAccountInChild(account)) fail(2);
    // After setuid: a credential change clears the parent-death signal.
    if (spec.parent_death_signal != 0) {
      if (::prctl(PR_SET_PDEATHSIG, spec.parent_death_signal) != 0) fail(3);
      if (::getppid() != parent) ::_exit(0);  // dagd already died
    }
    if (::chdir(spec.cwd.c_str()) != 0) fail(4);
    ::execve(spec.program.c_str(), argv.data(), envp.data());
    fail(5);
  }
  report_write.Reset();
  ChildFailure failure{};
  ssize_t n;
  while ((n = ::read(report_read.get(), &failure, sizeof failure)) < 0 && errno == EINTR) {
  }
  if (n == static_cast<ssize_t>(sizeof failure)) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const int stage = std::clamp(failure.stage, 0, 5);
    return Status::Internal(fmt::format("could not start {}: {} failed: {}", spec.program.string(),
                                        kStageNames[stage], ErrnoText(failure.error)));
  }
  return pid;
}

// Waits up to `timeout` for the child to exit and reaps it. Returns the wait status, or nullopt
// on timeout. A child reaped by someone else (SIGCHLD ignored) counts as exited once it is gone.
std::optional<int> WaitForExit(pid_t pid, std::optional<Clock::duration> timeout) {
  const auto deadline = timeout ? Clock::now() + *timeout : Clock::time_point::max();
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno == ECHILD && ::kill(pid, 0) != 0 && errno == ESRCH) return 0;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return fmt::format("exit code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "unknown status";
}

std::optional<std::string> ReadProcField(pid_t pid, const char* file) {
  return ReadFirstLine(fs::path("/proc") / std::to_string(pid) / file);
}

struct ProcStat {
  char state = '?';
  pid_t ppid = -1;
};

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  auto stat = ReadProcField(pid, "stat");  // "pid (comm) state ppid ..."
  if (!stat) return std::nullopt;
  const auto close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat->substr(close + 1));
  ProcStat out;
  rest >> out.state >> out.ppid;
  return out;
}

// A zombie is dead: containers whose init never reaps leave exited postmasters around as zombies.
bool IsLivePostgres(pid_t pid) {
  auto stat = ReadProcStat(pid);
  return stat && stat->state != 'Z' && ReadProcField(pid, "comm") == "postgres";
}

// A postmaster.pid left behind: postgres itself ignores it when that pid is dead. Two cases need
// us: the pid was reused by an unrelated process (postgres would refuse to start), and the
// previous postgres is still alive — either finishing the fast shutdown its dead dagd's
// PDEATHSIG started (wait for it), or serving another dagd (refuse).
Status CheckDataDirFree(const fs::path& data_dir, const fs::path& state_dir) {
  const fs::path pid_file = data_dir / "postmaster.pid";
  auto line = ReadFirstLine(pid_file);
  if (!line) return Status::Ok();
  pid_t pid = 0;
  auto [end, ec] = std::from_chars(line->data(), line->data() + line->size(), pid);
  if (ec != std::errc() || pid <= 0) return Status::Ok();
  const auto deadline = Clock::now() + kOrphanWait;
  bool logged = false;
  while (true) {
    if (!IsLivePostgres(pid)) {
      if (::kill(pid, 0) == 0 || errno == EPERM) {
        Logger()->warn(
            "embedded postgres removing stale lock file={} pid={} (not a running postgres)",
            pid_file.string(), pid);
        std::error_code ignored;
        fs::remove(pid_file, ignored);
      }
      return Status::Ok();
    }
    const auto stat = ReadProcStat(pid);
    const bool orphan = stat && stat->ppid == 1;
    if (!orphan || Clock::now() >= deadline) {
      return Status::FailedPrecondition(fmt::format(
          "PostgreSQL (pid {}) is already running on {}: another dagd is probably using state "
          "directory {}; stop it or choose another --state-dir",
          pid, data_dir.string(), state_dir.string()));
    }
    if (!logged) {
      Logger()->info("embedded postgres waiting for previous server pid={} to shut down", pid);
      logged = true;
    }
    std::this_thread::sleep_for(50ms);
  }
}

void AppendBanner(int fd, std::string_view what) {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::localtime_r(&now, &tm);
  const std::string line = fmt::format("---- dagd {:%Y-%m-%d %H:%M:%S}: {} ----\n", tm, what);
  [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());
}

void FsyncDir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() >= 0) ::fsync(fd.get());
}

}  // namespace

namespace {

// The server log, opened for appending by the child (dup'ed onto its stdout and stderr).
StatusOr<int> OpenLog(const fs::path& log, const Account& account) {
  const int fd = HighFd(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (fd < 0) {
    return Status::Internal(fmt::format("could not open {}: {}", log.string(), ErrnoText(errno)));
  }
  if (account.switch_to && ::fchown(fd, account.uid, account.gid) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::Internal(fmt::format("could not chown {}: {}", log.string(), ErrnoText(err)));
  }
  return fd;
}

}  // namespace

// What Start() works out once and every (re)start of the server needs.
struct EmbeddedPostgres::Prepared {
  Account account;
  fs::path state_dir;  // canonical
  fs::path data_dir;
  fs::path bin_dir;
  bool socket_in_tmp = false;
};

EmbeddedPostgres::EmbeddedPostgres(EmbeddedPostgresOptions options)
    : options_(std::move(options)), cluster_dir_(options_.state_dir / "postgres") {}

EmbeddedPostgres::~EmbeddedPostgres() { Stop(); }

fs::path EmbeddedPostgres::log_path() const { return cluster_dir_ / "postgres.log"; }

std::string EmbeddedPostgres::Conninfo(const std::string& dbname) const {
  return fmt::format("host={} port={} user={} dbname={}", QuoteConninfoValue(socket_dir_.string()),
                     kPort, kRole, dbname);
}

std::string EmbeddedPostgres::conninfo() const { return Conninfo(std::string(kDatabase)); }

Status EmbeddedPostgres::Start() {
  if (pid_ > 0) return Status::Ok();
  const auto started = Clock::now();
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  bool first_start = false;
  if (!prepared_) {
    auto prepared = Prepare(first_start);
    if (!prepared.ok()) return prepared.status();
    prepared_ = std::make_unique<Prepared>(std::move(*prepared));
  }
  if (auto s = Launch(); !s.ok()) return s;
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  Logger()->info(
      "embedded postgres ready pid={} version={} socket={} user={} first_start={} elapsed_ms={} "
      "log={}",
      pid_.load(), prepared_->bin_dir.parent_path().filename().string(), socket_dir_.string(),
      prepared_->account.name, first_start, elapsed.count(), log_path().string());
  supervisor_ = std::thread([this] { Supervise(); });
  return Status::Ok();
}

StatusOr<std::optional<std::string>> EmbeddedPostgres::FindRunning() {
  if (!prepared_) {
    bool first_start = false;
    auto prepared = Prepare(first_start);
    if (!prepared.ok()) return prepared.status();
    prepared_ = std::make_unique<Prepared>(std::move(*prepared));
  }
  const std::string ping_conninfo = Conninfo("postgres") + " connect_timeout=2";
  if (PQping(ping_conninfo.c_str()) != PQPING_OK) return std::optional<std::string>();
  return std::optional<std::string>(conninfo());
}

StatusOr<EmbeddedPostgres::Prepared> EmbeddedPostgres::Prepare(bool& first_start) {
  if (options_.state_dir.empty()) return Status::InvalidArgument("no state directory given");

  auto account_or = ResolveAccount(options_.run_as_user);
  if (!account_or.ok()) return account_or.status();
  Prepared prepared;
  prepared.account = std::move(*account_or);
  const Account& account = prepared.account;

  std::error_code ec;
  fs::create_directories(options_.state_dir, ec);
  if (ec) {
    return Status::Internal(fmt::format("could not create state directory {}: {}",
                                        options_.state_dir.string(), ec.message()));
  }
  const fs::path state_dir = fs::canonical(options_.state_dir, ec);
  if (ec) {
    return Status::Internal(
        fmt::format("could not resolve {}: {}", options_.state_dir.string(), ec.message()));
  }
  prepared.state_dir = state_dir;
  cluster_dir_ = state_dir / "postgres";
  const fs::path data_dir = cluster_dir_ / "data";
  prepared.data_dir = data_dir;

  // Unix socket: in the cluster dir when the path fits in sun_path, else a private /tmp dir.
  socket_dir_ = cluster_dir_ / "run";
  if (socket_dir_.native().size() + kSocketFile.size() > kMaxSocketPath) {
    socket_dir_ = fmt::format("/tmp/dagd-{}-{:012x}", account.uid,
                              Fnv1a(state_dir.native()) & 0xffffffffffffULL);
    prepared.socket_in_tmp = true;
  }

  if (account.switch_to) {
    std::vector<fs::path> must_search;
    for (fs::path dir = state_dir;; dir = dir.parent_path()) {
      must_search.insert(must_search.begin(), dir);
      if (dir == dir.parent_path()) break;
    }
    if (prepared.socket_in_tmp) must_search.push_back(socket_dir_.parent_path());
    auto blocked = FindUnsearchableDir(account, must_search);
    if (!blocked.ok()) return blocked.status();
    if (blocked->has_value()) {
      return Status::FailedPrecondition(fmt::format(
          "PostgreSQL user '{}' cannot reach {} because {} is not searchable by it; use a "
          "--state-dir it can reach (e.g. /var/lib/dagd)",
          account.name,
          (**blocked == socket_dir_.parent_path() ? socket_dir_ : cluster_dir_).string(),
          (*blocked)->string()));
    }
  }
  // Before adopting the cluster dir: never chown it away from the account that owns the data.
  if (struct stat st{}; ::stat(data_dir.c_str(), &st) == 0 && st.st_uid != account.uid) {
    const std::string owner = executors::AccountName(st.st_uid);
    return Status::FailedPrecondition(fmt::format(
        "{} belongs to '{}' but PostgreSQL would run as '{}': run dagd as root with --pg-user {}, "
        "or chown -R {} {}",
        data_dir.string(), owner, account.name, owner, account.name, cluster_dir_.string()));
  }
  if (auto s = MakePrivateDir(cluster_dir_, account, /*adopt=*/true); !s.ok()) return s;

  // One log for initdb and postgres, rotated once at start so it cannot grow without bound.
  const fs::path log = log_path();
  if (fs::file_size(log, ec) > kRotateLogAt && !ec) fs::rename(log, log.string() + ".1", ec);

  const std::optional<std::string> cluster_version = ReadFirstLine(data_dir / "PG_VERSION");
  auto bin_dir = FindBinDir(options_.bin_dir, cluster_version, data_dir);
  if (!bin_dir.ok()) return bin_dir.status();
  prepared.bin_dir = *bin_dir;

  first_start = !cluster_version.has_value();
  if (first_start) {
    // initdb into a scratch directory and rename: a crash midway never leaves a half cluster at
    // data/. initdb syncs (no --no-sync): it runs once per host, and a cluster torn by a power loss
    // right after initdb costs far more than the sync (0.1 s idle, seconds on a busy disk) —
    // unless the server will run with fsync=off anyway (tests), where syncing buys nothing.
    const bool durable = std::find(options_.settings.begin(), options_.settings.end(),
                                   "fsync=off") == options_.settings.end();
    const fs::path scratch = cluster_dir_ / "data.initdb";
    fs::remove_all(scratch, ec);
    if (ec) {
      return Status::Internal(
          fmt::format("could not remove {}: {}", scratch.string(), ec.message()));
    }
    auto log_fd = OpenLog(log, account);
    if (!log_fd.ok()) return log_fd.status();
    Fd log_closer(*log_fd);
    AppendBanner(*log_fd, "initdb " + data_dir.string());
    ChildSpec initdb;
    initdb.program = *bin_dir / "initdb";
    initdb.args = {"-D", scratch.string(), "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"};
    initdb.args.insert(initdb.args.end(), {"-U", std::string(kRole)});
    if (!durable) initdb.args.push_back("--no-sync");
    initdb.account = &account;
    initdb.output_fd = *log_fd;
    initdb.cwd = cluster_dir_;
    initdb.parent_death_signal = SIGTERM;  // initdb cleans up its directory on SIGTERM
    Logger()->info("embedded postgres initdb data={} bin={}", data_dir.string(), bin_dir->string());
    auto pid = Spawn(initdb);
    if (!pid.ok()) return pid.status();
    const int status = *WaitForExit(*pid, std::nullopt);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return Status::Internal(WithLogTail(
          fmt::format("initdb of {} failed ({})", data_dir.string(), DescribeExit(status)), log));
    }
    fs::rename(scratch, data_dir, ec);
    if (ec) {
      return Status::Internal(fmt::format("could not rename {} to {}: {}", scratch.string(),
                                          data_dir.string(), ec.message()));
    }
    FsyncDir(cluster_dir_);
  }
  return prepared;
}

// Every start of the server, the first and each restart after a crash: the data directory is
// checked again (a crashed postmaster leaves its postmaster.pid behind, which PostgreSQL itself
// ignores unless the pid now names a live process), crash recovery replays the WAL, and the
// database is ensured.
Status EmbeddedPostgres::Launch() {
  const Prepared& p = *prepared_;
  if (!fs::is_directory(p.data_dir)) {
    // Never initdb over a cluster that vanished while dagd ran: that would silently start empty.
    return Status::FailedPrecondition(fmt::format(
        "the data directory {} is gone; restore it (or remove {} to start with an empty database)",
        p.data_dir.string(), cluster_dir_.string()));
  }
  if (auto s = CheckDataDirFree(p.data_dir, p.state_dir); !s.ok()) return s;
  if (auto s = MakePrivateDir(socket_dir_, p.account, /*adopt=*/!p.socket_in_tmp); !s.ok()) {
    return s;
  }
  auto log_fd = OpenLog(log_path(), p.account);
  if (!log_fd.ok()) return log_fd.status();
  Fd log_closer(*log_fd);

  ChildSpec server;
  server.program = p.bin_dir / "postgres";
  server.args = {
      "-D", p.data_dir.string(), "-k", socket_dir_.string(),          "-p", std::to_string(kPort),
      "-c", "listen_addresses=", "-c", "unix_socket_permissions=0700"};
  for (const auto& setting : options_.settings) {
    server.args.push_back("-c");
    server.args.push_back(setting);
  }
  server.account = &p.account;
  server.output_fd = *log_fd;
  server.cwd = p.data_dir;
  // Fast shutdown if the thread that forks it (main, or the supervisor for a restart) ends
  // without stopping it: both outlive the cluster unless dagd dies.
  server.parent_death_signal = SIGINT;
  AppendBanner(*log_fd, "starting postgres");
  auto pid = Spawn(server);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;

  Status ready = WaitUntilReady(*pid);
  if (ready.ok()) ready = EnsureDatabase();
  if (!ready.ok()) {
    const pid_t started = pid_.exchange(-1);
    if (started > 0) Terminate(started);
  }
  return ready;
}

bool EmbeddedPostgres::SleepUnlessStopping(Clock::duration how_long) {
  std::unique_lock lock(mu_);
  return wake_.wait_for(lock, how_long, [this] { return stopping_; });
}

void EmbeddedPostgres::Supervise() {
  int attempts = 0;  // restarts since the server was last up for stable_after
  auto up_since = Clock::now();
  while (!SleepUnlessStopping(kSupervisePoll)) {
    const pid_t pid = pid_.load();
    if (pid <= 0) return;
    int status = 0;
    const pid_t reaped = ::waitpid(pid, &status, WNOHANG);
    if (reaped == 0 || (reaped < 0 && errno == EINTR)) continue;
    // Exited (or, against the rules in the header, reaped by someone else: gone either way).
    pid_ = -1;
    if (Clock::now() - up_since >= options_.stable_after) attempts = 0;
    Logger()->error("embedded postgres exited unexpectedly pid={} ({}); restarting log={}", pid,
                    reaped == pid ? DescribeExit(status) : std::string("reaped elsewhere"),
                    log_path().string());
    Status last = Status::Unavailable("postgres exited");
    bool restarted = false;
    while (attempts < options_.restart_attempts) {
      auto backoff = options_.restart_backoff;
      for (int i = 0; i < attempts && backoff < options_.max_restart_backoff; ++i) backoff *= 2;
      backoff = std::min(backoff, options_.max_restart_backoff);
      ++attempts;
      if (SleepUnlessStopping(backoff)) return;
      last = Launch();
      if (last.ok()) {
        restarted = true;
        break;
      }
      Logger()->error("embedded postgres restart failed attempt={}/{} error=\"{}\"", attempts,
                      options_.restart_attempts, last.message());
      if (stopping_requested()) return;
    }
    if (!restarted) {
      Logger()->critical(
          "embedded postgres could not be restarted after {} attempts, giving up error=\"{}\"",
          attempts, last.message());
      if (options_.on_give_up) options_.on_give_up(last);
      return;
    }
    up_since = Clock::now();
    Logger()->info("embedded postgres restarted pid={} attempt={}/{}", pid_.load(), attempts,
                   options_.restart_attempts);
  }
}

bool EmbeddedPostgres::stopping_requested() {
  std::lock_guard lock(mu_);
  return stopping_;
}

Status EmbeddedPostgres::WaitUntilReady(pid_t pid) {
  const std::string ping_conninfo = Conninfo("postgres") + " connect_timeout=2";
  const auto deadline = Clock::now() + options_.start_timeout;
  while (true) {
    if (auto status = WaitForExit(pid, Clock::duration::zero())) {
      pid_ = -1;
      return Status::Unavailable(WithLogTail(
          fmt::format("postgres exited during startup ({})", DescribeExit(*status)), log_path()));
    }
    const PGPing ping = PQping(ping_conninfo.c_str());
    if (ping == PQPING_OK) return Status::Ok();
    if (ping == PQPING_NO_ATTEMPT) {
      return Status::Internal(fmt::format("libpq rejected the conninfo '{}'", ping_conninfo));
    }
    if (Clock::now() >= deadline) {
      return Status::DeadlineExceeded(
          WithLogTail(fmt::format("postgres did not accept connections within {} s",
                                  options_.start_timeout.count()),
                      log_path()));
    }
    if (stopping_requested()) return Status::Cancelled("dagd is stopping");
    std::this_thread::sleep_for(kPollInterval);
  }
}

// Every start, not only the first: a crash between initdb and CREATE DATABASE must heal.
Status EmbeddedPostgres::EnsureDatabase() {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(Conninfo("postgres").c_str()),
                                                    &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return Status::Unavailable(WithLogTail(
        fmt::format("could not connect to the embedded postgres: {}", PQerrorMessage(conn.get())),
        log_path()));
  }
  using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;
  Result exists(PQexec(conn.get(), "SELECT 1 FROM pg_database WHERE datname = 'dagd'"), &PQclear);
  if (PQresultStatus(exists.get()) != PGRES_TUPLES_OK) {
    return Status::Internal(
        fmt::format("could not list databases: {}", PQresultErrorMessage(exists.get())));
  }
  if (PQntuples(exists.get()) > 0) return Status::Ok();
  Result created(PQexec(conn.get(), "CREATE DATABASE dagd"), &PQclear);
  if (PQresultStatus(created.get()) != PGRES_COMMAND_OK) {
    return Status::Internal(WithLogTail(
        fmt::format("CREATE DATABASE dagd failed: {}", PQresultErrorMessage(created.get())),
        log_path()));
  }
  Logger()->info("embedded postgres created database={}", kDatabase);
  return Status::Ok();
}

void EmbeddedPostgres::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  // First the supervisor, so that the exit below is not taken for a crash and restarted.
  if (supervisor_.joinable()) supervisor_.join();
  const pid_t pid = pid_.exchange(-1);
  if (pid > 0) Terminate(pid);
}

void EmbeddedPostgres::Terminate(pid_t pid) {
  ::kill(pid, SIGINT);  // fast shutdown: abort transactions, checkpoint, exit
  auto status = WaitForExit(pid, kFastShutdownWait);
  if (!status) {
    Logger()->warn("embedded postgres fast shutdown timed out pid={}; sending SIGQUIT", pid);
    ::kill(pid, SIGQUIT);  // immediate shutdown: crash recovery on next start
    status = WaitForExit(pid, kImmediateShutdownWait);
  }
  if (!status) {
    Logger()->error("embedded postgres did not exit pid={}; sending SIGKILL", pid);
    ::kill(pid, SIGKILL);
    status = WaitForExit(pid, std::nullopt);
  }
  Logger()->info("embedded postgres stopped pid={} ({})", pid, DescribeExit(*status));
}

}  // namespace dagd::daemon
