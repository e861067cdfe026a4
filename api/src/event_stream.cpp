#include "event_stream.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "dagd/api/event_cursor.hpp"
#include "dagd/scheduler/states.hpp"
#include "live_body.hpp"
#include "request_text.hpp"
#include "responses.hpp"

namespace dagd::api {

namespace {

using namespace std::chrono_literals;

// A filter value: absent, or a non-empty string.
std::string FilterValue(const Query& query, std::string_view name, Errors& errors) {
  auto value = query.First(name);
  if (!value) return {};
  if (value->empty()) {
    errors.Add("string_too_short", {"query", name}, "String should have at least 1 character",
               *value, {{"min_length", 1}});
  }
  return *value;
}

// A seq: a non-negative integer.
std::optional<int64_t> ParseSeq(const std::string& text, Json loc, Errors& errors) {
  auto v = ParseInt(text);
  if (!v) {
    errors.Add("int_parsing", std::move(loc),
               "Input should be a valid integer, unable to parse string as an integer", text);
    return std::nullopt;
  }
  if (*v < 0) {
    errors.Add("greater_than_equal", std::move(loc), "Input should be greater than or equal to 0",
               text, {{"ge", 0}});
    return std::nullopt;
  }
  return v;
}

std::optional<double> ParseNumber(const std::string& text) {
  double v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

Response StreamEvents(scheduler::Service& service, const StreamOptions& options, const Request& req,
                      const Query& query) {
  Errors errors;
  scheduler::EventFilter filter;
  filter.dag_id = FilterValue(query, "dag_id", errors);
  filter.run_id = FilterValue(query, "dag_run_id", errors);
  filter.task_id = FilterValue(query, "task_id", errors);
  std::optional<int64_t> since;
  if (auto text = query.First("since")) since = ParseSeq(*text, {"query", "since"}, errors);
  if (auto it = req.headers.find("last-event-id"); it != req.headers.end()) {
    // What an EventSource sends when it reconnects: it resumes after the last event it got.
    since = ParseSeq(std::string(Trim(it->second)), {"header", "Last-Event-ID"}, errors);
  }
  bool until_terminal = false;
  if (auto until = query.First("until")) {
    if (*until != "terminal") {
      errors.Add("literal_error", {"query", "until"}, "Input should be 'terminal'", *until,
                 {{"expected", "'terminal'"}});
    } else if (filter.dag_id.empty() || filter.run_id.empty()) {
      errors.Add("value_error", {"query", "until"},
                 "Value error, until=terminal needs dag_id and dag_run_id: the run to wait for",
                 *until, {{"error", Json::object()}});
    } else {
      until_terminal = true;
    }
  }
  if (!errors.empty()) return errors.ToResponse();

  // The run's state is read before the newest seq: whatever changes it later is an event after
  // that seq, which the stream sends.
  bool run_was_terminal = false;
  if (!filter.dag_id.empty()) {
    auto dag = service.GetDag(filter.dag_id);
    if (!dag.ok()) return ErrorResponse(dag.status());
    if (!filter.run_id.empty()) {
      auto run = service.GetRun(filter.dag_id, filter.run_id);
      if (!run.ok()) return ErrorResponse(run.status());
      run_was_terminal = scheduler::IsTerminal(run->state);
    }
  }
  auto bounds = service.EventLogBounds();
  if (!bounds.ok()) return ErrorResponse(bounds.status());
  const int64_t after = since.value_or(bounds->latest);
  if (after > bounds->latest) {
    return Detail(400, "since=" + std::to_string(after) + " is ahead of the newest event (" +
                           std::to_string(bounds->latest) +
                           "); pass a seq this server has sent, or omit since for new events");
  }
  if (after < bounds->oldest - 1) {
    return JsonResponse(410, {{"detail", "The events after " + std::to_string(after) +
                                             " are no longer kept; the oldest available is " +
                                             std::to_string(bounds->oldest)},
                              {"oldest_available", bounds->oldest}});
  }

  auto accept = req.headers.find("accept");
  const bool sse = accept != req.headers.end() &&
                   Lower(accept->second).find("text/event-stream") != std::string::npos;
  EventCursor::Start start;
  start.after_seq = after;
  start.head = bounds->latest;
  if (until_terminal) start.until_terminal = std::make_pair(filter.dag_id, filter.run_id);
  start.run_was_terminal = until_terminal && run_was_terminal;
  ReadEventPage read = [&service, filter](int64_t after_seq, int limit) {
    return service.ReadEvents(after_seq, limit, filter);
  };
  Response response(200, sse ? "text/event-stream" : "application/x-ndjson", "");
  response.live = MakeLiveBody<EventCursor>(
      service, std::min<std::chrono::milliseconds>(options.heartbeat, 1s), options,
      sse ? EventFormat::kSse : EventFormat::kNdjson, std::move(start), std::move(read));
  return response;
}

Response WaitForRun(scheduler::Service& service, const StreamOptions& options,
                    const std::string& dag_id, const std::string& run_id, const Query& query) {
  Errors errors;
  double interval = 1;
  if (auto text = query.First("interval")) {
    auto v = ParseNumber(*text);
    if (!v) {
      errors.Add("float_parsing", {"query", "interval"},
                 "Input should be a valid number, unable to parse string as a number", *text);
    } else if (*v <= 0) {
      errors.Add("greater_than", {"query", "interval"}, "Input should be greater than 0", *text,
                 {{"gt", 0.0}});
    } else if (*v > kMaxWaitInterval) {
      errors.Add("less_than_equal", {"query", "interval"},
                 "Input should be less than or equal to " +
                     std::to_string(static_cast<int>(kMaxWaitInterval)),
                 *text, {{"le", kMaxWaitInterval}});
    } else {
      interval = *v;
    }
  }
  std::vector<std::string> results = query.All("result");
  if (results.size() > kMaxWaitResults) {
    errors.Add("too_long", {"query", "result"},
               "List should have at most " + std::to_string(kMaxWaitResults) +
                   " items after validation, not " + std::to_string(results.size()),
               nullptr, {{"max_length", kMaxWaitResults}});
  }
  std::sort(results.begin(), results.end());
  results.erase(std::unique(results.begin(), results.end()), results.end());
  if (!errors.empty()) return errors.ToResponse();

  // The newest seq first, then the run: a change after that read is an event the waiter reads.
  auto bounds = service.EventLogBounds();
  if (!bounds.ok()) return ErrorResponse(bounds.status());
  auto run = service.GetRun(dag_id, run_id);
  if (!run.ok()) return ErrorResponse(run.status());
  for (const std::string& task_id : results) {
    auto ti = service.GetTaskInstance(dag_id, run_id, task_id);
    if (!ti.ok()) return ErrorResponse(ti.status());
  }

  RunWaiter::Start start;
  start.state = std::string(scheduler::ToString(run->state));
  start.after_seq = bounds->latest;
  start.interval = std::max(std::chrono::milliseconds(1),
                            std::chrono::milliseconds(std::llround(interval * 1000)));
  start.result_task_ids = std::move(results);
  const auto idle =
      std::clamp(start.interval, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
  const scheduler::EventFilter filter{dag_id, run_id, ""};
  ReadEventPage read = [&service, filter](int64_t after_seq, int limit) {
    return service.ReadEvents(after_seq, limit, filter);
  };
  RunWaiter::ReadResult result = [&service, dag_id, run_id](const std::string& task_id) {
    return service.ReturnValue(dag_id, run_id, task_id);
  };
  Response response(200, "application/x-ndjson", "");
  response.live = MakeLiveBody<RunWaiter>(service, idle, std::move(start), options.page_size,
                                          std::move(read), std::move(result));
  return response;
}

}  // namespace dagd::api
