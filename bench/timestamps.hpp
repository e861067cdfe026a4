// Microsecond wall-clock time for the benchmark: parsing the API's RFC 3339 timestamps, the
// harness' own clock (the same host clock dagd uses), and percentiles.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace dagd::bench {

// Microseconds since the Unix epoch.
using Micros = int64_t;

// "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)" → microseconds since the epoch; nullopt otherwise.
std::optional<Micros> ParseRfc3339(std::string_view text);

// The system clock now, in microseconds since the epoch.
Micros NowMicros();

// Nearest-rank percentile (p in [0, 1]) of `values`; 0 when empty.
double Percentile(std::vector<double> values, double p);

double Mean(const std::vector<double>& values);

}  // namespace dagd::bench
