// HttpServer: real HTTP/1.1 over loopback (libcurl and raw sockets) in front of a Router.
#include "dagd/api/http_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fake_authenticator.hpp"
#include "http_client.hpp"
#include "self_signed.hpp"
#include "stub_service.hpp"
#include "temp_dir.hpp"

namespace dagd::api {
namespace {

using namespace std::chrono_literals;
using testing::HttpGet;
using testing::HttpPostJson;
using testing::HttpRequest;

// Just enough service for HTTP tests: triggers succeed, Health can be made slow.
class FakeService : public testing::StubService {
 public:
  scheduler::HealthReport Health() override {
    std::this_thread::sleep_for(health_delay);
    return {true, true, std::nullopt};
  }
  StatusOr<scheduler::Listing<scheduler::DagRecord>> ListDags(const scheduler::DagQuery&) override {
    std::this_thread::sleep_for(list_delay);
    return scheduler::Listing<scheduler::DagRecord>{};
  }
  StatusOr<scheduler::DagRun> Trigger(const std::string& dag_id,
                                      const scheduler::TriggerRequest& request) override {
    scheduler::DagRun run;
    run.dag_id = dag_id;
    run.run_id = request.dag_run_id.value_or("manual__x");
    run.conf = request.conf;
    return run;
  }

  std::chrono::milliseconds health_delay{0};
  std::chrono::milliseconds list_delay{0};
};

// A raw TCP client: the tests that need one connection for several requests, or bytes that are
// not valid HTTP.
class RawConnection {
 public:
  // connect_now=false: only the socket is created; call Connect() later (a connect needs no
  // new file descriptor, which the accept-failure test relies on).
  // receive_buffer > 0: SO_RCVBUF before connecting (a small window for clients that never read).
  explicit RawConnection(uint16_t port, bool connect_now = true, int receive_buffer = 0)
      : port_(port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    SetReceiveTimeout(5s);
    if (connect_now) Connect();
  }
  ~RawConnection() { ::close(fd_); }

