// What the executor and a running try share: the cancellation token, the deadline and why the
// try was asked to stop. The first reason wins (a try that timed out and is then cancelled by
// shutdown still reports the timeout). Stop is called only with the executor's mutex held, so a
// reason is published once, after its stop_message.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>

#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::executors {

// kStopped: StopTry (a mark, the run's end or its dagrun_timeout); stop_message says why.
enum class StopReason : int { kNone = 0, kTimeout = 1, kInterrupt = 2, kStopped = 3 };

struct TryControl {
  std::atomic<bool> cancel{false};  // the token jobs and the bash wait loop watch
  std::atomic<int> reason{0};       // a StopReason
  // Set before the try is published to the watchdog, then never changed.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  scheduler::Duration timeout{0};
  std::string ti_id;  // the try's task instance and number, for StopTry and reports
  int try_number = 0;
  scheduler::TaskEventSink sink;  // the watchdog copies it to report an abandoned try
  // Written once, before Stop(kStopped) publishes the reason; read after the reason is seen.
  std::string stop_message;
  // Guarded by the executor's mutex:
  // a transform job runs now (kStarted was sent): cancellation is cooperative, so the
  // executor's cancel_grace applies;
  bool cooperative = false;
  // when the token was set;
  std::optional<std::chrono::steady_clock::time_point> stopped_at;
  // the try was given up on (reported while its thread still runs the job), and the watchdog is
  // calling the sink now (the worker waits for that before the try leaves the executor).
  bool abandoned = false;
  bool reporting = false;
  std::atomic<bool> reported{false};  // kFinished was sent (by the worker or the watchdog)

  void Stop(StopReason r) {
    int expected = static_cast<int>(StopReason::kNone);
    reason.compare_exchange_strong(expected, static_cast<int>(r));
    cancel.store(true, std::memory_order_release);
  }
  StopReason stop_reason() const { return static_cast<StopReason>(reason.load()); }
};

// "30s", "0.25s".
std::string SecondsText(scheduler::Duration d);
// "execution_timeout of 30s exceeded", "execution_timeout of 0.25s exceeded".
std::string TimeoutMessage(scheduler::Duration timeout);

}  // namespace dagd::executors
