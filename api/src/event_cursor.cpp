#include "dagd/api/event_cursor.hpp"

#include <algorithm>

#include "dagd/scheduler/states.hpp"
#include "dagd/scheduler/time.hpp"
#include "responses.hpp"

namespace dagd::api {

namespace {

bool IsTerminalRunState(const std::string& state) {
  auto parsed = scheduler::ParseRunState(state);
  return parsed && scheduler::IsTerminal(*parsed);
}

std::string Line(const Json& j) { return Dump(j) + "\n"; }

}  // namespace

Json EventToJson(const scheduler::EventRecord& e) {
  // The payload first, so that none of its keys can replace the event's own fields.
  Json j = e.payload.is_object() ? e.payload : Json::object();
  const bool task = e.kind == "task_instance";
  j["seq"] = e.seq;
  j["kind"] = e.kind;
  j["dag_id"] = e.dag_id;
  j["dag_run_id"] = e.run_id;
  j["task_id"] = task ? Json(e.task_id) : Json(nullptr);
  j["map_index"] = task ? Json(-1) : Json(nullptr);
  j["try_number"] = task && e.try_number ? Json(*e.try_number) : Json(nullptr);
  j["state"] = e.state.empty() ? Json(nullptr) : Json(e.state);
  j["timestamp"] = scheduler::FormatRfc3339(e.at);
  return j;
}

// --- EventCursor ----------------------------------------------------------------------------------

EventCursor::EventCursor(StreamOptions options, EventFormat format, Start start,
                         ReadEventPage read)
    : options_(options),
      format_(format),
      start_(std::move(start)),
      read_(std::move(read)),
      position_(start_.after_seq) {}

std::string EventCursor::Event(const scheduler::EventRecord& e) const {
  if (format_ == EventFormat::kNdjson) return Line(EventToJson(e));
  return "id: " + std::to_string(e.seq) + "\nevent: " + e.kind + "\ndata: " +
         Dump(EventToJson(e)) + "\n\n";
}

std::string EventCursor::Heartbeat() const {
  if (format_ == EventFormat::kSse) return ": keep-alive\n\n";
  return Line({{"heartbeat", true}, {"seq", position_}});
}

std::string EventCursor::Error(const std::string& message) const {
  const Json body = {{"error", message}, {"resume_since", position_}};
  if (format_ == EventFormat::kNdjson) return Line(body);
  return "event: error\ndata: " + Dump(body) + "\n\n";
}

bool EventCursor::EndsStream(const scheduler::EventRecord& e) const {
  return start_.until_terminal && e.kind == "dag_run" &&
         e.dag_id == start_.until_terminal->first && e.run_id == start_.until_terminal->second &&
         IsTerminalRunState(e.state);
}

std::optional<std::string> EventCursor::Poll(SteadyTime now) {
  if (ended_) return std::nullopt;
  if (!next_heartbeat_) next_heartbeat_ = now + options_.heartbeat;
  std::string out;
  const bool heartbeat_due = now >= *next_heartbeat_;
  // The heartbeat reads too, as a safety net for a lost notification.
  if (woken_.exchange(false) || behind_ || failing_since_ || heartbeat_due) {
    for (int reads = 0; reads < kMaxReadsPerPoll && out.empty() && !ended_; ++reads) {
      auto page = read_(position_, std::max(options_.page_size, 1));
      if (!page.ok()) {
        if (!failing_since_) failing_since_ = now;
        if (now - *failing_since_ >= kGiveUpAfter) {
          Log()->warn("event stream ends: the event log cannot be read error=\"{}\"",
                      page.status().message());
          out = Error("the event log could not be read for " +
                      std::to_string(kGiveUpAfter.count()) +
                      " s; reconnect with since=resume_since");
          ended_ = true;
        }
        break;
      }
      failing_since_.reset();
      if (position_ < page->oldest - 1) {
        // Retention removed events this reader has not had: say so rather than skip them.
        out = Error("the events after " + std::to_string(position_) +
                    " were removed by the event log's retention while this stream read them; "
                    "the oldest kept is " + std::to_string(page->oldest));
        ended_ = true;
        break;
      }
      // Only events committed after the stream opened count: a replay from an old position
      // is read at the client's pace.
      const int64_t lag = page->head - std::max(position_, start_.head);
      if (lag > options_.max_lag) {
        out = Error("slow consumer: " + std::to_string(lag) +
                    " events behind the newest (the limit is " +
                    std::to_string(options_.max_lag) +
                    "); reconnect with since=resume_since to continue");
        ended_ = true;
        break;
      }
      for (const scheduler::EventRecord& e : page->events) {
        out += Event(e);
        position_ = e.seq;
        if (EndsStream(e)) {
          ended_ = true;
          break;
        }
      }
      if (ended_) break;
      position_ = page->last_seq;
      behind_ = position_ < page->head;
      if (start_.run_was_terminal && position_ >= start_.head) ended_ = true;
      if (!behind_) break;
    }
  }
  if (!out.empty()) {
    next_heartbeat_ = now + options_.heartbeat;
  } else if (ended_) {
    return std::nullopt;
  } else if (heartbeat_due) {
    out = Heartbeat();
    next_heartbeat_ = now + options_.heartbeat;
  }
  return out;
}

// --- RunWaiter ------------------------------------------------------------------------------------

RunWaiter::RunWaiter(Start start, int page_size, ReadEventPage read, ReadResult result)
    : start_(std::move(start)),
      page_size_(std::max(page_size, 1)),
      read_(std::move(read)),
      result_(std::move(result)),
      state_(start_.state),
      position_(start_.after_seq) {}

bool RunWaiter::CatchUp() {
  // A run's events are few; the loop ends once a read leaves nothing behind.
  for (int reads = 0; reads < EventCursor::kMaxReadsPerPoll; ++reads) {
    auto page = read_(position_, page_size_);
    if (!page.ok()) {
      failing_status_ = page.status();
      return false;
    }
    for (const scheduler::EventRecord& e : page->events) {
      if (e.kind == "dag_run" && !e.state.empty()) state_ = e.state;
    }
    position_ = page->last_seq;
    if (position_ >= page->head || IsTerminalRunState(state_)) break;
  }
  return true;
}

std::optional<std::string> RunWaiter::Fail(SteadyTime now, const Status& status) {
  if (!failing_since_) failing_since_ = now;
  if (now - *failing_since_ < EventCursor::kGiveUpAfter) {
    woken_ = true;  // retried at the next poll
    return std::string();
  }
  Log()->warn("wait for a run ends: the database cannot be read error=\"{}\"", status.message());
  ended_ = true;
  return Line({{"error", "the run's state could not be read for " +
                             std::to_string(EventCursor::kGiveUpAfter.count()) + " s"}});
}

std::optional<std::string> RunWaiter::Poll(SteadyTime now) {
  if (ended_) return std::nullopt;
  const bool first = !next_line_;
  if (first) next_line_ = now;
  const bool line_due = now >= *next_line_;
  if (!first && (woken_.exchange(false) || line_due)) {
    if (!CatchUp()) return Fail(now, failing_status_);
  }
  if (IsTerminalRunState(state_)) {
    Json last = {{"state", state_}};
    if (!start_.result_task_ids.empty()) {
      Json results = Json::object();
      for (const std::string& task_id : start_.result_task_ids) {
        auto value = result_(task_id);
        if (!value.ok()) return Fail(now, value.status());
        results[task_id] = std::move(*value);
      }
      last["results"] = std::move(results);
    }
    ended_ = true;
    return Line(last);
  }
  failing_since_.reset();
  if (!line_due) return std::string();
  next_line_ = now + start_.interval;
  return Line({{"state", state_}});
}

}  // namespace dagd::api
