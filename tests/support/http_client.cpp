#include "http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>

namespace dagd::testing {
namespace {

std::mutex bearer_mu;                            // guards Bearers()
std::map<std::string, std::string>& Bearers() {  // base URL → token
  static std::map<std::string, std::string> bearers;
  return bearers;
}

}  // namespace

std::string DefaultBearer(const std::string& url) {
  std::lock_guard lock(bearer_mu);
  for (const auto& [base, token] : Bearers()) {
    if (url.compare(0, base.size(), base) == 0 &&
        (url.size() == base.size() || url[base.size()] == '/' || url[base.size()] == '?')) {
      return token;
    }
  }
  return "";
}

namespace {

bool HasAuthorization(const std::map<std::string, std::string>& headers) {
  return std::any_of(headers.begin(), headers.end(), [](const auto& header) {
    std::string name = header.first;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return name == "authorization";
  });
}

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

}  // namespace

std::vector<std::string> HeaderLines(const std::string& url,
                                     const std::map<std::string, std::string>& headers) {
  std::vector<std::string> lines;
  for (const auto& [name, value] : headers) lines.push_back(name + ": " + value);
  if (!HasAuthorization(headers)) {
    if (const std::string token = DefaultBearer(url); !token.empty()) {
      lines.push_back("Authorization: Bearer " + token);
    }
  }
  return lines;
}

void SetDefaultBearer(const std::string& base_url, const std::string& token) {
  std::lock_guard lock(bearer_mu);
  if (token.empty()) {
    Bearers().erase(base_url);
  } else {
    Bearers()[base_url] = token;
  }
}

HttpResponse HttpRequest(const std::string& method, const std::string& url, const std::string& body,
                         const std::map<std::string, std::string>& headers,
                         const HttpOptions& options) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  HttpResponse response;
  CURL* curl = curl_easy_init();
  curl_slist* list = nullptr;
  for (const std::string& line : HeaderLines(url, headers)) {
    list = curl_slist_append(list, line.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  if (!options.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options.ca_file.c_str());
  if (!body.empty() || method == "POST" || method == "PATCH" || method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    char* type = nullptr;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    if (type != nullptr) response.content_type = type;
  } else {
    response.error = curl_easy_strerror(rc);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return response;
}

}  // namespace dagd::testing
