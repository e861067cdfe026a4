// One HTTP connection as the listener sees it, and how to start one. The session itself (Beast
// reading, framing checks, handler dispatch, whole and streamed writes) is the Session template
// (http_session_template.hpp), started by http_session.cpp.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "dagd/api/http_server.hpp"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace dagd::api::http_internal {

enum class ConnectionPhase {
  kNew,      // connected, waiting for the first byte of its first request
  kIdle,     // keep-alive between requests (or draining before a close)
  kReading,  // reading a request's header or body
  kBusy,     // the request is queued or running in a handler, or its body source is pulled
  kWriting,  // writing a response, or a chunk of a streamed one; `since` is its last progress
  kParked,   // a live body has nothing to send: waiting for a wake or its idle_poll, no thread
};

// What the listener may do with an open connection. Thread-safe.
class Connection {
 public:
  struct State {
    ConnectionPhase phase = ConnectionPhase::kNew;
    // When the phase began; while kWriting, when the write last made progress.
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point accepted = since;  // when accepted; never changes
    uint64_t epoch = 0;  // incremented at every phase change and every write progress
  };

  virtual ~Connection() = default;

  State state() const {
    std::lock_guard lock(mu_);
    return state_;
  }
  // Closes the connection if it is still in the state `seen` (same epoch) and not kBusy: the
  // caller saw that state a moment ago and the connection may have moved on since.
  virtual void Evict(const State& seen) = 0;
  // The server is stopping: close now unless busy or writing, else right after the response (a
  // live body is cut after its current piece).
  virtual void Shutdown() = 0;

 protected:
  void SetPhase(ConnectionPhase phase) {
    std::lock_guard lock(mu_);
    state_.phase = phase;
    state_.since = std::chrono::steady_clock::now();
    ++state_.epoch;
  }

 private:
  mutable std::mutex
      mu_;  // guards state_ (written on the connection's strand, read by the listener)
  State state_;
};

// The listener's side of the bookkeeping.
class ConnectionRegistry {
 public:
  virtual ~ConnectionRegistry() = default;
  // False when the server is stopping: the connection must close at once.
  virtual bool Register(const std::shared_ptr<Connection>& connection) = 0;
  // Called from every connection's destructor, registered or not: frees its slot.
  virtual void Unregister(Connection* connection) = 0;
};

// Everything a session uses; all of it outlives every session.
struct SessionContext {
  const ServerOptions& options;
  const HttpServer::Handler& handler;
  boost::asio::thread_pool& handlers;       // general requests and their body sources
  boost::asio::thread_pool& fast_handlers;  // options.fast_paths
  spdlog::logger& log;
  ConnectionRegistry& registry;
  std::atomic<size_t>& live_streams;  // live bodies being served, at most options.max_live_streams
};

// Starts serving `socket` (accepted on its own strand): HTTPS with `tls` when it is set (the
// session keeps the context alive), plain HTTP otherwise. The session registers itself with
// context.registry and unregisters when destroyed.
void StartSession(boost::asio::ip::tcp::socket socket, SessionContext& context,
                  std::shared_ptr<boost::asio::ssl::context> tls);

}  // namespace dagd::api::http_internal