  bool Connect() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    return connected_;
  }
  void SetReceiveTimeout(std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

  bool connected() const { return connected_; }
  bool Send(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == ssize_t(data.size());
  }
  // Reads one response with a Content-Length or chunked body (or until EOF), returned as
  // received. Empty on timeout or EOF.
  std::string ReadResponse() {
    while (true) {
      size_t header_end = buffer_.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        const std::string header = buffer_.substr(0, header_end);
        size_t total = std::string::npos;
        if (header.find("Transfer-Encoding: chunked") != std::string::npos) {
          size_t end = buffer_.find("\r\n0\r\n\r\n", header_end);
          if (end != std::string::npos) total = end + 7;
        } else {
          size_t length = 0;
          size_t cl = header.find("Content-Length: ");
          if (cl != std::string::npos) length = std::stoul(header.substr(cl + 16));
          total = header_end + 4 + length;
        }
        if (total != std::string::npos && buffer_.size() >= total) {
          std::string out = buffer_.substr(0, total);
          buffer_.erase(0, total);
          return out;
        }
      }
      if (!Receive()) return std::exchange(buffer_, std::string());
    }
  }
  // Reads until what was received (and not yet returned) contains `needle`; false on timeout or
  // EOF. received() then holds it all.
  bool ReadUntil(std::string_view needle) {
    while (buffer_.find(needle) == std::string::npos) {
      if (!Receive()) return false;
    }
    return true;
  }
  const std::string& received() const { return buffer_; }
  void Close() {
    ::close(fd_);
    fd_ = -1;
  }
  // Everything until the server closes the connection (or the receive timeout).
  std::string ReadUntilClose() {
    while (Receive()) {
    }
    return std::exchange(buffer_, std::string());
  }
  // True when the connection is open and nothing has arrived: the server neither answered nor
  // closed it. Does not wait.
  bool OpenAndSilent() {
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  // True when the server closed the connection (recv returns 0) within the socket timeout.
  bool ClosedByPeer() {
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  bool Receive() {
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, size_t(n));
    return true;
  }

  uint16_t port_;
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

// Counts what streamed responses cost: chunks handed out, and sources still alive (a source
// lives as long as the connection that streams it).
struct StreamProbe {
  std::atomic<int> pulled{0};
  std::atomic<int> live{0};
};

// A live body driven by the test (one at a time): Push hands a piece to the next poll and wakes the
// server; a poll with nothing pushed returns "" unless idle_poll has passed since the last piece,
// then a heartbeat "."; End makes the next poll end the body. Counts polls and bodies alive.
class LiveProbe {
 public:
  std::shared_ptr<LiveBody> Body(std::chrono::milliseconds idle_poll,
                                 std::optional<size_t> always_chunk = std::nullopt) {
    struct Alive {
      explicit Alive(LiveProbe& p) : probe(p) { ++probe.alive; }
      ~Alive() {
        std::lock_guard lock(probe.mu_);
        probe.wake_ = nullptr;  // a source drops its wake when it goes
        --probe.alive;
      }
      LiveProbe& probe;
    };
    auto token = std::make_shared<Alive>(*this);
    auto body = std::make_shared<LiveBody>();
    body->idle_poll = idle_poll;
    // Like a source with a backlog, it wakes the server at once when it has something already.
    body->arm = [this, token](std::function<void()> wake) {
      bool backlog = false;
      {
        std::lock_guard lock(mu_);
        wake_ = wake;
        backlog = !pending_.empty();
        ++armed;
      }
      if (backlog) wake();
    };
    body->poll = [this, token, idle_poll, always_chunk,
                  last = std::chrono::steady_clock::now()]() mutable -> std::optional<std::string> {
      ++polls;
      if (always_chunk) return std::string(*always_chunk, 'x');
      std::lock_guard lock(mu_);
      const auto now = std::chrono::steady_clock::now();
      if (!pending_.empty()) {
        std::string piece = std::move(pending_.front());
        pending_.pop_front();
        last = now;
        return piece;
      }
      if (ended_) return std::nullopt;
      if (now - last >= idle_poll * 9 / 10) {
        last = now;
        return ".";
      }
      return "";
    };
    return body;
  }

  void Push(std::string piece) {
    std::function<void()> wake;
    {
      std::lock_guard lock(mu_);
      pending_.push_back(std::move(piece));
      wake = wake_;
    }
    if (wake) wake();
  }
  void End() {
    std::function<void()> wake;
    {
      std::lock_guard lock(mu_);
      ended_ = true;
      wake = wake_;
    }
    if (wake) wake();
  }
  // Calls the wake the server gave, if the body is still alive.
  void Wake() {
    std::function<void()> wake;
    {
      std::lock_guard lock(mu_);
      wake = wake_;
    }
    if (wake) wake();
  }

  std::atomic<int> polls{0};
  std::atomic<int> alive{0};
  std::atomic<int> armed{0};

 private:
  std::mutex mu_;  // guards pending_, ended_, wake_
  std::deque<std::string> pending_;
  bool ended_ = false;
  std::function<void()> wake_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  // Requests for /test/... go to test_handler_ when one is set; everything else to the Router.
  void StartServer(ServerOptions options = {}) {
    options.port = 0;
    if (test_handler_) {
      server_ = std::make_unique<HttpServer>(options, [this](const Request& req) {
        return req.target.rfind("/test/", 0) == 0 ? test_handler_(req) : router_.Handle(req);
      });
    } else {
      server_ = std::make_unique<HttpServer>(options, router_);
    }
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_NE(server_->port(), 0);
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    testing::SetDefaultBearer(base_, "admin-token");
  }
  void TearDown() override { testing::SetDefaultBearer(base_, ""); }
  static RouterOptions Authenticated(scheduler::Authenticator& authenticator) {
    RouterOptions options;
    options.authenticator = &authenticator;
    return options;
  }

  FakeService service_;
  testing::FakeAuthenticator authenticator_;
  Router router_{service_, Authenticated(authenticator_)};
  StreamProbe probe_;  // outlives the server: sources count themselves here
  LiveProbe live_;     // the same for live bodies
  HttpServer::Handler test_handler_;
  std::unique_ptr<HttpServer> server_;
  std::string base_;
};

TEST_F(HttpServerTest, ServesVersionOnAnEphemeralPort) {
  StartServer();
  auto r = HttpGet(base_ + "/api/v2/version");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(nlohmann::json::parse(r.body)["version"], DAGD_VERSION);
}

TEST_F(HttpServerTest, PostsAJsonBodyToTheRouter) {
  StartServer();
  auto r = HttpPostJson(base_ + "/api/v2/dags/etl/dagRuns",
                        R"({"logical_date": null, "dag_run_id": "r1", "conf": {"a": 1}})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["dag_run_id"], "r1");
  EXPECT_EQ(body["conf"]["a"], 1);
}

TEST_F(HttpServerTest, UnknownPathIs404OverHttp) {
  StartServer();
  auto r = HttpGet(base_ + "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(nlohmann::json::parse(r.body)["detail"], "Not Found");
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.Send("GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    std::string response = c.ReadResponse();
    EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << "request " << i << ": " << response;
    EXPECT_NE(response.find("\"version\""), std::string::npos);
  }
}

TEST_F(HttpServerTest, ConnectionCloseIsHonoured) {
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(
      c.Send("GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(c.ReadResponse().rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(HttpServerTest, BodyOverTheLimitIs413) {
  ServerOptions options;
  options.body_limit = 1024;
  StartServer(options);
  auto r = HttpPostJson(base_ + "/api/v2/dags/etl/dagRuns", std::string(4096, ' '));
  ASSERT_EQ(r.status, 413) << r.error;
  EXPECT_NE(nlohmann::json::parse(r.body)["detail"].get<std::string>().find("1024"),
            std::string::npos);
  // The server still serves new connections.
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version").status, 200);
}

TEST_F(HttpServerTest, UnparsableHttpIs400WithOurSentenceNotTheParsersText) {
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("THIS IS NOT HTTP\r\n\r\n"));
  std::string response = c.ReadResponse();
  EXPECT_EQ(response.rfind("HTTP/1.1 400", 0), 0u) << response;
  EXPECT_NE(response.find("Malformed HTTP request line"), std::string::npos) << response;
  EXPECT_EQ(response.find("bad method"), std::string::npos) << response;  // Beast's text
}

TEST_F(HttpServerTest, ANonLoopbackAddressMayBeBoundNowThatRequestsAreAuthenticated) {
  ServerOptions options;
  options.address = "0.0.0.0";
  options.port = 0;
  HttpServer server(options, router_);
  Status s = server.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  const auto refused = HttpGet(base + "/api/v2/dags");
  EXPECT_EQ(refused.status, 401);
  EXPECT_EQ(HttpGet(base + "/api/v2/dags", {{"Authorization", "Bearer viewer-token"}}).status, 200);
}

TEST_F(HttpServerTest, A401CarriesWwwAuthenticate) {
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("GET /api/v2/dags HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
  const std::string response = c.ReadResponse();
  EXPECT_EQ(response.rfind("HTTP/1.1 401", 0), 0u) << response;
  EXPECT_NE(response.find("WWW-Authenticate: Bearer\r\n"), std::string::npos) << response;
}

TEST_F(HttpServerTest, ABusyPortIsUnavailableNamingTheAddress) {
  StartServer();
  ServerOptions options;
  options.port = server_->port();
  HttpServer second(options, router_);
  Status s = second.Start();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("127.0.0.1:" + std::to_string(server_->port())), std::string::npos)
      << s.message();
}

TEST_F(HttpServerTest, StopWithAnIdleKeepAliveConnectionReturnsPromptly) {
  StartServer();
  RawConnection idle(server_->port());
  ASSERT_TRUE(idle.Send("GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  ASSERT_EQ(idle.ReadResponse().rfind("HTTP/1.1 200", 0), 0u);
  RawConnection silent(server_->port());  // connected, never sends anything
  ASSERT_TRUE(silent.connected());
  std::this_thread::sleep_for(50ms);
  const auto started = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  EXPECT_TRUE(idle.ClosedByPeer());
  server_->Stop();  // idempotent
  EXPECT_NE(HttpGet(base_ + "/api/v2/version").status, 200);
}

TEST_F(HttpServerTest, StopLetsAnInFlightRequestFinish) {
  service_.health_delay = 400ms;
  StartServer();
  auto pending =
      std::async(std::launch::async, [&] { return HttpGet(base_ + "/api/v2/monitor/health"); });
  std::this_thread::sleep_for(150ms);  // the request is now inside Router::Handle
  server_->Stop();
  auto r = pending.get();
  EXPECT_EQ(r.status, 200) << r.error;
}

TEST_F(HttpServerTest, ASlowHandlerDoesNotBlockOtherConnections) {
  service_.health_delay = 800ms;
  ServerOptions options;
  options.io_threads = 1;
  options.handler_threads = 2;
  StartServer(options);
  auto slow =
      std::async(std::launch::async, [&] { return HttpGet(base_ + "/api/v2/monitor/health"); });
  std::this_thread::sleep_for(100ms);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version").status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 500ms);
  EXPECT_EQ(slow.get().status, 200);
}

TEST_F(HttpServerTest, AnIdleConnectionIsClosedAfterTheIdleTimeout) {
  ServerOptions options;
  options.idle_timeout = 1s;
  StartServer(options);
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.ClosedByPeer());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

// --- streamed responses ---

// The body of a raw response (everything after the header), with a chunked body decoded.
std::string BodyOf(const std::string& response) {
  const size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos) return "<no header>";
  std::string_view body = std::string_view(response).substr(header_end + 4);
  if (response.substr(0, header_end).find("Transfer-Encoding: chunked") == std::string::npos) {
    return std::string(body);
  }
  std::string out;
  while (true) {
    const size_t eol = body.find("\r\n");
    if (eol == std::string_view::npos) return "<truncated>";
    const size_t size = std::stoul(std::string(body.substr(0, eol)), nullptr, 16);
    body.remove_prefix(eol + 2);
    if (size == 0) return out;
    if (body.size() < size + 2) return "<truncated>";
    out.append(body.substr(0, size));
    body.remove_prefix(size + 2);
  }
}

// A BodySource of `count` chunks of `size` bytes: "aaa...", "bbb...", ...
BodySource ChunkSource(StreamProbe& probe, int count, size_t size,
                       std::chrono::milliseconds delay = 0ms) {
  struct State {
    State(StreamProbe& p, int n) : probe(p), remaining(n) { ++probe.live; }
    ~State() { --probe.live; }
    StreamProbe& probe;
    int remaining;
    int index = 0;
  };
  auto state = std::make_shared<State>(probe, count);
  return [state, size, delay]() -> std::optional<std::string> {
    std::this_thread::sleep_for(delay);
    if (state->remaining == 0) return std::nullopt;
    --state->remaining;
    ++state->probe.pulled;
    return std::string(size, static_cast<char>('a' + state->index++ % 26));
  };
}

size_t ResidentBytes() {
  long pages = 0;
  std::ifstream statm("/proc/self/statm");
  statm >> pages >> pages;  // size, then resident
  return static_cast<size_t>(pages) * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

// The most a TCP send buffer may grow to (tcp_wmem's third field).
size_t MaxTcpSendBuffer() {
  size_t min = 0, initial = 0, max = 4 << 20;
  std::ifstream("/proc/sys/net/ipv4/tcp_wmem") >> min >> initial >> max;
  return max;
}

const std::string kVersionRequest = "GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

TEST_F(HttpServerTest, AStreamedResponseIsItsBodyThenItsChunksInChunkedEncoding) {
  test_handler_ = [this](const Request&) {
    return Response{200, "text/plain", "head-", ChunkSource(probe_, 3, 5)};
  };
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("GET /test/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  const std::string response = c.ReadResponse();
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  EXPECT_NE(response.find("Transfer-Encoding: chunked"), std::string::npos) << response;
  EXPECT_EQ(response.find("Content-Length"), std::string::npos) << response;
  EXPECT_EQ(BodyOf(response), "head-aaaaabbbbbccccc");
  // The connection stays usable after a streamed response.
  ASSERT_TRUE(c.Send(kVersionRequest));
  EXPECT_EQ(c.ReadResponse().rfind("HTTP/1.1 200", 0), 0u);
  // And a real client reads the same body.
  auto r = HttpGet(base_ + "/test/stream");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "head-aaaaabbbbbccccc");
}

TEST_F(HttpServerTest, AStreamedResponseToAnHttp10ClientEndsWithTheConnection) {
  test_handler_ = [this](const Request&) {
    return Response{200, "text/plain", "", ChunkSource(probe_, 2, 4)};
  };
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("GET /test/stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  const std::string response = c.ReadUntilClose();
  EXPECT_EQ(response.rfind("HTTP/1.0 200", 0), 0u) << response;
  EXPECT_EQ(response.find("Transfer-Encoding"), std::string::npos) << response;
  EXPECT_EQ(response.find("Content-Length"), std::string::npos) << response;
  EXPECT_EQ(BodyOf(response), "aaaabbbb");
}

TEST_F(HttpServerTest, ClientsThatNeverReadAStreamedResponseCostAboutAChunkEach) {
  constexpr int kClients = 50;
  constexpr int kChunks = 512;
  constexpr size_t kChunkSize = 64 << 10;  // 32 MiB per response, 1.6 GiB for all of them
  test_handler_ = [this](const Request&) {
    return Response{200, "text/plain", "", ChunkSource(probe_, kChunks, kChunkSize)};
  };
  StartServer();
  [[maybe_unused]] const size_t rss_before = ResidentBytes();
  std::vector<std::unique_ptr<RawConnection>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<RawConnection>(server_->port(), true, 4096));
    ASSERT_TRUE(clients.back()->Send("GET /test/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  }
  // Wait until the server stops pulling: every connection is blocked on a full socket.
  int pulled = -1;
  for (int i = 0; i < 50 && probe_.pulled.load() != pulled; ++i) {
    pulled = probe_.pulled.load();
    std::this_thread::sleep_for(200ms);
  }
  // Per connection: what the kernel buffers (the server's send buffer grows up to tcp_wmem's
  // maximum, the client's receive buffer is 4 KiB) plus the one chunk in flight. A server that
  // buffers would pull all 512 chunks of every response.
  const size_t max_send_buffer = MaxTcpSendBuffer();
  const int per_connection = static_cast<int>((max_send_buffer + (64 << 10)) / kChunkSize) + 2;
  EXPECT_LE(pulled, kClients * per_connection) << "chunks pulled for clients that never read";
  EXPECT_LT(per_connection, kChunks / 4) << "the kernel buffers too much for this test to tell";
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine keeps freed chunks resident
  const size_t rss_growth = ResidentBytes() - std::min(rss_before, ResidentBytes());
  EXPECT_LT(rss_growth, size_t{64} << 20)
      << "resident memory grew by " << (rss_growth >> 20) << " MiB";
#endif
  // Everyone else is still served.
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version").status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
}

TEST_F(HttpServerTest, AClientThatStopsReadingAStreamedResponseIsDroppedAfterTheWriteTimeout) {
  test_handler_ = [this](const Request&) {
    return Response{200, "text/plain", "", ChunkSource(probe_, 4096, 64 << 10)};
  };
  ServerOptions options;
  options.write_timeout = 500ms;
  StartServer(options);
  std::vector<std::unique_ptr<RawConnection>> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(std::make_unique<RawConnection>(server_->port(), true, 4096));
    ASSERT_TRUE(clients.back()->Send("GET /test/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  }
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (probe_.pulled.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GT(probe_.pulled.load(), 0);
  // The server gives up on each connection, and with it its source.
  deadline = std::chrono::steady_clock::now() + 4s;
  while (probe_.live.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(probe_.live.load(), 0) << "connections still streaming to clients that do not read";
}

TEST_F(HttpServerTest, ASlowBodySourceRunsOffTheIoThreadAndDoesNotStallOtherConnections) {
  test_handler_ = [this](const Request&) {
    return Response{200, "text/plain", "", ChunkSource(probe_, 2, 3, 700ms)};
  };
  ServerOptions options;
  options.io_threads = 1;
  StartServer(options);
  auto slow = std::async(std::launch::async, [&] { return HttpGet(base_ + "/test/stream"); });
  std::this_thread::sleep_for(150ms);  // the source is now sleeping
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version").status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 500ms);
  const auto r = slow.get();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "aaabbb");
}

TEST_F(HttpServerTest, ABodySourceThatThrowsCutsTheResponseWithoutTheFinalChunk) {
  test_handler_ = [](const Request&) {
    auto calls = std::make_shared<int>(0);
    return Response{200, "text/plain", "start-", [calls]() -> std::optional<std::string> {
                      if ((*calls)++ == 0) return std::string("more");
                      throw std::runtime_error("disk gone");
                    }};
  };
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("GET /test/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  const std::string response = c.ReadUntilClose();
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  EXPECT_NE(response.find("more"), std::string::npos) << response;
  EXPECT_EQ(response.find("\r\n0\r\n\r\n"), std::string::npos) << "cut body looks complete";
  EXPECT_EQ(BodyOf(response), "<truncated>");
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version").status, 200);
}

// --- connections ---

TEST_F(HttpServerTest, IdleKeepAliveConnectionsBeyondTheCapAreReapedOldestFirst) {
  ServerOptions options;
  options.max_connections = 50;
  StartServer(options);
  // Twice as many keep-alive clients as the cap, each left idle after its response: every one
  // is served at once (before, the 51st waited for the idle timeout).
  std::vector<std::unique_ptr<RawConnection>> clients;
  for (int i = 0; i < 100; ++i) {
    const auto started = std::chrono::steady_clock::now();
    clients.push_back(std::make_unique<RawConnection>(server_->port()));
    ASSERT_TRUE(clients.back()->Send(kVersionRequest));
    const std::string response = clients.back()->ReadResponse();
    ASSERT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << "client " << i << ": " << response;
    ASSERT_LT(std::chrono::steady_clock::now() - started, 1s) << "client " << i;
  }
  // The oldest idle ones made room; the newest are still open and usable.
  clients.front()->SetReceiveTimeout(1s);
  EXPECT_TRUE(clients.front()->ClosedByPeer());
  ASSERT_TRUE(clients.back()->Send(kVersionRequest));
  EXPECT_EQ(clients.back()->ReadResponse().rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(HttpServerTest, AtTheCapTheSlowestPartialRequestIsEvictedForANewClient) {
  ServerOptions options;
  options.max_connections = 50;
  options.min_connection_age = 100ms;  // the slow ones below are 200 ms old
  StartServer(options);
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 50; ++i) {
    slow.push_back(std::make_unique<RawConnection>(server_->port()));
    ASSERT_TRUE(slow.back()->Send("GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  }
  std::this_thread::sleep_for(200ms);
  const auto started = std::chrono::steady_clock::now();
  RawConnection fresh(server_->port());
  ASSERT_TRUE(fresh.Send(kVersionRequest));
  const std::string response = fresh.ReadResponse();
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  slow.front()->SetReceiveTimeout(1s);
  EXPECT_TRUE(slow.front()->ClosedByPeer()) << "the oldest partial request is still open";
}

TEST_F(HttpServerTest, AtTheCapSilentConnectionsAreEvictedForANewClient) {
  ServerOptions options;
  options.max_connections = 50;
  options.min_connection_age = 100ms;  // the silent ones below are 200 ms old
  StartServer(options);
  std::vector<std::unique_ptr<RawConnection>> silent;
  for (int i = 0; i < 60; ++i) silent.push_back(std::make_unique<RawConnection>(server_->port()));
  std::this_thread::sleep_for(200ms);
  const auto started = std::chrono::steady_clock::now();
  RawConnection fresh(server_->port());
  ASSERT_TRUE(fresh.Send(kVersionRequest));
  const std::string response = fresh.ReadResponse();
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
}

// Before, a connection writing a response was never evicted: clients that requested a large
// streamed log and never read it held every slot until write_timeout (30 s), and /version waited.
TEST_F(HttpServerTest, AtTheCapWritesStalledOnClientsThatNeverReadAreEvictedForANewClient) {
  constexpr int kCap = 16;
  test_handler_ = [this](const Request&) {
    return Response{200, "text/plain", "", ChunkSource(probe_, 4096, 64 << 10)};  // 256 MiB
  };
  ServerOptions options;
  options.max_connections = kCap;
  options.stalled_write_grace = 1s;
  options.write_timeout = 30s;
  StartServer(options);
  std::vector<std::unique_ptr<RawConnection>> stalled;
  for (int i = 0; i < kCap; ++i) {
    stalled.push_back(std::make_unique<RawConnection>(server_->port(), true, 4096));
    ASSERT_TRUE(stalled.back()->Send("GET /test/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  }
  // Wait until the server stops pulling: every write is blocked on a full socket.
  int pulled = -1;
  for (int i = 0; i < 50 && probe_.pulled.load() != pulled; ++i) {
    pulled = probe_.pulled.load();
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_EQ(probe_.live.load(), kCap);
  const auto started = std::chrono::steady_clock::now();
  RawConnection fresh(server_->port());
  ASSERT_TRUE(fresh.Send(kVersionRequest));
  const std::string response = fresh.ReadResponse();
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  EXPECT_LT(waited, 2s) << "the new client waited for the write timeout";
  // The stalled writes were closed (their sources with them), long before the write timeout.
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (probe_.live.load() == kCap && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_LT(probe_.live.load(), kCap) << "no stalled write was evicted";
}

// Before, at the cap the connection just accepted was often the one evicted ("phase=new
// age_ms=1"): a client got an empty reply, and a slow client's own requests were cut mid-way.
TEST_F(HttpServerTest, AtTheCapAConnectionYoungerThanTheMinimumAgeIsNotEvictedANewClientWaits) {
  constexpr int kCap = 16;
  ServerOptions options;
  options.max_connections = kCap;
  options.min_connection_age = 1s;
  StartServer(options);
  const auto opened = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < kCap; ++i) {
    slow.push_back(std::make_unique<RawConnection>(server_->port()));
    ASSERT_TRUE(slow.back()->Send("GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  }
  // Two more clients: neither may be evicted for the other, nor any slow one for them.
  RawConnection first(server_->port());
  ASSERT_TRUE(first.Send(kVersionRequest));
  RawConnection second(server_->port());
  ASSERT_TRUE(second.Send(kVersionRequest));
  std::this_thread::sleep_for(600ms);
  ASSERT_LT(std::chrono::steady_clock::now() - opened, options.min_connection_age);
  for (int i = 0; i < kCap; ++i) {
    EXPECT_TRUE(slow[size_t(i)]->OpenAndSilent()) << "slow client " << i << " was cut young";
  }
  EXPECT_TRUE(first.OpenAndSilent()) << "served or cut while every connection was too young";
  EXPECT_TRUE(second.OpenAndSilent()) << "served or cut while every connection was too young";
  // Once the oldest slow ones come of age they make room, and both new clients are served.
  EXPECT_EQ(first.ReadResponse().rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(second.ReadResponse().rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_LT(std::chrono::steady_clock::now() - opened, 2500ms);
  slow.front()->SetReceiveTimeout(1s);
  EXPECT_TRUE(slow.front()->ClosedByPeer()) << "the oldest partial request is still open";
}

TEST_F(HttpServerTest, AHeaderNotCompleteWithinTheHeaderTimeoutClosesTheConnection) {
  ServerOptions options;
  options.header_timeout = 300ms;
  options.idle_timeout = 10s;
  StartServer(options);
  // Idle between requests longer than the header timeout is fine...
  RawConnection idle(server_->port());
  ASSERT_TRUE(idle.Send(kVersionRequest));
  ASSERT_EQ(idle.ReadResponse().rfind("HTTP/1.1 200", 0), 0u);
  // ...a request that has started must finish its header in time.
  RawConnection slow(server_->port());
  ASSERT_TRUE(slow.Send("GET /api/v2/version HTTP/1.1\r\n"));
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(slow.ClosedByPeer());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  ASSERT_TRUE(idle.Send(kVersionRequest));
  EXPECT_EQ(idle.ReadResponse().rfind("HTTP/1.1 200", 0), 0u);
}

// --- handler pools and deadlines ---

TEST_F(HttpServerTest, VersionAndHealthAreNotStuckBehindSlowListings) {
  service_.list_delay = 800ms;
  ServerOptions options;
  options.handler_threads = 4;
  StartServer(options);
  std::vector<std::future<testing::HttpResponse>> listings;
  for (int i = 0; i < 12; ++i) {
    listings.push_back(
        std::async(std::launch::async, [&] { return HttpGet(base_ + "/api/v2/dags"); }));
  }
  std::this_thread::sleep_for(150ms);  // all four handler threads are busy, eight queued
  for (const char* path : {"/api/v2/version", "/api/v2/monitor/health"}) {
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(HttpGet(base_ + path).status, 200) << path;
    EXPECT_LT(std::chrono::steady_clock::now() - started, 400ms) << path;
  }
  for (auto& f : listings) EXPECT_EQ(f.get().status, 200);
}

TEST_F(HttpServerTest, ARequestThatWaitedLongerThanTheRequestTimeoutIs503AndNotRun) {
  service_.list_delay = 800ms;
  ServerOptions options;
  options.handler_threads = 1;
  options.request_timeout = 300ms;
  StartServer(options);
  auto first = std::async(std::launch::async, [&] { return HttpGet(base_ + "/api/v2/dags"); });
  std::this_thread::sleep_for(100ms);
  const auto started = std::chrono::steady_clock::now();
  const auto queued = HttpGet(base_ + "/api/v2/dags");
  EXPECT_EQ(queued.status, 503) << queued.body;
  EXPECT_NE(queued.body.find("request timeout"), std::string::npos) << queued.body;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1500ms) << "the listing was run anyway";
  EXPECT_EQ(first.get().status, 200);
}

// --- framing ---

struct FramingCase {
  const char* name;
  std::string request;
  const char* status;  // the expected status line prefix
};

// Requests that cannot be delimited or are not ours to accept: each is refused with our own
// sentence, the connection closes, and nothing after it is read as a next request.
TEST_F(HttpServerTest, HostileFramingIsRefusedAndNeverParsedAsANextRequest) {
  ServerOptions options;
  options.header_limit = 4096;
  StartServer(options);
  const std::string smuggled = "GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  const std::string post = "POST /api/v2/dags/etl/dagRuns HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  const std::vector<FramingCase> cases = {
      {"xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n" + smuggled, "HTTP/1.1 400"},
      {"chunked not last", post + "Transfer-Encoding: chunked, gzip\r\n\r\n" + smuggled,
       "HTTP/1.1 400"},
      {"another coding first",
       post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled, "HTTP/1.1 400"},
      {"two transfer-encoding fields",
       post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
           smuggled,
       "HTTP/1.1 400"},
      {"transfer-encoding then content-length",
       post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled,
       "HTTP/1.1 400"},
      {"content-length then transfer-encoding",
       post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
       "HTTP/1.1 400"},
      {"unknown coding with content-length",
       post + "Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello" + smuggled,
       "HTTP/1.1 400"},
      {"transfer-encoding in http/1.0",
       "POST /api/v2/dags/etl/dagRuns HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
           smuggled,
       "HTTP/1.0 400"},
      {"two content-lengths", post + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
       "HTTP/1.1 400"},
      {"negative content-length", post + "Content-Length: -1\r\n\r\n", "HTTP/1.1 400"},
      {"malformed chunk", post + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTP/1.1 400"},
      {"endless chunk extension",
       post + "Transfer-Encoding: chunked\r\n\r\n1;" + std::string(64 << 10, 'a'), "HTTP/1.1 400"},
      {"endless trailer",
       post + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: " + std::string(64 << 10, 'a'),
       "HTTP/1.1 400"},
      {"no host", "GET /api/v2/version HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
      {"two hosts", "GET /api/v2/version HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400"},
      {"http/2.0 request line", "GET /api/v2/version HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n",
       "HTTP/1.1 400"},
      {"unknown expectation", post + "Expect: 200-ok\r\nContent-Length: 2\r\n\r\n{}",
       "HTTP/1.1 417"},
      {"header over the limit",
       "GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + std::string(8000, 'x') +
           "\r\n\r\n",
       "HTTP/1.1 431"},
      {"nul in a header value",
       "GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\nX: a" + std::string(1, '\0') +
           "b\r\n\r\n",
       "HTTP/1.1 400"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.Send(c.request));
    const std::string all = conn.ReadUntilClose();
    EXPECT_EQ(all.rfind(c.status, 0), 0u) << all;
    if (all.rfind("HTTP/1.1", 0) == 0) {  // HTTP/1.0 closes by default
      EXPECT_NE(all.find("Connection: close"), std::string::npos) << all;
    }
    EXPECT_NE(all.find("{\"detail\":\""), std::string::npos) << all;
    EXPECT_EQ(all.find("HTTP/1.1 200"), std::string::npos) << "a next request was served: " << all;
    EXPECT_EQ(HttpGet(base_ + "/api/v2/version").status, 200) << "server unhealthy after it";
  }
}

TEST_F(HttpServerTest, AChunkedRequestBodyIsAccepted) {
  StartServer();
  RawConnection c(server_->port());
  const std::string body = R"({"dag_run_id": "r1", "logical_date": null})";
  std::ostringstream size;
  size << std::hex << body.size();
  ASSERT_TRUE(
      c.Send("POST /api/v2/dags/etl/dagRuns HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Authorization: Bearer admin-token\r\n"
             "Content-Type: application/json\r\nTransfer-Encoding: Chunked\r\n\r\n" +
             size.str() + "\r\n" + body + "\r\n0\r\n\r\n"));
  const std::string response = c.ReadResponse();
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  EXPECT_NE(response.find("\"r1\""), std::string::npos) << response;
}

// Lowers this process's RLIMIT_NOFILE and fills every descriptor below it, so accept() fails
// with EMFILE; the destructor frees them and restores the limit.
class FileDescriptorExhaustion {
 public:
  FileDescriptorExhaustion() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    const int probe = ::dup(2);
    ::close(probe);
    rlimit lowered = saved_;
    lowered.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, static_cast<rlim_t>(probe) + 16);
    ok_ = ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
    for (int fd; ok_ && (fd = ::dup(2)) >= 0;) fds_.push_back(fd);
    ok_ = ok_ && errno == EMFILE;
  }
  ~FileDescriptorExhaustion() {
    for (int fd : fds_) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  std::vector<int> fds_;
  bool ok_ = false;
};

double ProcessCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

TEST_F(HttpServerTest, AcceptFailuresBackOffWithoutSpinningOrFloodingTheLogAndThenRecover) {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizer runtime itself needs file descriptors (it checks memory through a pipe), so
  // exhausting them makes it report false errors. The plain build runs this test.
  GTEST_SKIP() << "exhausts file descriptors, which the sanitizer runtime needs";
#endif
  // Capture the server's log: HttpServer uses the "api" logger when one is registered.
  auto log = std::make_shared<std::ostringstream>();
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*log);
  auto logger = std::make_shared<spdlog::logger>("api", sink);
  logger->set_level(spdlog::level::debug);
  spdlog::drop("api");
  spdlog::register_logger(logger);
  struct DropLogger {
    ~DropLogger() { spdlog::drop("api"); }
  } drop_logger;

  StartServer();
  RawConnection client(server_->port(), /*connect_now=*/false);
  std::string response;
  double cpu_seconds = 0;
  {
    FileDescriptorExhaustion exhaustion;
    ASSERT_TRUE(exhaustion.ok()) << "could not exhaust file descriptors";
    const double cpu_before = ProcessCpuSeconds();
    ASSERT_TRUE(client.Connect());  // queued by the kernel; the server's accept() hits EMFILE
    ASSERT_TRUE(client.Send("GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    std::this_thread::sleep_for(700ms);
    cpu_seconds = ProcessCpuSeconds() - cpu_before;
  }
  response = client.ReadResponse();  // descriptors are free again: served after the backoff

  // A busy retry loop burns a whole core (~0.7 s); the backoff sleeps.
  EXPECT_LT(cpu_seconds, 0.2);
  logger->flush();
  const std::string text = log->str();
  size_t warnings = 0;
  for (size_t at = 0; (at = text.find("http accept failed", at)) != std::string::npos; ++at) {
    ++warnings;
  }
  EXPECT_EQ(warnings, 1u) << text.substr(0, 2000);  // at most one per second, and 700 ms passed
  EXPECT_NE(text.find("Too many open files"), std::string::npos) << text.substr(0, 2000);
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  EXPECT_NE(text.find("http accept recovered"), std::string::npos) << text.substr(0, 2000);
}

// --- live responses ---

template <class Predicate>
bool WaitFor(Predicate done, std::chrono::milliseconds timeout = 3s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

const std::string kLiveRequest = "GET /test/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

TEST_F(HttpServerTest, ALiveBodySendsWhatItsSourcePushesAtOnceHeartbeatsWhenIdleAndEnds) {
  test_handler_ = [this](const Request&) {
    Response r{200, "application/x-ndjson", "hello\n"};
    r.live = live_.Body(400ms);
    return r;
  };
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send(kLiveRequest));
  ASSERT_TRUE(c.ReadUntil("hello\n"));
  EXPECT_EQ(c.received().rfind("HTTP/1.1 200", 0), 0u) << c.received();
  EXPECT_NE(c.received().find("Transfer-Encoding: chunked"), std::string::npos);
  EXPECT_NE(c.received().find("Connection: close"), std::string::npos);
  ASSERT_TRUE(WaitFor([&] { return live_.polls.load() >= 1; }));
  EXPECT_EQ(live_.armed.load(), 1);
  EXPECT_EQ(server_->live_streams(), 1u);

  // A push is sent on its wake, long before the idle poll would have found it.
  std::this_thread::sleep_for(50ms);
  const auto pushed = std::chrono::steady_clock::now();
  live_.Push("event-1\n");
  ASSERT_TRUE(c.ReadUntil("event-1\n"));
  EXPECT_LT(std::chrono::steady_clock::now() - pushed, 200ms);

  // Idle: a heartbeat after about idle_poll, and no busy polling meanwhile.
  const int polls_before = live_.polls.load();
  ASSERT_TRUE(c.ReadUntil("\r\n.\r\n"));
  EXPECT_LE(live_.polls.load() - polls_before, 4) << "a parked stream must not be polled in a loop";

  // Waking twice at once polls once or twice, never more, and sends nothing twice.
  live_.Push("event-2\n");
  live_.Wake();
  live_.End();
  const std::string rest = c.ReadUntilClose();
  const std::string all = c.received() + rest;
  EXPECT_EQ(BodyOf(all).find("hello\nevent-1\n"), 0u) << BodyOf(all);
  EXPECT_NE(BodyOf(all).find("event-2\n"), std::string::npos) << BodyOf(all);
  EXPECT_EQ(all.substr(all.size() - 5), "0\r\n\r\n") << "the body must end with the last chunk";
  EXPECT_TRUE(WaitFor([&] { return live_.alive.load() == 0; })) << "the body outlived its stream";
  EXPECT_TRUE(WaitFor([&] { return server_->live_streams() == 0; }));
}

TEST_F(HttpServerTest, ALiveBodyWokenAsItIsArmedIsStillWokenLater) {
  test_handler_ = [this](const Request&) {
    Response r{200, "text/plain", ""};
    r.live = live_.Body(10s);
    return r;
  };
  StartServer();
  live_.Push("early\n");  // the source wakes the server from arm, before the header is written
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send(kLiveRequest));
  ASSERT_TRUE(c.ReadUntil("early\n"));
  std::this_thread::sleep_for(50ms);
  const auto pushed = std::chrono::steady_clock::now();
  live_.Push("late\n");
  ASSERT_TRUE(c.ReadUntil("late\n"));
  EXPECT_LT(std::chrono::steady_clock::now() - pushed, 500ms) << "the later wake was lost";
}

TEST_F(HttpServerTest, ALiveBodyToAnHttp10ClientEndsWithTheConnection) {
  test_handler_ = [this](const Request&) {
    Response r{200, "text/plain", "a"};
    r.live = live_.Body(10s);
    return r;
  };
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("GET /test/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  ASSERT_TRUE(WaitFor([&] { return live_.polls.load() >= 1; }));
  live_.Push("b");
  live_.End();
  const std::string response = c.ReadUntilClose();
  EXPECT_EQ(response.rfind("HTTP/1.0 200", 0), 0u) << response;
  EXPECT_EQ(response.find("Transfer-Encoding"), std::string::npos) << response;
  EXPECT_EQ(BodyOf(response), "ab");
}

TEST_F(HttpServerTest, ALiveBodyIsReadWholeByARealClient) {
  test_handler_ = [this](const Request&) {
    Response r{200, "text/plain", "a"};
    r.live = live_.Body(10s);
    return r;
  };
  StartServer();
  auto reader = std::async(std::launch::async, [&] { return HttpGet(base_ + "/test/live"); });
  ASSERT_TRUE(WaitFor([&] { return live_.polls.load() >= 1; }));
  live_.Push("b");
  live_.Push("c");
  live_.End();
  const auto r = reader.get();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "abc");
}

TEST_F(HttpServerTest, AClientThatDisconnectsFromAParkedLiveStreamReleasesItsBodyAtOnce) {
  test_handler_ = [this](const Request&) {
    Response r{200, "text/plain", ""};
    r.live = live_.Body(60s);  // no heartbeat would notice the client is gone
    return r;
  };
  StartServer();
  auto c = std::make_unique<RawConnection>(server_->port());
  ASSERT_TRUE(c->Send(kLiveRequest));
  ASSERT_TRUE(c->ReadUntil("\r\n\r\n"));
  ASSERT_TRUE(WaitFor([&] { return live_.polls.load() >= 1; }));
  std::this_thread::sleep_for(50ms);  // parked now
  EXPECT_EQ(live_.alive.load(), 1);
  const auto closed = std::chrono::steady_clock::now();
  c.reset();
  EXPECT_TRUE(WaitFor([&] { return live_.alive.load() == 0; }, 2s))
      << "the body of a gone client was not destroyed";
  EXPECT_LT(std::chrono::steady_clock::now() - closed, 1s);
  EXPECT_TRUE(WaitFor([&] { return server_->live_streams() == 0; }));
  // A wake after the connection is gone is harmless (the probe dropped it; the server's copy
  // outlives nothing).
  live_.Wake();
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version").status, 200);
}

TEST_F(HttpServerTest, AClientThatNeverReadsALiveStreamIsPolledAtMostAboutAChunkAhead) {
  static constexpr size_t kChunkSize = 64 << 10;
  test_handler_ = [this](const Request&) {
    Response r{200, "text/plain", ""};
    r.live = live_.Body(10ms, kChunkSize);  // always has a chunk
    return r;
  };
  StartServer();
  RawConnection c(server_->port(), true, 4096);
  ASSERT_TRUE(c.Send(kLiveRequest));
  int polls = -1;
  for (int i = 0; i < 50 && live_.polls.load() != polls; ++i) {
    polls = live_.polls.load();
    std::this_thread::sleep_for(200ms);
  }
  // What the kernel buffers plus the chunk being written; a server that polled ahead of its
  // writes would poll without end.
  const int bound = static_cast<int>((MaxTcpSendBuffer() + kChunkSize) / kChunkSize) + 2;
  EXPECT_GT(polls, 0);
  EXPECT_LE(polls, bound) << "polled for a client that never reads";
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version").status, 200);
}

TEST_F(HttpServerTest, ALiveStreamWhoseClientStoppedReadingIsDroppedAfterTheWriteTimeout) {
  test_handler_ = [this](const Request&) {
    Response r{200, "text/plain", ""};
    r.live = live_.Body(10ms, 64 << 10);
    return r;
  };
  ServerOptions options;
  options.write_timeout = 500ms;
  StartServer(options);
  RawConnection c(server_->port(), true, 4096);
  ASSERT_TRUE(c.Send(kLiveRequest));
  ASSERT_TRUE(WaitFor([&] { return live_.polls.load() >= 1; }));
  EXPECT_TRUE(WaitFor([&] { return live_.alive.load() == 0; }, 4s))
      << "a live stream kept writing to a client that does not read";
}

TEST_F(HttpServerTest, StopCutsALiveStreamStuckInAWriteWithoutWaitingForTheWriteTimeout) {
  test_handler_ = [this](const Request&) {
    Response r{200, "text/plain", ""};
    r.live = live_.Body(10ms, 64 << 10);
    return r;
  };
  StartServer();  // write_timeout 30 s
  RawConnection c(server_->port(), true, 4096);
  ASSERT_TRUE(c.Send(kLiveRequest));
  int polls = -1;
  for (int i = 0; i < 50 && live_.polls.load() != polls; ++i) {  // until the write is stuck
    polls = live_.polls.load();
    std::this_thread::sleep_for(100ms);
  }
  const auto started = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  EXPECT_EQ(live_.alive.load(), 0);
}

TEST_F(HttpServerTest, LiveStreamsBeyondTheCapAre503WithASentence) {
  test_handler_ = [this](const Request&) {
    Response r{200, "text/plain", ""};
    r.live = live_.Body(60s);
    return r;
  };
  ServerOptions options;
  options.max_live_streams = 1;
  StartServer(options);
  auto first = std::make_unique<RawConnection>(server_->port());
  ASSERT_TRUE(first->Send(kLiveRequest));
  ASSERT_TRUE(first->ReadUntil("\r\n\r\n"));
  auto refused = HttpGet(base_ + "/test/live");
  EXPECT_EQ(refused.status, 503);
  EXPECT_NE(refused.body.find("maximum of 1 live streams"), std::string::npos) << refused.body;
  EXPECT_TRUE(WaitFor([&] { return live_.alive.load() == 1; })) << "the refused body was kept";
  first.reset();
  ASSERT_TRUE(WaitFor([&] { return server_->live_streams() == 0; }));
  RawConnection again(server_->port());
  ASSERT_TRUE(again.Send(kLiveRequest));
  ASSERT_TRUE(again.ReadUntil("\r\n\r\n"));
  EXPECT_EQ(again.received().rfind("HTTP/1.1 200", 0), 0u) << again.received();
}

TEST_F(HttpServerTest, StopCutsAParkedLiveStreamPromptly) {
  test_handler_ = [this](const Request&) {
    Response r{200, "text/plain", ""};
    r.live = live_.Body(60s);
    return r;
  };
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send(kLiveRequest));
  ASSERT_TRUE(c.ReadUntil("\r\n\r\n"));
  ASSERT_TRUE(WaitFor([&] { return live_.polls.load() >= 1; }));
  const auto started = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  EXPECT_EQ(live_.alive.load(), 0);
  EXPECT_EQ(c.ReadUntilClose().find("0\r\n\r\n"), std::string::npos)
      << "a cut live body must not end with the last chunk";
}

// --- HTTPS ---

class HttpsServerTest : public HttpServerTest {
 protected:
  void StartTls(ServerOptions options = {}) {
    files_ = testing::MakeSelfSignedCertificate(dir_.path(), "server");
    options.tls_cert_file = files_.cert;
    options.tls_key_file = files_.key;
    StartServer(options);
    base_ = "https://127.0.0.1:" + std::to_string(server_->port());
  }
  testing::HttpOptions Trusting() const { return {files_.cert}; }

  testing::TempDir dir_;
  testing::CertificateFiles files_;
};

TEST_F(HttpsServerTest, ServesHttpsToAClientThatTrustsTheCertificate) {
  StartTls();
  auto r = HttpGet(base_ + "/api/v2/version", {}, Trusting());
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(nlohmann::json::parse(r.body)["version"], DAGD_VERSION);
  // Without trusting it, the client refuses the certificate.
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version").status, 0);
}

TEST_F(HttpsServerTest, PlainHttpOnTheHttpsPortGetsASentenceAndTheServerKeepsServing) {
  StartTls();
  auto plain = HttpGet("http://127.0.0.1:" + std::to_string(server_->port()) + "/api/v2/version");
  EXPECT_EQ(plain.status, 400) << plain.error;
  EXPECT_NE(plain.body.find("HTTPS only"), std::string::npos) << plain.body;
  RawConnection garbage(server_->port());
  ASSERT_TRUE(garbage.Send(std::string("\x16\x03\x01\x00\x05hello", 10)));
  const auto sent = std::chrono::steady_clock::now();
  garbage.ReadUntilClose();  // at most a TLS alert, then the close
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 2s) << "a broken handshake was kept open";
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version", {}, Trusting()).status, 200);
}

TEST_F(HttpsServerTest, StreamedAndLiveResponsesWorkOverHttps) {
  test_handler_ = [this](const Request& req) {
    if (req.target == "/test/stream") {
      return Response{200, "text/plain", "head-", ChunkSource(probe_, 3, 5)};
    }
    Response r{200, "text/plain", "a"};
    r.live = live_.Body(10s);
    return r;
  };
  StartTls();
  auto streamed = HttpGet(base_ + "/test/stream", {}, Trusting());
  EXPECT_EQ(streamed.status, 200) << streamed.error;
  EXPECT_EQ(streamed.body, "head-aaaaabbbbbccccc");
  auto reader =
      std::async(std::launch::async, [&] { return HttpGet(base_ + "/test/live", {}, Trusting()); });
  ASSERT_TRUE(WaitFor([&] { return live_.polls.load() >= 1; }));
  live_.Push("b");
  live_.End();
  const auto r = reader.get();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "ab");
}

TEST_F(HttpsServerTest, AHandshakeNotFinishedWithinTheHeaderTimeoutClosesTheConnection) {
  ServerOptions options;
  options.header_timeout = 300ms;
  StartTls(options);
  RawConnection c(server_->port());
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.ClosedByPeer());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

TEST_F(HttpsServerTest, ReloadServesTheNewCertificateAndABadReloadKeepsTheOld) {
  StartTls();
  ASSERT_EQ(HttpGet(base_ + "/api/v2/version", {}, Trusting()).status, 200);
  // The files are replaced in place: the old certificate is no longer trusted by the client.
  const auto old_cert = files_.cert + ".old";
  std::filesystem::copy_file(files_.cert, old_cert);
  testing::MakeSelfSignedCertificate(dir_.path(), "server", "renewed");
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version", {}, {old_cert}).status, 200) << "not reloaded yet";
  ASSERT_TRUE(server_->ReloadTls().ok());
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version", {}, Trusting()).status, 200);
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version", {}, {old_cert}).status, 0);

  std::ofstream(files_.key) << "not a key";
  const Status bad = server_->ReloadTls();
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find(files_.key), std::string::npos) << bad.message();
  EXPECT_EQ(HttpGet(base_ + "/api/v2/version", {}, Trusting()).status, 200) << "old one kept";
}

TEST(TlsFiles, MissingUnreadableOrMismatchedFilesAreRefusedWithASentence) {
  testing::TempDir dir;
  const auto a = testing::MakeSelfSignedCertificate(dir.path(), "a");
  const auto b = testing::MakeSelfSignedCertificate(dir.path(), "b");
  EXPECT_TRUE(CheckTlsFiles(a.cert, a.key).ok());
  const Status mismatch = CheckTlsFiles(a.cert, b.key);
  EXPECT_NE(mismatch.message().find("does not match the certificate"), std::string::npos)
      << mismatch.message();
  const Status missing = CheckTlsFiles(a.cert, (dir.path() / "none.key").string());
  EXPECT_NE(missing.message().find("cannot read the TLS key file"), std::string::npos)
      << missing.message();
  const Status swapped = CheckTlsFiles(a.key, a.cert);
  EXPECT_EQ(swapped.code(), StatusCode::kInvalidArgument) << swapped.message();
  ServerOptions options;
  options.port = 0;
  options.tls_cert_file = a.cert;
  HttpServer server(options, [](const Request&) { return Response{}; });
  const Status half = server.Start();
  EXPECT_EQ(half.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(half.message().find("only one of them"), std::string::npos) << half.message();
}

}  // namespace
}  // namespace dagd::api
