// Brings the store in line with a dags folder: every good DAG is synced (a changed document
// becomes a new dag_version), the import-error list is replaced by this scan's errors, and DAGs
// whose files are gone are marked stale (uploaded DAGs are not: they have no file). A file
// defining the id of an uploaded DAG wins: its document becomes the DAG's latest version, and
// this scan reports the conflict as an import error on the file. A bad file never affects the
// other DAGs.
#pragma once

#include <filesystem>
#include <utility>
#include <vector>

#include "dagd/scheduler/dag_parser.hpp"
#include "dagd/scheduler/ports.hpp"

namespace dagd::scheduler {

struct SyncReport {
  int loaded = 0;        // DAGs synced
  int new_versions = 0;  // of which got a new dag_version (or were new)
  int failed_files = 0;  // files with errors
  // Each DAG synced, parsed, with the number of the version the store now holds for its document
  // (for Scheduler::RememberDag).
  std::vector<std::pair<int, DagPtr>> versions;
};

// Errors: only store failures that concern the whole scan (unavailable, aborted: retry it). File
// problems go to import errors and the log, including a DAG the store refuses to hold (a value
// PostgreSQL cannot store): that file is an import error, the other files are synced.
StatusOr<SyncReport> SyncDagFolder(StateStore& store, const std::filesystem::path& folder,
                                   const ParseOptions& options, const Clock& clock);

}  // namespace dagd::scheduler
