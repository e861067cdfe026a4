#include "bash_operator.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <thread>

#include "process_group.hpp"

namespace dagd::executors {
namespace {

// What the child reports through the exec-error pipe when a step before exec fails.
enum ChildStep : int { kStepAccount = 1, kStepDeathSignal, kStepCwd, kStepStdio, kStepExec };

// An owned descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Moves `fd` to a number above stdio, close-on-exec: the child's dup2 onto 0..2 must never
// overwrite a descriptor it still needs (the daemon may run with stdio closed).
int AboveStdio(int fd) {
  if (fd < 0 || fd > STDERR_FILENO) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  ::close(fd);
  return moved;
}

// Everything the child needs, prepared before fork: after fork, in a multi-threaded process, the
// child may only make async-signal-safe calls (no allocation, no locks).
struct ChildPlan {
  char* const* argv;
  char* const* envp;
  const char* cwd;
  const TaskAccount* account;
  pid_t parent;
  int stdin_fd, output_fd, error_fd;
  int max_fd;  // for closing descriptors where close_range is unavailable
};

[[noreturn]] void ChildFail(int error_fd, int step) {
  const int report[2] = {step, errno};
  if (::write(error_fd, report, sizeof report) < 0) _exit(127);
  _exit(127);
}

// Closes descriptors first..last (close_range; a loop up to max_fd on kernels without it).
void CloseRange(unsigned first, unsigned last, int max_fd) {
  if (first > last) return;
  if (::close_range(first, last, 0) == 0) return;
  for (unsigned fd = first; fd <= last && fd < static_cast<unsigned>(max_fd); ++fd) {
    ::close(static_cast<int>(fd));
  }
}

[[noreturn]] void RunChild(const ChildPlan& p) {
  ::setpgid(0, 0);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &default_action, nullptr);
  }
  const TaskAccount& a = *p.account;
  if (a.switch_to) {
    if (::setgroups(a.groups.size(), a.groups.data()) != 0 ||
        ::setresgid(a.gid, a.gid, a.gid) != 0 || ::setresuid(a.uid, a.uid, a.uid) != 0) {
      ChildFail(p.error_fd, kStepAccount);
    }
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (::getresuid(&ruid, &euid, &suid) != 0 || ::getresgid(&rgid, &egid, &sgid) != 0 ||
        ruid != a.uid || euid != a.uid || suid != a.uid || rgid != a.gid || egid != a.gid ||
        sgid != a.gid) {
      errno = EPERM;
      ChildFail(p.error_fd, kStepAccount);
    }
  }
  // After the uid change, which clears it. If the daemon died before this line, stop here.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(p.error_fd, kStepDeathSignal);
  if (::getppid() != p.parent) _exit(127);
  // As the task account: a directory it may not enter fails the try.
  if (::chdir(p.cwd) != 0) ChildFail(p.error_fd, kStepCwd);
  if (::dup2(p.stdin_fd, STDIN_FILENO) < 0 || ::dup2(p.output_fd, STDOUT_FILENO) < 0 ||
      ::dup2(p.output_fd, STDERR_FILENO) < 0) {
    ChildFail(p.error_fd, kStepStdio);
  }
  // Descriptors the daemon opened without O_CLOEXEC (sockets, the database) stay ours. The error
  // pipe stays until exec closes it (close-on-exec), which tells the parent exec succeeded.
  const auto error_fd = static_cast<unsigned>(p.error_fd);
  CloseRange(STDERR_FILENO + 1, error_fd - 1, p.max_fd);
  CloseRange(error_fd + 1, ~0U, p.max_fd);
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  ::execve("/bin/bash", p.argv, p.envp);
  ChildFail(p.error_fd, kStepExec);
}

std::string StepError(const BashCommand& cmd, int step, int err) {
  const std::string why = std::strerror(err);
  switch (step) {
    case kStepAccount:
      return "cannot switch to account '" + cmd.account.name + "' (uid " +
             std::to_string(cmd.account.uid) + "): " + why;
    case kStepCwd:
      return "cannot start /bin/bash in directory '" + cmd.cwd + "' as account '" +
             cmd.account.name + "': " + why;
    case kStepDeathSignal:
      return "cannot start /bin/bash: prctl(PR_SET_PDEATHSIG) failed: " + why;
    case kStepStdio:
      return "cannot start /bin/bash: cannot set up its standard streams: " + why;
    default:
      return "cannot start /bin/bash: " + why;
  }
}

