// The only translation unit that includes Beast (it is heavy to compile).
#include "dagd/api/http_server.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>  // before Asio: Boost 1.74 Asio under C++20 on GCC 12 needs std::exchange
#include <vector>

namespace dagd::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// How long a connection closed after an error keeps reading (and discarding) what the client
// still sends, so the kernel does not reset the connection before the client reads our answer.
constexpr std::chrono::seconds kLingerTime{2};
// How long Stop waits for in-flight requests before it stops the I/O threads regardless.
constexpr std::chrono::seconds kDrainTime{10};
// After a failed accept (EMFILE, ENFILE, ENOBUFS...) the pending connection stays queued and the
// next accept fails at once again: wait before retrying, doubling while failures continue, so an
// exhausted process does not spin and flood the log. At most one warning per kAcceptLogInterval.
constexpr std::chrono::milliseconds kAcceptRetryMin{50};
constexpr std::chrono::milliseconds kAcceptRetryMax{1000};
constexpr std::chrono::seconds kAcceptLogInterval{1};

std::string Endpoint(const net::ip::address& address, uint16_t port) {
  std::string host = address.to_string();
  if (address.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(port);
}

std::string LowerCase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool IsHttpParseError(const beast::error_code& ec) {
  static const auto& category = http::make_error_code(http::error::bad_method).category();
  return ec.category() == category && ec != http::error::end_of_stream &&
         ec != http::error::partial_message;
}

}  // namespace

class HttpServer::Impl {
 public:
  class Session;

  Impl(ServerOptions options, const Router& router)
      : options_(std::move(options)),
        router_(router),
        logger_(spdlog::get("api") ? spdlog::get("api") : spdlog::default_logger()),
        ioc_(std::max(1, options_.io_threads)),
        acceptor_(net::make_strand(ioc_)),
        accept_retry_timer_(acceptor_.get_executor()),
        handlers_(static_cast<size_t>(std::max(1, options_.handler_threads))) {}

  ~Impl() {
    Stop();
    handlers_.join();
  }

  Status Start();
  void Stop();
  uint16_t port() const { return port_; }

  // --- for sessions ---
  const ServerOptions& options() const { return options_; }
  const Router& router() const { return router_; }
  net::thread_pool& handlers() { return handlers_; }
  spdlog::logger& log() { return *logger_; }
  // False once Stop has begun: the session must close at once.
  bool Register(const std::shared_ptr<Session>& session);
  // Called by every Session's destructor (registered or not): frees its connection slot.
  void Unregister(Session* session);

 private:
  // The accept loop runs on the acceptor's strand (DoAccept, OnAccept, OnAcceptRetry).
  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void OnAcceptError(const beast::error_code& ec);
  size_t MaxConnections() const { return std::max<size_t>(1, options_.max_connections); }

  const ServerOptions options_;
  const Router& router_;
  const std::shared_ptr<spdlog::logger> logger_;

  // Guards sessions_ and stopping_. Declared before ioc_: sessions still queued in ioc_ are
  // destroyed with it and unregister themselves here.
  std::mutex mu_;
  std::condition_variable sessions_changed_;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;
  bool stopping_ = false;
  // Sessions constructed and not yet destroyed (a superset of sessions_: it counts them from
  // accept on). When it reaches options_.max_connections the accept loop pauses
  // (accept_paused_) and the Unregister that frees a slot resumes it.
  size_t open_sessions_ = 0;
  bool accept_paused_ = false;

