// Runs the real dagd binary as a child process for end-to-end tests.
//
// Start() launches DAGD_BINARY with the given arguments (stdout and stderr to `log_path`), in its
// own process group, and waits until GET /api/v2/monitor/health answers 200 on `port`, or fails
// with the daemon's log in the exception message. The destructor kills what is still running.
//
// Authentication: before its first start, Start() creates an admin API token with the real CLI
// (`dagd <args> tokens create`, on the same database) and, once the daemon runs, makes it the
// default bearer of requests to base_url() (http_client.hpp), so tests talk to it as an admin
// without saying so. When the token cannot be made (the daemon is meant to fail), it starts
// without one.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace dagd::testing {

// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
int FreePort();

struct CliResult {
  int exit_code = -1;  // -1: killed after the timeout, or did not run
  std::string out;
  std::string err;
};

// Runs the dagd binary with `args` and `input` on its stdin (not a terminal); waits at most
// `timeout`, then kills it.
CliResult RunDagd(const std::vector<std::string>& args, const std::string& input = "",
                  std::chrono::seconds timeout = std::chrono::seconds(60));

class DagdProcess {
 public:
  DagdProcess(std::vector<std::string> args, std::string log_path, int port);
  ~DagdProcess();
  DagdProcess(const DagdProcess&) = delete;
  DagdProcess& operator=(const DagdProcess&) = delete;

  // The daemon serves HTTPS with a certificate the client trusts through `ca_file` (before
  // Start): base_url() is https:// and the readiness check uses it.
  void UseHttps(std::string ca_file) { ca_file_ = std::move(ca_file); }
  void Start(std::chrono::seconds ready_timeout = std::chrono::seconds(30));
  // Sends `sig`; returns the exit status (as from waitpid) once it exits, or -1 after timeout.
  int Signal(int sig, std::chrono::seconds timeout = std::chrono::seconds(30));
  void Kill9();
  pid_t pid() const { return pid_; }
  std::string base_url() const {
    return (ca_file_.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") + std::to_string(port_);
  }
  std::string Log() const;  // everything the daemon printed so far
  const std::vector<std::string>& args() const { return args_; }
  const std::string& admin_token() const { return token_; }  // empty when none could be made
  // Set to false before Start to start the daemon on a database the test leaves without users.
  bool make_admin_token = true;

 private:
  std::vector<std::string> args_;
  std::string token_;
  std::string log_path_;
  int port_;
  std::string ca_file_;
  pid_t pid_ = -1;
};

}  // namespace dagd::testing
