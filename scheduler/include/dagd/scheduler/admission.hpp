// Run admission: which queued runs of one DAG may start now. Pure: no I/O, no clock.
//
// A queued run starts when its DAG is not paused, the scheduler is not draining (shutting down
// or fenced off), the run is due (run_after <= now), and the DAG has fewer than max_active_runs
// runs running. Due runs start oldest first; a run triggered for later never holds back a younger
// run that is due now (Airflow skips runs that are not due).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "dagd/scheduler/time.hpp"

namespace dagd::scheduler {

struct QueuedRun {
  int64_t key = 0;
  std::optional<TimePoint> run_after;  // not before this; none = now
};

struct AdmissionInput {
  bool paused = false;
  bool draining = false;
  int running = 0;  // runs of the DAG in state running
  int max_active_runs = 16;
  std::vector<QueuedRun> queued;  // oldest first
};

struct Admission {
  std::vector<int64_t> start;            // keys of runs to start now, oldest first
  std::optional<TimePoint> next_wakeup;  // when a run held back by run_after comes due
};

Admission AdmitRuns(const AdmissionInput& input, TimePoint now);

}  // namespace dagd::scheduler