// Reads what is available from the non-blocking pipe into the log; a bounded number of chunks,
// so a command that writes without pause cannot starve the wait loop. Sets `eof` at its end.
void Drain(int fd, TryLog& log, bool& eof) {
  std::array<char, 65536> buf;
  for (int chunk = 0; chunk < 16; ++chunk) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      log.Output(std::string_view(buf.data(), static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    eof = true;  // end of file, or an error that will not go away
    return;
  }
}

void WaitReadable(int fd, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  ::poll(&pfd, 1, timeout_ms);
}

}  // namespace

StatusOr<int> RunBash(const BashCommand& cmd, TryLog& log, TryControl& control,
                      std::chrono::milliseconds kill_grace, const BashStartedFn& on_started) {
  std::vector<std::string> env = cmd.env;
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string arg0 = "/bin/bash", arg1 = "-c", arg2 = cmd.command;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};

  Fd null_in(AboveStdio(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  int out_pipe[2], err_pipe[2];
  if (null_in.get() < 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return Status::Internal(std::string("cannot prepare the command: ") + std::strerror(errno));
  }
  Fd out_read(AboveStdio(out_pipe[0])), out_write(AboveStdio(out_pipe[1]));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return Status::Internal(std::string("cannot prepare the command: ") + std::strerror(errno));
  }
  Fd err_read(AboveStdio(err_pipe[0])), err_write(AboveStdio(err_pipe[1]));
  if (out_read.get() < 0 || out_write.get() < 0 || err_read.get() < 0 || err_write.get() < 0 ||
      ::fcntl(out_read.get(), F_SETFL, O_NONBLOCK) != 0) {
    return Status::Internal(std::string("cannot prepare the command: ") + std::strerror(errno));
  }
  rlimit files{};
  const int max_fd = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < 65536
                         ? static_cast<int>(files.rlim_cur)
                         : 65536;
  const ChildPlan plan{argv,          envp.data(),     cmd.cwd.c_str(), &cmd.account, ::getpid(),
                       null_in.get(), out_write.get(), err_write.get(), max_fd};

  // fork rather than posix_spawn, which cannot change the account. All signals are blocked
  // around fork so that no handler of the daemon's runs in the child before it resets them.
  sigset_t all, old_mask;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old_mask);
  const pid_t pid = ::fork();
  if (pid == 0) RunChild(plan);
  const int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (pid < 0)
    return Status::Internal("cannot start /bin/bash: " + std::string(strerror(fork_errno)));
  ::setpgid(pid, pid);  // the child does the same: whichever runs first makes the group
  out_write.Reset();
  err_write.Reset();
  null_in.Reset();

  int report[2] = {0, 0};
  ssize_t got = 0;
  while ((got = ::read(err_read.get(), report, sizeof report)) < 0 && errno == EINTR) {
  }
  if (got > 0) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return Status::Internal(StepError(cmd, report[0], report[1]));
  }
  err_read.Reset();

  log.Note("dagd: started process pid=" + std::to_string(pid) + " (process group " +
           std::to_string(pid) + ") as " + cmd.account.name + " in " + cmd.cwd);
  std::optional<scheduler::TryProcess> process;
  if (auto key = ProcessStartKey(pid)) process = scheduler::TryProcess{pid, std::move(*key)};
  if (on_started) on_started(pid, process);

  // Poll with WNOWAIT: the exited child stays a zombie until we reap it below, so its pid (which
  // is the group id) cannot be reused while we may still signal the group.
  bool sent_term = false, sent_kill = false, eof = false;
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
        log.Note("dagd: sent SIGTERM to process group " + std::to_string(pid));
      } else if (!sent_kill && now >= kill_at) {
        ::kill(-pid, SIGKILL);
        sent_kill = true;
        log.Note("dagd: sent SIGKILL to process group " + std::to_string(pid));
      }
    }
    if (eof) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    } else {
      WaitReadable(out_read.get(), 10);
      Drain(out_read.get(), log, eof);
    }
  }
  // bash is gone: nothing of its group outlives the try (a background job of a successful
  // command would otherwise run on unsupervised and keep the log open).
  const size_t left = LiveProcessesInGroup(pid);
  ::kill(-pid, SIGKILL);
  if (left > 0) {
    log.Note("dagd: killed " + std::to_string(left) + " process(es) left in process group " +
             std::to_string(pid) + " after bash exited");
  }
  // The rest of the output; a process that left the group (setsid) may hold the pipe open, so
  // reading stops after a bound.
  const auto read_until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!eof && std::chrono::steady_clock::now() < read_until) {
    WaitReadable(out_read.get(), 50);
    Drain(out_read.get(), log, eof);
  }
  if (!eof) {
    log.Note(
        "dagd: stopped reading output: a process that left the command's process group "
        "still holds it open");
  }

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return Status::Internal(std::string("cannot reap the command: ") + strerror(errno));
    }
  }
  return status;
}

}  // namespace dagd::executors
