// Fuzz target: ParseDag on arbitrary bytes. It must never crash, hang or leak, and a DAG it
// accepts must satisfy the model's invariants (unique ids, resolved upstreams, topological order)
// and parse again from its own canonical document to the same hash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dagd/scheduler/dag_parser.hpp"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dagd::scheduler;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ParseOptions options;
  options.job_exists = [](std::string_view job) { return job.starts_with("example."); };
  options.run_as_allowed = [](std::string_view user) { return user == "etl"; };
  const ParseResult result = ParseDag(text, options);
  Check(result.dag != nullptr || !result.errors.empty());
  Check(result.error_paths.size() == result.errors.size());  // one path per error
  for (const auto& path : result.error_paths) Check(path.is_array());
  if (!result.dag) return 0;
  const Dag& dag = *result.dag;
  Check(IsValidId(dag.dag_id));
  Check(dag.upstream.size() == dag.tasks.size() && dag.downstream.size() == dag.tasks.size());
  for (size_t i = 0; i < dag.tasks.size(); ++i) {
    Check(IsValidId(dag.tasks[i].task_id));
    Check(dag.IndexOf(dag.tasks[i].task_id) == i);
    for (size_t up : dag.upstream[i]) Check(up < i);  // topological order
  }
  const ParseResult again = ParseDag(std::string_view(dag.document), ParseOptions{});
  Check(again.dag != nullptr && again.dag->hash == dag.hash);
  return 0;
}
