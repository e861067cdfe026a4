#include "dagd/scheduler/time.hpp"

#include <date/date.h>

#include <cstdint>
#include <limits>

namespace dagd::scheduler {
namespace {

using std::chrono::duration_cast;
using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::minutes;
using std::chrono::seconds;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `width` digits at `pos`, advancing it.
std::optional<int> Digits(std::string_view text, size_t& pos, size_t width) {
  if (pos + width > text.size()) return std::nullopt;
  int value = 0;
  for (size_t i = 0; i < width; ++i) {
    char c = text[pos + i];
    if (!IsDigit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  pos += width;
  return value;
}

bool Expect(std::string_view text, size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

void AppendPadded(std::string& out, int64_t value, int width) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  if (value < 0) out += '-';
  for (int i = static_cast<int>(digits.size()); i < width; ++i) out += '0';
  out += digits;
}

// The largest duration a DAG may state (about 100 years): keeps every sum far from overflow.
constexpr int64_t kMaxDurationUs = int64_t{100} * 366 * 24 * 3600 * 1'000'000;

// A non-negative decimal number ("30", "1.5") at `pos` scaled by `unit_us`, in microseconds.
// Integer arithmetic, so "0.1h" is exactly 360 s. Fraction digits past the sixth are ignored:
// that keeps numerator * unit_us inside int64 (1e6 * 8.64e10 for days).
std::optional<int64_t> ScaledNumber(std::string_view text, size_t& pos, int64_t unit_us) {
  size_t start = pos;
  int64_t whole = 0;
  while (pos < text.size() && IsDigit(text[pos])) {
    whole = whole * 10 + (text[pos] - '0');
    if (whole > kMaxDurationUs) return std::nullopt;
    ++pos;
  }
  if (pos == start) return std::nullopt;
  if (whole > kMaxDurationUs / unit_us) return std::nullopt;
  int64_t total = whole * unit_us;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t frac_start = pos;
    int64_t numerator = 0;
    int64_t denominator = 1;
    while (pos < text.size() && IsDigit(text[pos])) {
      if (denominator < 1'000'000) {
        numerator = numerator * 10 + (text[pos] - '0');
        denominator *= 10;
      }
      ++pos;
    }
    if (pos == frac_start) return std::nullopt;
    total += numerator * unit_us / denominator;
  }
  if (total > kMaxDurationUs) return std::nullopt;
  return total;
}

}  // namespace

std::string FormatRfc3339(TimePoint t) {
  auto day = date::floor<date::days>(t);
  date::year_month_day ymd{day};
  microseconds in_day = t - day;
  auto h = duration_cast<hours>(in_day);
  auto m = duration_cast<minutes>(in_day - h);
  auto s = duration_cast<seconds>(in_day - h - m);
  int64_t us = (in_day - h - m - s).count();

  std::string out;
  out.reserve(32);
  AppendPadded(out, static_cast<int>(ymd.year()), 4);
  out += '-';
  AppendPadded(out, static_cast<unsigned>(ymd.month()), 2);
  out += '-';
  AppendPadded(out, static_cast<unsigned>(ymd.day()), 2);
  out += 'T';
  AppendPadded(out, h.count(), 2);
  out += ':';
  AppendPadded(out, m.count(), 2);
  out += ':';
  AppendPadded(out, s.count(), 2);
  if (us != 0) {
    out += '.';
    AppendPadded(out, us, 6);
  }
  out += 'Z';
  return out;
}

std::string FormatIsoformat(TimePoint t) {
  std::string text = FormatRfc3339(t);
  text.replace(text.size() - 1, 1, "+00:00");
  return text;
}

std::optional<TimePoint> ParseRfc3339(std::string_view text) {
  size_t pos = 0;
  auto year = Digits(text, pos, 4);
  if (!year || !Expect(text, pos, '-')) return std::nullopt;
  auto month = Digits(text, pos, 2);
  if (!month || !Expect(text, pos, '-')) return std::nullopt;
  auto day = Digits(text, pos, 2);
  if (!day) return std::nullopt;
  date::year_month_day ymd{date::year{*year}, date::month{static_cast<unsigned>(*month)},
                           date::day{static_cast<unsigned>(*day)}};
  if (!ymd.ok()) return std::nullopt;
  TimePoint midnight{date::sys_days{ymd}};
  if (pos == text.size()) return midnight;  // date-only form

  // RFC 3339 §5.6 allows 't' and (by note) a space for 'T'.
  char sep = text[pos++];
  if (sep != 'T' && sep != 't' && sep != ' ') return std::nullopt;
  auto hour = Digits(text, pos, 2);
  if (!hour || !Expect(text, pos, ':')) return std::nullopt;
  auto minute = Digits(text, pos, 2);
  if (!minute || !Expect(text, pos, ':')) return std::nullopt;
  auto second = Digits(text, pos, 2);
  if (!second || *hour > 23 || *minute > 59 || *second > 59) return std::nullopt;

  int64_t micros = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    // Up to 9 digits (nanosecond clients); digits beyond microseconds are truncated.
    int digits = 0;
    while (pos < text.size() && IsDigit(text[pos])) {
      if (digits < 6) micros = micros * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0 || digits > 9) return std::nullopt;
    for (int i = digits; i < 6; ++i) micros *= 10;
  }

