// Trigger rules: whether a task may run given the states of its direct upstream tasks.
// Pure functions; Airflow 3 semantics (a task without upstreams may always run).
#pragma once

#include <vector>

#include "dagd/scheduler/states.hpp"

namespace dagd::scheduler {

// Counts of the direct upstream tasks' states.
struct UpstreamSummary {
  int total = 0;
  int success = 0;
  int failed = 0;
  int upstream_failed = 0;
  int skipped = 0;
  int removed = 0;
  int done() const { return success + failed + upstream_failed + skipped + removed; }
  int failures() const { return failed + upstream_failed; }
};

UpstreamSummary Summarize(const std::vector<TaskState>& upstream_states);
// Adds `delta` (+1 or -1) to the count `state` belongs to, if any: keeps a summary current as one
// upstream task changes state, without looking at the others.
void Count(UpstreamSummary& summary, TaskState state, int delta);

enum class RuleVerdict {
  kWait,            // not decided yet: some upstream is still to finish
  kRun,             // the rule is met: queue the task
  kUpstreamFailed,  // the rule can no longer be met because of failures
  kSkip,            // the rule can no longer be met because of skips (or by definition)
};

RuleVerdict Evaluate(TriggerRule rule, const UpstreamSummary& upstream);

}  // namespace dagd::scheduler
