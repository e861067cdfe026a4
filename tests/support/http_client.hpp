// A blocking HTTP/1.1 client for tests (libcurl), loopback only.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace dagd::testing {

struct HttpResponse {
  long status = 0;  // 0 when the request could not be sent
  std::string body;
  std::string content_type;
  std::string error;  // curl's message when status == 0
};

// Requests to URLs that start with `base_url` ("http://127.0.0.1:8080") carry
// `Authorization: Bearer <token>` from now on, unless the caller passes its own Authorization
// header (any case). An empty token forgets the base. DagdProcess::Start calls it with an admin
// token of the daemon it starts. Thread-safe.
void SetDefaultBearer(const std::string& base_url, const std::string& token);
// The default bearer token of requests to `url` ("" when none), for raw requests.
std::string DefaultBearer(const std::string& url);
// The header lines ("Name: value") a request to `url` sends: `headers`, plus the default bearer
// unless they carry an Authorization header of their own. For clients other than HttpRequest.
std::vector<std::string> HeaderLines(const std::string& url,
                                     const std::map<std::string, std::string>& headers);


// Per-request transport settings.
struct HttpOptions {
  // For https:// URLs: the PEM file of the CA (or self-signed certificate) to trust; empty: the
  // system's CAs. The server's name is verified against the URL's host.
  std::string ca_file;
};

// `url` like "http://127.0.0.1:8080/api/v2/dags" (or https://). Headers map name → value.
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
