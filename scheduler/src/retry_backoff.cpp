// NextRetryAt (decisions.hpp): Airflow's next_retry_datetime, with its deterministic jitter.
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "dagd/scheduler/decisions.hpp"

namespace dagd::scheduler {
namespace {

// Airflow's MAX_RETRY_DELAY: a backoff delay never exceeds one day.
constexpr int64_t kMaxBackoffSeconds = 24 * 60 * 60;

// How Python's str() prints Airflow's logical_date (an aware UTC datetime), which Airflow hashes.
std::string PythonDatetimeText(const std::optional<TimePoint>& t) {
  if (!t) return "None";
  using namespace std::chrono;
  const auto day = floor<days>(*t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{*t - day};
  std::string text =
      fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  hms.hours().count(), hms.minutes().count(), hms.seconds().count());
  if (hms.subseconds().count() != 0) text += fmt::format(".{:06}", hms.subseconds().count());
  return text + "+00:00";
}

// The SHA-1 digest of `text` read as a big-endian number, modulo `m` (1 <= m <= one day).
int64_t Sha1Mod(const std::string& text, int64_t m) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha1(), nullptr);
  int64_t r = 0;
  for (unsigned int i = 0; i < size; ++i) r = (r * 256 + digest[i]) % m;
  return r;
}

}  // namespace

TimePoint NextRetryAt(const TaskSpec& task, const TaskInstance& ti,
                      const std::optional<TimePoint>& logical_date, TimePoint failed_at) {
  if (!task.retry_exponential_backoff) return failed_at + task.retry_delay;
  // Airflow: ceil(retry_delay.total_seconds() * 2 ** (try_number - 1)), at least 1, in floats.
  const double base = static_cast<double>(task.retry_delay.count()) / 1e6 *
                      std::ldexp(1.0, ti.try_number - 1);
  int64_t seconds = kMaxBackoffSeconds;
  if (base < static_cast<double>(kMaxBackoffSeconds)) {  // else b + jitter is past the cap
    const int64_t min_backoff = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(base)));
    const std::string key = fmt::format("{}#{}#{}#{}", ti.dag_id, ti.task_id,
                                        PythonDatetimeText(logical_date), ti.try_number);
    seconds = std::min(min_backoff + Sha1Mod(key, min_backoff), kMaxBackoffSeconds);
  }
  Duration delay = std::chrono::seconds(seconds);
  // Airflow tests max_retry_delay for truth: a zero one caps nothing.
  const auto& cap = task.max_retry_delay;
  if (cap && cap->count() > 0 && *cap < delay) delay = *cap;
  return failed_at + delay;
}

}  // namespace dagd::scheduler
