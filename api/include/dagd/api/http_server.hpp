// The HTTP/1.1 listener: Boost.Beast sessions in front of a Router.
//
// I/O runs on `io_threads`; Router::Handle (which may block on PostgreSQL) runs on a separate
// pool of `handler_threads`, and the response is written back on the session's strand, so a
// slow query never stalls other connections. Keep-alive, a per-request read timeout, a body
// limit (413), 400 on unparsable HTTP.
//
// At most `max_connections` connections are open at once: at the limit the server stops
// accepting, so further clients wait in the kernel's listen backlog (their connect succeeds,
// their requests are answered once an open connection closes; idle keep-alive connections close
// after `read_timeout`). This is chosen over accept-and-503 because it needs no file descriptor
// per rejected client, which is the resource usually exhausted. A failed accept (e.g. EMFILE)
// is retried after a backoff of 50 ms doubling to 1 s, and logged at most once per second.
//
// Authentication is not implemented yet, so Start refuses any non-loopback address
// (failed_precondition). Start: unavailable when the address cannot be bound (message names
// address:port and the OS error), invalid_argument for an unparsable address.
// Stop: stops accepting, closes idle connections, lets in-flight requests finish and write their
// response, joins every thread; idempotent, also run by the destructor. Start/Stop/port are meant
// for one owning thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "dagd/api/router.hpp"
#include "dagd/scheduler/status.hpp"

namespace dagd::api {

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8080;  // 0: an ephemeral port, see HttpServer::port()
  int io_threads = 1;
  int handler_threads = 4;
  size_t body_limit = 1 << 20;            // bytes; a larger request body is answered with 413
  std::chrono::seconds read_timeout{30};  // for reading one request (and idle keep-alive)
  size_t max_connections = 1024;  // open connections; at the limit, accepting pauses (see above)
};

class HttpServer {
 public:
  // `router` must outlive the server.
  HttpServer(ServerOptions options, const Router& router);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  Status Start();
  void Stop();
  // The bound port (the ephemeral one when options.port was 0); 0 before Start.
  uint16_t port() const;

 private:
  class Impl;  // Beast stays in http_server.cpp: it is heavy to compile
  std::unique_ptr<Impl> impl_;
};

}  // namespace dagd::api
