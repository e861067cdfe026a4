// The working directory of a bash try whose task sets no cwd: a fresh directory per try
// (like Airflow's BashOperator), created 0700 under the system temporary directory and owned by
// the task account, and removed with everything in it when the try ends.
#pragma once

#include <filesystem>

#include "dagd/scheduler/status.hpp"
#include "task_account.hpp"

namespace dagd::executors {

// internal with the errno text when it cannot be created or handed to the account.
StatusOr<std::filesystem::path> MakeTryDirectory(const TaskAccount& account);

// Removes the tree without following symbolic links (every step is relative to an open
// directory, so a task that swaps a directory for a link cannot make root delete elsewhere).
// Best effort: what cannot be removed is left and logged by the caller.
Status RemoveTryDirectory(const std::filesystem::path& dir);

}  // namespace dagd::executors
