#include "dagd/scheduler/why_not_running.hpp"

#include <algorithm>
#include <string_view>

#include "dagd/scheduler/active_run.hpp"
#include "dagd/scheduler/decisions.hpp"
#include "dagd/scheduler/trigger_rules.hpp"

namespace dagd::scheduler {
namespace {

std::string Quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

std::string Plural(int64_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

// What a trigger rule waits for, completing "requires ...".
std::string_view Requirement(TriggerRule rule) {
  switch (rule) {
    case TriggerRule::kAllSuccess:
      return "all upstream tasks to succeed";
    case TriggerRule::kAllFailed:
      return "all upstream tasks to fail";
    case TriggerRule::kAllDone:
      return "all upstream tasks to be done";
    case TriggerRule::kAllDoneMinOneSuccess:
      return "all upstream tasks to be done, at least one of them successful";
    case TriggerRule::kAllSkipped:
      return "all upstream tasks to be skipped";
    case TriggerRule::kOneSuccess:
      return "at least one upstream task to succeed";
    case TriggerRule::kOneFailed:
      return "at least one upstream task to fail";
    case TriggerRule::kOneDone:
      return "at least one upstream task to succeed or fail";
    case TriggerRule::kNoneFailed:
      return "all upstream tasks to be done without a failure";
    case TriggerRule::kNoneSkipped:
      return "all upstream tasks to be done without a skip";
    case TriggerRule::kNoneFailedMinOneSuccess:
      return "all upstream tasks to be done without a failure, at least one of them successful";
    case TriggerRule::kAlways:
      return "nothing";
  }
  return "its upstream tasks";
}

std::string TaskList(const WhyInput& in, const std::vector<size_t>& indices) {
  std::string out;
  for (size_t i : indices) {
    if (!out.empty()) out += ", ";
    out += in.dag->tasks[i].task_id + " (" + std::string(ToString(in.tis[i].state)) + ")";
  }
  return out;
}

Dependency TriggerRuleDependency(const WhyInput& in, RuleVerdict verdict) {
  const TaskSpec& task = in.dag->tasks[in.task];
  const auto& upstream = in.dag->upstream[in.task];
  std::string reason = "Task's trigger rule " + Quoted(ToString(task.trigger_rule)) + " requires " +
                       std::string(Requirement(task.trigger_rule));
  if (verdict == RuleVerdict::kWait) {
    std::vector<size_t> pending;
    for (size_t u : upstream) {
      if (!IsFinished(in.tis[u].state)) pending.push_back(u);
    }
    reason += "; " + std::to_string(pending.size()) + " of its " +
              Plural(static_cast<int64_t>(upstream.size()), "upstream task", "upstream tasks") +
              (pending.size() == 1 ? " is" : " are") + " not done: " + TaskList(in, pending) + ".";
    return {"Trigger Rule", reason};
  }
  reason += ", which can no longer be met (upstream: " + TaskList(in, upstream) +
            "); the scheduler marks the task " +
            (verdict == RuleVerdict::kSkip ? "skipped" : "upstream_failed") +
            " at its next decision.";
  return {"Trigger Rule", reason};
}

// Whether the run's backfill keeps it from starting (BackfillFreeSlots, as the loop admits), and
// if so why.
bool BackfillHolds(const BackfillGate& gate, int running, std::vector<Dependency>& out) {
  if (BackfillFreeSlots(gate, running) > 0) return false;
  const std::string backfill = "backfill " + std::to_string(gate.id);
  if (gate.completed) {
    out.push_back({"Backfill Running", "The run belongs to " + backfill +
                                           ", which is completed or cancelled: its queued runs "
                                           "do not start."});
  } else if (gate.is_paused) {
    out.push_back({"Backfill Not Paused", "The run belongs to " + backfill +
                                              ", which is paused: its runs start once it is "
                                              "unpaused (POST /api/v2/backfills/" +
                                              std::to_string(gate.id) + "/unpause)."});
  } else {
    out.push_back({"Backfill Max Active Runs",
                   "The run's " + backfill + " has reached its max_active_runs (" +
                       std::to_string(gate.max_active_runs) +
                       "): " + Plural(running, "of its runs is", "of its runs are") + " running."});
  }
  return true;
}

// Why a queued run has not started, from the scheduler's own admission of the DAG's queued runs.
void ExplainQueuedRun(const WhyInput& in, TimePoint now, std::vector<Dependency>& out) {
  out.push_back({"Dagrun Running",
                 "Task instance's dagrun is in the 'queued' state, not 'running': the run has "
                 "not started yet."});
  const AdmissionInput& admission = in.admission;
  const DagRun& run = *in.run;
  const bool not_due = run.run_after && *run.run_after > now;
  if (not_due) {
    out.push_back({"Run After", "The run is not due before its run_after time, " +
                                    FormatRfc3339(*run.run_after) + "."});
  }
  if (in.paused) return;  // "Dag Not Paused" says it
  if (admission.running >= admission.max_active_runs) {
    out.push_back({"Max Active Runs", "The DAG has reached its max_active_runs (" +
                                          std::to_string(admission.max_active_runs) +
                                          "): " + Plural(admission.running, "run is", "runs are") +
                                          " running."});
    return;
  }
  if (in.backfill && BackfillHolds(*in.backfill, in.backfill_running, out)) return;
  if (not_due) return;  // "Run After" says it
  const Admission admitted = AdmitRuns(admission, now);
  if (in.queued_ahead_unread == 0 &&
      std::find(admitted.start.begin(), admitted.start.end(), run.id) != admitted.start.end()) {
    return;  // the loop starts it at its next decision
  }
  int64_t ahead = in.queued_ahead_unread;
  for (const QueuedRun& q : admission.queued) {
    if (q.key == run.id) break;
    if (!q.run_after || *q.run_after <= now) ++ahead;
  }
  const int free = admission.max_active_runs - admission.running;
  out.push_back(
      {"Max Active Runs",
       "The DAG's free run slots (max_active_runs " + std::to_string(admission.max_active_runs) +
           ", " + Plural(admission.running, "run", "runs") + " running, " + std::to_string(free) +
           " free) go to " + Plural(ahead, "older queued run", "older queued runs") + " first."});
}

}  // namespace

std::vector<Dependency> ExplainWhyNotRunning(const WhyInput& in, TimePoint now) {
  std::vector<Dependency> out;
  const TaskInstance& ti = in.tis[in.task];
  if (IsTryInProgress(ti.state)) return out;
  if (ti.state != TaskState::kNone && ti.state != TaskState::kScheduled &&
      ti.state != TaskState::kUpForRetry) {
    out.push_back({"Task Instance State",
                   "Task is in the " + Quoted(ToString(ti.state)) +
                       " state, which is not a runnable state; clear the task instance to run "
                       "it again."});
    return out;
  }
  if (in.paused) {
    out.push_back({"Dag Not Paused", "Task's DAG " + Quoted(in.dag->dag_id) + " is paused."});
  }
  if (in.run->state == RunState::kQueued) {
    ExplainQueuedRun(in, now, out);
    return out;
  }
  if (in.run->state != RunState::kRunning) {
    out.push_back({"Dagrun Running", "Task instance's dagrun is in the " +
                                         Quoted(ToString(in.run->state)) +
                                         " state, not 'running': its tasks are not scheduled."});
    return out;
  }
  std::vector<TaskState> upstream_states;
  for (size_t u : in.dag->upstream[in.task]) upstream_states.push_back(in.tis[u].state);
  const TaskSpec& task = in.dag->tasks[in.task];
  const UpstreamSummary upstream = Summarize(upstream_states);
  const TaskDecision decision = DecideTask(task, ti, upstream, now);
  switch (decision.action) {
    case TaskAction::kWait:
      if (decision.wake_at) {
        out.push_back({"Not In Retry Period", "Task is waiting to be retried: try " +
                                                  std::to_string(ti.try_number) +
                                                  " failed and the next try starts at " +
                                                  FormatRfc3339(*decision.wake_at) + " (now " +
                                                  FormatRfc3339(now) + ")."});
      } else if (ti.state == TaskState::kNone) {
        out.push_back(TriggerRuleDependency(in, RuleVerdict::kWait));
      }
      break;
    case TaskAction::kUpstreamFailed:
      out.push_back(TriggerRuleDependency(in, RuleVerdict::kUpstreamFailed));
      break;
    case TaskAction::kSkip:
      out.push_back(TriggerRuleDependency(in, RuleVerdict::kSkip));
      break;
    case TaskAction::kQueue: {
      // The run's slots as ActiveRun counts them: its task instances queued or running.
      const auto active = std::count_if(in.tis.begin(), in.tis.end(),
                                        [](const TaskInstance& t) { return HoldsSlot(t.state); });
      if (active >= in.dag->max_active_tasks) {
        out.push_back({"Max Active Tasks",
                       "The run has reached its DAG's max_active_tasks (" +
                           std::to_string(in.dag->max_active_tasks) +
                           "): " + Plural(active, "task instance is", "task instances are") +
                           " queued or running."});
      }
      break;
    }
    case TaskAction::kSucceed:
      break;  // an `empty` task needs no slot
  }
  return out;
}

}  // namespace dagd::scheduler
