// The listener: accepts connections (handing each the current TLS context when HTTPS is on), keeps
// the count under max_connections by evicting idle or stalled ones, owns the handler pools and the
// I/O threads. Sessions are in http_session*.cpp.
#include "dagd/api/http_server.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "http_session.hpp"
#include "tls_context.hpp"

namespace dagd::api {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using http_internal::Connection;
using http_internal::ConnectionPhase;

namespace {

// How long Stop waits for in-flight requests before it stops the I/O threads regardless.
constexpr std::chrono::seconds kDrainTime{10};
// After a failed accept (EMFILE, ENFILE, ENOBUFS...) the pending connection stays queued and the
// next accept fails at once again: wait before retrying, doubling while failures continue, so an
// exhausted process does not spin and flood the log. At most one warning per kAcceptLogInterval.
constexpr std::chrono::milliseconds kAcceptRetryMin{50};
constexpr std::chrono::milliseconds kAcceptRetryMax{1000};
constexpr std::chrono::seconds kAcceptLogInterval{1};
// At the cap, when no connection was evictable (all busy, too young or not stalled long enough),
// or the evicted one turned busy before it could be closed, try again.
constexpr std::chrono::milliseconds kEvictRetry{100};
// Under a connection flood every accept evicts: one warning per interval, with a count.
constexpr std::chrono::seconds kEvictLogInterval{1};

std::string Endpoint(const net::ip::address& address, uint16_t port) {
  std::string host = address.to_string();
  if (address.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(port);
}

}  // namespace

class HttpServer::Impl : public http_internal::ConnectionRegistry {
 public:
  Impl(ServerOptions options, Handler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        logger_(spdlog::get("api") ? spdlog::get("api") : spdlog::default_logger()),
        context_{options_, handler_, handlers_, fast_handlers_, *logger_, *this, live_streams_},
        ioc_(std::max(1, options_.io_threads)),
        acceptor_(net::make_strand(ioc_)),
        accept_retry_timer_(acceptor_.get_executor()),
        evict_retry_timer_(acceptor_.get_executor()),
        handlers_(static_cast<size_t>(std::max(1, options_.handler_threads))),
        fast_handlers_(static_cast<size_t>(std::max(1, options_.fast_handler_threads))) {}

  ~Impl() {
    Stop();
    handlers_.join();
    fast_handlers_.join();
  }

  Status Start();
  void Stop();
  uint16_t port() const { return port_; }
  Status ReloadTls();
  size_t live_streams() const { return live_streams_.load(); }

  bool Register(const std::shared_ptr<Connection>& connection) override;
  void Unregister(Connection* connection) override;

 private:
  // The accept loop runs on the acceptor's strand (DoAccept, OnAccept, MakeRoom, retries).
  void DoAccept();
  void OnAccept(error_code ec, tcp::socket socket);
  void OnAcceptError(const error_code& ec);
  // After an accept: evicts a connection as described in the header, then accepts the next or
  // pauses at the cap.
  void MakeRoom();
  // While paused at the cap, evicts again every kEvictRetry: the last victim may have turned
  // busy before it could be closed, or none was evictable then.
  void ArmEvictRetry();
  void RetryEviction();
  // Asks `victim` to close if still as `seen`; logs at most once per kEvictLogInterval.
  void Evict(Connection& victim, const Connection::State& seen);
  // The connection to close so that a new client can be served, if any (see the header), and
  // the state it was seen in. `full`: at the cap. Requires mu_.
  std::shared_ptr<Connection> Victim(bool full, Connection::State* state);
  // The registered connection whose state satisfies `eligible` and has been in its phase the
  // longest, if any, and the state it was seen in. Requires mu_.
  std::shared_ptr<Connection> Oldest(const std::function<bool(const Connection::State&)>& eligible,
                                     Connection::State* state);
  size_t MaxConnections() const { return std::max<size_t>(1, options_.max_connections); }
  // Above this many open connections, each accept closes the connection idle the longest.
  size_t ReapAbove() const { return MaxConnections() - MaxConnections() / 8; }

  const ServerOptions options_;
  const Handler handler_;
  const std::shared_ptr<spdlog::logger> logger_;

  // Guards sessions_, stopping_, open_sessions_ and accept_paused_. Declared before ioc_:
  // sessions still queued in ioc_ are destroyed with it and unregister themselves here.
  std::mutex mu_;
  std::condition_variable sessions_changed_;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> sessions_;
  bool stopping_ = false;
  // Sessions constructed and not yet destroyed (a superset of sessions_: it counts them from
  // accept on). At options_.max_connections the accept loop pauses (accept_paused_) and the
  // Unregister that frees a slot resumes it.
  size_t open_sessions_ = 0;
  bool accept_paused_ = false;
  // Counted by sessions (SessionContext::live_streams); declared before ioc_ for the same reason.
  std::atomic<size_t> live_streams_{0};
  // Guards tls_: the context new connections get; null for plain HTTP. Sessions hold their own
  // reference, so a reload never affects an open connection.
  mutable std::mutex tls_mu_;
  std::shared_ptr<net::ssl::context> tls_;

  // What sessions use. Declared before ioc_: sessions still queued in ioc_ use it as they are
  // destroyed with it. (It only refers to the pools, which are joined by then.)
  http_internal::SessionContext context_;
  net::io_context ioc_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  tcp::acceptor acceptor_;
  // Accept-failure backoff and log rate limit; touched only on the acceptor's strand.
  net::steady_timer accept_retry_timer_;
  std::chrono::milliseconds accept_retry_delay_{0};  // 0: the last accept succeeded
  std::chrono::steady_clock::time_point accept_last_log_{};
  size_t accept_failures_suppressed_ = 0;  // failures not logged since the last warning
  size_t accept_failures_ = 0;             // consecutive failures, reported on recovery
  // Eviction retries and log rate limit; touched only on the acceptor's strand.
  net::steady_timer evict_retry_timer_;
  std::chrono::steady_clock::time_point evict_last_log_{};
  size_t evictions_unlogged_ = 0;
  net::thread_pool handlers_;       // runs the handler, which may block on the database
  net::thread_pool fast_handlers_;  // the same for options_.fast_paths
  std::vector<std::thread> io_threads_;
  uint16_t port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

bool HttpServer::Impl::Register(const std::shared_ptr<Connection>& connection) {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  sessions_[connection.get()] = connection;
  return true;
}

void HttpServer::Impl::Unregister(Connection* connection) {
  std::lock_guard lock(mu_);
  sessions_.erase(connection);
  --open_sessions_;
  if (accept_paused_ && !stopping_ && open_sessions_ < MaxConnections()) {
    accept_paused_ = false;
    // DoAccept checks acceptor_.is_open(), so this is harmless if Stop closed it meanwhile.
    net::post(acceptor_.get_executor(), [this] { DoAccept(); });
  }
  sessions_changed_.notify_all();
}

std::shared_ptr<Connection> HttpServer::Impl::Oldest(
    const std::function<bool(const Connection::State&)>& eligible, Connection::State* state) {
  std::shared_ptr<Connection> oldest;
  for (auto& [ptr, weak] : sessions_) {
    auto connection = weak.lock();
    if (!connection) continue;
    const Connection::State s = connection->state();
    if (!eligible(s)) continue;
    if (oldest && s.since >= state->since) continue;
    oldest = std::move(connection);
    *state = s;
  }
  return oldest;
}

std::shared_ptr<Connection> HttpServer::Impl::Victim(bool full, Connection::State* state) {
  using Phase = ConnectionPhase;
  // An idle keep-alive connection holds no request: closing it costs its client a reconnect at
  // most, so it goes first, at any age.
  std::shared_ptr<Connection> victim;
  if (full || open_sessions_ > ReapAbove()) {
    victim = Oldest([](const Connection::State& s) { return s.phase == Phase::kIdle; }, state);
  }
  if (victim || !full) return victim;
  // Only at the cap, and never a connection younger than min_connection_age: a client that has
  // just connected had no time to send anything, and evicting the newest connections would
  // turn every accept at the cap into an empty reply for someone.
  const auto now = std::chrono::steady_clock::now();
  const auto min_age = options_.min_connection_age;
  // A write that made no progress for stalled_write_grace: its client stopped reading (e.g. a
  // large log it never reads); the longest stalled goes first.
  const auto grace = options_.stalled_write_grace;
  victim = Oldest(
      [&](const Connection::State& s) {
        return s.phase == Phase::kWriting && now - s.since >= grace && now - s.accepted >= min_age;
      },
      state);
  if (victim) return victim;
  // The one that has waited longest for a request to arrive in full (since connecting, or since
  // the request's first byte): the likeliest to be stalled on purpose (slowloris).
  return Oldest(
      [&](const Connection::State& s) {
        return (s.phase == Phase::kNew || s.phase == Phase::kReading) &&
               now - s.accepted >= min_age;
      },
      state);
}

void HttpServer::Impl::MakeRoom() {
  std::shared_ptr<Connection> victim;
  Connection::State seen;
  bool full = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    full = open_sessions_ >= MaxConnections();
    victim = Victim(full, &seen);
    accept_paused_ = full;
  }
  if (victim) Evict(*victim, seen);
  if (!full) return DoAccept();
  // Unregister resumes accepting once a connection closes; meanwhile new clients wait in the
  // kernel's listen backlog.
  ArmEvictRetry();
}

void HttpServer::Impl::Evict(Connection& victim, const Connection::State& seen) {
  victim.Evict(seen);
  ++evictions_unlogged_;
  const auto now = std::chrono::steady_clock::now();
  if (now - evict_last_log_ >= kEvictLogInterval) {
    logger_->warn("http connections evicted to make room count={} max_connections={}",
                  evictions_unlogged_, MaxConnections());
    evict_last_log_ = now;
    evictions_unlogged_ = 0;
  }
}

void HttpServer::Impl::ArmEvictRetry() {
  evict_retry_timer_.expires_after(kEvictRetry);
  evict_retry_timer_.async_wait([this](error_code ec) {
    if (!ec) RetryEviction();  // else cancelled by Stop
  });
}

void HttpServer::Impl::RetryEviction() {
  std::shared_ptr<Connection> victim;
  Connection::State seen;
  {
    std::lock_guard lock(mu_);
    // Not paused: a slot was freed and Unregister resumed accepting.
    if (!accept_paused_ || stopping_) return;
    victim = Victim(/*full=*/true, &seen);
  }
  if (victim) Evict(*victim, seen);
  ArmEvictRetry();
}

Status HttpServer::Impl::Start() {
  if (started_ || stopped_)
    return Status::FailedPrecondition("the HTTP server was already started");
  error_code ec;
  const std::string host = options_.address == "localhost" ? "127.0.0.1" : options_.address;
  const auto address = net::ip::make_address(host, ec);
  if (ec) {
    return Status::InvalidArgument("invalid listen address '" + options_.address +
                                   "': expected an IPv4 or IPv6 address");
  }
  const std::string where = Endpoint(address, options_.port);
  if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
    return Status::InvalidArgument(
        "HTTPS needs both a certificate file and a key file; only one of them was given");
  }
  if (!options_.tls_cert_file.empty()) {
    auto tls = http_internal::MakeTlsContext(options_.tls_cert_file, options_.tls_key_file);
    if (!tls.ok()) return tls.status();
    std::lock_guard lock(tls_mu_);
    tls_ = std::move(tls).value();
  }
  const tcp::endpoint endpoint(address, options_.port);
  auto fail = [&](const char* what) {
    error_code ignored;
    acceptor_.close(ignored);
    return Status::Unavailable(std::string("cannot ") + what + " " + where + ": " + ec.message());
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return fail("open a socket for");
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("set SO_REUSEADDR on");
  acceptor_.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on");
  port_ = acceptor_.local_endpoint(ec).port();
  started_ = true;

  work_.emplace(ioc_.get_executor());
  DoAccept();
  for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
    io_threads_.emplace_back([this] {
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception& e) {  // a handler threw: log it and keep serving
          logger_->error("http io thread caught exception error=\"{}\"", e.what());
        }
      }
    });
  }
  logger_->info("http server listening address={} scheme={}", Endpoint(address, port_),
                options_.tls_cert_file.empty() ? "http" : "https");
  return Status::Ok();
}

