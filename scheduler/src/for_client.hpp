// What a SchedulerService answer may carry from the store (service.hpp promises clients sentences
// of ours): the store's invalid_argument carries PostgreSQL's own words when the database refuses
// a value, except for its sentence about an unknown order_by field. The refusal is logged here,
// where it is handled, and replaced.
#pragma once

#include <string>
#include <string_view>

#include "dagd/scheduler/status.hpp"
#include "logger.hpp"

namespace dagd::scheduler {

inline Status ForClient(Status status, std::string_view request) {
  if (status.code() != StatusCode::kInvalidArgument) return status;
  if (status.message().starts_with("Ordering with '")) return status;
  Log()->warn("database refused a value request=\"{}\" error=\"{}\"", request, status.message());
  return Status::InvalidArgument("The database cannot store or compare a value of this " +
                                 std::string(request) + "; the daemon's log has the details");
}

template <typename T>
StatusOr<T> ForClient(StatusOr<T> result, std::string_view request) {
  if (result.ok()) return result;
  return ForClient(result.status(), request);
}

}  // namespace dagd::scheduler
