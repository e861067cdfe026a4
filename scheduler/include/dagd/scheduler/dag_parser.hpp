// Parsing and validating DAG documents (JSON, format in DESIGN.md).
//
// ParseDag never throws and never executes anything from the document. On failure it returns
// every error it found, each naming its place: `task 'b': unknown upstream 'x'`,
// `cycle: a → b → c → a`, `task 'x' field 'retries': expected a non-negative integer`.
// A NUL character anywhere (a string or a key, written \u0000) is refused, naming where: the
// database cannot store it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/status.hpp"

namespace dagd::scheduler {

struct ParseOptions {
  // Whether a transform job name is registered. Unset: any job name is accepted (used when
  // re-reading a stored version, whose jobs were checked when it was first loaded).
  std::function<bool(std::string_view)> job_exists;
  // Accounts a task may name in `run_as_user`. Unset: any name is accepted (offline validation
  // and stored versions); set: any other name is an error naming the task and the field.
  std::function<bool(std::string_view)> run_as_allowed;
};

struct ParseResult {
  DagPtr dag;                       // set when errors is empty
  std::vector<std::string> errors;  // each a full sentence naming the place
  // error_paths[i] is where errors[i] is in the document, as the keys and array indexes that
  // lead to it: ["tasks", 2, "retries"] (the third task, 0-based), ["dag_id"]; [] for the whole
  // document (bad JSON, a repeated key). An error about two tasks names the later one.
  std::vector<Json> error_paths;
};

ParseResult ParseDag(std::string_view json_text, const ParseOptions& options);
ParseResult ParseDag(const Json& document, const ParseOptions& options);
// Text held in a std::string (otherwise ambiguous between the two overloads above).
inline ParseResult ParseDag(const std::string& json_text, const ParseOptions& options) {
  return ParseDag(std::string_view(json_text), options);
}

// Ids: DAG and task ids are 1–250 chars of [A-Za-z0-9_.-].
bool IsValidId(std::string_view id);

// One file of a dags folder: its DAG, or the errors that kept it out.
struct LoadedFile {
  std::filesystem::path path;
  DagPtr dag;
  std::vector<std::string> errors;
};

// Files larger than this are refused unread (an import error naming the limit).
inline constexpr std::uintmax_t kMaxDagFileBytes = 4 * 1024 * 1024;

// The text of one DAG file. Only a regular file is read (a symlink to one is followed): anything
// else (a FIFO, a device, a socket) is refused before it is opened, and the file is opened
// non-blocking and checked again on the open descriptor, so nothing in a dags folder can block
// the daemon. Errors (failed_precondition: not a regular file or too large; not_found;
// unavailable: an I/O error) carry a sentence naming the problem, without the path.
// With `confine_to` (a folder), the file actually opened must lie inside it (checked on the open
// descriptor, so a link swapped meanwhile cannot escape): a symlink out of a dags folder would
// otherwise let whoever writes the folder read any file the daemon can, through import errors.
StatusOr<std::string> ReadDagFile(const std::filesystem::path& path,
                                  const std::filesystem::path* confine_to = nullptr);

// Reads every *.json file directly under `folder` (sorted by name), through ReadDagFile confined
// to `folder` (a symlink to a file inside it is followed, one leading out is refused). A file
// that cannot be read or parsed is reported in its LoadedFile; it does not affect the others. Two
// files declaring the same dag_id: the second is reported as an error.
std::vector<LoadedFile> LoadDagFolder(const std::filesystem::path& folder,
                                      const ParseOptions& options);

}  // namespace dagd::scheduler