  net::io_context ioc_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  tcp::acceptor acceptor_;
  // Accept-failure backoff and log rate limit; touched only on the acceptor's strand.
  net::steady_timer accept_retry_timer_;
  std::chrono::milliseconds accept_retry_delay_{0};  // 0: the last accept succeeded
  std::chrono::steady_clock::time_point accept_last_log_{};
  size_t accept_failures_suppressed_ = 0;  // failures not logged since the last warning
  size_t accept_failures_ = 0;             // consecutive failures, reported on recovery
  net::thread_pool handlers_;              // runs Router::Handle, which may block on the database
  std::vector<std::thread> io_threads_;
  uint16_t port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

// One connection. Every member is touched only on the connection's strand, except the
// immutable ones read by the handler thread (server_, keep-alive flag copied into the task).
class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Impl& server) : stream_(std::move(socket)), server_(server) {
    beast::error_code ec;
    auto remote = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = Endpoint(remote.address(), remote.port());
  }
  ~Session() { server_.Unregister(this); }

  void Run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::OnRun, shared_from_this()));
  }

  // Called by Stop (posted to the strand): an idle connection closes now, a busy one after its
  // response.
  void Shutdown() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->closing_ = true;
      if (!self->busy_) self->stream_.close();
    });
  }

 private:
  void OnRun() {
    if (!server_.Register(shared_from_this())) return DoClose();
    DoRead();
  }

  void DoRead() {
    if (closing_) return DoClose();
    parser_.emplace();
    parser_->body_limit(server_.options().body_limit);
    stream_.expires_after(server_.options().read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnReadHeader, shared_from_this()));
  }

  void OnReadHeader(beast::error_code ec, size_t) {
    if (ec) return OnReadError(ec);
    // curl and others wait for "100 Continue" before sending a large body.
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                     parser_->get().version());
      http::async_write(stream_, *cont,
                        [self = shared_from_this(), cont](beast::error_code wec, size_t) {
                          if (wec) return self->DoClose();
                          self->DoReadBody();
                        });
      return;
    }
    DoReadBody();
  }

  void DoReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return WriteError(413, "Request body is larger than the limit of " +
                                 std::to_string(server_.options().body_limit) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return WriteError(431, "Request header fields are too large");
    }
    if (IsHttpParseError(ec)) return WriteError(400, "Malformed HTTP request: " + ec.message());
    // end of stream, timeout, reset, or closed by Shutdown: nothing to answer.
    DoClose();
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec) return OnReadError(ec);
    http::request<http::string_body> msg = parser_->release();
    Request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    for (const auto& field : msg) {
      const auto raw_name = field.name_string();
      std::string name = LowerCase(std::string_view(raw_name.data(), raw_name.size()));
      auto [it, inserted] = req.headers.emplace(name, std::string(field.value()));
      if (!inserted) it->second += ", " + std::string(field.value());
    }
    req.body = std::move(msg.body());
    version_ = msg.version();
    keep_alive_ = msg.keep_alive();
    busy_ = true;
    stream_.expires_never();  // the handler may take long; the write sets its own deadline
    // Router::Handle may block on PostgreSQL: run it on the handler pool, never on I/O threads.
    net::post(server_.handlers(), [self = shared_from_this(), req = std::move(req)] {
      const auto started = std::chrono::steady_clock::now();
      Response res;
      try {
        res = self->server_.router().Handle(req);
      } catch (...) {  // Handle never throws; this is a last guard
        res = Response{500, "application/json", R"({"detail":"Internal error"})"};
      }
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
              .count();
      self->server_.log().debug("request method={} target={} status={} ms={:.2f} remote={}",
                                req.method, req.target, res.status, ms, self->remote_);
      net::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable {
        self->Write(std::move(res), self->keep_alive_, /*linger=*/false);
      });
    });
  }

  // An answer to a request we could not read: sent with Connection: close.
  void WriteError(int status, const std::string& detail) {
    busy_ = true;
    stream_.expires_never();
    server_.log().debug("request rejected status={} detail=\"{}\" remote={}", status, detail,
                        remote_);
    nlohmann::json body = {{"detail", detail}};
    Write(Response{status, "application/json", body.dump()}, /*keep_alive=*/false,
          /*linger=*/true);
  }

  void Write(Response r, bool keep_alive, bool linger) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), version_);
    res->set(http::field::server, "dagd/" DAGD_VERSION);
    res->set(http::field::content_type, r.content_type);
    res->keep_alive(keep_alive && !closing_);
    res->body() = std::move(r.body);
    res->prepare_payload();
    stream_.expires_after(server_.options().read_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, linger](beast::error_code ec, size_t) {
                        self->busy_ = false;
                        if (ec) return self->DoClose();
                        if (linger) return self->DoLinger();
                        if (res->need_eof() || self->closing_) return self->DoClose();
                        self->DoRead();
                      });
  }

  void DoClose() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    // The socket closes when the last handler holding this session is gone.
  }

  // Half-close, then drain what the client still sends until it closes or kLingerTime passes.
  void DoLinger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;
    stream_.expires_after(kLingerTime);
    ReadAndDiscard();
  }

  void ReadAndDiscard() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec || self->closing_) return;
                              self->ReadAndDiscard();
                            });
  }

  beast::tcp_stream stream_;
  Impl& server_;
  std::string remote_ = "?";
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::array<char, 8192> scratch_{};
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool busy_ = false;     // a request is being handled or its response written
  bool closing_ = false;  // Stop has begun: close after the current response
};

