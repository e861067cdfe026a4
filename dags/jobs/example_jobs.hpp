// The transform jobs of the example DAGs (dags/example_*.json).
#pragma once

#include "dagd/executors/job_registry.hpp"

namespace dagd::dags {

// example.start, example.work, example.join, example.flaky.
void RegisterExampleJobs(executors::JobRegistry& registry);

}  // namespace dagd::dags
