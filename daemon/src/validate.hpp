// `dagd dags validate FILE...`: checks DAG documents offline (no database, no daemon), against
// the operators and compiled jobs of this binary. For users' own CI.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace dagd::daemon {

// Prints "FILE: ok (dag_id, N tasks)" or each error as "FILE: error"; returns 0 when every file
// is valid, 1 otherwise.
int ValidateFiles(const std::vector<std::string>& files, std::ostream& out, std::ostream& err);

}  // namespace dagd::daemon
