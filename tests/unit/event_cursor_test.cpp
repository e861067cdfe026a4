// EventCursor and RunWaiter (GET /api/v2/events, .../wait) against an in-memory event log.
#include "dagd/api/event_cursor.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "dagd/scheduler/time.hpp"

namespace dagd::api {
namespace {

using namespace std::chrono_literals;
using scheduler::EventRecord;

// An event log in memory, read as the store reads it: a page of up to `limit` matching events
// after a seq, covering up to the head (or the last event returned when the page is full).
class FakeLog {
 public:
  int64_t Add(std::string kind, std::string run_id, std::string task_id, std::string state) {
    EventRecord e;
    e.seq = static_cast<int64_t>(events_.size()) + 1;
    e.at = *scheduler::ParseRfc3339("2026-01-01T00:00:00Z") + std::chrono::seconds(e.seq);
    e.kind = std::move(kind);
    e.dag_id = "etl";
    e.run_id = std::move(run_id);
    e.task_id = std::move(task_id);
    e.state = std::move(state);
    if (e.kind == "task_instance") {
      e.try_number = 1;
      e.payload = {{"ti_id", "0190"}, {"max_tries", 2}, {"hostname", "h"}};
    } else {
      e.payload = {{"run_type", "manual"}};
    }
    events_.push_back(e);
    return e.seq;
  }
  int64_t Run(const std::string& run_id, const std::string& state) {
    return Add("dag_run", run_id, "", state);
  }
  int64_t Task(const std::string& run_id, const std::string& task_id, const std::string& state) {
    return Add("task_instance", run_id, task_id, state);
  }
  int64_t head() const { return static_cast<int64_t>(events_.size()); }

  // Reads the events of `run_id` only when it is set.
  ReadEventPage Reader(std::string run_id = "") {
    return [this, run_id](int64_t after, int limit) -> StatusOr<scheduler::EventPage> {
      ++reads;
      if (failing) return Status::Unavailable("injected: database down");
      scheduler::EventPage page;
      page.head = head();
      page.oldest = pruned_through + 1;
      page.last_seq = std::max(after, head());
      for (const EventRecord& e : events_) {
        if (e.seq <= std::max(after, pruned_through)) continue;
        if (!run_id.empty() && e.run_id != run_id) continue;
        page.events.push_back(e);
        if (static_cast<int>(page.events.size()) == limit) {
          page.last_seq = e.seq;
          break;
        }
      }
      return page;
    };
  }

  int reads = 0;
  bool failing = false;
  int64_t pruned_through = 0;  // events up to this seq were removed by retention

 private:
  std::vector<EventRecord> events_;
};

std::vector<Json> Lines(const std::string& text) {
  std::vector<Json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(Json::parse(line));
  return out;
}

std::vector<int64_t> Seqs(const std::string& text) {
  std::vector<int64_t> out;
  for (const Json& j : Lines(text)) out.push_back(j.at("seq").get<int64_t>());
  return out;
}

StreamOptions Options(int page_size = 100, int64_t max_lag = 10000) {
  StreamOptions o;
  o.page_size = page_size;
  o.max_lag = max_lag;
  o.heartbeat = 15s;
  return o;
}

const SteadyTime kT0{};

EventCursor::Start From(int64_t after_seq, int64_t head) {
  EventCursor::Start start;
  start.after_seq = after_seq;
  start.head = head;
  return start;
}

RunWaiter::Start Waiting(std::string state, int64_t after_seq, std::chrono::milliseconds interval,
                         std::vector<std::string> results = {}) {
  RunWaiter::Start start;
  start.state = std::move(state);
  start.after_seq = after_seq;
  start.interval = interval;
  start.result_task_ids = std::move(results);
  return start;
}

TEST(EventCursor, NdjsonLineCarriesTheEventFieldsAndItsPayload) {
  FakeLog log;
  log.Run("r1", "queued");
  log.Task("r1", "extract", "running");
  EventCursor cursor(Options(), EventFormat::kNdjson, From(0, 2), log.Reader());
  auto lines = Lines(*cursor.Poll(kT0));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], Json::parse(R"({"seq": 1, "kind": "dag_run", "dag_id": "etl",
      "dag_run_id": "r1", "task_id": null, "map_index": null, "try_number": null,
      "state": "queued", "timestamp": "2026-01-01T00:00:01Z", "run_type": "manual"})"));
  EXPECT_EQ(lines[1], Json::parse(R"({"seq": 2, "kind": "task_instance", "dag_id": "etl",
      "dag_run_id": "r1", "task_id": "extract", "map_index": -1, "try_number": 1,
      "state": "running", "timestamp": "2026-01-01T00:00:02Z", "ti_id": "0190",
      "max_tries": 2, "hostname": "h"})"));
}

