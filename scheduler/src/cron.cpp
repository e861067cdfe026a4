#include "dagd/scheduler/cron.hpp"

#include <date/date.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <vector>

namespace dagd::scheduler {

namespace {

constexpr std::array<std::string_view, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> kWeekdayNames = {"SUN", "MON", "TUE", "WED",
                                                           "THU", "FRI", "SAT"};
constexpr std::array<std::string_view, 7> kWeekdayEnglish = {
    "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> kMonthEnglish = {
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December"};

struct FieldSpec {
  std::string_view name;
  int min;
  int max;
  const std::string_view* names;  // names[i] is min + i (months) or i (weekdays); or nullptr
  size_t name_count;
};

constexpr FieldSpec kFields[5] = {
    {"minute", 0, 59, nullptr, 0},
    {"hour", 0, 23, nullptr, 0},
    {"day-of-month", 1, 31, nullptr, 0},
    {"month", 1, 12, kMonthNames.data(), kMonthNames.size()},
    {"day-of-week", 0, 7, kWeekdayNames.data(), kWeekdayNames.size()},
};

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t at = text.find(separator, start);
    parts.push_back(text.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool IsDigits(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

// Digits as a number; nullopt for anything else, and for more than 4 digits (out of every
// field's range, and they could overflow an int).
std::optional<int> SmallNumber(std::string_view text) {
  if (!IsDigits(text) || text.size() > 4) return std::nullopt;
  int value = 0;
  for (char c : text) value = value * 10 + (c - '0');
  return value;
}

// One value of a field: a number within range or (months, weekdays) a name.
StatusOr<int> ParseValue(const FieldSpec& field, std::string_view token) {
  auto error = [&](std::string sentence) {
    return Status::InvalidArgument(std::string(field.name) + " field: " + sentence);
  };
  if (token.empty()) return error("a value is missing");
  if (IsDigits(token)) {
    const std::optional<int> value = SmallNumber(token);
    if (!value) return error(std::string(token) + " is out of range");
    if (*value < field.min || *value > field.max) {
      return error(std::string(token) + " is out of range " + std::to_string(field.min) + "-" +
                   std::to_string(field.max));
    }
    return *value;
  }
  if (field.names != nullptr) {
    std::string upper = Upper(token);
    for (size_t i = 0; i < field.name_count; ++i) {
      if (field.names[i] == upper) return static_cast<int>(i) + (field.min == 1 ? 1 : 0);
    }
  }
  std::string shown(token.substr(0, 20));
  if (token == "L" || token == "W" || token == "?" || token.find('#') != std::string_view::npos ||
      (token.size() > 1 && (token.back() == 'L' || token.back() == 'W'))) {
    return error("'" + shown + "' is not supported (L, W, # and ? are not part of dagd's cron)");
  }
  return error("'" + shown + "' is not a " +
               (field.names != nullptr ? "number or a name" : std::string("number")));
}

// A field: a comma-separated list of `*`, values and ranges, each with an optional /step.
StatusOr<std::uint64_t> ParseField(const FieldSpec& field, std::string_view text) {
  auto error = [&](std::string sentence) {
    return Status::InvalidArgument(std::string(field.name) + " field: " + sentence);
  };
  std::uint64_t bits = 0;
  for (std::string_view item : Split(text, ',')) {
    if (item.empty()) return error("an empty list item in '" + std::string(text) + "'");
    int step = 1;
    std::string_view range = item;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      std::string_view step_text = item.substr(slash + 1);
      range = item.substr(0, slash);
      const std::optional<int> parsed = SmallNumber(step_text);
      if (!parsed) {
        return error("step '" + std::string(step_text.substr(0, 20)) + "' is not a number");
      }
      step = *parsed;
      if (step < 1 || step > field.max) {
        return error("step " + std::string(step_text) + " is out of range 1-" +
                     std::to_string(field.max));
      }
    }
    int low = field.min;
    int high = field.max;
    if (range != "*") {
      auto parts = Split(range, '-');
      if (parts.size() > 2)
        return error("'" + std::string(item.substr(0, 20)) + "' is not a range");
      auto first = ParseValue(field, parts[0]);
      if (!first.ok()) return first.status();
      low = *first;
      if (parts.size() == 2) {
        auto second = ParseValue(field, parts[1]);
        if (!second.ok()) return second.status();
        high = *second;
        if (high < low) {
          return error("range " + std::string(range) + " runs backwards");
        }
      } else if (item.find('/') == std::string_view::npos) {
        high = low;
      }  // "5/15": from 5 to the field's end, every 15 (as croniter)
    } else if (field.max == 7) {
      high = 6;  // `*` in day-of-week: 0-6 (7 is Sunday again)
    }
    for (int v = low; v <= high; v += step) bits |= std::uint64_t{1} << v;
  }
  if (field.max == 7 && (bits & (std::uint64_t{1} << 7))) {
    bits = (bits & ~(std::uint64_t{1} << 7)) | 1;  // 7 is Sunday
  }
  return bits;
}

int DaysInMonth(int month) {
  constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};  // February: leap
  return kDays[month - 1];
}

std::string TwoDigits(int v) { return (v < 10 ? "0" : "") + std::to_string(v); }

}  // namespace

class CronParser {
 public:
  static StatusOr<CronExpression> Parse(std::string_view text) {
    if (text.size() > CronExpression::kMaxLength) {
      return Status::InvalidArgument("the cron expression is longer than " +
                                     std::to_string(CronExpression::kMaxLength) + " characters");
    }
    std::vector<std::string_view> fields;
    size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
      size_t start = i;
      while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
      if (i > start) fields.push_back(text.substr(start, i - start));
      if (fields.size() > 5) break;
    }
    if (fields.size() != 5) {
      return Status::InvalidArgument(
          "a cron expression has 5 fields (minute hour day-of-month month day-of-week), got " +
          (fields.size() > 5 ? std::string("more") : std::to_string(fields.size())));
    }
    CronExpression cron;
    std::uint64_t bits[5];
    for (size_t f = 0; f < 5; ++f) {
      auto parsed = ParseField(kFields[f], fields[f]);
      if (!parsed.ok()) return parsed.status();
      bits[f] = *parsed;
      cron.fields_[f] = std::string(fields[f]);
    }
    cron.minutes_ = std::bitset<60>(bits[0]);
    cron.hours_ = std::bitset<24>(bits[1]);
    cron.days_ = std::bitset<32>(bits[2]);
    cron.months_ = std::bitset<13>(bits[3]);
    cron.weekdays_ = std::bitset<7>(bits[4]);
    // A field is unrestricted when it selects every value ("*", "*/1", "1-31"), as croniter.
    cron.days_star_ = cron.days_.count() == 31;
    cron.weekdays_star_ = cron.weekdays_.count() == 7;
    if (!cron.days_star_ && cron.weekdays_star_) {
      bool possible = false;
      for (int m = 1; m <= 12; ++m) {
        for (int d = 1; cron.months_[m] && d <= DaysInMonth(m); ++d) possible |= cron.days_[d];
      }
      if (!possible) {
        return Status::InvalidArgument("day-of-month field: no selected month has day " +
                                       std::string(fields[2]) + ", so it never fires");
      }
    }
    cron.text_ = std::string(text);
    return cron;
  }
};

StatusOr<CronExpression> CronExpression::Parse(std::string_view text) {
  return CronParser::Parse(text);
}

bool CronExpression::DayMatches(int day_of_month, int month, int weekday) const {
  if (!months_[month]) return false;
  if (!days_star_ && !weekdays_star_) return days_[day_of_month] || weekdays_[weekday];
  return days_[day_of_month] && weekdays_[weekday];
}

bool CronExpression::Matches(LocalMinutes local) const {
  date::sys_days day = std::chrono::floor<date::days>(date::sys_time<LocalMinutes>(local));
  date::year_month_day ymd(day);
  auto time = local - LocalMinutes(day.time_since_epoch());
  int hour = static_cast<int>(time.count() / 60);
  int minute = static_cast<int>(time.count() % 60);
  return minutes_[minute] && hours_[hour] &&
         DayMatches(static_cast<int>(static_cast<unsigned>(ymd.day())),
                    static_cast<int>(static_cast<unsigned>(ymd.month())),
                    static_cast<int>(date::weekday(day).c_encoding()));
}

std::optional<LocalMinutes> CronExpression::NextMatch(LocalMinutes from) const {
  using std::chrono::hours;
  using std::chrono::minutes;
  LocalMinutes t = from;
  const LocalMinutes limit = from + kSearchHorizon;
  while (t < limit) {
    date::sys_days day = std::chrono::floor<date::days>(date::sys_time<LocalMinutes>(t));
    LocalMinutes day_start(day.time_since_epoch());
    date::year_month_day ymd(day);
    int month = static_cast<int>(static_cast<unsigned>(ymd.month()));
    if (!months_[month]) {
      auto next_month = date::sys_days(
          (date::year_month(ymd.year(), ymd.month()) + date::months(1)) / date::day(1));
      t = LocalMinutes(next_month.time_since_epoch());
      continue;
    }
    if (!DayMatches(static_cast<int>(static_cast<unsigned>(ymd.day())), month,
                    static_cast<int>(date::weekday(day).c_encoding()))) {
      t = day_start + hours(24);
      continue;
    }
    auto time = t - day_start;
    int hour = static_cast<int>(time.count() / 60);
    if (!hours_[hour]) {
      t = day_start + hours(hour + 1);
      continue;
    }
    int minute = static_cast<int>(time.count() % 60);
    if (!minutes_[minute]) {
      t += minutes(1);
      continue;
    }
    return t;
  }
  return std::nullopt;
}

std::string CronExpression::Describe() const {
  const auto& [minute, hour, dom, month, dow] = fields_;
  std::string out;
  const std::optional<int> single_minute = SmallNumber(minute);
  const std::optional<int> single_hour = SmallNumber(hour);
  if (minute == "*" && hour == "*") {
    out = "Every minute";
  } else if (minute.rfind("*/", 0) == 0 && hour == "*") {
    out = "Every " + minute.substr(2) + " minutes";
  } else if (single_minute && single_hour) {
    out = "At " + TwoDigits(*single_hour) + ":" + TwoDigits(*single_minute);
  } else if (single_minute && hour == "*") {
    out = "At " + minute + " minutes past the hour";
  } else if (single_minute && hour.rfind("*/", 0) == 0) {
    out = "At " + minute + " minutes past the hour, every " + hour.substr(2) + " hours";
  } else {
    out = "At minute " + minute + (hour == "*" ? "" : " past hour " + hour);
  }
  std::string days;
  if (!days_star_) days = "on day " + dom + " of the month";
  if (!weekdays_star_) {
    if (!days.empty()) days += " or ";
    if (weekdays_.count() == 1) {
      for (size_t d = 0; d < 7; ++d) {
        if (weekdays_[d]) days += "only on " + std::string(kWeekdayEnglish[d]);
      }
    } else {
      days += "on day-of-week " + dow;
    }
  }
  if (!days.empty()) out += ", " + days;
  if (months_.count() == 1) {
    for (size_t m = 1; m <= 12; ++m) {
      if (months_[m]) out += ", only in " + std::string(kMonthEnglish[m - 1]);
    }
  } else if (months_.count() != 12) {
    out += ", in months " + month;
  }
  return out;
}

}  // namespace dagd::scheduler
