#include "dagd/scheduler/process_metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace dagd::scheduler {
namespace {

// The fields of /proc/self/stat after the command name (which may hold spaces and parentheses,
// hence the last ')'): fields[0] is the state, field N of proc(5) is fields[N - 3].
std::optional<std::vector<std::string>> StatFields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string field; rest >> field;) fields.push_back(field);
  if (fields.size() < 22) return std::nullopt;
  return fields;
}

std::optional<double> StatField(int number) {
  auto fields = StatFields();
  if (!fields) return std::nullopt;
  try {
    return std::stod((*fields)[static_cast<size_t>(number - 3)]);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<double> BootTime() {
  std::ifstream in("/proc/stat");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("btime ")) {
      try {
        return std::stod(line.substr(6));
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

std::vector<Sample> One(std::optional<double> value) {
  if (!value) return {};
  return {Sample{{}, *value}};
}

}  // namespace

std::vector<MetricsRegistry::Registration> RegisterProcessMetrics(MetricsRegistry& registry) {
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  std::vector<MetricsRegistry::Registration> out;
  // proc(5): 14 utime, 15 stime, 22 starttime (ticks after boot), 23 vsize, 24 rss (pages).
  out.push_back(registry.AddCallback("process_cpu_seconds_total",
                                     "Total user and system CPU time spent in seconds.",
                                     MetricType::kCounter, [ticks] {
                                       auto user = StatField(14);
                                       auto system = StatField(15);
                                       if (!user || !system) return std::vector<Sample>{};
                                       return One((*user + *system) / ticks);
                                     }));
  out.push_back(registry.AddCallback("process_resident_memory_bytes",
                                     "Resident memory size in bytes.", MetricType::kGauge, [page] {
                                       auto pages = StatField(24);
                                       if (!pages) return std::vector<Sample>{};
                                       return One(*pages * page);
                                     }));
  out.push_back(registry.AddCallback("process_virtual_memory_bytes",
                                     "Virtual memory size in bytes.", MetricType::kGauge,
                                     [] { return One(StatField(23)); }));
  out.push_back(registry.AddCallback(
      "process_open_fds", "Number of open file descriptors.", MetricType::kGauge, [] {
        std::error_code error;
        double count = 0;
        for (std::filesystem::directory_iterator it("/proc/self/fd", error), end;
             !error && it != end; it.increment(error)) {
          ++count;
        }
        if (error) return std::vector<Sample>{};
        return One(count - 1);  // the directory being read is one of them
      }));
  out.push_back(registry.AddCallback("process_max_fds", "Maximum number of open file descriptors.",
                                     MetricType::kGauge, [] {
                                       rlimit limit{};
                                       if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
                                         return std::vector<Sample>{};
                                       return One(static_cast<double>(limit.rlim_cur));
                                     }));
  out.push_back(registry.AddCallback("process_start_time_seconds",
                                     "Start time of the process since unix epoch in seconds.",
                                     MetricType::kGauge, [ticks] {
                                       auto boot = BootTime();
                                       auto start = StatField(22);
                                       if (!boot || !start) return std::vector<Sample>{};
                                       return One(*boot + *start / ticks);
                                     }));
  return out;
}

}  // namespace dagd::scheduler
