// The REST API as a pure function: Request → Response, Airflow 3 `/api/v2` paths and shapes
// (API.md). No I/O of its own: every read and write goes through scheduler::Service, so the
// Router is unit-tested with a fake service and served over HTTP by HttpServer.
//
// Status codes: 404 unknown path or object, 405 wrong method, 422 invalid query or body
// (Pydantic's {"detail": [{"type", "loc", "msg", "input"}]}), Service errors mapped by code
// (not_found 404, already_exists/aborted 409, invalid_argument/failed_precondition 400,
// unavailable 503, deadline_exceeded 504, others 500) with {"detail": "<message>"}.
//
// Thread-safety: Handle is const and may run on many threads at once (the Service is
// thread-safe). It may block on the database: never call it on an I/O thread. It never throws;
// an unexpected exception becomes a 500.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "dagd/scheduler/service.hpp"

namespace dagd::api {

struct Request {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // path?query, percent-encoded as received
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// A body produced piece by piece as the connection drains, for large or growing content (a log
// file): the server asks for the next chunk only once the previous one is written, so a client
// that reads slowly costs one chunk of memory, not the whole body. nullopt ends the body. It is
// called on a handler thread (never an I/O thread) and may block briefly (a file read).
using BodySource = std::function<std::optional<std::string>()>;

struct Response {
  Response() = default;
  Response(int status_code, std::string type, std::string text, BodySource source = {})
      : status(status_code),
        content_type(std::move(type)),
        body(std::move(text)),
        stream(std::move(source)) {}

  int status = 200;
  std::string content_type = "application/json";
  std::string body;   // sent first
  BodySource stream;  // when set, the chunks that follow `body` (sent with chunked encoding)
};

class Router {
 public:
  // `service` must outlive the Router.
  explicit Router(scheduler::Service& service);
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  Response Handle(const Request& req) const;

 private:
  scheduler::Service& service_;
};

}  // namespace dagd::api
