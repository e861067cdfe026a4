// A blocking HTTP/1.1 client for tests (libcurl), loopback only.
#pragma once

#include <map>
#include <string>

namespace dagd::testing {

struct HttpResponse {
  long status = 0;  // 0 when the request could not be sent
  std::string body;
  std::string content_type;
  std::string error;  // curl's message when status == 0
};

// Per-request transport settings.
struct HttpOptions {
  // For https:// URLs: the PEM file of the CA (or self-signed certificate) to trust; empty: the
  // system's CAs. The server's name is verified against the URL's host.
  std::string ca_file;
};

// `base` like "http://127.0.0.1:8080" (or https://). Headers map name → value.
HttpResponse HttpRequest(const std::string& method, const std::string& url,
                         const std::string& body = "",
                         const std::map<std::string, std::string>& headers = {},
                         const HttpOptions& options = {});

inline HttpResponse HttpGet(const std::string& url,
                            const std::map<std::string, std::string>& headers = {},
                            const HttpOptions& options = {}) {
  return HttpRequest("GET", url, "", headers, options);
}
inline HttpResponse HttpPostJson(const std::string& url, const std::string& body) {
  return HttpRequest("POST", url, body, {{"Content-Type", "application/json"}});
}
inline HttpResponse HttpPatchJson(const std::string& url, const std::string& body) {
  return HttpRequest("PATCH", url, body, {{"Content-Type", "application/json"}});
}

}  // namespace dagd::testing
