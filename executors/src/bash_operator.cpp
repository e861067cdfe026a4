#include "bash_operator.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace dagd::executors {
namespace {

// posix_spawn attributes and file actions, destroyed on every path.
struct SpawnSetup {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnSetup() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

std::vector<std::string> BuildEnvironment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    if (!extra.contains(std::string(name))) out.emplace_back(entry);
  }
  for (const auto& [name, value] : extra) out.push_back(name + "=" + value);
  return out;
}

}  // namespace

StatusOr<int> RunBash(const BashCommand& cmd, TryLog& log, TryControl& control,
                      std::chrono::milliseconds kill_grace) {
  std::vector<std::string> env = BuildEnvironment(cmd.env);
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string arg0 = "/bin/bash", arg1 = "-c", arg2 = cmd.command;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};

  // posix_spawn rather than fork: the daemon is multi-threaded, and glibc's posix_spawn does only
  // async-signal-safe work between clone and exec.
  SpawnSetup s;
  int rc = posix_spawn_file_actions_addopen(&s.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&s.actions, log.fd(), STDOUT_FILENO);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&s.actions, log.fd(), STDERR_FILENO);
  if (rc == 0 && !cmd.cwd.empty()) {
    rc = posix_spawn_file_actions_addchdir_np(&s.actions, cmd.cwd.c_str());
  }
  // Descriptors the daemon opened without O_CLOEXEC (sockets, the database) stay ours.
  if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&s.actions, 3);
  // Own process group, so a timeout can signal the command and everything it started. The
  // daemon may block or ignore signals (a signal-handling thread, SIGPIPE): the child starts with
  // an empty mask and default dispositions, or SIGTERM would not stop it.
  sigset_t empty_mask, defaults;
  sigemptyset(&empty_mask);
  sigemptyset(&defaults);
  for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGCHLD, SIGALRM, SIGUSR1, SIGUSR2}) {
    sigaddset(&defaults, sig);
  }
  if (rc == 0) {
    rc = posix_spawnattr_setflags(
        &s.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  if (rc == 0) rc = posix_spawnattr_setpgroup(&s.attr, 0);
  if (rc == 0) rc = posix_spawnattr_setsigmask(&s.attr, &empty_mask);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(&s.attr, &defaults);
  if (rc != 0) return Status::Internal(std::string("cannot prepare the command: ") + strerror(rc));

  pid_t pid = 0;
  rc = posix_spawn(&pid, "/bin/bash", &s.actions, &s.attr, argv, envp.data());
  if (rc != 0) {
    std::string where = cmd.cwd.empty() ? "" : " in directory '" + cmd.cwd + "'";
    return Status::Internal("cannot start /bin/bash" + where + ": " + strerror(rc));
  }
  log.Line("dagd: started process pid=" + std::to_string(pid) + " (process group " +
           std::to_string(pid) + ")");

  // Poll with WNOWAIT: the exited child stays a zombie until we reap it below, so its pid (which
  // is the group id) cannot be reused while we may still signal the group.
  bool sent_term = false, sent_kill = false;
  auto kill_at = std::chrono::steady_clock::time_point::max();
  for (;;) {
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
      if (errno == EINTR) continue;
      return Status::Internal(std::string("cannot wait for the command: ") + strerror(errno));
    }
    if (info.si_pid == pid) break;
    if (control.cancel.load(std::memory_order_acquire)) {
      const auto now = std::chrono::steady_clock::now();
      if (!sent_term) {
        ::kill(-pid, SIGTERM);
        sent_term = true;
        kill_at = now + kill_grace;
        log.Line("dagd: sent SIGTERM to process group " + std::to_string(pid));
      } else if (!sent_kill && now >= kill_at) {
        ::kill(-pid, SIGKILL);
        sent_kill = true;
        log.Line("dagd: sent SIGKILL to process group " + std::to_string(pid));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (sent_term) ::kill(-pid, SIGKILL);  // bash is gone; its stragglers get no more grace

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return Status::Internal(std::string("cannot reap the command: ") + strerror(errno));
    }
  }
  return status;
}

}  // namespace dagd::executors
