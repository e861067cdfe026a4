#include "validate.hpp"

#include "dagd/dags/register.hpp"
#include "dagd/executors/job_registry.hpp"
#include "dagd/scheduler/dag_parser.hpp"

namespace dagd::daemon {

int ValidateFiles(const std::vector<std::string>& files, std::ostream& out, std::ostream& err) {
  executors::JobRegistry registry;
  dags::RegisterAllJobs(registry);
  scheduler::ParseOptions options;
  options.job_exists = [&registry](std::string_view job) { return registry.Contains(job); };

  int failures = 0;
  for (const std::string& file : files) {
    // The same reader as the daemon's folder scan: a FIFO or a huge file is refused, not waited on.
    auto text = scheduler::ReadDagFile(file);
    if (!text.ok()) {
      err << file << ": " << text.status().message() << "\n";
      ++failures;
      continue;
    }
    scheduler::ParseResult result = scheduler::ParseDag(std::string_view(*text), options);
    if (result.dag) {
      out << file << ": ok (" << result.dag->dag_id << ", " << result.dag->tasks.size()
          << " tasks)\n";
      continue;
    }
    ++failures;
    for (const std::string& e : result.errors) err << file << ": " << e << "\n";
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace dagd::daemon
