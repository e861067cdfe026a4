#include "dagd_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "http_client.hpp"

namespace dagd::testing {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A file for a child's output, removed when this goes.
struct OutputFile {
  OutputFile() {
    char name[] = "/tmp/dagd-cli-XXXXXX";
    fd = mkstemp(name);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    path = name;
  }
  ~OutputFile() {
    close(fd);
    unlink(path.c_str());
  }
  int fd;
  std::string path;
};

}  // namespace

CliResult RunDagd(const std::vector<std::string>& args, const std::string& input,
                  std::chrono::seconds timeout) {
  std::vector<std::string> argv_store = {DAGD_BINARY};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  OutputFile out, err;
  int in[2];
  if (pipe(in) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out.fd, 1);
    dup2(err.fd, 2);
    close(in[0]);
    close(in[1]);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(in[0]);
  // The input is small (a password line): it fits in the pipe's buffer.
  [[maybe_unused]] ssize_t written = write(in[1], input.data(), input.size());
  close(in[1]);
  CliResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      status = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  result.out = ReadAll(out.path);
  result.err = ReadAll(err.path);
  return result;
}

DagdProcess::DagdProcess(std::vector<std::string> args, std::string log_path, int port)
    : args_(std::move(args)), log_path_(std::move(log_path)), port_(port) {}

DagdProcess::~DagdProcess() {
  SetDefaultBearer(base_url(), "");
  if (pid_ > 0) {
    if (Signal(SIGTERM, std::chrono::seconds(20)) == -1) Kill9();
  }
}

void DagdProcess::Start(std::chrono::seconds ready_timeout) {
  if (token_.empty() && make_admin_token) {
    static std::atomic<int> made{0};
    std::vector<std::string> create = args_;
    for (const char* arg : {"tokens", "create", "--role", "admin", "--expires", "1d", "--name"}) {
      create.push_back(arg);
    }
    create.push_back("tests-admin-" + std::to_string(getpid()) + "-" + std::to_string(++made));
    CliResult made_token = RunDagd(create, "", ready_timeout);
    if (made_token.exit_code == 0) {
      token_ = made_token.out.substr(0, made_token.out.find('\n'));
    }
  }
  std::vector<std::string> argv_store;
  argv_store.push_back(DAGD_BINARY);
  argv_store.insert(argv_store.end(), args_.begin(), args_.end());
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open " + log_path_);
  pid_ = fork();
  if (pid_ == 0) {
    setpgid(0, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  auto deadline = std::chrono::steady_clock::now() + ready_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("dagd exited during start-up:\n" + Log());
    }
    if (HttpGet(base_url() + "/api/v2/monitor/health", {}, {ca_file_}).status == 200) {
      SetDefaultBearer(base_url(), token_);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("dagd did not become healthy in time:\n" + Log());
}

int DagdProcess::Signal(int sig, std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

void DagdProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string DagdProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace dagd::testing
