// The REST API as a pure function: Request → Response, Airflow 3 `/api/v2` paths and shapes
// (API.md). No I/O of its own: every read and write goes through scheduler::Service, so the
// Router is unit-tested with a fake service and served over HTTP by HttpServer.
//
// Status codes: 404 unknown path or object, 405 wrong method, 422 invalid query or body
// (Pydantic's {"detail": [{"type", "loc", "msg", "input"}]}, with `input` summarised when long and
// at most 20 entries), Service errors mapped by code (not_found 404, already_exists/aborted 409,
// invalid_argument/failed_precondition 400, unavailable 503, deadline_exceeded 504, others 500)
// with {"detail": "<sentence>"}; the Service's message is the sentence only for the codes whose
// messages service.hpp says are for the client, otherwise it goes to the "api" log.
//
// Authentication (scheduler/auth.hpp): `POST /auth/token` takes {"username", "password"} as JSON
// or form-encoded and answers 201 {"access_token": "<JWT>"}, or 401 "Invalid username or
// password"; an address with too many failed logins gets 429 (RouterOptions). Every route but
// version and health needs `Authorization: Bearer <JWT or API token>`, checked by
// RouterOptions::authenticator: 401 "Not authenticated" without one, 401 "Invalid or expired
// token" for a bad one (both with `WWW-Authenticate: Bearer`), 403 "<role> role cannot <action>;
// it needs <role>" when the caller's role is below the route's (router.cpp holds the one table of
// routes and their roles). Handlers see the caller in Request::principal.
//
// Hostile requests, checked before anything else:
// - 403 when the Host header, or an Origin header, names a host that is not the daemon's own:
//   localhost, 127.0.0.1, [::1] and RouterOptions::allowed_hosts, any port (defeats DNS
//   rebinding and cross-site requests from browsers). Absent headers are fine (non-browser
//   clients); Origin must be http(s)://<allowed host>[:port].
// - 415 for a POST/PUT/PATCH/DELETE with a body or a Content-Type that is not application/json
//   (parameters allowed; a charset must be UTF-8): browsers send text/plain cross-site without
//   a preflight. /auth/token alone also takes application/x-www-form-urlencoded, as Airflow does.
// - 404 when a decoded path segment holds a NUL byte or is not UTF-8; 422 for such a query
//   value. JSON bodies nesting deeper than kMaxJsonDepth, or not parsable, are 422 with a
//   sentence of ours.
// - `limit` above RouterOptions::max_page_limit is silently reduced to it, as Airflow 3 does
//   with its `maximum_page_limit`.
//
// GET /metrics (outside /api/v2, viewer) serves RouterOptions::metrics as Prometheus text; every
// request is timed into it by route pattern, method and status (src/http_metrics.hpp).
//
// Audit log (audit_log.hpp has the details): every request that reaches a POST, PUT, PATCH or
// DELETE route under /api/v2 (except the batch listings, which only read), whatever its answer
// (401 and 403 included), and every POST /auth/token ("login" or "login_failed", owner = the
// username tried) is recorded after it is answered: the route's Airflow event name, the caller,
// the ids in its path, the status, the peer address and a redacted summary of its body (never
// a password, token or conf value). A failed recording leaves the answer as it is and logs the
// entry. Refusals before routing (unknown path, foreign Host/Origin) are not recorded. The log
// is served by GET /api/v2/eventLogs and /eventLogs/{event_log_id} (viewer).
//
// Logs are streamed (Response::stream) in 64 KiB reads, as text/plain, JSON or NDJSON by Accept,
// with Airflow's continuation tokens; follow=true answers with a LiveBody (api/src/task_logs.hpp).
//
// Thread-safety: Handle is const and may run on many threads at once (the Service is
// thread-safe). It may block on the database: never call it on an I/O thread. It never throws;
// an unexpected exception becomes a 500.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dagd/scheduler/auth.hpp"
#include "dagd/scheduler/metrics.hpp"
#include "dagd/scheduler/service.hpp"

namespace dagd::api {

struct Request {
  Request() = default;
  Request(std::string m, std::string t, std::map<std::string, std::string> h = {},
          std::string b = {})
      : method(std::move(m)), target(std::move(t)), headers(std::move(h)), body(std::move(b)) {}

