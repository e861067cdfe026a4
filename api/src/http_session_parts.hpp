// The parts of an HTTP session that do not depend on its stream: limits, our sentences for bad
// requests, and what a whole, streamed or live response carries while it is written. Private to
// the session's files. The Session template (http_session_template.hpp) is instantiated once for
// plain TCP (http_session_plain.cpp) and once for TLS (http_session_tls.cpp): two files, so that
// the two heavy instantiations compile in parallel.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http_session.hpp"  // also declares boost::asio::ssl::context

namespace dagd::api::http_internal {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

// How long a connection closed after an error keeps reading (and discarding) what the client
// still sends, so the kernel does not reset the connection before the client reads our answer.
inline constexpr std::chrono::seconds kLingerTime{2};
// Bytes read while waiting for a request's first byte, and while lingering: small, because an
// idle connection should cost little.
inline constexpr size_t kScratchSize = 1024;
// The read buffer holds what the parser has not consumed yet: a header (up to header_limit), a
// chunk header with its extensions, or trailer fields. Body bytes move on into the request as
// they are parsed. Beast bounds neither chunk extensions nor trailers, so this bound does: past
// it a request is refused (buffer_overflow) instead of being buffered without end.
inline constexpr size_t kReadBufferSlack = 8 << 10;

inline constexpr std::chrono::milliseconds kMinIdlePoll{10};

struct Rejection {
  int status;
  std::string detail;
};

std::string Endpoint(const tcp::endpoint& endpoint);
// An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; it is recorded as a.b.c.d.
std::string PeerAddress(const net::ip::address& address);
std::string LowerCase(std::string_view s);
// Our sentence for a request Beast could not parse; Beast's own text goes to the log only.
Rejection DescribeParseError(const beast::error_code& ec, const ServerOptions& options);
// A parse error (our 4xx), as opposed to the connection ending.
bool IsParseError(const beast::error_code& ec);
// Framing rules Beast leaves to us (RFC 9112 §3.2, §6.1, §6.3; RFC 9110 §10.1.1). A request
// that breaks them cannot be delimited safely, so it is refused and the connection closed:
// reading on could take its body for a next request.
std::optional<Rejection> CheckFraming(const bhttp::request_header<>& header);
Response ErrorResponse(int status, const std::string& detail);
const char* PhaseName(ConnectionPhase phase);
// Whether the request is served by the fast handler pool (options.fast_paths).
bool IsFast(const Request& req, const ServerOptions& options);

// A whole response being written, and the serializer that writes it piece by piece.
struct WholeResponse {
  bhttp::response<bhttp::string_body> message;
  std::optional<bhttp::response_serializer<bhttp::string_body>> serializer;
};

// How a live body's wake reaches its connection from any thread. It holds the connection weakly
// and posts the delivery, so the source's thread never runs (or destroys) the session, and a
// wake after the connection is gone does nothing. At most one delivery is queued at a time; the
// flag is cleared on the strand before delivering, so a wake that comes later posts again.
struct Waker {
  net::any_io_executor executor;  // the connection's strand
  std::function<void()> deliver;  // OnWake on the session, if it still exists
  std::atomic<bool> queued{false};

  static void Wake(const std::shared_ptr<Waker>& waker) {
    if (waker->queued.exchange(true)) return;
    net::post(waker->executor, [waker] {
      waker->queued = false;
      waker->deliver();
    });
  }
};

// A live body's place under max_live_streams, held for as long as the body is served.
class LiveSlot {
 public:
  explicit LiveSlot(std::atomic<size_t>& count) : count_(count) {}
  ~LiveSlot() { count_.fetch_sub(1); }
  LiveSlot(const LiveSlot&) = delete;
  LiveSlot& operator=(const LiveSlot&) = delete;

 private:
  std::atomic<size_t>& count_;
};

// What a live response carries from the handler thread to the connection's strand.
struct LiveTicket {
  std::unique_ptr<LiveSlot> slot;
  std::shared_ptr<Waker> waker;
};

// A streamed or live response in progress: the serializer writes the header once, then each
// chunk we point the buffer body at.
struct StreamState {
  bhttp::response<bhttp::buffer_body> message;
  std::optional<bhttp::response_serializer<bhttp::buffer_body>> serializer;
  BodySource source;
  std::string chunk;  // the one chunk being written; the connection's whole body buffer
  // Live bodies only.
  std::shared_ptr<LiveBody> live;
  LiveTicket ticket;
  bool parked = false;        // waiting on the park timer or a wake
  bool wake_pending = false;  // woken while polling or writing: poll again instead of parking
};

// The two instantiations of the Session template.
void StartPlainSession(tcp::socket socket, SessionContext& context);
void StartTlsSession(tcp::socket socket, SessionContext& context,
                     std::shared_ptr<boost::asio::ssl::context> tls);

}  // namespace dagd::api::http_internal
