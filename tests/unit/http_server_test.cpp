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
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hpp"

namespace dagd::api {
namespace {

using namespace std::chrono_literals;
using testing::HttpGet;
using testing::HttpPostJson;
using testing::HttpRequest;

// Just enough service for HTTP tests: triggers succeed, Health can be made slow.
class FakeService : public scheduler::Service {
 public:
  scheduler::HealthReport Health() override {
    std::this_thread::sleep_for(health_delay);
    return {true, true, std::nullopt};
  }
  StatusOr<scheduler::Listing<scheduler::DagRecord>> ListDags(const scheduler::DagQuery&) override {
    return scheduler::Listing<scheduler::DagRecord>{};
  }
  StatusOr<scheduler::DagDetails> GetDag(const std::string& id) override {
    return Status::NotFound("DAG '" + id + "' not found");
  }
  StatusOr<scheduler::DagDetails> SetPaused(const std::string& id, bool) override {
    return Status::NotFound("DAG '" + id + "' not found");
  }
  StatusOr<scheduler::Listing<scheduler::ImportError>> ListImportErrors(
      const scheduler::Page&) override {
    return scheduler::Listing<scheduler::ImportError>{};
  }
  StatusOr<scheduler::DagRun> Trigger(const std::string& dag_id,
                                      const scheduler::TriggerRequest& request) override {
    scheduler::DagRun run;
    run.dag_id = dag_id;
    run.run_id = request.dag_run_id.value_or("manual__x");
    run.conf = request.conf;
    return run;
  }
  StatusOr<scheduler::Listing<scheduler::DagRun>> ListRuns(const scheduler::RunQuery&) override {
    return scheduler::Listing<scheduler::DagRun>{};
  }
  StatusOr<scheduler::DagRun> GetRun(const std::string&, const std::string&) override {
    return Status::NotFound("no run");
  }
  StatusOr<scheduler::Listing<scheduler::TaskInstance>> ListTaskInstances(
      const scheduler::TaskInstanceQuery&) override {
    return scheduler::Listing<scheduler::TaskInstance>{};
  }
  StatusOr<scheduler::TaskInstance> GetTaskInstance(const std::string&, const std::string&,
                                                    const std::string&) override {
    return Status::NotFound("no task instance");
  }
  StatusOr<std::vector<scheduler::TaskTry>> ListTries(const std::string&, const std::string&,
                                                      const std::string&) override {
    return Status::NotFound("no task instance");
  }
  StatusOr<scheduler::LogReader> OpenLog(const std::string&, const std::string&, const std::string&,
                                         int) override {
    return Status::NotFound("no log");
  }

  std::chrono::milliseconds health_delay{0};
};

// A raw TCP client: the tests that need one connection for several requests, or bytes that are
// not valid HTTP.
class RawConnection {
 public:
  // connect_now=false: only the socket is created; call Connect() later (a connect needs no
  // new file descriptor, which the accept-failure test relies on).
  explicit RawConnection(uint16_t port, bool connect_now = true) : port_(port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
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
  // Reads one response with a Content-Length body (or until EOF). Empty on timeout or EOF.
  std::string ReadResponse() {
    while (true) {
      size_t header_end = buffer_.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        size_t length = 0;
        size_t cl = buffer_.find("Content-Length: ");
        if (cl != std::string::npos && cl < header_end)
          length = std::stoul(buffer_.substr(cl + 16));
        size_t total = header_end + 4 + length;
        if (buffer_.size() >= total) {
          std::string out = buffer_.substr(0, total);
          buffer_.erase(0, total);
          return out;
        }
      }
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return std::exchange(buffer_, std::string());
      buffer_.append(chunk, size_t(n));
    }
  }
  // True when the server closed the connection (recv returns 0) within the socket timeout.
  bool ClosedByPeer() {
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  uint16_t port_;
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options = {}) {
    options.port = 0;
    server_ = std::make_unique<HttpServer>(options, router_);
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_NE(server_->port(), 0);
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }

  FakeService service_;
  Router router_{service_};
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
    ASSERT_TRUE(c.Send("GET /api/v2/version HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    std::string response = c.ReadResponse();
    EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << "request " << i << ": " << response;
    EXPECT_NE(response.find("\"version\""), std::string::npos);
  }
}

TEST_F(HttpServerTest, ConnectionCloseIsHonoured) {
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("GET /api/v2/version HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
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

TEST_F(HttpServerTest, UnparsableHttpIs400) {
  StartServer();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("THIS IS NOT HTTP\r\n\r\n"));
  std::string response = c.ReadResponse();
  EXPECT_EQ(response.rfind("HTTP/1.1 400", 0), 0u) << response;
}

TEST_F(HttpServerTest, ANonLoopbackAddressIsRefusedBecauseThereIsNoAuthentication) {
  ServerOptions options;
  options.address = "0.0.0.0";
  options.port = 0;
  HttpServer server(options, router_);
  Status s = server.Start();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("authentication"), std::string::npos) << s.message();
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
  ASSERT_TRUE(idle.Send("GET /api/v2/version HTTP/1.1\r\nHost: localhost\r\n\r\n"));
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

TEST_F(HttpServerTest, AnIdleConnectionIsClosedAfterTheReadTimeout) {
  ServerOptions options;
  options.read_timeout = 1s;
  StartServer(options);
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.ClosedByPeer());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

TEST_F(HttpServerTest, AtMaxConnectionsANewClientWaitsUntilAnOpenConnectionCloses) {
  ServerOptions options;
  options.max_connections = 2;
  StartServer(options);
  const std::string request = "GET /api/v2/version HTTP/1.1\r\nHost: localhost\r\n\r\n";
  auto first = std::make_unique<RawConnection>(server_->port());
  RawConnection second(server_->port());
  for (RawConnection* c : {first.get(), &second}) {
    ASSERT_TRUE(c->Send(request));
    ASSERT_EQ(c->ReadResponse().rfind("HTTP/1.1 200", 0), 0u);  // both open and idle now
  }

  // The third connect succeeds (kernel backlog) but the server does not accept it yet.
  RawConnection third(server_->port());
  ASSERT_TRUE(third.connected());
  ASSERT_TRUE(third.Send(request));
  third.SetReceiveTimeout(400ms);
  EXPECT_EQ(third.ReadResponse(), "") << "served beyond max_connections";

  first.reset();  // frees a slot
  third.SetReceiveTimeout(5s);
  const std::string response = third.ReadResponse();
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  // The still-open second connection keeps working.
  ASSERT_TRUE(second.Send(request));
  EXPECT_EQ(second.ReadResponse().rfind("HTTP/1.1 200", 0), 0u);
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
    ASSERT_TRUE(client.Send("GET /api/v2/version HTTP/1.1\r\nHost: localhost\r\n\r\n"));
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

}  // namespace
}  // namespace dagd::api