bool HttpServer::Impl::Register(const std::shared_ptr<Session>& session) {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  sessions_[session.get()] = session;
  return true;
}

void HttpServer::Impl::Unregister(Session* session) {
  std::lock_guard lock(mu_);
  sessions_.erase(session);
  --open_sessions_;
  if (accept_paused_ && !stopping_ && open_sessions_ < MaxConnections()) {
    accept_paused_ = false;
    // DoAccept checks acceptor_.is_open(), so this is harmless if Stop closed it meanwhile.
    net::post(acceptor_.get_executor(), [this] { DoAccept(); });
  }
  sessions_changed_.notify_all();
}

Status HttpServer::Impl::Start() {
  if (started_ || stopped_)
    return Status::FailedPrecondition("the HTTP server was already started");
  beast::error_code ec;
  const std::string host = options_.address == "localhost" ? "127.0.0.1" : options_.address;
  const auto address = net::ip::make_address(host, ec);
  if (ec) {
    return Status::InvalidArgument("invalid listen address '" + options_.address +
                                   "': expected an IPv4 or IPv6 address");
  }
  const std::string where = Endpoint(address, options_.port);
  if (!address.is_loopback()) {
    return Status::FailedPrecondition(
        "refusing to listen on " + where +
        ": authentication is not implemented yet, so dagd only binds a loopback address "
        "(127.0.0.1 or ::1)");
  }
  const tcp::endpoint endpoint(address, options_.port);
  auto fail = [&](const char* what) {
    beast::error_code ignored;
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
  logger_->info("http server listening address={}", Endpoint(address, port_));
  return Status::Ok();
}

void HttpServer::Impl::DoAccept() {
  if (!acceptor_.is_open()) return;
  acceptor_.async_accept(net::make_strand(ioc_), beast::bind_front_handler(&Impl::OnAccept, this));
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (!acceptor_.is_open()) return;
  if (ec) return OnAcceptError(ec);
  if (accept_failures_ > 0) {
    logger_->info("http accept recovered failures={}", accept_failures_);
    accept_failures_ = 0;
    accept_failures_suppressed_ = 0;
  }
  accept_retry_delay_ = std::chrono::milliseconds{0};
  bool full = false;
  {
    std::lock_guard lock(mu_);
    ++open_sessions_;  // before Run: the session's destructor decrements it
    full = open_sessions_ >= MaxConnections();
    accept_paused_ = full;
  }
  std::make_shared<Session>(std::move(socket), *this)->Run();
  // When full, Unregister resumes accepting once a connection closes; meanwhile new clients
  // wait in the kernel's listen backlog.
  if (!full) DoAccept();
}

void HttpServer::Impl::OnAcceptError(const beast::error_code& ec) {
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
  accept_retry_timer_.async_wait([this](beast::error_code wait_ec) {
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
    beast::error_code ignored;
    acceptor_.close(ignored);
    accept_retry_timer_.cancel();
    closed.set_value();
  });
  closed.get_future().wait();

  // 2. Close idle connections; busy ones close after writing their response.
  std::vector<std::shared_ptr<Session>> live;
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
  logger_->info("http server stopped");
}

HttpServer::HttpServer(ServerOptions options, const Router& router)
    : impl_(std::make_unique<Impl>(std::move(options), router)) {}

HttpServer::~HttpServer() = default;

Status HttpServer::Start() { return impl_->Start(); }
void HttpServer::Stop() { impl_->Stop(); }
uint16_t HttpServer::port() const { return impl_->port(); }

}  // namespace dagd::api
