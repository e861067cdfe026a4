#include "request_guard.hpp"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "request_text.hpp"
#include "responses.hpp"

namespace dagd::api {

namespace {

// The host part of a Host header or an Origin's authority ("name", "name:port", "[v6]:port" or a
// bare "::1"), lower-case and without brackets; nullopt when malformed.
std::optional<std::string> HostName(std::string_view authority) {
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return std::nullopt;
    port = rest.empty() ? rest : rest.substr(1);
  } else if (std::count(authority.begin(), authority.end(), ':') == 1) {
    const size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return Lower(host);
}

bool HostAllowed(std::string_view authority, const RouterOptions& options) {
  const auto host = HostName(authority);
  if (!host) return false;
  if (*host == "localhost" || *host == "127.0.0.1" || *host == "::1") return true;
  for (const std::string& allowed : options.allowed_hosts) {
    if (allowed == "*") return true;
    std::string_view name = allowed;
    if (name.starts_with('[') && name.ends_with(']')) name = name.substr(1, name.size() - 2);
    if (Lower(name) == *host) return true;
  }
  return false;
}

bool IsWrite(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

// application/json, with parameters; a charset, if named, must be UTF-8.
bool IsJsonContentType(std::string_view value) {
  const std::vector<std::string_view> parts = Split(value, ';');
  if (Lower(Trim(parts[0])) != "application/json") return false;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string_view param = Trim(parts[i]);
    const size_t eq = param.find('=');
    if (eq == std::string_view::npos || Lower(Trim(param.substr(0, eq))) != "charset") continue;
    std::string_view charset = Trim(param.substr(eq + 1));
    if (charset.size() >= 2 && charset.front() == '"' && charset.back() == '"') {
      charset = charset.substr(1, charset.size() - 2);
    }
    const std::string name = Lower(charset);
    if (name != "utf-8" && name != "utf8") return false;
  }
  return true;
}

}  // namespace

std::optional<Response> RefuseForeignOrigin(const Request& req, const RouterOptions& options) {
  if (auto it = req.headers.find("host");
      it != req.headers.end() && !HostAllowed(Trim(it->second), options)) {
    return Detail(403,
                  "The Host header does not name this daemon; a name it should accept must be "
                  "added to its allowed hosts");
  }
  if (auto it = req.headers.find("origin"); it != req.headers.end()) {
    const std::string origin = Lower(Trim(it->second));
    std::string_view authority = origin;
    bool well_formed = false;
    for (std::string_view scheme : {"http://", "https://"}) {
      if (authority.starts_with(scheme)) {
        authority.remove_prefix(scheme.size());
        well_formed = true;
        break;
      }
    }
    if (!well_formed || !HostAllowed(authority, options)) {
      return Detail(403,
                    "Requests from web pages of other sites are refused: the Origin header does "
                    "not name this daemon");
    }
  }
  return std::nullopt;
}

bool IsFormContentType(std::string_view value) {
  return Lower(Trim(Split(value, ';')[0])) == "application/x-www-form-urlencoded";
}

std::optional<Response> RefuseNonJsonBody(const Request& req, bool allow_form) {
  if (IsWrite(req.method)) {
    auto it = req.headers.find("content-type");
    if ((!req.body.empty() || it != req.headers.end()) &&
        (it == req.headers.end() ||
         !(IsJsonContentType(it->second) || (allow_form && IsFormContentType(it->second))))) {
      return Detail(415, allow_form ? "Request bodies must be JSON (Content-Type: "
                                      "application/json) or a form (Content-Type: "
                                      "application/x-www-form-urlencoded)"
                                    : "Request bodies must be JSON sent with Content-Type: "
                                      "application/json");
    }
  }
  return std::nullopt;
}

}  // namespace dagd::api
