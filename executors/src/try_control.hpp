// What the executor and a running try share: the cancellation token, the deadline and why the
// try was asked to stop. The first reason wins (a try that timed out and is then cancelled by
// shutdown still reports the timeout).
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>

#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::executors {

// kRunOver: the try's run ended without it (dagrun_timeout); stop_message says why.
enum class StopReason : int { kNone = 0, kTimeout = 1, kInterrupt = 2, kRunOver = 3 };

struct TryControl {
  std::atomic<bool> cancel{false};  // the token jobs and the bash wait loop watch
  std::atomic<int> reason{0};       // a StopReason
  // Set before the try is published to the watchdog, then never changed.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  scheduler::Duration timeout{0};
  std::string ti_id;    // the try, set before it is published
  int try_number = 0;
  // Written once, before Stop(kRunOver) publishes the reason; read after the reason is seen.
  std::string stop_message;
  // A transform job: cancellation is cooperative, so the executor's cancel_grace applies.
  bool cooperative = false;
  // Guarded by the executor's mutex: when the token was set, and whether the try was given up
  // on (reported failed while its thread still runs the job).
  std::optional<std::chrono::steady_clock::time_point> stopped_at;
  bool abandoned = false;
  scheduler::TaskEventSink sink;   // set before publish: the watchdog reports an abandoned try
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
