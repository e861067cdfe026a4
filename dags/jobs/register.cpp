#include "dagd/dags/register.hpp"

#include "example_jobs.hpp"

namespace dagd::dags {

void RegisterAllJobs(executors::JobRegistry& registry) { RegisterExampleJobs(registry); }

}  // namespace dagd::dags