  if (pos >= text.size()) return std::nullopt;  // an offset is required with a time
  minutes offset{0};
  char zone = text[pos++];
  if (zone == 'Z' || zone == 'z') {
  } else if (zone == '+' || zone == '-') {
    auto off_h = Digits(text, pos, 2);
    if (!off_h || !Expect(text, pos, ':')) return std::nullopt;
    auto off_m = Digits(text, pos, 2);
    if (!off_m || *off_h > 23 || *off_m > 59) return std::nullopt;
    offset = hours{*off_h} + minutes{*off_m};
    if (zone == '-') offset = -offset;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;

  // Local time minus its offset is UTC.
  return midnight + hours{*hour} + minutes{*minute} + seconds{*second} + microseconds{micros} -
         offset;
}

std::optional<Duration> ParseDurationText(std::string_view text) {
  if (text.empty()) return std::nullopt;
  constexpr int64_t kSecond = 1'000'000;

  // "HH:MM:SS[.frac]": hours unbounded, minutes and seconds 00–59.
  if (text.find(':') != std::string_view::npos) {
    size_t pos = 0;
    auto h = ScaledNumber(text, pos, 3600 * kSecond);
    if (!h || text.substr(0, pos).find('.') != std::string_view::npos) return std::nullopt;
    if (!Expect(text, pos, ':')) return std::nullopt;
    auto m = Digits(text, pos, 2);
    if (!m || *m > 59 || !Expect(text, pos, ':')) return std::nullopt;
    // Seconds: exactly two digits, then an optional fraction.
    if (pos + 2 > text.size() || !IsDigit(text[pos]) || !IsDigit(text[pos + 1])) {
      return std::nullopt;
    }
    if (pos + 2 < text.size() && text[pos + 2] != '.') return std::nullopt;
    auto s = ScaledNumber(text, pos, kSecond);
    if (!s || pos != text.size()) return std::nullopt;
    if (*s >= 60 * kSecond) return std::nullopt;
    int64_t total = *h + *m * 60 * kSecond + *s;
    if (total > kMaxDurationUs) return std::nullopt;
    return Duration{total};
  }

  // One or more <number><unit> parts ("90s", "1h30m"), or one bare number of seconds.
  size_t pos = 0;
  int64_t total = 0;
  bool first = true;
  while (pos < text.size()) {
    size_t number_start = pos;
    while (pos < text.size() && (IsDigit(text[pos]) || text[pos] == '.')) ++pos;
    std::string_view number = text.substr(number_start, pos - number_start);
    size_t unit_start = pos;
    while (pos < text.size() && !IsDigit(text[pos]) && text[pos] != '.') ++pos;
    std::string_view unit = text.substr(unit_start, pos - unit_start);
    int64_t unit_us = 0;
    if (unit.empty()) {
      if (!first) return std::nullopt;  // "1h30" is ambiguous
      unit_us = kSecond;
    } else if (unit == "us") {
      unit_us = 1;
    } else if (unit == "ms") {
      unit_us = 1000;
    } else if (unit == "s") {
      unit_us = kSecond;
    } else if (unit == "m") {
      unit_us = 60 * kSecond;
    } else if (unit == "h") {
      unit_us = 3600 * kSecond;
    } else if (unit == "d") {
      unit_us = 86400 * kSecond;
    } else {
      return std::nullopt;
    }
    size_t npos = 0;
    auto value = ScaledNumber(number, npos, unit_us);
    if (!value || npos != number.size()) return std::nullopt;
    total += *value;
    if (total > kMaxDurationUs) return std::nullopt;
    first = false;
  }
  return Duration{total};
}

TimePoint SystemClock::Now() const {
  return std::chrono::time_point_cast<microseconds>(std::chrono::system_clock::now());
}

}  // namespace dagd::scheduler
