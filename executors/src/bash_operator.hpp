// The bash operator's process handling: `/bin/bash -c <command>` in a new process group, as the
// task account, with a given environment and working directory; its output piped through the
// daemon into the try's log; the group stopped (SIGTERM, SIGKILL after a grace period) when the
// try's token is set, and whatever is left of it killed once bash exits.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/status.hpp"
#include "task_account.hpp"
#include "try_control.hpp"
#include "try_log.hpp"

namespace dagd::executors {

struct BashCommand {
  std::string command;           // rendered: templated values are variables of `env`
  std::vector<std::string> env;  // the whole environment, NAME=value
  std::string cwd;               // entered as the task account
  TaskAccount account;
};

// Called once bash runs (after exec), before any wait: its pid and group (nullopt when /proc
// cannot tell the group's start key).
using BashStartedFn =
    std::function<void(int pid, const std::optional<scheduler::TryProcess>& process)>;

// Runs the command to its end and returns its wait status (as from waitpid). stdin is /dev/null;
// stdout and stderr go through a pipe into `log` (Output: the log's cap and write errors apply).
// The child: its own process group, the account's groups/gid/uid (checked before exec), default
// signal dispositions and an empty mask, SIGKILL when the forking thread dies (a backstop for a
// daemon killed with -9), no descriptor of the daemon's. Once control.cancel is set, SIGTERM goes
// to the whole group, SIGKILL after `kill_grace`. When bash exits, for whatever reason, the rest
// of its group is killed, so no process of a finished try lives on or holds its log.
// Errors: internal when the process cannot be started (account switch, missing cwd, exec) or
// waited for; the message names the step.
StatusOr<int> RunBash(const BashCommand& cmd, TryLog& log, TryControl& control,
                      std::chrono::milliseconds kill_grace, const BashStartedFn& on_started);

}  // namespace dagd::executors
