// Raw HTTP over a loopback TCP socket, for tests that must send what a well-behaved client
// (libcurl) never would: malformed request lines, conflicting framing headers, NUL bytes in the
// target, foreign Host headers.
#pragma once

#include <chrono>
#include <string>

namespace dagd::testing {

struct RawResponse {
  int status = 0;     // 0 when no status line arrived
  std::string head;   // status line and headers
  std::string body;   // everything after the blank line (not de-chunked)
  std::string error;  // why status is 0
};

// Connects to 127.0.0.1:`port`, sends `request` verbatim, half-closes nothing, and reads until the
// server closes the connection or `timeout` passes. Send "Connection: close" for a prompt answer.
RawResponse RawExchange(int port, const std::string& request,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10));

// "Authorization: Bearer <token>\r\n" with the default bearer of the daemon on `port`
// (http_client.hpp), or "" when it has none: for raw requests that must pass authentication.
std::string AuthorizationLine(int port);

}  // namespace dagd::testing
