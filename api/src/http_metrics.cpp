#include "http_metrics.hpp"

#include <array>
#include <string>

namespace dagd::api {
namespace {

// Methods other than these share one label value: a client cannot add series by inventing them.
constexpr std::array<std::string_view, 8> kMethods = {"GET",    "HEAD",  "POST",    "PUT",
                                                      "DELETE", "PATCH", "OPTIONS", "other"};

size_t MethodIndex(std::string_view method) {
  for (size_t i = 0; i + 1 < kMethods.size(); ++i) {
    if (kMethods[i] == method) return i;
  }
  return kMethods.size() - 1;
}

}  // namespace

void HttpMetrics::Observe(std::string_view route, std::string_view method, int status,
                          double seconds) {
  const size_t m = MethodIndex(method);
  const auto key = std::make_tuple(route.data(), route.size(), m, status);
  scheduler::Histogram* histogram = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = series_.find(key);
    if (it != series_.end()) histogram = it->second;
  }
  if (histogram == nullptr) {
    scheduler::Histogram& created = registry_.AddHistogram(
        "dagd_http_request_duration_seconds",
        "Time the API took to answer a request, by route pattern, method and status.",
        scheduler::LatencyBuckets(),
        {{"route", std::string(route)},
         {"method", std::string(kMethods[m])},
         {"status", std::to_string(status)}});
    std::lock_guard lock(mu_);
    histogram = series_.emplace(key, &created).first->second;
  }
  histogram->Observe(seconds);
}

}  // namespace dagd::api
