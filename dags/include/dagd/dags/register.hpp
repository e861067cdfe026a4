// Registers every compiled transform job of the DAGs in this folder.
#pragma once

#include "dagd/executors/job_registry.hpp"

namespace dagd::dags {

void RegisterAllJobs(executors::JobRegistry& registry);

}  // namespace dagd::dags
