#include "dagd/scheduler/backfill.hpp"

#include <algorithm>

namespace dagd::scheduler {

std::string_view ToString(ReprocessBehavior b) {
  switch (b) {
    case ReprocessBehavior::kFailed:
      return "failed";
    case ReprocessBehavior::kCompleted:
      return "completed";
    case ReprocessBehavior::kNone:
      break;
  }
  return "none";
}

int BackfillFreeSlots(const BackfillGate& gate, int running) {
  if (gate.is_paused || gate.completed) return 0;
  return std::max(0, gate.max_active_runs - running);
}

std::optional<ReprocessBehavior> ParseReprocessBehavior(std::string_view text) {
  if (text == "none") return ReprocessBehavior::kNone;
  if (text == "failed") return ReprocessBehavior::kFailed;
  if (text == "completed") return ReprocessBehavior::kCompleted;
  return std::nullopt;
}

std::optional<std::string_view> NoRunReason(RunState state, ReprocessBehavior behavior) {
  // As Airflow's _get_dag_run_no_create_reason: only an ended run may be re-run.
  if (state != RunState::kSuccess && state != RunState::kFailed) return kInFlight;
  switch (behavior) {
    case ReprocessBehavior::kNone:
      return kAlreadyExists;
    case ReprocessBehavior::kFailed:
      if (state != RunState::kFailed) return kAlreadyExists;
      return std::nullopt;
    case ReprocessBehavior::kCompleted:
      return std::nullopt;
  }
  return kAlreadyExists;
}

}  // namespace dagd::scheduler
