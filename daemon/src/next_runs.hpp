// `dagd dags next-runs DAG_FILE_OR_ID -n N`: the next scheduled runs of a DAG, offline (no
// database, no daemon), in UTC and in the DAG's time zone.
#pragma once

#include <filesystem>
#include <ostream>
#include <string>

#include "dagd/scheduler/time.hpp"

namespace dagd::daemon {

// `target` is a DAG file path or, when no such file exists, a dag_id looked up in `dags_folder`.
// Prints the DAG's schedule and its next `count` runs after `now`; returns 0, or 1 with a
// sentence on `err` when the DAG cannot be found or does not parse.
int PrintNextRuns(const std::string& target, int count, const std::filesystem::path& dags_folder,
                  scheduler::TimePoint now, std::ostream& out, std::ostream& err);

}  // namespace dagd::daemon
