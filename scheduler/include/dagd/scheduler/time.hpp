// Time points, RFC 3339 text, durations, and the Clock port.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace dagd::scheduler {

using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;
using Duration = std::chrono::microseconds;

// "2026-01-02T03:04:05.123456Z" (microseconds omitted when zero).
std::string FormatRfc3339(TimePoint t);
// Python's isoformat of a UTC time, "+00:00" where RFC 3339 allows "Z"
// ("2026-03-08T06:00:00+00:00"): how Airflow writes run ids and the dates in its sentences.
std::string FormatIsoformat(TimePoint t);
// Accepts "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)" and "YYYY-MM-DD" (midnight UTC).
std::optional<TimePoint> ParseRfc3339(std::string_view text);

// Durations in DAG documents: a number of seconds (30, 1.5) as JSON number, or text "250ms",
// "30s", "10m", "2h", "1d", or "HH:MM:SS". Returns nullopt on anything else or negative values.
std::optional<Duration> ParseDurationText(std::string_view text);

// Time comes through a Clock so tests can control it. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override;
};

}  // namespace dagd::scheduler
