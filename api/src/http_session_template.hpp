// The Session class template: one HTTP/1.1 connection over beast::tcp_stream (HTTP) or a
// beast::ssl_stream of one (HTTPS). Reads requests with deadlines, rejects bad framing with our
// own sentences, runs the handler off the I/O threads, writes whole, streamed or live responses.
// Included only by http_session_plain.cpp and http_session_tls.cpp, one instantiation each.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "http_session_parts.hpp"

namespace dagd::api::http_internal {

namespace ssl = net::ssl;

// One connection over `Stream`: beast::tcp_stream (HTTP) or beast::ssl_stream of one (HTTPS).
// Every member is touched only on the connection's strand, except: the state in Connection (own
// mutex); stream_state_->source, which is called on a handler thread while the strand waits for
// it (exactly one pull is outstanding, handed over by net::post); and a live body, which the
// handler thread holds its own reference to while it polls.
template <class Stream>
class Session : public Connection, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  Session(tcp::socket&& socket, SessionContext& context, std::shared_ptr<ssl::context> tls)
      : executor_(socket.get_executor()),
        tls_(std::move(tls)),
        stream_(MakeStream(std::move(socket), tls_.get())),
        park_timer_(executor_),
        context_(context),
        options_(context.options),
        buffer_(options_.header_limit + kReadBufferSlack) {
    beast::error_code ec;
    auto remote = Tcp().socket().remote_endpoint(ec);
    if (!ec) {
      remote_ = Endpoint(remote);
      remote_address_ = PeerAddress(remote.address());
    }
  }
  ~Session() override { context_.registry.Unregister(this); }

  void Run() {
    net::dispatch(executor_, [self = this->shared_from_this()] {
      if (!self->context_.registry.Register(self)) return self->DoClose();
      if constexpr (kTls) {
        self->DoHandshake();
      } else {
        self->DoRead();
      }
    });
  }

