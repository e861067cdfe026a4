// A streaming GET for tests, as `curl -N` reads: the body as it arrives, on a background thread,
// until the server ends it or the test disconnects. Loopback only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dagd::testing {

class HttpStream {
 public:
  // Starts the request at once. Headers map name → value.
  explicit HttpStream(std::string url, std::map<std::string, std::string> headers = {});
  ~HttpStream();  // Disconnect()
  HttpStream(const HttpStream&) = delete;
  HttpStream& operator=(const HttpStream&) = delete;

  // The complete lines received so far ('\n' removed), once there are at least `n` of them, or
  // the body ended, or `timeout` passed.
  std::vector<std::string> WaitLines(size_t n, std::chrono::milliseconds timeout);
  // The response's status once its header arrived (0 when it did not within `timeout`).
  long WaitStatus(std::chrono::milliseconds timeout);
  // True once the server ended the body (within `timeout`).
  bool WaitEnd(std::chrono::milliseconds timeout);
  // Closes the connection (the server sees the client leave) and joins the thread.
  void Disconnect();

  long status();             // 0 until the response's status line arrived
  std::string content_type();
  std::string body();        // everything received so far
  std::string error();       // curl's message when the transfer failed (not a disconnect)

 private:
  void Run(std::string url, std::map<std::string, std::string> headers);

  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::string body_;
  std::string head_;
  long status_ = 0;
  bool ended_ = false;
  bool stop_ = false;
  std::string error_;
  std::thread thread_;
};

}  // namespace dagd::testing
