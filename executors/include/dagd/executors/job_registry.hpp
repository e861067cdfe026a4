// The registry of compiled transform jobs, by name ("pipeline.step").
//
// Filled once at startup (dags::RegisterAllJobs), then shared read-only: registration is not
// synchronised, so register everything before handing the registry to an executor. Const methods
// are safe from any number of threads. Job pointers stay valid for the registry's lifetime.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "dagd/executors/job_api.hpp"

namespace dagd::executors {

class JobRegistry {
 public:
  // Registering an empty name, an empty job or a name twice is a programmer error: throws
  // std::logic_error naming the job, so a bad build fails at startup, not at run time.
  void Register(std::string name, Job job);

  // The job registered under `name`, or nullptr.
  const Job* Find(std::string_view name) const;
  bool Contains(std::string_view name) const { return Find(name) != nullptr; }
  // Every registered name, sorted.
  std::vector<std::string> Names() const;
  size_t size() const { return jobs_.size(); }

 private:
  std::map<std::string, Job, std::less<>> jobs_;
};

}  // namespace dagd::executors
