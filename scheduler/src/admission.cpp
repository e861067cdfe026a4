#include "dagd/scheduler/admission.hpp"

namespace dagd::scheduler {

Admission AdmitRuns(const AdmissionInput& input, TimePoint now) {
  Admission admission;
  if (input.paused || input.draining) return admission;
  int free = input.max_active_runs - input.running;
  for (const QueuedRun& run : input.queued) {
    if (free <= 0) break;
    if (run.run_after && *run.run_after > now) {
      if (!admission.next_wakeup || *run.run_after < *admission.next_wakeup) {
        admission.next_wakeup = run.run_after;
      }
      continue;
    }
    admission.start.push_back(run.key);
    --free;
  }
  return admission;
}

}  // namespace dagd::scheduler
