#include "raw_http.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "http_client.hpp"

namespace dagd::testing {

RawResponse RawExchange(int port, const std::string& request, std::chrono::milliseconds timeout) {
  RawResponse out;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    out.error = std::string("socket: ") + std::strerror(errno);
    return out;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    out.error = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return out;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left_ms = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(0, left.count()));
  };
  // Send everything (the server may answer and close early: stop sending then, keep reading).
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string data;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, left_ms());
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      out.error = "timed out waiting for the server to close the connection";
      break;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // closed (or reset after the answer)
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t end = data.find("\r\n\r\n");
  out.head = data.substr(0, end);
  if (end != std::string::npos) out.body = data.substr(end + 4);
  if (data.starts_with("HTTP/1.") && data.size() >= 12) {
    out.status = std::atoi(data.substr(9, 3).c_str());
  } else if (out.error.empty()) {
    out.error = "no HTTP status line in the answer: " + data.substr(0, 80);
  }
  return out;
}

std::string AuthorizationLine(int port) {
  const std::string token = DefaultBearer("http://127.0.0.1:" + std::to_string(port));
  return token.empty() ? "" : "Authorization: Bearer " + token + "\r\n";
}

}  // namespace dagd::testing