  std::string method;                          // "GET", "POST", ...
  std::string target;                          // path?query, percent-encoded as received
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  // The authenticated caller: set by the Router before a protected route's handler runs.
  std::optional<scheduler::Principal> principal;
  // The TCP peer's address, without port ("127.0.0.1", "::1"), set by the HTTP session. Headers
  // such as X-Forwarded-For are not trusted: any client can send them.
  std::string remote_address;
};

// A body produced piece by piece as the connection drains, for large or growing content (a log
// file): the server asks for the next chunk only once the previous one is written, so a client
// that reads slowly costs one chunk of memory, not the whole body. nullopt ends the body. It is
// called on a handler thread (never an I/O thread) and may block briefly (a file read).
using BodySource = std::function<std::optional<std::string>()>;

// A body with no end known in advance (an event stream, a run being waited for): the server pulls
// it when the source says there is something new, or every `idle_poll` for heartbeats, and holds
// no thread in between. Sent chunked (close-delimited for HTTP/1.0), then the connection closes.
// One chunk is in flight per connection: poll is not called again until the previous piece is
// written. The server destroys the LiveBody (its last reference) soon after the client goes.
struct LiveBody {
  // Never blocks. The next piece of the body; "" = nothing to send yet (the server parks the
  // connection without holding a thread); std::nullopt = the body ends. Called on a handler
  // thread, never concurrently with itself.
  std::function<std::optional<std::string>()> poll;
  // Called once by the server, before the first poll, with a thread-safe idempotent function
  // that makes the server poll again soon; the source calls it (from any thread) when it has
  // something new. The source must drop it when it is destroyed.
  std::function<void(std::function<void()> wake)> arm;
  // The server also polls after this long without a wake (heartbeats, deadlines).
  std::chrono::milliseconds idle_poll{1000};
};

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
  // Further header fields (e.g. WWW-Authenticate), sent as given.
  std::vector<std::pair<std::string, std::string>> headers;
  // Set instead of `stream`: the pieces that follow `body` as the source produces them.
  std::shared_ptr<LiveBody> live;
};

// The event stream and the wait for a run (GET /api/v2/events, .../dagRuns/{id}/wait).
struct StreamOptions {
  int page_size = 500;  // events read and formatted at a time: a stream's memory
  // A stream that falls further behind the newest event than this (counting the events
  // committed since it connected) gets a final error line and is closed.
  int64_t max_lag = 10000;
  std::chrono::milliseconds heartbeat{15000};  // sent after this long without an event
  // A followed log (logs/{try}?follow=true) is looked at for growth this often.
  std::chrono::milliseconds log_poll{250};
};

// One setting shown by GET /api/v2/config, in Airflow's section and key where one matches.
struct ConfigOption {
  std::string section;
  std::string key;
  std::string value;
};

struct RouterOptions {
  // Host names (without port) accepted in Host and Origin besides the loopback names, e.g. the
  // listen address or a DNS name the daemon is reached by; "*" accepts any host.
  std::vector<std::string> allowed_hosts;
  int max_page_limit = 100;  // Airflow's [api] maximum_page_limit
  StreamOptions streams{};
  // Settings shown by GET /api/v2/config besides the API's own ([api] maximum_page_limit and
  // fallback_page_limit): nothing secret, and no path the API does not show already.
  std::vector<ConfigOption> config = {};
  // Checks credentials; must outlive the Router. Without one, every protected route answers 401
  // and /auth/token 503: a Router never serves without authentication.
  scheduler::Authenticator* authenticator = nullptr;
  // POST /auth/token: after this many failed logins from one address within the window, that
  // address gets 429 with Retry-After (whatever it sends) until the oldest failure leaves it.
  int max_failed_logins = 10;
  std::chrono::seconds failed_login_window{60};
  // Served by GET /metrics (viewer), where the Router also records each request's latency by
  // route pattern, method and status (http_metrics.hpp). Must outlive the Router. None: GET
  // /metrics answers 503 and nothing is recorded.
  scheduler::MetricsRegistry* metrics = nullptr;
};

class HttpMetrics;
class LoginThrottle;

class Router {
 public:
  // `service` must outlive the Router.
  explicit Router(scheduler::Service& service, RouterOptions options = {});
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  Response Handle(const Request& req) const;

 private:
  scheduler::Service& service_;
  RouterOptions options_;
  std::unique_ptr<HttpMetrics> http_metrics_;  // when options_.metrics is set
  std::unique_ptr<LoginThrottle> login_throttle_;
};

}  // namespace dagd::api
