// The event stream and wait over real HTTP (curl -N as a user runs it): a run followed live shows
// every transition once, in commit order; a client that disconnects mid-run and resumes with
// since or Last-Event-ID misses and repeats nothing; until=terminal closes with the run; wait
// answers the final state and the requested results.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "e2e_support.hpp"
#include "http_stream.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

// slow: a → b → c, each a bash task of about 0.3 s, so that a run lasts long enough to
// disconnect in the middle of it.
void WriteSlowDag(TempDir& dags) {
  dags.Write("slow.json", R"({"dag_id": "slow", "tasks": [
    {"task_id": "a", "operator": "bash", "bash_command": "sleep 0.3"},
    {"task_id": "b", "operator": "bash", "bash_command": "sleep 0.3", "upstream": ["a"]},
    {"task_id": "c", "operator": "bash", "bash_command": "sleep 0.3", "upstream": ["b"]}]})");
}

// "seq kind task state" of each event of the run, from the database: what a stream must show.
std::vector<std::string> StoredEvents(Daemon& d, const std::string& run_id) {
  return d.db.Query(
      "SELECT seq || ' ' || kind || ' ' || coalesce(task_id, '-') || ' ' || coalesce(state, '-') "
      "FROM event WHERE dag_id = 'slow' AND run_id = '" + run_id + "' ORDER BY seq");
}

// The same description of NDJSON event lines (heartbeats left out).
std::vector<std::string> Describe(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (const std::string& line : lines) {
    Json j = Json::parse(line);
    if (j.contains("heartbeat")) continue;
    out.push_back(std::to_string(j["seq"].get<int64_t>()) + " " + j["kind"].get<std::string>() +
                  " " + (j["task_id"].is_null() ? "-" : j["task_id"].get<std::string>()) + " " +
                  (j["state"].is_null() ? "-" : j["state"].get<std::string>()));
  }
  return out;
}

bool EndsRun(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    Json j = Json::parse(line);
    if (j.value("kind", "") == "dag_run" && j.value("state", "") == "success") return true;
  }
  return false;
}

TEST(EventStream, ARunFollowedLiveShowsEveryTransitionOnceInCommitOrder) {
  TempDir dags;
  WriteSlowDag(dags);
  Daemon d(dags.path().string());
  d.Start();
  // Opened before the run exists: only what commits from now on.
  HttpStream stream(d.Url("/api/v2/events?dag_id=slow"));
  ASSERT_EQ(stream.WaitStatus(10s), 200) << stream.error();
  Trigger(d, "slow", "live");
  std::vector<std::string> lines;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!EndsRun(lines) && std::chrono::steady_clock::now() < deadline) {
    lines = stream.WaitLines(lines.size() + 1, 1s);
  }
  stream.Disconnect();
  EXPECT_EQ(stream.status(), 200);
  EXPECT_EQ(stream.content_type(), "application/x-ndjson");
  const auto stored = StoredEvents(d, "live");
  EXPECT_EQ(Describe(lines), stored) << d.process->Log();
  // queued, running, then a: queued, running, success, and so on, then success.
  EXPECT_GE(stored.size(), 11u);
}

TEST(EventStream, ResumingAfterADisconnectMissesAndRepeatsNothingAndUntilTerminalCloses) {
  TempDir dags;
  WriteSlowDag(dags);
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "slow", "resume");
  const std::string filter = "dag_id=slow&dag_run_id=resume&until=terminal";

  // First connection: from the start of the log, a few events, then the client leaves.
  std::vector<std::string> first;
  {
    HttpStream stream(d.Url("/api/v2/events?since=0&" + filter));
    first = stream.WaitLines(3, 10s);
    ASSERT_GE(first.size(), 3u) << stream.body() << stream.error();
    first.resize(3);
  }
  const int64_t last = Json::parse(first.back())["seq"].get<int64_t>();
  std::this_thread::sleep_for(400ms);  // the run moves on while nobody listens

  // Second connection: SSE, resuming with Last-Event-ID (it wins over since=0).
  HttpStream sse(d.Url("/api/v2/events?since=0&" + filter),
                 {{"Accept", "text/event-stream"}, {"Last-Event-ID", std::to_string(last)}});
  ASSERT_TRUE(sse.WaitEnd(30s)) << "until=terminal did not close the stream: " << sse.body();
  EXPECT_EQ(sse.status(), 200);
  EXPECT_EQ(sse.content_type(), "text/event-stream");
  std::vector<std::string> all = first;
  std::string id;
  for (const std::string& line : sse.WaitLines(0, 0ms)) {
    if (line.starts_with("id: ")) id = line.substr(4);
    if (line.starts_with("data: ")) {
      Json j = Json::parse(line.substr(6));
      EXPECT_EQ(std::to_string(j["seq"].get<int64_t>()), id);
      all.push_back(line.substr(6));
    }
  }
  EXPECT_EQ(Describe(all), StoredEvents(d, "resume"));

  // NDJSON resuming with since from the middle: the rest, and the stream ends with the run.
  HttpStream tail(d.Url("/api/v2/events?" + filter + "&since=" + std::to_string(last)));
  ASSERT_TRUE(tail.WaitEnd(10s));
  std::vector<std::string> resumed = first;
  for (const std::string& line : tail.WaitLines(0, 0ms)) resumed.push_back(line);
  EXPECT_EQ(Describe(resumed), StoredEvents(d, "resume"));
}

