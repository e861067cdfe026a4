// Parsing and validating DAG documents (JSON, format in DESIGN.md).
//
// ParseDag never throws and never executes anything from the document. On failure it returns
// every error it found, each naming its place: `task 'b': unknown upstream 'x'`,
// `cycle: a → b → c → a`, `task 'x' field 'retries': expected a non-negative integer`.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dagd/scheduler/dag.hpp"

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

// Reads every *.json file directly under `folder` (sorted by name). A file that cannot be read or
// parsed is reported in its LoadedFile; it does not affect the others. Two files declaring the
// same dag_id: the second is reported as an error.
std::vector<LoadedFile> LoadDagFolder(const std::filesystem::path& folder,
                                      const ParseOptions& options);

}  // namespace dagd::scheduler
