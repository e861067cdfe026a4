// The HTTP/1.1 listener: Boost.Beast sessions in front of a Router (or any Handler).
//
// I/O runs on `io_threads`; the handler (Router::Handle, which may block on PostgreSQL) runs on a
// pool of `handler_threads`, except requests for `fast_paths` (version, health), which have their
// own pool of `fast_handler_threads` so they are never queued behind slow listings. The response
// is written back on the connection's strand, so a slow query never stalls other connections.
//
// Deadlines, all per request: the first byte of a request within `idle_timeout` of the previous
// response (or of connecting); the header within `header_timeout` of its first byte; the body
// within `body_timeout` of the header; each write (a whole response, or one chunk of a streamed
// one) within `write_timeout`. A connection that misses one is closed. A request that waited
// longer than `request_timeout` for a handler thread is answered 503 without being run.
//
// Streamed responses (Response::stream set): `body` then the source's chunks, chunked for
// HTTP/1.1 and close-delimited for HTTP/1.0. The next chunk is pulled (on the handler pool) only
// once the previous one is written, so a client that does not read costs one chunk plus socket
// buffers, and is dropped after `write_timeout` (sooner at the cap, see Connections). A source that
// throws ends the connection without the final chunk, so the client sees a truncated body rather
// than a complete one.
//
// Live responses (Response::live set): `body`, then each piece the LiveBody's poll returns,
// chunked, then the connection closes. Polls run on the handler pool; between them a parked
// stream holds no thread, no deadline and no request timeout, until the source's wake or its
// idle_poll. One piece is in flight per connection, as for streamed responses; a chunk write is
// bounded by `write_timeout` and evictable once stalled as above, a parked stream never is. A
// client that closes or resets the connection (seen at once, a read stays pending) ends the
// stream and the LiveBody is destroyed. At most `max_live_streams` at once: beyond, 503 with a
// sentence (the LiveBody is dropped unarmed). Stop cuts live streams at once, even mid-write (no
// final chunk). The wake given to `arm` only posts to the connection's strand: it never runs or
// destroys the connection on the caller's thread, so a source may call it under its own lock.
//
// HTTPS: with `tls_cert_file` and `tls_key_file` the server speaks only TLS (1.2 and 1.3), for
// every kind of response; the handshake has the `header_timeout` deadline. A plain HTTP request
// on that port gets a plain 400 saying to use https://, and the connection closes. ReloadTls
// re-reads the files for new connections.
//
// Bad framing is answered with our own sentence and the connection closed: 400 for malformed
// HTTP (including versions other than 1.0 and 1.1), a Transfer-Encoding other than exactly
// `chunked`, Content-Length with Transfer-Encoding, a missing or repeated Host in HTTP/1.1, a
// chunk header or trailer over `header_limit` + 8 KiB; 413 body over `body_limit`; 417 an Expect
// other than 100-continue; 431 header over `header_limit`.
//
// Connections: at most `max_connections` are open. Once more than 7/8 of them are open, each new
// connection closes the one idle the longest between keep-alive requests. At the cap, one is
// closed to make room, first found of: the one idle the longest; the write that has made no
// progress the longest, once that is `stalled_write_grace` (a client that stopped reading a
// response); the one that has waited longest for a request to arrive in full (connected and
// silent, or sending slowly: slowloris). Only idle ones may be younger than `min_connection_age`,
// so a client just accepted is never cut. Connections in a handler, pulling a streamed body or
// parked in a live one are never evicted. While none is evictable, accepting pauses and new clients wait in the listen
// backlog, retried every 100 ms. A failed accept (e.g. EMFILE) is retried after a backoff of
// 50 ms doubling to 1 s, and logged at most once per second.
//
// Any address may be bound: the Router authenticates every request but version and health.
// Start: unavailable when the address cannot be bound (message names
// address:port and the OS error), invalid_argument for an unparsable address.
// Stop: stops accepting, closes idle connections, lets in-flight requests (streamed ones too)
// finish for up to 10 s, joins every thread; idempotent, also run by the destructor.
// Start/Stop/port are meant for one owning thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dagd/api/router.hpp"
#include "dagd/scheduler/status.hpp"

namespace dagd::api {

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8080;  // 0: an ephemeral port, see HttpServer::port()
  int io_threads = 1;
  int handler_threads = 4;
  // GET requests whose path (without the query) is one of these run on their own pool.
  std::vector<std::string> fast_paths = {"/api/v2/version", "/api/v2/monitor/health"};
  int fast_handler_threads = 2;
  size_t body_limit = 1 << 20;     // bytes; a larger request body is answered with 413
  size_t header_limit = 16 << 10;  // bytes of request line and header fields; larger: 431
  std::chrono::milliseconds idle_timeout{30'000};    // keep-alive: waiting for the next request
  std::chrono::milliseconds header_timeout{10'000};  // from a request's first byte to its header
  std::chrono::milliseconds body_timeout{30'000};    // from the header to the end of the body
  std::chrono::milliseconds write_timeout{30'000};   // each write: a response or one chunk
  // Longest wait for a handler thread before the request is answered 503 unrun; 0: no limit.
  std::chrono::milliseconds request_timeout{30'000};
  size_t max_connections = 1024;  // open connections; eviction and backlog as described above
  // At the cap, a write without progress for this long is evictable (before write_timeout).
  std::chrono::milliseconds stalled_write_grace{5'000};
  // At the cap, a connection open for less than this is not evicted (idle keep-alive excepted).
  std::chrono::milliseconds min_connection_age{1'000};
  size_t max_live_streams = 256;  // live responses at once; more are answered 503
  // PEM files: both set for HTTPS only, both empty for plain HTTP.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// Whether the server could serve HTTPS with these files: the same checks and messages as Start.
Status CheckTlsFiles(const std::string& cert_file, const std::string& key_file);

class HttpServer {
 public:
  // Turns a request into a response; called on handler threads, concurrently.
  using Handler = std::function<Response(const Request&)>;

  // `router` must outlive the server.
  HttpServer(ServerOptions options, const Router& router);
  // `handler` must be thread-safe and never throw (an exception becomes a 500).
  HttpServer(ServerOptions options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  Status Start();
  void Stop();
  // The bound port (the ephemeral one when options.port was 0); 0 before Start.
  uint16_t port() const;
  // Re-reads options.tls_cert_file and tls_key_file (e.g. a renewed certificate) for the
  // connections accepted from now on; open ones keep theirs. On failure the server keeps the
  // files it had: invalid_argument as for Start, failed_precondition when TLS is not enabled.
  // Thread-safe.
  Status ReloadTls();
  // Live responses being served now. Thread-safe.
  size_t live_streams() const;

 private:
  class Impl;  // Beast stays in api/src: it is heavy to compile
  std::unique_ptr<Impl> impl_;
};

}  // namespace dagd::api
