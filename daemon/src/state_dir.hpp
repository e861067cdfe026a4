// The state directory (per-try logs, the embedded PostgreSQL) and its logs directory, made private
// to the daemon's account: task logs hold whatever tasks print, secrets included.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "dagd/scheduler/status.hpp"

namespace dagd::daemon {

// Creates <state_dir> and <state_dir>/logs (with missing parents), or adopts existing ones, and
// sets their modes: logs 0700; the state directory 0700, or 0710 with its group set to the primary
// group of `traverse_account` when that account (the embedded PostgreSQL's, when dagd runs as
// root) must pass through it to reach its own subdirectory. A mode looser than that is tightened,
// with a warning. Errors: invalid_argument (no such account), failed_precondition (a path is not
// a directory, or its mode cannot be set: not ours), internal (a system call failed).
Status PrepareStateDir(const std::filesystem::path& state_dir,
                       const std::optional<std::string>& traverse_account);

}  // namespace dagd::daemon
