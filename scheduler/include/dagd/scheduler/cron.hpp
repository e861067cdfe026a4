// Cron expressions: five fields "minute hour day-of-month month day-of-week", as Vixie cron.
//
// Each field takes `*`, numbers, lists (1,5), ranges (10-40), steps (*/5, 10-40/10); months take
// JAN-DEC and weekdays SUN-SAT (any case); 0 and 7 are both Sunday. When both day-of-month and
// day-of-week are restricted, a day matches if either does (as Vixie cron and croniter).
// `L`, `W`, `#` and `?` are refused with a sentence. CronExpression is an immutable value; the
// matching works on local wall-clock minutes and knows nothing of time zones (time_zone.hpp).
#pragma once

#include <bitset>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dagd/scheduler/status.hpp"

namespace dagd::scheduler {

// Wall-clock minutes since 1970-01-01T00:00 in some zone (no offset applied).
using LocalMinutes = std::chrono::minutes;

class CronExpression {
 public:
  // Longer text is refused before it is looked at.
  static constexpr size_t kMaxLength = 256;
  // How far NextMatch looks. Matches more than 9 years apart cannot happen for a valid
  // expression: the rarest one, 29 Feb on a restricted weekday, recurs within 8 years (2096 →
  // 2104 skips 2100).
  static constexpr std::chrono::hours kSearchHorizon{24 * 366 * 9};

  // Errors are sentences naming the field and the token: "minute field: 61 is out of range 0-59".
  static StatusOr<CronExpression> Parse(std::string_view text);

  const std::string& text() const { return text_; }
  bool Matches(LocalMinutes local) const;
  // The first matching wall-clock minute at or after `from`, or nullopt when none within
  // kSearchHorizon.
  std::optional<LocalMinutes> NextMatch(LocalMinutes from) const;
  // A single minute and a single hour: the expression fires at one time of day ("30 2 * * *").
  bool FixedTimeOfDay() const { return minutes_.count() == 1 && hours_.count() == 1; }
  // English, e.g. "At 00:00", "Every 5 minutes", "At 02:30, only on Monday".
  std::string Describe() const;

 private:
  std::string text_;
  std::string fields_[5];  // the fields as written, for Describe
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;        // 1-31
  std::bitset<13> months_;      // 1-12
  std::bitset<7> weekdays_;     // 0 = Sunday
  bool days_star_ = false;      // day-of-month was unrestricted
  bool weekdays_star_ = false;  // day-of-week was unrestricted
  bool DayMatches(int day_of_month, int month, int weekday) const;
  friend class CronParser;
};

}  // namespace dagd::scheduler
