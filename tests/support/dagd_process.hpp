// Runs the real dagd binary as a child process for end-to-end tests.
//
// Start() launches DAGD_BINARY with the given arguments (stdout and stderr to `log_path`), in its
// own process group, and waits until GET /api/v2/monitor/health answers 200 on `port`, or fails
// with the daemon's log in the exception message. The destructor kills what is still running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace dagd::testing {

// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
int FreePort();

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

 private:
  std::vector<std::string> args_;
  std::string log_path_;
  int port_;
  std::string ca_file_;
  pid_t pid_ = -1;
};

}  // namespace dagd::testing