TEST(EventCursor, SendsOnlyTheEventsAfterItsStartingSeq) {
  FakeLog log;
  for (int i = 0; i < 5; ++i) log.Task("r1", "t" + std::to_string(i), "running");
  EventCursor cursor(Options(), EventFormat::kNdjson, From(3, 5), log.Reader());
  EXPECT_EQ(Seqs(*cursor.Poll(kT0)), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(cursor.position(), 5);
}

TEST(EventCursor, ReadsOnlyWhenWokenAndSendsEachEventOnce) {
  FakeLog log;
  log.Run("r1", "queued");
  EventCursor cursor(Options(), EventFormat::kNdjson, From(1, 1), log.Reader());
  EXPECT_EQ(*cursor.Poll(kT0), "");  // the first poll reads: nothing new
  EXPECT_EQ(log.reads, 1);
  EXPECT_EQ(*cursor.Poll(kT0 + 1s), "");  // not woken: no read
  EXPECT_EQ(log.reads, 1);
  log.Run("r1", "running");
  log.Task("r1", "extract", "queued");
  cursor.Wake();
  EXPECT_EQ(Seqs(*cursor.Poll(kT0 + 2s)), (std::vector<int64_t>{2, 3}));
  cursor.Wake();
  EXPECT_EQ(*cursor.Poll(kT0 + 3s), "");
  EXPECT_EQ(log.reads, 3);
}

TEST(EventCursor, APollSendsAtMostOnePageAndSaysWhenItIsBehind) {
  FakeLog log;
  for (int i = 0; i < 7; ++i) log.Task("r1", "t" + std::to_string(i), "running");
  EventCursor cursor(Options(3), EventFormat::kNdjson, From(0, 7),
                     log.Reader());
  EXPECT_EQ(Seqs(*cursor.Poll(kT0)), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(cursor.Behind());
  EXPECT_EQ(Seqs(*cursor.Poll(kT0)), (std::vector<int64_t>{4, 5, 6}));
  EXPECT_EQ(Seqs(*cursor.Poll(kT0)), (std::vector<int64_t>{7}));
  EXPECT_FALSE(cursor.Behind());
}

TEST(EventCursor, AFilteredStreamMovesPastEventsItDoesNotSend) {
  FakeLog log;
  log.Run("other", "queued");
  log.Run("other", "running");
  log.Run("r1", "queued");
  log.Run("other", "success");
  EventCursor cursor(Options(), EventFormat::kNdjson, From(0, 4),
                     log.Reader("r1"));
  EXPECT_EQ(Seqs(*cursor.Poll(kT0)), (std::vector<int64_t>{3}));
  EXPECT_EQ(cursor.position(), 4);  // covered, though not sent
}

TEST(EventCursor, HeartbeatAfterFifteenQuietSecondsCarriesThePosition) {
  FakeLog log;
  log.Run("r1", "queued");
  EventCursor cursor(Options(), EventFormat::kNdjson, From(1, 1), log.Reader());
  EXPECT_EQ(*cursor.Poll(kT0), "");
  EXPECT_EQ(*cursor.Poll(kT0 + 14s), "");
  log.Run("other", "queued");  // committed, notification lost: the heartbeat reads
  auto lines = Lines(*cursor.Poll(kT0 + 15s));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["seq"], 2);
  EXPECT_FALSE(lines[0].contains("heartbeat"));
  // Quiet again: the next heartbeat is 15 s after the last piece sent.
  EXPECT_EQ(*cursor.Poll(kT0 + 29s), "");
  EXPECT_EQ(Lines(*cursor.Poll(kT0 + 30s))[0], Json::parse(R"({"heartbeat": true, "seq": 2})"));
}

TEST(EventCursor, SseFramesEachEventWithItsSeqAsIdAndItsKindAsEventName) {
  FakeLog log;
  log.Task("r1", "extract", "success");
  EventCursor cursor(Options(), EventFormat::kSse, From(0, 1), log.Reader());
  const std::string piece = *cursor.Poll(kT0);
  const std::string prefix = "id: 1\nevent: task_instance\ndata: ";
  ASSERT_EQ(piece.substr(0, prefix.size()), prefix);
  ASSERT_TRUE(piece.ends_with("\n\n"));
  const Json data = Json::parse(piece.substr(prefix.size(), piece.size() - prefix.size() - 2));
  EXPECT_EQ(data["task_id"], "extract");
  EXPECT_EQ(*cursor.Poll(kT0 + 15s), ": keep-alive\n\n");
}

TEST(EventCursor, UntilTerminalEndsAfterTheWatchedRunsTerminalEvent) {
  FakeLog log;
  log.Run("r1", "running");
  log.Run("other", "failed");  // another run's end does not end the stream
  log.Task("r1", "extract", "success");
  log.Run("r1", "success");
  log.Run("r1", "queued");  // cleared afterwards: not sent
  EventCursor::Start start = From(0, 5);
  start.until_terminal = std::make_pair("etl", "r1");
  EventCursor cursor(Options(), EventFormat::kNdjson, start, log.Reader());
  EXPECT_EQ(Seqs(*cursor.Poll(kT0)), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(cursor.Poll(kT0), std::nullopt);
}

TEST(EventCursor, UntilTerminalOfARunAlreadyOverEndsOnceCaughtUp) {
  FakeLog log;
  log.Run("r1", "success");
  log.Run("other", "queued");
  EventCursor::Start start = From(1, 2);
  start.until_terminal = std::make_pair("etl", "r1");
  start.run_was_terminal = true;
  EventCursor cursor(Options(), EventFormat::kNdjson, start, log.Reader("r1"));
  EXPECT_EQ(cursor.Poll(kT0), std::nullopt);
}

TEST(EventCursor, ASlowConsumerGetsAFinalErrorLineWithWhereToResume) {
  FakeLog log;
  log.Run("r1", "queued");
  EventCursor cursor(Options(2, 3), EventFormat::kNdjson, From(0, 1),
                     log.Reader());
  EXPECT_EQ(Seqs(*cursor.Poll(kT0)), (std::vector<int64_t>{1}));
  for (int i = 0; i < 4; ++i) log.Task("r1", "t" + std::to_string(i), "running");
  cursor.Wake();
  auto lines = Lines(*cursor.Poll(kT0));  // 4 events behind, the limit is 3
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0]["error"].get<std::string>().starts_with("slow consumer: 4 events behind"));
  EXPECT_EQ(lines[0]["resume_since"], 1);
  EXPECT_EQ(cursor.Poll(kT0), std::nullopt);
}

