// GET /api/v2/events and GET .../dagRuns/{id}/wait through the Router: validation, where the
// stream starts, and the LiveBody it answers with, driven as the server drives it (arm, then
// polls), against an in-memory event log.
#include <gtest/gtest.h>

#include <sstream>

#include "dagd/api/router.hpp"
#include "dagd/scheduler/time.hpp"
#include "fake_authenticator.hpp"
#include "stub_service.hpp"

namespace dagd::api {
namespace {

using namespace std::chrono_literals;
using scheduler::EventRecord;
using Json = nlohmann::json;

class FakeWatch final : public scheduler::ChangeWatch {
 public:
  explicit FakeWatch(int& live) : live_(live) { ++live_; }
  ~FakeWatch() override { --live_; }

 private:
  int& live_;
};

// Runs etl/r1 (running) and etl/r2 (success); an event log of what happened to them.
class FakeService final : public dagd::testing::StubService {
 public:
  FakeService() {
    run.dag_id = "etl";
    run.run_id = "r1";
    run.state = scheduler::RunState::kRunning;
  }

  int64_t Add(const std::string& run_id, const std::string& task_id, const std::string& state) {
    EventRecord e;
    e.seq = static_cast<int64_t>(events.size()) + 1 + removed;
    e.kind = task_id.empty() ? "dag_run" : "task_instance";
    e.dag_id = "etl";
    e.run_id = run_id;
    e.task_id = task_id;
    e.state = state;
    events.push_back(e);
    return e.seq;
  }
  int64_t head() const { return static_cast<int64_t>(events.size()) + removed; }
  void WakeAll() {
    for (auto& w : wakes) w();
  }

  StatusOr<scheduler::DagDetails> GetDag(const std::string& id) override {
    if (id != "etl") return Status::NotFound("DAG with dag_id: '" + id + "' not found");
    return scheduler::DagDetails{};
  }
  StatusOr<scheduler::DagRun> GetRun(const std::string& dag_id,
                                     const std::string& run_id) override {
    if (dag_id == "etl" && run_id == "r1") return run;
    if (dag_id == "etl" && run_id == "r2") {
      scheduler::DagRun done = run;
      done.run_id = "r2";
      done.state = scheduler::RunState::kSuccess;
      return done;
    }
    return Status::NotFound("The DagRun with dag_id: '" + dag_id + "' and run_id: '" + run_id +
                            "' was not found");
  }
  StatusOr<scheduler::TaskInstance> GetTaskInstance(const std::string& dag_id,
                                                    const std::string& run_id,
                                                    const std::string& task_id) override {
    if (!GetRun(dag_id, run_id).ok() || (task_id != "extract" && task_id != "load")) {
      return Status::NotFound("The Task Instance with task_id: '" + task_id + "' was not found");
    }
    return scheduler::TaskInstance{};
  }
  StatusOr<scheduler::EventBounds> EventLogBounds() override {
    return scheduler::EventBounds{removed + 1, head()};
  }
  StatusOr<scheduler::EventPage> ReadEvents(int64_t after, int limit,
                                            const scheduler::EventFilter& f) override {
    last_filter = f;
    scheduler::EventPage page;
    page.head = head();
    page.last_seq = std::max(after, head());
    for (const EventRecord& e : events) {
      if (e.seq <= after) continue;
      if (!f.run_id.empty() && e.run_id != f.run_id) continue;
      if (!f.task_id.empty() && e.task_id != f.task_id) continue;
      page.events.push_back(e);
      if (static_cast<int>(page.events.size()) == limit) {
        page.last_seq = e.seq;
        break;
      }
    }
    return page;
  }
  std::unique_ptr<scheduler::ChangeWatch> WatchChanges(std::function<void()> wake) override {
    wakes.push_back(std::move(wake));
    return std::make_unique<FakeWatch>(live_watches);
  }
  StatusOr<Json> ReturnValue(const std::string&, const std::string&,
                             const std::string& task_id) override {
    if (task_id == "extract") return Json({{"rows", 3}});
    return Json(nullptr);
  }

