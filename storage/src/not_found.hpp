// Airflow's sentences for a DAG, run or task instance that does not exist (its 404 details),
// shared by the store's files so that every endpoint words them alike.
#pragma once

#include <string>

#include "dagd/scheduler/status.hpp"

namespace dagd::storage {

inline Status DagNotFound(const std::string& dag_id) {
  return Status::NotFound("DAG with dag_id: '" + dag_id + "' not found");
}

inline Status RunNotFound(const std::string& dag_id, const std::string& run_id) {
  return Status::NotFound("The DagRun with dag_id: '" + dag_id + "' and run_id: '" + run_id +
                          "' was not found");
}

inline Status TaskInstanceNotFound(const std::string& dag_id, const std::string& run_id,
                                   const std::string& task_id) {
  return Status::NotFound("The Task Instance with dag_id: '" + dag_id + "', dag_run_id: '" +
                          run_id + "', task_id: '" + task_id + "' was not found");
}

}  // namespace dagd::storage
