// Task logs of a running try over real HTTP: follow=true (curl -N) receives every line in order
// and the body ends once the try does; reading with continuation tokens in a loop while the try
// runs yields the whole log exactly once.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "e2e_support.hpp"
#include "http_stream.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

// talk: one bash task printing 20 lines over about 2 seconds.
void WriteTalkDag(TempDir& dags) {
  dags.Write("talk.json", R"({"dag_id": "talk", "tasks": [
    {"task_id": "t", "operator": "bash",
     "bash_command": "for i in $(seq 1 20); do echo line-$i; sleep 0.1; done"}]})");
}

const std::string kTi = "/api/v2/dags/talk/dagRuns/r/taskInstances/t";

// Waits until the try of `talk/r/t` is queued or later, so that its log can be asked for.
void WaitForFirstTry(Daemon& d) {
  ASSERT_TRUE(WaitUntil([&] {
    HttpResponse r = HttpGet(d.Url(kTi));
    return r.status == 200 && Json::parse(r.body)["try_number"].get<int>() >= 1;
  })) << "the try was not queued";
}

std::string TiState(Daemon& d) { return GetJson(d.Url(kTi))["state"].get<std::string>(); }

// The events of a JSON log answer's content.
std::vector<std::string> Events(const Json& body) {
  std::vector<std::string> out;
  for (const Json& e : body["content"]) out.push_back(e["event"].get<std::string>());
  return out;
}

// The "line-N" lines of `text`, in order.
std::vector<std::string> PrintedLines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    if (line.find("line-") != std::string::npos) out.push_back(line.substr(line.find("line-")));
    start = end + 1;
  }
  return out;
}

std::vector<std::string> Expected() {
  std::vector<std::string> out;
  for (int i = 1; i <= 20; ++i) out.push_back("line-" + std::to_string(i));
  return out;
}

TEST(LogFollow, AFollowedLogReceivesEveryLineInOrderAndEndsWithTheTry) {
  TempDir dags;
  WriteTalkDag(dags);
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "talk", "r");
  WaitForFirstTry(d);
  HttpStream text(d.Url(kTi + "/logs/1?follow=true"), {{"Accept", "text/plain"}});
  HttpStream json(d.Url(kTi + "/logs/1?follow=true"));
  ASSERT_EQ(text.WaitStatus(10s), 200) << text.error();
  // Lines arrive while the task runs, not all at its end.
  EXPECT_TRUE(WaitUntil([&] { return !PrintedLines(text.body()).empty(); }, 10s));
  // The try's start commits up to start_grace after its process starts, later under load.
  const std::string live_state = TiState(d);
  EXPECT_TRUE(live_state == "queued" || live_state == "running")
      << "the log should be live before the try ends, the task is " << live_state;

  ASSERT_TRUE(text.WaitEnd(30s)) << "the followed body did not end with the try: " << text.body();
  ASSERT_TRUE(json.WaitEnd(10s)) << json.body();
  EXPECT_EQ(TiState(d), "success");
  EXPECT_EQ(text.content_type(), "text/plain; charset=utf-8");
  EXPECT_EQ(PrintedLines(text.body()), Expected());
  // The followed body is the log, byte for byte, as read once the try is over.
  HttpResponse whole = HttpGet(d.Url(kTi + "/logs/1"), {{"Accept", "text/plain"}});
  EXPECT_EQ(text.body(), whole.body);

  EXPECT_EQ(json.content_type(), "application/json");
  Json document = Json::parse(json.body());
  EXPECT_TRUE(document["continuation_token"].is_null());
  EXPECT_EQ(Events(document), Events(GetJson(d.Url(kTi + "/logs/1"))));
}

TEST(LogFollow, ReadingWithContinuationTokensWhileTheTryRunsYieldsTheLogExactlyOnce) {
  TempDir dags;
  WriteTalkDag(dags);
  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "talk", "r");
  WaitForFirstTry(d);
  std::vector<std::string> read;
  std::string token;
  int reads_with_content = 0;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    HttpResponse r = HttpGet(d.Url(kTi + "/logs/1" + (token.empty() ? "" : "?token=" + token)));
    ASSERT_EQ(r.status, 200) << r.body;
    Json body = Json::parse(r.body);
    const auto events = Events(body);
    if (!events.empty()) ++reads_with_content;
    read.insert(read.end(), events.begin(), events.end());
    if (body["continuation_token"].is_null()) break;
    token = body["continuation_token"].get<std::string>();
    std::this_thread::sleep_for(150ms);
  }
  EXPECT_GE(reads_with_content, 3) << "the log should have been read in several pieces";
  EXPECT_EQ(TiState(d), "success");
  EXPECT_EQ(read, Events(GetJson(d.Url(kTi + "/logs/1"))));
  std::string lines;
  for (const std::string& e : read) lines += e + "\n";
  EXPECT_EQ(PrintedLines(lines), Expected());

  // The last token names the end: read again, it gives nothing and says the log is over.
  Json again = GetJson(d.Url(kTi + "/logs/1?token=" + token));
  EXPECT_TRUE(again["continuation_token"].is_null());
  // A token is for its own try: try 2 does not exist (404); a bad token is a 400.
  EXPECT_EQ(HttpGet(d.Url(kTi + "/logs/2?token=" + token)).status, 404);
  EXPECT_EQ(HttpGet(d.Url(kTi + "/logs/1?token=x" + token)).status, 400);
  EXPECT_EQ(HttpGet(d.Url(kTi + "/logs/1?follow=true&since=1")).status, 422);
}

}  // namespace
}  // namespace dagd::testing
