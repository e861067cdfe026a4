// The bash operator's process handling: spawn `/bin/bash -c <command>` in a new process group and
// wait for it, stopping the group (SIGTERM, then SIGKILL after a grace period) when the try's
// token is set.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "dagd/scheduler/status.hpp"
#include "try_control.hpp"
#include "try_log.hpp"

namespace dagd::executors {

struct BashCommand {
  std::string command;                     // rendered
  std::map<std::string, std::string> env;  // added to (and overriding) the daemon's environment
  std::string cwd;                         // "" = the daemon's working directory
};

// Runs the command to its end and returns its wait status (as from waitpid). stdin is /dev/null;
// stdout and stderr are appended to `log`. Once control.cancel is set, SIGTERM goes to the whole
// group, SIGKILL after `kill_grace`; when bash itself has exited after a stop request, whatever
// remains of its group is killed at once. Errors: internal when the process cannot be started
// (e.g. cwd does not exist) or waited for.
StatusOr<int> RunBash(const BashCommand& cmd, TryLog& log, TryControl& control,
                      std::chrono::milliseconds kill_grace);

}  // namespace dagd::executors
