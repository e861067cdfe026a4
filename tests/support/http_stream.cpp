#include "http_stream.hpp"

#include "http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>

namespace dagd::testing {

HttpStream::HttpStream(std::string url, std::map<std::string, std::string> headers)
    : thread_([this, url = std::move(url), headers = std::move(headers)]() mutable {
        Run(std::move(url), std::move(headers));
      }) {}

HttpStream::~HttpStream() { Disconnect(); }

void HttpStream::Run(std::string url, std::map<std::string, std::string> headers) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  CURL* curl = curl_easy_init();
  curl_slist* list = nullptr;
  for (const std::string& line : HeaderLines(url, headers)) {
    list = curl_slist_append(list, line.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
  using Callback = size_t (*)(char*, size_t, size_t, void*);
  // The body: appended and announced; a disconnect makes the next call abort the transfer.
  Callback on_body = [](char* data, size_t size, size_t n, void* self) -> size_t {
    auto* s = static_cast<HttpStream*>(self);
    std::lock_guard lock(s->mu_);
    if (s->stop_) return 0;
    s->body_.append(data, size * n);
    s->cv_.notify_all();
    return size * n;
  };
  Callback on_header = [](char* data, size_t size, size_t n, void* self) -> size_t {
    auto* s = static_cast<HttpStream*>(self);
    std::lock_guard lock(s->mu_);
    const std::string line(data, size * n);
    if (line.starts_with("HTTP/")) {
      s->head_.clear();
      s->status_ = std::strtol(line.c_str() + line.find(' ') + 1, nullptr, 10);
    }
    s->head_ += line;
    s->cv_.notify_all();
    return size * n;
  };
  // Called while the transfer idles too, so that a disconnect is noticed without data.
  using Progress = int (*)(void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t);
  Progress on_progress = [](void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
    auto* s = static_cast<HttpStream*>(self);
    std::lock_guard lock(s->mu_);
    return s->stop_ ? 1 : 0;
  };
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, this);
  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  std::lock_guard lock(mu_);
  if (rc != CURLE_OK && !stop_) error_ = curl_easy_strerror(rc);
  ended_ = true;
  cv_.notify_all();
}

std::vector<std::string> HttpStream::WaitLines(size_t n, std::chrono::milliseconds timeout) {
  auto complete = [this] {
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t end; (end = body_.find('\n', start)) != std::string::npos; start = end + 1) {
      lines.push_back(body_.substr(start, end - start));
    }
    return lines;
  };
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return ended_ || complete().size() >= n; });
  return complete();
}

long HttpStream::WaitStatus(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return ended_ || status_ != 0; });
  return status_;
}

bool HttpStream::WaitEnd(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return ended_; });
}

void HttpStream::Disconnect() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

long HttpStream::status() {
  std::lock_guard lock(mu_);
  return status_;
}

std::string HttpStream::content_type() {
  std::lock_guard lock(mu_);
  std::string lower = head_;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const size_t at = lower.find("\ncontent-type:");
  if (at == std::string::npos) return "";
  size_t start = head_.find_first_not_of(' ', at + 14);
  return head_.substr(start, head_.find('\r', start) - start);
}

std::string HttpStream::body() {
  std::lock_guard lock(mu_);
  return body_;
}

std::string HttpStream::error() {
  std::lock_guard lock(mu_);
  return error_;
}

}  // namespace dagd::testing