TEST(EventCursor, AReplayFromAnOldSeqIsNotASlowConsumer) {
  FakeLog log;
  for (int i = 0; i < 10; ++i) log.Task("r1", "t" + std::to_string(i), "running");
  EventCursor cursor(Options(4, 3), EventFormat::kNdjson, From(0, 10),
                     log.Reader());
  std::vector<int64_t> seqs;
  while (cursor.Behind() || seqs.empty()) {
    for (int64_t s : Seqs(*cursor.Poll(kT0))) seqs.push_back(s);
  }
  EXPECT_EQ(seqs.size(), 10u);
}

TEST(EventCursor, EventsRemovedByRetentionBeforeTheyWereReadEndTheStreamWithAnError) {
  FakeLog log;
  for (int i = 0; i < 10; ++i) log.Task("r1", "t" + std::to_string(i), "running");
  EventCursor cursor(Options(4), EventFormat::kNdjson, From(0, 10), log.Reader());
  EXPECT_EQ(Seqs(*cursor.Poll(kT0)), (std::vector<int64_t>{1, 2, 3, 4}));
  log.pruned_through = 6;  // 5 and 6 go before this reader had them
  auto lines = Lines(*cursor.Poll(kT0));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0]["error"].get<std::string>().find("removed by the event log's retention"),
            std::string::npos);
  EXPECT_EQ(lines[0]["resume_since"], 4);
  EXPECT_EQ(cursor.Poll(kT0), std::nullopt);
  // Pruning what a reader has already had changes nothing for it.
  EventCursor caught_up(Options(4), EventFormat::kNdjson, From(6, 10), log.Reader());
  EXPECT_EQ(Seqs(*caught_up.Poll(kT0)), (std::vector<int64_t>{7, 8, 9, 10}));
}

