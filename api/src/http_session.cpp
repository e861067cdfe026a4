// The stream-independent parts of an HTTP session (http_session_parts.hpp), and StartSession,
// which picks the plain or the TLS session.
#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <nlohmann/json.hpp>

#include "http_session_parts.hpp"

namespace dagd::api::http_internal {

std::string Endpoint(const tcp::endpoint& endpoint) {
  std::string host = endpoint.address().to_string();
  if (endpoint.address().is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(endpoint.port());
}

// An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; it is recorded as a.b.c.d.
std::string PeerAddress(const net::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

std::string LowerCase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Our sentence for a request Beast could not parse; Beast's own text goes to the log only.
Rejection DescribeParseError(const beast::error_code& ec, const ServerOptions& options) {
  using E = bhttp::error;
  if (ec == E::body_limit) {
    return {413, "Request body is larger than the limit of " + std::to_string(options.body_limit) +
                     " bytes"};
  }
  if (ec == E::header_limit) {
    return {431, "Request line and header fields are larger than the limit of " +
                     std::to_string(options.header_limit) + " bytes"};
  }
  if (ec == E::bad_method || ec == E::bad_target || ec == E::bad_version) {
    return {400,
            "Malformed HTTP request line: expected 'METHOD /target HTTP/1.1' (HTTP/1.0 and 1.1 "
            "are supported)"};
  }
  if (ec == E::bad_field || ec == E::bad_value || ec == E::bad_line_ending ||
      ec == E::bad_obs_fold) {
    return {400, "Malformed HTTP header field"};
  }
  if (ec == E::bad_content_length) {
    return {400,
            "Invalid Content-Length: it must be one decimal number, and a request must not have "
            "both Content-Length and Transfer-Encoding"};
  }
  if (ec == E::bad_transfer_encoding) {
    return {400,
            "Invalid Transfer-Encoding: only a single 'chunked' coding is supported, and not "
            "together with Content-Length"};
  }
  if (ec == E::bad_chunk || ec == E::bad_chunk_extension) {
    return {400, "Malformed chunked request body"};
  }
  if (ec == E::buffer_overflow) {
    return {400, "A chunk header or trailer of the request body is larger than the limit of " +
                     std::to_string(options.header_limit + kReadBufferSlack) + " bytes"};
  }
  return {400, "Malformed HTTP request"};
}

bool IsParseError(const beast::error_code& ec) {
  static const auto& category = bhttp::make_error_code(bhttp::error::bad_method).category();
  return ec.category() == category && ec != bhttp::error::end_of_stream &&
         ec != bhttp::error::partial_message;
}

// Framing rules Beast leaves to us (RFC 9112 §3.2, §6.1, §6.3; RFC 9110 §10.1.1). A request
// that breaks them cannot be delimited safely, so it is refused and the connection closed:
// reading on could take its body for a next request.
std::optional<Rejection> CheckFraming(const bhttp::request_header<>& header) {
  const auto hosts = header.count(bhttp::field::host);
  if (hosts > 1 || (header.version() >= 11 && hosts == 0)) {
    return Rejection{400, "An HTTP/1.1 request must have exactly one Host header field"};
  }
  const auto codings = header.count(bhttp::field::transfer_encoding);
  if (codings > 0) {
    if (header.version() < 11) {
      return Rejection{400, "Transfer-Encoding is not allowed in an HTTP/1.0 request"};
    }
    if (header.count(bhttp::field::content_length) > 0) {
      return Rejection{400, "A request must not have both Content-Length and Transfer-Encoding"};
    }
    // Beast has trimmed the value's surrounding whitespace.
    if (codings > 1 || !beast::iequals(header[bhttp::field::transfer_encoding], "chunked")) {
      return Rejection{400,
                       "Unsupported Transfer-Encoding: a request body may only use the 'chunked' "
                       "transfer coding, alone"};
    }
  }
  const auto expect = header[bhttp::field::expect];
  if (!expect.empty() && !beast::iequals(expect, "100-continue")) {
    return Rejection{417, "Only 'Expect: 100-continue' is supported"};
  }
  return std::nullopt;
}

Response ErrorResponse(int status, const std::string& detail) {
  return Response{status, "application/json", nlohmann::json{{"detail", detail}}.dump(), {}};
}

const char* PhaseName(ConnectionPhase phase) {
  switch (phase) {
    case ConnectionPhase::kNew:
      return "new";
    case ConnectionPhase::kIdle:
      return "idle";
    case ConnectionPhase::kReading:
      return "reading";
    case ConnectionPhase::kBusy:
      return "busy";
    case ConnectionPhase::kWriting:
      return "writing";
    case ConnectionPhase::kParked:
      return "parked";
  }
  return "?";
}

bool IsFast(const Request& req, const ServerOptions& options) {
  if (req.method != "GET") return false;
  const std::string_view path = std::string_view(req.target).substr(0, req.target.find('?'));
  return std::find(options.fast_paths.begin(), options.fast_paths.end(), path) !=
         options.fast_paths.end();
}

void StartSession(tcp::socket socket, SessionContext& context,
                  std::shared_ptr<boost::asio::ssl::context> tls) {
  if (tls) {
    StartTlsSession(std::move(socket), context, std::move(tls));
  } else {
    StartPlainSession(std::move(socket), context);
  }
}

}  // namespace dagd::api::http_internal
