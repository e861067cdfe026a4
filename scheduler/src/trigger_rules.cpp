#include "dagd/scheduler/trigger_rules.hpp"

namespace dagd::scheduler {

void Count(UpstreamSummary& summary, TaskState state, int delta) {
  switch (state) {
    case TaskState::kSuccess:
      summary.success += delta;
      break;
    case TaskState::kFailed:
      summary.failed += delta;
      break;
    case TaskState::kUpstreamFailed:
      summary.upstream_failed += delta;
      break;
    case TaskState::kSkipped:
      summary.skipped += delta;
      break;
    case TaskState::kRemoved:
      summary.removed += delta;
      break;
    default:
      break;
  }
}

UpstreamSummary Summarize(const std::vector<TaskState>& upstream_states) {
  UpstreamSummary s;
  s.total = static_cast<int>(upstream_states.size());
  for (TaskState state : upstream_states) Count(s, state, +1);
  return s;
}

RuleVerdict Evaluate(TriggerRule rule, const UpstreamSummary& u) {
  if (u.total == 0) return RuleVerdict::kRun;
  const bool all_done = u.done() == u.total;
  switch (rule) {
    case TriggerRule::kAllSuccess:
      // Decided as soon as one upstream fails or is skipped: no need to wait for the others.
      if (u.failures() > 0) return RuleVerdict::kUpstreamFailed;
      if (u.skipped > 0) return RuleVerdict::kSkip;
      return u.success + u.removed == u.total ? RuleVerdict::kRun : RuleVerdict::kWait;
    case TriggerRule::kAllFailed:
      if (u.success > 0 || u.skipped > 0) return RuleVerdict::kSkip;
      return all_done ? RuleVerdict::kRun : RuleVerdict::kWait;
    case TriggerRule::kAllDone:
      return all_done ? RuleVerdict::kRun : RuleVerdict::kWait;
    case TriggerRule::kAllDoneMinOneSuccess:
      if (!all_done) return RuleVerdict::kWait;
      return u.success > 0 ? RuleVerdict::kRun : RuleVerdict::kSkip;
    case TriggerRule::kAllSkipped:
      if (u.success > 0 || u.failures() > 0) return RuleVerdict::kSkip;
      return all_done ? RuleVerdict::kRun : RuleVerdict::kWait;
    case TriggerRule::kOneSuccess:
      if (u.success > 0) return RuleVerdict::kRun;
      if (!all_done) return RuleVerdict::kWait;
      return u.skipped == u.total ? RuleVerdict::kSkip : RuleVerdict::kUpstreamFailed;
    case TriggerRule::kOneFailed:
      if (u.failures() > 0) return RuleVerdict::kRun;
      return all_done ? RuleVerdict::kSkip : RuleVerdict::kWait;
    case TriggerRule::kOneDone:
      if (u.success + u.failed > 0) return RuleVerdict::kRun;
      return all_done ? RuleVerdict::kSkip : RuleVerdict::kWait;
    case TriggerRule::kNoneFailed:
      if (u.failures() > 0) return RuleVerdict::kUpstreamFailed;
      return all_done ? RuleVerdict::kRun : RuleVerdict::kWait;
    case TriggerRule::kNoneSkipped:
      if (u.skipped > 0) return RuleVerdict::kSkip;
      return all_done ? RuleVerdict::kRun : RuleVerdict::kWait;
    case TriggerRule::kNoneFailedMinOneSuccess:
      if (u.failures() > 0) return RuleVerdict::kUpstreamFailed;
      if (!all_done) return RuleVerdict::kWait;
      return u.success > 0 ? RuleVerdict::kRun : RuleVerdict::kSkip;
    case TriggerRule::kAlways:
      return RuleVerdict::kRun;
  }
  return RuleVerdict::kWait;
}

}  // namespace dagd::scheduler
