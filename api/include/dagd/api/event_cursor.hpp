// What GET /api/v2/events and GET .../dagRuns/{id}/wait send next, as pure state machines: they
// are given pages of the event log (a ReadEventPage: the Service in the daemon, a vector in
// tests) and the time, and return the next piece of the body. The handlers (event_stream.cpp)
// wire them to a LiveBody and the Service's change notifications.
//
// Memory: a poll reads and formats at most one page of events; nothing else is kept.
// Thread-safety: Wake may be called from any thread; everything else from one thread at a time
// (LiveBody::poll is never concurrent with itself).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dagd/api/codecs.hpp"
#include "dagd/api/router.hpp"
#include "dagd/scheduler/ports.hpp"

namespace dagd::api {

enum class EventFormat {
  kNdjson,  // one JSON object per line
  kSse,     // Server-Sent Events: `id: <seq>`, `event: <kind>`, `data: <json>`
};

using ReadEventPage =
    std::function<StatusOr<scheduler::EventPage>(int64_t after_seq, int limit)>;
using SteadyTime = std::chrono::steady_clock::time_point;

// {"seq", "kind", "dag_id", "dag_run_id", "task_id", "map_index", "try_number", "state",
// "timestamp"} and the event's payload fields (ti_id, max_tries, start_date, ... for a task
// instance; run_type, logical_date, ... for a run). A run's event has task_id, map_index and
// try_number null; a task instance's none state is null.
Json EventToJson(const scheduler::EventRecord& e);

// The event stream after a position: each poll reads the next page when something was committed
// (Wake), when the last read left events unread, or at each heartbeat; sends the page's events,
// else a heartbeat once `heartbeat` passed without anything sent. Ends:
// - with until_terminal, after the event that put that run in a terminal state (or, when the
//   run was terminal already when the stream opened, once everything up to `head` is covered);
// - when it is more than max_lag events behind the newest one (counting only the events
//   committed since it opened, so that a replay from an old position is not a slow consumer):
//   an error line {"error": "slow consumer: ...", "resume_since": <position>};
// - when the database could not be read for kGiveUpAfter: an error line as well.
class EventCursor {
 public:
  static constexpr std::chrono::seconds kGiveUpAfter{30};
  // Reads per poll at most while they find nothing to send (filtered streams).
  static constexpr int kMaxReadsPerPoll = 16;

  struct Start {
    int64_t after_seq = 0;  // the events after this seq are sent
    int64_t head = 0;       // the newest seq when the stream opened
    // until=terminal: the run (dag_id, run_id) whose terminal state ends the stream.
    std::optional<std::pair<std::string, std::string>> until_terminal;
    bool run_was_terminal = false;  // that run was terminal when `head` was read
  };

  EventCursor(StreamOptions options, EventFormat format, Start start, ReadEventPage read);

  void Wake() { woken_ = true; }
  // The next piece: events, a heartbeat, a final error line; "" for nothing now; nullopt once
  // the stream has ended.
  std::optional<std::string> Poll(SteadyTime now);
  // Events are known to be committed beyond what was read: poll again soon.
  bool Behind() const { return behind_; }
  // Every matching event up to this seq has been sent (resume after it).
  int64_t position() const { return position_; }

 private:
  std::string Event(const scheduler::EventRecord& e) const;
  std::string Heartbeat() const;
  std::string Error(const std::string& message) const;
  bool EndsStream(const scheduler::EventRecord& e) const;

  const StreamOptions options_;
  const EventFormat format_;
  const Start start_;
  const ReadEventPage read_;
  std::atomic<bool> woken_{true};  // the first poll reads
  int64_t position_;
  bool behind_ = false;
  bool ended_ = false;
  std::optional<SteadyTime> next_heartbeat_;  // set by the first poll
  std::optional<SteadyTime> failing_since_;
};

// GET .../dagRuns/{id}/wait: {"state": "<run state>"} at once and then every `interval` until
// the run is terminal, then a last line with the final state and, when result tasks were
// named, "results": {task_id: <its return_value XCom or null>}. A run that is already terminal
// gets only the last line. Reads the run's events when woken (a commit) and at each interval,
// so that the end is seen at once. Read failures are retried at the next poll; after
// EventCursor::kGiveUpAfter the body ends with {"error": "..."}.
class RunWaiter {
 public:
  using ReadResult = std::function<StatusOr<Json>(const std::string& task_id)>;

  struct Start {
    std::string state;  // the run's state (Airflow's spelling) when after_seq was the newest
    int64_t after_seq = 0;
    std::chrono::milliseconds interval{1000};
    std::vector<std::string> result_task_ids;
  };

  // `read` returns the run's events only.
  RunWaiter(Start start, int page_size, ReadEventPage read, ReadResult result);

  void Wake() { woken_ = true; }
  std::optional<std::string> Poll(SteadyTime now);

 private:
  // Reads the run's new events into state_; false when the database could not be read.
  bool CatchUp();
  std::optional<std::string> Fail(SteadyTime now, const Status& status);

  const Start start_;
  const int page_size_;
  const ReadEventPage read_;
  const ReadResult result_;
  std::atomic<bool> woken_{false};
  std::string state_;
  int64_t position_;
  bool ended_ = false;
  std::optional<SteadyTime> next_line_;  // set by the first poll
  std::optional<SteadyTime> failing_since_;
  Status failing_status_;  // the last read's error, while failing
};

}  // namespace dagd::api