  scheduler::DagRun run;
  std::vector<EventRecord> events;
  int64_t removed = 0;  // events before the first kept one
  std::vector<std::function<void()>> wakes;
  int live_watches = 0;
  scheduler::EventFilter last_filter;
};

class EventStreamTest : public ::testing::Test {
 protected:
  Response Get(const std::string& target, std::map<std::string, std::string> headers = {}) {
    headers.try_emplace("authorization", "Bearer viewer-token");
    return router_.Handle(Request{"GET", target, std::move(headers), ""});
  }
  // Arms the body as the server does; counts the wakes it gets.
  void Arm(Response& r) {
    ASSERT_TRUE(r.live);
    r.live->arm([this] { ++wakes_; });
  }
  static Json Body(const Response& r) { return Json::parse(r.body); }
  static std::vector<Json> Lines(const std::string& text) {
    std::vector<Json> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) out.push_back(Json::parse(line));
    return out;
  }
  // The 422 entry's location, e.g. ["query", "since"].
  static Json Loc(const Response& r) { return Body(r)["detail"][0]["loc"]; }

  static RouterOptions Options(dagd::testing::FakeAuthenticator& authenticator) {
    RouterOptions options;
    options.authenticator = &authenticator;
    return options;
  }

  FakeService service_;
  dagd::testing::FakeAuthenticator authenticator_;
  Router router_{service_, Options(authenticator_)};
  int wakes_ = 0;
};

TEST_F(EventStreamTest, ByDefaultOnlyEventsCommittedAfterConnectingAreSent) {
  service_.Add("r1", "", "queued");
  service_.Add("r1", "extract", "queued");
  Response r = Get("/api/v2/events");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/x-ndjson");
  EXPECT_FALSE(r.stream);
  Arm(r);
  EXPECT_EQ(*r.live->poll(), "");
  service_.Add("r1", "extract", "running");
  service_.WakeAll();
  EXPECT_EQ(wakes_, 1);  // the server is asked to poll
  auto lines = Lines(*r.live->poll());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["seq"], 3);
  EXPECT_EQ(lines[0]["state"], "running");
}

TEST_F(EventStreamTest, SinceZeroReplaysFromTheStartAndFiltersReachTheRead) {
  service_.Add("r1", "", "queued");
  service_.Add("r2", "", "queued");
  service_.Add("r1", "extract", "queued");
  Response r = Get("/api/v2/events?since=0&dag_id=etl&dag_run_id=r1&task_id=extract");
  ASSERT_EQ(r.status, 200);
  Arm(r);
  auto lines = Lines(*r.live->poll());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["seq"], 3);
  EXPECT_EQ(service_.last_filter.dag_id, "etl");
  EXPECT_EQ(service_.last_filter.run_id, "r1");
  EXPECT_EQ(service_.last_filter.task_id, "extract");
}