TEST(EventCursor, SseSlowConsumerErrorIsAnErrorEvent) {
  FakeLog log;
  for (int i = 0; i < 5; ++i) log.Task("r1", "t" + std::to_string(i), "running");
  EventCursor cursor(Options(2, 3), EventFormat::kSse, From(0, 0), log.Reader());
  const std::string piece = *cursor.Poll(kT0);
  EXPECT_TRUE(piece.starts_with("event: error\ndata: {")) << piece;
}

TEST(EventCursor, AnUnreadableLogIsRetriedThenEndsTheStreamWithAnError) {
  FakeLog log;
  log.Run("r1", "queued");
  log.failing = true;
  EventCursor cursor(Options(), EventFormat::kNdjson, From(0, 1), log.Reader());
  EXPECT_EQ(*cursor.Poll(kT0), "");
  EXPECT_EQ(*cursor.Poll(kT0 + 1s), "");  // retried without a wake
  EXPECT_EQ(log.reads, 2);
  log.failing = false;
  EXPECT_EQ(Seqs(*cursor.Poll(kT0 + 2s)), (std::vector<int64_t>{1}));
  log.failing = true;
  cursor.Wake();
  EXPECT_EQ(*cursor.Poll(kT0 + 3s), "");
  auto lines = Lines(*cursor.Poll(kT0 + 33s));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["resume_since"], 1);
  EXPECT_EQ(cursor.Poll(kT0 + 34s), std::nullopt);
}

// --- RunWaiter ---------------------------------------------------------------------------------

RunWaiter::ReadResult Results() {
  return [](const std::string& task_id) -> StatusOr<Json> {
    if (task_id == "extract") return Json(42);
    return Json(nullptr);
  };
}

TEST(RunWaiter, SendsTheStateAtOnceThenEveryInterval) {
  FakeLog log;
  log.Run("r1", "running");
  RunWaiter waiter(Waiting("running", 1, 2s), 100, log.Reader("r1"), Results());
  EXPECT_EQ(*waiter.Poll(kT0), "{\"state\":\"running\"}\n");
  EXPECT_EQ(*waiter.Poll(kT0 + 1s), "");
  EXPECT_EQ(*waiter.Poll(kT0 + 2s), "{\"state\":\"running\"}\n");
}

TEST(RunWaiter, EndsAsSoonAsTheRunsTerminalEventIsReadWithTheRequestedResults) {
  FakeLog log;
  log.Run("r1", "running");
  RunWaiter waiter(Waiting("running", 1, 60s, {"extract", "load"}), 100, log.Reader("r1"),
                   Results());
  EXPECT_EQ(*waiter.Poll(kT0), "{\"state\":\"running\"}\n");
  log.Run("other", "failed");
  log.Run("r1", "success");
  waiter.Wake();
  EXPECT_EQ(Json::parse(*waiter.Poll(kT0 + 1s)),
            Json::parse(R"({"state": "success", "results": {"extract": 42, "load": null}})"));
  EXPECT_EQ(waiter.Poll(kT0 + 2s), std::nullopt);
}

TEST(RunWaiter, ARunAlreadyOverGetsOnlyTheLastLine) {
  FakeLog log;
  log.Run("r1", "failed");
  RunWaiter waiter(Waiting("failed", 1, 1s), 100, log.Reader("r1"), Results());
  EXPECT_EQ(*waiter.Poll(kT0), "{\"state\":\"failed\"}\n");
  EXPECT_EQ(waiter.Poll(kT0), std::nullopt);
}

}  // namespace
}  // namespace dagd::api
