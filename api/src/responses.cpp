#include "responses.hpp"

#include <spdlog/spdlog.h>

namespace dagd::api {

namespace {

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kAborted:
      return 409;
    case StatusCode::kUnavailable:
    case StatusCode::kCancelled:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

}  // namespace

std::shared_ptr<spdlog::logger> Log() {
  auto logger = spdlog::get("api");
  return logger ? logger : spdlog::default_logger();
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Response JsonResponse(int status, const Json& body) {
  return Response{status, "application/json", Dump(body)};
}

Response Detail(int status, const std::string& message) {
  return JsonResponse(status, Json{{"detail", message}});
}

Response ErrorResponse(const Status& status) {
  const int http = HttpStatusFor(status.code());
  switch (status.code()) {
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
      return Detail(http, status.message());
    case StatusCode::kAborted:
      Log()->info("request conflicted error=\"{}\"", status.ToString());
      return Detail(http, "The request conflicted with a concurrent change; retry it");
    case StatusCode::kUnavailable:
    case StatusCode::kCancelled:
      Log()->warn("service unavailable error=\"{}\"", status.ToString());
      return Detail(http, "The database is unavailable; retry later");
    case StatusCode::kDeadlineExceeded:
      Log()->warn("request timed out error=\"{}\"", status.ToString());
      return Detail(http, "The request took too long; retry later");
    default:
      Log()->error("request failed error=\"{}\"", status.ToString());
      return Detail(http, "Internal error; the daemon's log has the details");
  }
}

}  // namespace dagd::api