TEST_F(EventStreamTest, LastEventIdWinsOverSinceAndSseIsChosenByAccept) {
  for (int i = 0; i < 4; ++i) service_.Add("r1", "t" + std::to_string(i), "queued");
  Response r = Get("/api/v2/events?since=0",
                   {{"accept", "text/event-stream"}, {"last-event-id", "3"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/event-stream");
  Arm(r);
  const std::string piece = *r.live->poll();
  EXPECT_TRUE(piece.starts_with("id: 4\nevent: task_instance\ndata: {")) << piece;
}

TEST_F(EventStreamTest, UntilTerminalClosesAfterTheRunsEndEvent) {
  service_.Add("r1", "", "running");
  Response r = Get("/api/v2/events?dag_id=etl&dag_run_id=r1&until=terminal");
  ASSERT_EQ(r.status, 200);
  Arm(r);
  EXPECT_EQ(*r.live->poll(), "");
  service_.Add("r1", "extract", "success");
  service_.Add("r1", "", "success");
  service_.WakeAll();
  EXPECT_EQ(Lines(*r.live->poll()).size(), 2u);
  EXPECT_EQ(r.live->poll(), std::nullopt);
}

TEST_F(EventStreamTest, TheChangeWatchLivesAsLongAsTheBody) {
  Response r = Get("/api/v2/events");
  Arm(r);
  EXPECT_EQ(service_.live_watches, 1);
  r.live.reset();
  EXPECT_EQ(service_.live_watches, 0);
}

TEST_F(EventStreamTest, MalformedValuesAre422) {
  EXPECT_EQ(Loc(Get("/api/v2/events?since=abc")), Json({"query", "since"}));
  EXPECT_EQ(Loc(Get("/api/v2/events?since=-1")), Json({"query", "since"}));
  EXPECT_EQ(Loc(Get("/api/v2/events", {{"last-event-id", "x"}})),
            Json({"header", "Last-Event-ID"}));
  EXPECT_EQ(Loc(Get("/api/v2/events?until=done&dag_id=etl&dag_run_id=r1")),
            Json({"query", "until"}));
  EXPECT_EQ(Loc(Get("/api/v2/events?until=terminal&dag_id=etl")), Json({"query", "until"}));
  EXPECT_EQ(Loc(Get("/api/v2/events?dag_id=")), Json({"query", "dag_id"}));
  EXPECT_EQ(Get("/api/v2/events?since=abc").status, 422);
}

TEST_F(EventStreamTest, ASinceAheadOfTheNewestEventIs400WithASentence) {
  service_.Add("r1", "", "queued");
  Response r = Get("/api/v2/events?since=2");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["detail"],
            "since=2 is ahead of the newest event (1); pass a seq this server has sent, or omit "
            "since for new events");
  EXPECT_EQ(Get("/api/v2/events", {{"last-event-id", "9"}}).status, 400);
}

TEST_F(EventStreamTest, ASinceOlderThanTheOldestKeptEventIs410WithTheOldestAvailable) {
  service_.removed = 10;  // events 1..10 are gone
  service_.Add("r1", "", "queued");
  Response r = Get("/api/v2/events?since=9");
  EXPECT_EQ(r.status, 410);
  EXPECT_EQ(Body(r)["oldest_available"], 11);
  EXPECT_TRUE(Body(r)["detail"].is_string());
  EXPECT_EQ(Get("/api/v2/events?since=10").status, 200);  // the oldest kept comes next
}

TEST_F(EventStreamTest, AnUnknownDagOrRunIs404) {
  EXPECT_EQ(Get("/api/v2/events?dag_id=nope").status, 404);
  EXPECT_EQ(Get("/api/v2/events?dag_id=etl&dag_run_id=nope").status, 404);
  EXPECT_EQ(Get("/api/v2/dags/etl/dagRuns/nope/wait").status, 404);
}

TEST_F(EventStreamTest, WaitSendsTheStateThenTheFinalStateWithResults) {
  service_.Add("r1", "", "running");
  Response r = Get("/api/v2/dags/etl/dagRuns/r1/wait?interval=0.5&result=extract&result=load");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/x-ndjson");
  EXPECT_EQ(r.live->idle_poll, 500ms);
  Arm(r);
  EXPECT_EQ(*r.live->poll(), "{\"state\":\"running\"}\n");
  service_.Add("r1", "", "failed");
  service_.WakeAll();
  EXPECT_EQ(Json::parse(*r.live->poll()),
            Json::parse(R"({"state": "failed", "results": {"extract": {"rows": 3},
                                                            "load": null}})"));
  EXPECT_EQ(r.live->poll(), std::nullopt);
}

TEST_F(EventStreamTest, WaitForARunAlreadyOverAnswersOneLine) {
  Response r = Get("/api/v2/dags/etl/dagRuns/r2/wait");
  ASSERT_EQ(r.status, 200);
  Arm(r);
  EXPECT_EQ(*r.live->poll(), "{\"state\":\"success\"}\n");
  EXPECT_EQ(r.live->poll(), std::nullopt);
}

TEST_F(EventStreamTest, WaitRefusesABadIntervalAndUnknownResultTasks) {
  EXPECT_EQ(Loc(Get("/api/v2/dags/etl/dagRuns/r1/wait?interval=0")), Json({"query", "interval"}));
  EXPECT_EQ(Loc(Get("/api/v2/dags/etl/dagRuns/r1/wait?interval=-1")),
            Json({"query", "interval"}));
  EXPECT_EQ(Loc(Get("/api/v2/dags/etl/dagRuns/r1/wait?interval=nan")),
            Json({"query", "interval"}));
  EXPECT_EQ(Loc(Get("/api/v2/dags/etl/dagRuns/r1/wait?interval=1e9")),
            Json({"query", "interval"}));
  EXPECT_EQ(Loc(Get("/api/v2/dags/etl/dagRuns/r1/wait?interval=soon")),
            Json({"query", "interval"}));
  EXPECT_EQ(Get("/api/v2/dags/etl/dagRuns/r1/wait?result=nope").status, 404);
}

}  // namespace
}  // namespace dagd::api
