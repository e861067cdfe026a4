// Responses shared by the router's files: JSON bodies, {"detail": "<sentence>"}, a Service error
// mapped to its HTTP status and sentence (router.hpp lists the mapping), collections, and the
// "api" logger.
// Safe from any thread.
#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <utility>

#include "dagd/api/codecs.hpp"
#include "dagd/api/router.hpp"
#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/status.hpp"

namespace dagd::api {

// The "api" logger once the daemon has configured it, else spdlog's default logger.
std::shared_ptr<spdlog::logger> Log();

// Compact JSON text; invalid UTF-8 in strings is replaced by U+FFFD rather than thrown on.
std::string Dump(const Json& j);

Response JsonResponse(int status, const Json& body);

// {"detail": message} with `status`.
Response Detail(int status, const std::string& message);

// Service messages are sentences for the client only for the codes service.hpp names; the
// others may quote a library and go to the log.
Response ErrorResponse(const Status& status);

// A collection: {"<name>": [to_json(item), ...], "total_entries": <the listing's total>}, or
// the listing's error.
template <typename T, typename ToJson>
Response ListingResponse(const StatusOr<scheduler::Listing<T>>& listing, const char* name,
                         ToJson to_json) {
  if (!listing.ok()) return ErrorResponse(listing.status());
  Json items = Json::array();
  for (const T& item : listing->items) items.push_back(to_json(item));
  return JsonResponse(200, {{name, std::move(items)}, {"total_entries", listing->total_entries}});
}

}  // namespace dagd::api