TEST(EventStream, BadRequestsGetAStatusAndASentence) {
  Daemon d;
  d.Start();
  EXPECT_EQ(HttpGet(d.Url("/api/v2/events?since=abc")).status, 422);
  EXPECT_EQ(HttpGet(d.Url("/api/v2/events?until=terminal")).status, 422);
  HttpResponse ahead = HttpGet(d.Url("/api/v2/events?since=999999"));
  EXPECT_EQ(ahead.status, 400);
  EXPECT_TRUE(Json::parse(ahead.body)["detail"].get<std::string>().starts_with("since=999999"));
  EXPECT_EQ(HttpGet(d.Url("/api/v2/events?dag_id=nope")).status, 404);
  EXPECT_EQ(HttpGet(d.Url("/api/v2/dags/example_chain/dagRuns/nope/wait")).status, 404);
}

TEST(EventStream, EventsOlderThanTheRetentionAreRemovedAndAResumeBeforeThemIsTold410) {
  TempDir dags;
  WriteSlowDag(dags);
  Daemon d(dags.path().string(), {"--event-retention", "2s"});
  d.Start();
  Trigger(d, "slow", "old");
  HttpStream done(d.Url("/api/v2/events?since=0&dag_id=slow&dag_run_id=old&until=terminal"));
  ASSERT_TRUE(done.WaitEnd(30s)) << done.body();
  // The run's events are pruned by the daemon itself once they are 2 s old (passes every 1 s).
  HttpResponse gone;
  WaitUntil(
      [&] {
        // Ends at once while the events are there (the run is over); 410 once they are not.
        gone = HttpGet(d.Url("/api/v2/events?since=0&dag_id=slow&dag_run_id=old&until=terminal"));
        return gone.status == 410;
      },
      20s);
  ASSERT_EQ(gone.status, 410) << gone.body << d.process->Log();
  const Json body = Json::parse(gone.body);
  const int64_t oldest = body["oldest_available"].get<int64_t>();
  EXPECT_GT(oldest, 1);
  // Resuming from just before the oldest kept seq is fine: nothing was lost to that reader.
  HttpStream from(d.Url("/api/v2/events?since=" + std::to_string(oldest - 1)));
  EXPECT_EQ(from.WaitStatus(10s), 200) << from.body();
}

TEST(EventStream, ARetentionThatIsNotADurationStopsTheDaemonWithASentence) {
  for (const std::string bad : {"0s", "soon", "-1d"}) {
    CliResult r = RunDagd({"--event-retention", bad}, "", 10s);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.err.find("--event-retention '" + bad + "' is not a duration"), std::string::npos)
        << r.err;
  }
}

TEST(EventStream, LiveStreamsBeyondTheCapAreAnswered503) {
  Daemon d(ExampleDags(), {"--max-live-streams", "1"});
  d.Start();
  HttpStream first(d.Url("/api/v2/events"));
  ASSERT_EQ(first.WaitStatus(10s), 200) << first.error();
  HttpResponse second = HttpGet(d.Url("/api/v2/events"));
  EXPECT_EQ(second.status, 503) << second.body;
  first.Disconnect();
  // The slot is given back when the first client leaves.
  long status = 0;
  WaitUntil([&] {
    status = HttpStream(d.Url("/api/v2/events")).WaitStatus(5s);
    return status == 200;
  });
  EXPECT_EQ(status, 200);
}

TEST(Wait, AnswersTheStateUntilTheRunEndsThenTheFinalStateWithResults) {
  TempDir dags;
  WriteSlowDag(dags);
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "slow", "waited");
  // a's return value, written as any writer may.
  d.db.Query(
      "INSERT INTO xcom (ti_id, key, value) SELECT id, 'return_value', '{\"rows\": 3}' "
      "FROM task_instance WHERE run_id = 'waited' AND task_id = 'a' RETURNING key");
  HttpStream wait(
      d.Url("/api/v2/dags/slow/dagRuns/waited/wait?interval=0.2&result=a&result=c"));
  ASSERT_TRUE(wait.WaitEnd(30s)) << wait.body();
  EXPECT_EQ(wait.status(), 200);
  const auto lines = wait.WaitLines(0, 0ms);
  ASSERT_GE(lines.size(), 2u) << wait.body();
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    const std::string state = Json::parse(lines[i])["state"];
    EXPECT_TRUE(state == "queued" || state == "running") << lines[i];
  }
  EXPECT_EQ(Json::parse(lines.back()),
            Json::parse(R"({"state": "success", "results": {"a": {"rows": 3}, "c": null}})"));
}

}  // namespace
}  // namespace dagd::testing
