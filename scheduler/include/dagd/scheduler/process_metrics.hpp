// The standard Prometheus process collector's metrics, read from /proc/self at each scrape:
// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds and process_start_time_seconds (Unix time). Linux only; a
// value that cannot be read is left out of that scrape.
#pragma once

#include <vector>

#include "dagd/scheduler/metrics.hpp"

namespace dagd::scheduler {

// Keep the registrations as long as the process metrics should be served.
std::vector<MetricsRegistry::Registration> RegisterProcessMetrics(MetricsRegistry& registry);

}  // namespace dagd::scheduler