  void Evict(const State& seen) override {
    net::post(executor_, [self = this->shared_from_this(), seen] {
      const State now = self->state();
      if (now.epoch != seen.epoch || now.phase == ConnectionPhase::kBusy) return;
      const auto ms = [](Clock::duration d) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
      };
      self->context_.log.debug(
          "http connection evicted to make room phase={} phase_ms={} age_ms={} remote={}",
          PhaseName(now.phase), ms(Clock::now() - now.since), ms(Clock::now() - now.accepted),
          self->remote_);
      self->closing_ = true;
      self->CloseNow();
    });
  }

  void Shutdown() override {
    net::post(executor_, [self = this->shared_from_this()] {
      self->closing_ = true;
      const ConnectionPhase phase = self->state().phase;
      // A live body has no end to wait for: cut it now, even mid-write (a pending poll finds
      // closing_ when it returns).
      const bool live = self->stream_state_ && self->stream_state_->live;
      if (live || (phase != ConnectionPhase::kBusy && phase != ConnectionPhase::kWriting)) {
        self->CloseNow();
      }
    });
  }

 private:
  static Stream MakeStream(tcp::socket&& socket, ssl::context* tls) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *tls);
    } else {
      return Stream(std::move(socket));
    }
  }

  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  // --- TLS ---

  // The handshake has the deadline of a request's header: a client that connects and stalls the
  // handshake costs no more than one that stalls its request.
  void DoHandshake() {
    Tcp().expires_after(options_.header_timeout);
    stream_.async_handshake(
        ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
          if (!ec) return self->DoRead();
          self->context_.log.debug("tls handshake failed error=\"{}\" remote={}", ec.message(),
                                   self->remote_);
          if (ec.category() == net::error::get_ssl_category() &&
              ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_HTTP_REQUEST) {
            return self->RefusePlainHttp();
          }
          self->CloseNow();
        });
  }

  // A plain HTTP request on the HTTPS port: say so in plain HTTP, which the client can read,
  // instead of an unexplained reset.
  void RefusePlainHttp() {
    static const std::string kResponse = [] {
      const std::string body =
          nlohmann::json{{"detail", "This port serves HTTPS only: use an https:// URL"}}.dump();
      return "HTTP/1.1 400 Bad Request\r\nServer: dagd/" DAGD_VERSION
             "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body;
    }();
    Tcp().expires_after(options_.write_timeout);
    net::async_write(Tcp(), net::buffer(kResponse),
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return;
                       // Read on the plain socket: the TLS layer has failed.
                       beast::error_code ignored;
                       self->Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
                     });
  }

  // --- reading ---

  void DoRead() {
    if (closing_) return DoClose();
    parser_.reset();
    if (buffer_.size() > 0) return StartRequest();  // pipelined: its first bytes are here
    buffer_.shrink_to_fit();                        // an idle connection keeps no read buffer
    if (served_) SetPhase(ConnectionPhase::kIdle);
    Tcp().expires_after(options_.idle_timeout);
    stream_.async_read_some(
        net::buffer(scratch_), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
          if (ec) return self->DoClose();  // timeout, EOF, reset, evicted
          self->buffer_.commit(
              net::buffer_copy(self->buffer_.prepare(n), net::buffer(self->scratch_, n)));
          self->StartRequest();
        });
  }

  void StartRequest() {
    SetPhase(ConnectionPhase::kReading);
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(
        std::min<size_t>(options_.header_limit, std::numeric_limits<uint32_t>::max())));
    parser_->body_limit(options_.body_limit);
    Tcp().expires_after(options_.header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, size_t) {
                               self->OnReadHeader(ec);
                             });
  }

  void OnReadHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    const auto& header = parser_->get();
    version_ = header.version();
    if (auto rejection = CheckFraming(header)) {
      return WriteError(rejection->status, rejection->detail);
    }
    Tcp().expires_after(options_.body_timeout);
    // curl and others wait for "100 Continue" before sending a large body.
    if (!header[bhttp::field::expect].empty() && !parser_->is_done()) {
      auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_,
                                                                       header.version());
      bhttp::async_write(stream_, *cont,
                         [self = this->shared_from_this(), cont](beast::error_code wec, size_t) {
                           if (wec) return self->DoClose();
                           self->DoReadBody();
                         });
      return;
    }
    DoReadBody();
  }

  void DoReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->OnReadError(ec);
                        self->OnRequest();
                      });
  }

  void OnReadError(const beast::error_code& ec) {
    if (IsParseError(ec)) {
      context_.log.debug("http request unparsable error=\"{}\" remote={}", ec.message(), remote_);
      const Rejection rejection = DescribeParseError(ec, options_);
      return WriteError(rejection.status, rejection.detail);
    }
    // End of stream, a missed deadline, a reset, or closed by Shutdown/Evict: nothing to answer.
    DoClose();
  }

  // --- handling ---

  void OnRequest() {
    bhttp::request<bhttp::string_body> msg = parser_->release();
    parser_.reset();
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
    req.remote_address = remote_address_;
    keep_alive_ = msg.keep_alive();
    served_ = true;
    SetPhase(ConnectionPhase::kBusy);
    Tcp().expires_never();  // the handler may take long; each write sets its own deadline
    pool_ = IsFast(req, options_) ? &context_.fast_handlers : &context_.handlers;
    // The handler may block on PostgreSQL: run it on a handler pool, never on an I/O thread.
    net::post(*pool_, [self = this->shared_from_this(), req = std::move(req),
                       queued = Clock::now()] { self->Handle(req, queued); });
  }

  // On a handler thread.
  void Handle(const Request& req, Clock::time_point queued) {
    const auto started = Clock::now();
    Response res;
    const auto limit = options_.request_timeout;
    if (limit.count() > 0 && started - queued > limit) {
      res = ErrorResponse(
          503, "The server is too busy: the request waited longer than the request timeout of " +
                   std::to_string(limit.count()) +
                   " ms for a handler and was not run; try again later");
    } else {
      try {
        res = context_.handler(req);
      } catch (...) {  // handlers never throw; this is a last guard
        res = ErrorResponse(500, "Internal error");
      }
    }
    LiveTicket ticket;
    if (res.live) ticket = AdmitLive(res);
    const auto ms = [](Clock::duration d) {
      return std::chrono::duration<double, std::milli>(d).count();
    };
    context_.log.debug(
        "request method={} target={} status={} queued_ms={:.2f} ms={:.2f} streamed={} live={} "
        "remote={}",
        req.method, req.target, res.status, ms(started - queued), ms(Clock::now() - started),
        static_cast<bool>(res.stream), static_cast<bool>(res.live), remote_);
    net::post(executor_, [self = this->shared_from_this(), res = std::move(res),
                          ticket = std::move(ticket)]() mutable {
      if (res.live || res.stream) return self->StartStream(std::move(res), std::move(ticket));
      self->Write(std::move(res), self->keep_alive_, /*linger=*/false);
    });
  }

  // On a handler thread: takes a slot under max_live_streams and arms the body, or replaces the
  // response with a 503 when all slots are taken.
  LiveTicket AdmitLive(Response& res) {
    const size_t cap = std::max<size_t>(1, options_.max_live_streams);
    if (!res.live->poll) {
      context_.log.error("http live body without a poll function remote={}", remote_);
      res = ErrorResponse(500, "Internal error");
      return {};
    }
    if (context_.live_streams.fetch_add(1) >= cap) {
      context_.live_streams.fetch_sub(1);
      context_.log.warn("http live stream refused: at the cap max_live_streams={} remote={}", cap,
                        remote_);
      res =
          ErrorResponse(503, "The server is already serving its maximum of " + std::to_string(cap) +
                                 " live streams; close one or try again later");
      return {};
    }
    LiveTicket ticket;
    ticket.slot = std::make_unique<LiveSlot>(context_.live_streams);
    ticket.waker = std::make_shared<Waker>();
    ticket.waker->executor = executor_;
    ticket.waker->deliver = [weak = this->weak_from_this()] {
      if (auto self = weak.lock()) self->OnWake();
    };
    if (res.live->arm) {
      res.live->arm([waker = std::weak_ptr<Waker>(ticket.waker)] {
        if (auto w = waker.lock()) Waker::Wake(w);
      });
    }
    return ticket;
  }

  // --- writing ---

  // An answer to a request we could not read or will not run: sent with Connection: close.
  void WriteError(int status, const std::string& detail) {
    SetPhase(ConnectionPhase::kBusy);
    context_.log.debug("request rejected status={} detail=\"{}\" remote={}", status, detail,
                       remote_);
    Write(ErrorResponse(status, detail), /*keep_alive=*/false, /*linger=*/true);
  }

  // The status line and the header fields of every response: ours, then the handler's.
  template <class Message>
  void SetHeader(Message& message, const Response& r) {
    message.result(static_cast<bhttp::status>(r.status));
    message.version(version_);
    message.set(bhttp::field::server, "dagd/" DAGD_VERSION);
    message.set(bhttp::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) message.set(name, value);
  }

  void Write(Response r, bool keep_alive, bool linger) {
    auto out = std::make_shared<WholeResponse>();
    auto& res = out->message;
    SetHeader(res, r);
    res.keep_alive(keep_alive && !closing_);
    res.body() = std::move(r.body);
    res.prepare_payload();
    out->serializer.emplace(res);
    Tcp().expires_after(options_.write_timeout);
    WriteSome(*out->serializer,
              [self = this->shared_from_this(), out, linger](beast::error_code ec) {
                if (ec) return self->DoClose();
                if (linger) return self->DoLinger();
                self->AfterResponse(out->message.need_eof());
              });
  }

  // Writes from `serializer` until it is done, or until it wants the next chunk of a streamed
  // body, then calls done. The write runs as a series of partial writes, each renewing the
  // kWriting phase: the listener sees how long a write has made no progress (a client that
  // stopped reading) and may evict it at the cap. The deadline set before (write_timeout) still
  // bounds the whole write. `serializer` must outlive the write.
  template <class Serializer, class Done>
  void WriteSome(Serializer& serializer, Done done) {
    SetPhase(ConnectionPhase::kWriting);
    bhttp::async_write_some(stream_, serializer,
                            [self = this->shared_from_this(), &serializer, done = std::move(done)](
                                beast::error_code ec, size_t) mutable {
                              if (ec == bhttp::error::need_buffer) return done(beast::error_code{});
                              if (ec || serializer.is_done()) return done(ec);
                              self->WriteSome(serializer, std::move(done));
                            });
  }

  void AfterResponse(bool need_eof) {
    if (need_eof || closing_) return DoClose();
    DoRead();
  }

  // Chunked for HTTP/1.1; HTTP/1.0 has no chunked coding, so its body ends with the connection.
  // A live body also ends the connection: the read kept pending to notice a client that goes
  // away cannot be handed over to a next request.
  void StartStream(Response r, LiveTicket ticket) {
    stream_state_.emplace();
    auto& message = stream_state_->message;
    SetHeader(message, r);
    const bool live = r.live != nullptr;
    if (version_ >= 11) {
      message.keep_alive(keep_alive_ && !closing_ && !live);
      message.chunked(true);
    } else {
      message.keep_alive(false);
    }
    if (live) {
      stream_state_->live = std::move(r.live);
      stream_state_->ticket = std::move(ticket);
    } else {
      stream_state_->source = std::move(r.stream);
    }
    stream_state_->chunk = std::move(r.body);
    stream_state_->serializer.emplace(message);
    Tcp().expires_after(options_.write_timeout);
    SetPhase(ConnectionPhase::kWriting);
    bhttp::async_write_header(stream_, *stream_state_->serializer,
                              [self = this->shared_from_this()](beast::error_code ec, size_t) {
                                if (ec) return self->AbortStream("write failed", ec);
                                if (self->stream_state_->live) {
                                  // No write is pending now: this clears the read deadline only.
                                  self->Tcp().expires_never();
                                  self->WatchPeer();
                                }
                                self->WriteChunkOrPull();
                              });
  }

  void WriteChunkOrPull() {
    if (stream_state_->chunk.empty()) return PullNext();
    auto& body = stream_state_->message.body();
    body.data = stream_state_->chunk.data();
    body.size = stream_state_->chunk.size();
    body.more = true;
    Tcp().expires_after(options_.write_timeout);
    WriteSome(*stream_state_->serializer, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return self->AbortStream("write failed", ec);
      self->stream_state_->chunk = std::string();  // free it before the pull
      self->PullNext();
    });
  }

  void PullNext() {
    if (!stream_state_->live) return PullChunk();
    // Stopping, or the client went away while the piece was written.
    if (closing_ || peer_gone_) return AbortStream("live body cut", {});
    PollLive();
  }

  // The source may block briefly (a file read): call it on the request's handler pool.
  void PullChunk() {
    SetPhase(ConnectionPhase::kBusy);  // a slow source is not the client's fault
    net::post(*pool_, [self = this->shared_from_this()] {
      auto pulled =
          self->CallLogged(self->stream_state_->source, "http response body source failed");
      net::post(self->executor_, [self, pulled = std::move(pulled)]() mutable {
        self->OnChunk(std::move(pulled.first), pulled.second);
      });
    });
  }

  // Calls a body source or a live body's poll (on a handler thread). An exception is logged
  // with `what` and reported as failed = true, which cuts the response.
  template <class Fn>
  std::pair<std::optional<std::string>, bool> CallLogged(Fn& fn, const char* what) {
    try {
      return {fn(), false};
    } catch (const std::exception& e) {
      context_.log.error("{} error=\"{}\" remote={}", what, e.what(), remote_);
    } catch (...) {
      context_.log.error("{} remote={}", what, remote_);
    }
    return {std::nullopt, true};
  }

  void OnChunk(std::optional<std::string> next, bool failed) {
    if (failed) return AbortStream("source failed", {});
    if (next) {
      stream_state_->chunk = std::move(*next);
      return WriteChunkOrPull();  // an empty chunk means "nothing yet": ask again
    }
    auto& body = stream_state_->message.body();
    body.data = nullptr;
    body.size = 0;
    body.more = false;
    Tcp().expires_after(options_.write_timeout);
    WriteSome(*stream_state_->serializer, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return self->AbortStream("write failed", ec);
      const bool need_eof = self->stream_state_->message.need_eof();
      const bool live = self->stream_state_->live != nullptr;
      self->stream_state_.reset();
      if (live) return self->EndLive();
      self->AfterResponse(need_eof);
    });
  }

  // --- live bodies ---

  // Polls on the general handler pool. The pool thread holds its own reference to the body, so
  // the strand may drop the stream meanwhile (client gone) without racing the poll.
  void PollLive() {
    StreamState& s = *stream_state_;
    s.parked = false;
    s.wake_pending = false;
    SetPhase(ConnectionPhase::kBusy);
    net::post(*pool_, [self = this->shared_from_this(), live = s.live] {
      auto polled = self->CallLogged(live->poll, "http live body failed");
      net::post(self->executor_, [self, polled = std::move(polled)]() mutable {
        self->OnLivePoll(std::move(polled.first), polled.second);
      });
    });
  }

  void OnLivePoll(std::optional<std::string> next, bool failed) {
    if (!stream_state_ || !stream_state_->live) return;  // already cut
    if (closing_ || peer_gone_) return AbortStream("live body cut", {});
    if (failed || !next || !next->empty()) return OnChunk(std::move(next), failed);
    if (stream_state_->wake_pending) return PollLive();
    Park();
  }

  // Nothing to send: hold no thread until a wake or idle_poll. The connection has no read or
  // write deadline meanwhile; the pending read (WatchPeer) notices a client that goes away.
  void Park() {
    StreamState& s = *stream_state_;
    s.parked = true;
    SetPhase(ConnectionPhase::kParked);
    park_timer_.expires_after(std::max(s.live->idle_poll, kMinIdlePoll));
    park_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return;  // cancelled: woken, or the connection is closing
      self->Unpark();
    });
  }

  void Unpark() {
    // The timer may have fired just as a wake unparked the stream: poll once only.
    if (!stream_state_ || !stream_state_->parked) return;
    PollLive();
  }

  void OnWake() {
    // Before the header is written (armed and woken at once), the first poll comes anyway.
    if (!stream_state_ || !stream_state_->live) return;
    if (!stream_state_->parked) {
      stream_state_->wake_pending = true;  // polling or writing: poll again after that
      return;
    }
    park_timer_.cancel();
    PollLive();
  }

  // A live stream reads on while it writes: what a client sends is discarded (the connection
  // ends with the body), and EOF or a reset closes the connection at once, so a parked body is
  // released as soon as its client goes. No deadline: StartStream cleared the read timer.
  void WatchPeer() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (!ec) return self->WatchPeer();
                              self->OnPeerGone(ec);
                            });
  }

  void OnPeerGone(const beast::error_code& ec) {
    peer_gone_ = true;
    if (stream_state_ && stream_state_->live) {
      context_.log.debug("http live stream client gone error=\"{}\" remote={}", ec.message(),
                         remote_);
    }
    CloseNow();  // fails a pending write; a pending poll finds peer_gone_
  }

  // After a live body's final chunk: half-close and give the client kLingerTime to close its
  // side (the pending read sees it), then close regardless.
  void EndLive() {
    SetPhase(ConnectionPhase::kIdle);
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (peer_gone_) return CloseNow();
    park_timer_.expires_after(kLingerTime);
    park_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec) self->CloseNow();
    });
  }

  // Closes without the final chunk: the client must not mistake a cut body for a whole one.
  void AbortStream(const char* why, const beast::error_code& ec) {
    context_.log.debug("http streamed response aborted reason=\"{}\" error=\"{}\" remote={}", why,
                       ec.message(), remote_);
    CloseNow();
  }

  // --- closing ---

  // Fails every pending operation; the session is destroyed once their handlers have run. A live
  // body goes with it (the park timer holds the session too, so it is cancelled).
  void CloseNow() {
    park_timer_.cancel();
    Tcp().close();
  }

  void DoClose() {
    beast::error_code ec;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
    // The socket closes when the last handler holding this session is gone.
  }

  // Half-close, then drain what the client still sends until it closes or kLingerTime passes.
  void DoLinger() {
    SetPhase(ConnectionPhase::kIdle);
    beast::error_code ec;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;
    Tcp().expires_after(kLingerTime);
    ReadAndDiscard();
  }

  void ReadAndDiscard() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec || self->closing_) return;
                              self->ReadAndDiscard();
                            });
  }

  const net::any_io_executor executor_;      // the connection's strand
  const std::shared_ptr<ssl::context> tls_;  // HTTPS: outlives stream_, which uses it
  Stream stream_;
  net::steady_timer park_timer_;  // a parked live body's idle_poll; the linger after it ends
  SessionContext& context_;
  const ServerOptions& options_;
  std::string remote_ = "?";
  std::string remote_address_;  // the peer's address without port (Request::remote_address)
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::array<char, kScratchSize> scratch_{};
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool served_ = false;     // a request was read: waiting for another is keep-alive idling
  bool closing_ = false;    // Stop or eviction: close after the current response
  bool peer_gone_ = false;  // a live stream's client closed or reset the connection
  net::thread_pool* pool_ = &context_.handlers;  // the pool serving the current request
  std::optional<StreamState> stream_state_;      // while a streamed response is being written
};

}  // namespace dagd::api::http_internal