void HttpServer::Impl::DoAccept() {
  if (!acceptor_.is_open()) return;
  acceptor_.async_accept(net::make_strand(ioc_), [this](error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void HttpServer::Impl::OnAccept(error_code ec, tcp::socket socket) {
  if (!acceptor_.is_open()) return;
  if (ec) return OnAcceptError(ec);
  if (accept_failures_ > 0) {
    logger_->info("http accept recovered failures={}", accept_failures_);
    accept_failures_ = 0;
    accept_failures_suppressed_ = 0;
  }
  accept_retry_delay_ = std::chrono::milliseconds{0};
  {
    std::lock_guard lock(mu_);
    ++open_sessions_;  // before the session starts: its destructor decrements it
  }
  std::shared_ptr<net::ssl::context> tls;
  {
    std::lock_guard lock(tls_mu_);
    tls = tls_;
  }
  http_internal::StartSession(std::move(socket), context_, std::move(tls));
  MakeRoom();
}

void HttpServer::Impl::OnAcceptError(const error_code& ec) {
  ++accept_failures_;
  accept_retry_delay_ = accept_retry_delay_.count() == 0
                            ? kAcceptRetryMin
                            : std::min(accept_retry_delay_ * 2, kAcceptRetryMax);
  const auto now = std::chrono::steady_clock::now();
  if (now - accept_last_log_ >= kAcceptLogInterval) {
    logger_->warn("http accept failed error=\"{}\" retry_ms={} suppressed={}", ec.message(),
                  accept_retry_delay_.count(), accept_failures_suppressed_);
    accept_last_log_ = now;
    accept_failures_suppressed_ = 0;
  } else {
    ++accept_failures_suppressed_;
  }
  accept_retry_timer_.expires_after(accept_retry_delay_);
  accept_retry_timer_.async_wait([this](error_code wait_ec) {
    if (wait_ec) return;  // cancelled by Stop
    DoAccept();
  });
}

void HttpServer::Impl::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;

  // 1. Stop accepting (on the acceptor's strand, where accept handlers run).
  std::promise<void> closed;
  net::post(acceptor_.get_executor(), [this, &closed] {
    error_code ignored;
    acceptor_.close(ignored);
    accept_retry_timer_.cancel();
    evict_retry_timer_.cancel();
    closed.set_value();
  });
  closed.get_future().wait();

  // 2. Close idle connections; busy ones close after writing their response.
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [ptr, weak] : sessions_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->Shutdown();
  live.clear();

  // 3. Wait for in-flight requests, then stop the I/O threads and the handler pool.
  {
    std::unique_lock lock(mu_);
    if (!sessions_changed_.wait_for(lock, kDrainTime, [this] { return sessions_.empty(); })) {
      logger_->warn("http server stopping with open connections count={}", sessions_.size());
    }
  }
  work_.reset();
  ioc_.stop();
  for (auto& t : io_threads_) t.join();
  io_threads_.clear();
  handlers_.join();
  fast_handlers_.join();
  logger_->info("http server stopped");
}

Status HttpServer::Impl::ReloadTls() {
  if (options_.tls_cert_file.empty()) {
    return Status::FailedPrecondition("TLS is not enabled: there is no certificate to reload");
  }
  auto tls = http_internal::MakeTlsContext(options_.tls_cert_file, options_.tls_key_file);
  if (!tls.ok()) return tls.status();
  std::lock_guard lock(tls_mu_);
  tls_ = std::move(tls).value();
  return Status::Ok();
}

Status CheckTlsFiles(const std::string& cert_file, const std::string& key_file) {
  auto tls = http_internal::MakeTlsContext(cert_file, key_file);
  return tls.ok() ? Status::Ok() : tls.status();
}

HttpServer::HttpServer(ServerOptions options, const Router& router)
    : HttpServer(std::move(options), [&router](const Request& req) { return router.Handle(req); }) {
}

HttpServer::HttpServer(ServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() = default;

Status HttpServer::Start() { return impl_->Start(); }
void HttpServer::Stop() { impl_->Stop(); }
uint16_t HttpServer::port() const { return impl_->port(); }
Status HttpServer::ReloadTls() { return impl_->ReloadTls(); }
size_t HttpServer::live_streams() const { return impl_->live_streams(); }

}  // namespace dagd::api
