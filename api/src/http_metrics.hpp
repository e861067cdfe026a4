// The API's request metrics: dagd_http_request_duration_seconds{route, method, status}, the time
// Router::Handle took (for a streamed or live body, until its first bytes are ready). `route` is
// the route's pattern (/api/v2/dags/{dag_id}/dagRuns), never the path, so that the number of
// series stays bounded: routes × methods × the statuses the router answers.
//
// Thread-safety: Observe may be called from any thread; a series is created on its first
// observation, then found without allocating.
#pragma once

#include <map>
#include <mutex>
#include <string_view>
#include <tuple>

#include "dagd/scheduler/metrics.hpp"

namespace dagd::api {

class HttpMetrics {
 public:
  // `registry` must outlive this.
  explicit HttpMetrics(scheduler::MetricsRegistry& registry) : registry_(registry) {}

  // `route` must stay valid for the life of the process (a route table's label).
  void Observe(std::string_view route, std::string_view method, int status, double seconds);

 private:
  scheduler::MetricsRegistry& registry_;
  std::mutex mu_;  // guards series_
  // (route text, route size, method index, status) → its histogram
  std::map<std::tuple<const char*, size_t, size_t, int>, scheduler::Histogram*> series_;
};

}  // namespace dagd::api
