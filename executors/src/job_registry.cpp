#include "dagd/executors/job_registry.hpp"

#include <stdexcept>
#include <utility>

namespace dagd::executors {

void JobRegistry::Register(std::string name, Job job) {
  if (name.empty()) throw std::logic_error("a job was registered with an empty name");
  if (!job) throw std::logic_error("job '" + name + "' was registered without a function");
  if (jobs_.contains(name)) throw std::logic_error("job '" + name + "' is registered twice");
  jobs_.emplace(std::move(name), std::move(job));
}

const Job* JobRegistry::Find(std::string_view name) const {
  auto it = jobs_.find(name);
  return it == jobs_.end() ? nullptr : &it->second;
}

std::vector<std::string> JobRegistry::Names() const {
  std::vector<std::string> names;
  names.reserve(jobs_.size());
  for (const auto& [name, job] : jobs_) names.push_back(name);
  return names;
}

}  // namespace dagd::executors
