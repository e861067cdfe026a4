#include "task_logs.hpp"

#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <optional>
#include <utility>

#include "dagd/api/codecs.hpp"
#include "dagd/api/log_token.hpp"
#include "live_body.hpp"
#include "request_text.hpp"
#include "responses.hpp"

namespace dagd::api {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Bytes read from a log file at a time: what a streamed log costs while the client reads it.
constexpr size_t kLogReadBytes = 64 << 10;
// Encoding can grow text about 13 times (a log of empty lines becomes one JSON object per
// line), so an encoded log is read in small pieces and a chunk ends once it reaches
// kLogReadBytes: a chunk stays under kLogReadBytes + 13 * kEncodedReadBytes whatever the log
// holds.
constexpr size_t kEncodedReadBytes = 4 << 10;
// A follower asks whether its try is over when a commit wakes it, at most this often...
constexpr auto kMinStateCheck = 250ms;
// ...and this often without one, should a notification be lost (the database reconnecting).
constexpr auto kMaxStateCheck = 5s;

constexpr std::string_view kTokenHeader = "Airflow-Continuation-Token";

// One chunk of the log: raw bytes (no encoder) or encoded events; `idle` when the reader had
// nothing left to give.
struct Chunk {
  std::string text;
  bool idle = false;
};

// `grow`: take in what the file gained once what was readable is read (following).
Chunk ReadChunk(scheduler::LogReader& reader, LogEncoder* encoder, bool grow) {
  const size_t piece_bytes = encoder ? kEncodedReadBytes : kLogReadBytes;
  Chunk chunk;
  while (chunk.text.size() < kLogReadBytes) {
    std::string piece = reader.Read(piece_bytes);
    if (piece.empty() && grow && reader.Grow()) piece = reader.Read(piece_bytes);
    if (piece.empty()) {
      chunk.idle = true;
      break;
    }
    if (!encoder) {
      chunk.text = std::move(piece);
      break;
    }
    chunk.text += encoder->Feed(piece);  // may be empty: the piece only extended a line
  }
  return chunk;
}

// The log as it is now: every chunk, then (JSON) the continuation token.
BodySource Snapshot(scheduler::LogReader log, std::optional<LogFormat> format) {
  struct State {
    scheduler::LogReader reader;
    std::optional<LogEncoder> encoder;
    bool finished = false;
  };
  auto state = std::make_shared<State>();
  state->reader = std::move(log);
  if (format) state->encoder.emplace(*format);
  // BodySource must be copyable while the reader is not: the state is shared by the copies.
  return [state]() -> std::optional<std::string> {
    if (state->finished) return std::nullopt;
    Chunk chunk = ReadChunk(state->reader, state->encoder ? &*state->encoder : nullptr, false);
    if (chunk.idle) {
      state->finished = true;
      if (state->encoder) {
        const scheduler::LogReader& r = state->reader;
        chunk.text += state->encoder->Finish(
            r.try_ended() ? Json(nullptr) : Json(EncodeLogToken({r.try_key(), r.position()})));
      }
    }
    if (chunk.text.empty()) return std::nullopt;  // an empty chunk would end a chunked body
    return std::move(chunk.text);
  };
}

// A running try's log as it grows (follow=true): polled by the server on every wake and every
// idle poll; it reads what the file gained and ends once the try is over and the file drained.
class LogFollower {
 public:
  LogFollower(scheduler::Service& service, TryId id, scheduler::LogReader reader,
              std::optional<LogFormat> format)
      : service_(service), id_(std::move(id)), reader_(std::move(reader)) {
    if (format) encoder_.emplace(*format);
    ended_ = reader_.try_ended();
  }

  // From the change watch's thread: a commit may have ended the try.
  void Wake() { state_changed_ = true; }

  std::optional<std::string> Poll(Clock::time_point now) {
    if (finished_) return std::nullopt;
    CheckState(now);
    // Read after the state: when the try was over before this look at the file, the file then
    // held all of its log.
    const bool ended = ended_;
    Chunk chunk = ReadChunk(reader_, encoder_ ? &*encoder_ : nullptr, true);
    behind_ = !chunk.idle;
    if (chunk.idle && ended) {
      finished_ = true;
      if (encoder_) chunk.text += encoder_->Finish(nullptr);
      if (chunk.text.empty()) return std::nullopt;
    }
    return std::move(chunk.text);
  }

  // The last poll stopped with bytes left to read: poll again soon.
  bool Behind() const { return behind_; }

 private:
  void CheckState(Clock::time_point now) {
    if (ended_) return;
    const bool due = now >= last_check_ + kMaxStateCheck ||
                     (state_changed_.load() && now >= last_check_ + kMinStateCheck);
    if (!due) return;
    state_changed_ = false;
    last_check_ = now;
    auto ti = service_.GetTaskInstance(id_.dag_id, id_.run_id, id_.task_id);
    if (!ti.ok()) {
      // The run was deleted: its try is over. Other errors (the database away) are retried.
      if (ti.status().code() == StatusCode::kNotFound) ended_ = true;
      return;
    }
    // A task instance of another id is a run deleted and triggered again: the followed try is
    // gone with the first.
    ended_ = ti->id + "/" + std::to_string(id_.try_number) != reader_.try_key() ||
             scheduler::TryHasEnded(*ti, id_.try_number);
  }

  scheduler::Service& service_;
  const TryId id_;
  scheduler::LogReader reader_;
  std::optional<LogEncoder> encoder_;
  bool ended_ = false;
  bool finished_ = false;
  bool behind_ = false;
  Clock::time_point last_check_{};  // the first poll checks: the try may have ended meanwhile
  std::atomic<bool> state_changed_{false};
};

}  // namespace

Response ServeTaskLog(scheduler::Service& service, const StreamOptions& options, const Request& req,
                      const Query& query, const TryId& id) {
  Errors errors;
  const bool full_content = query.Bool("full_content", errors).value_or(false);
  const bool follow = query.Bool("follow", errors).value_or(false);
  std::optional<int> map_index;
  if (query.First("map_index")) {
    map_index = query.Int("map_index", -1, std::numeric_limits<int>::min(), errors);
  }
  if (!errors.empty()) return errors.ToResponse();
  // dagd maps no task: every task instance has map_index -1, as Airflow's lookup finds none else.
  if (map_index && *map_index != -1) return Detail(404, "TaskInstance not found");

  scheduler::LogRange range;
  // Airflow treats an empty token as none.
  if (auto text = query.First("token"); text && !text->empty()) {
    auto token = DecodeLogToken(*text);
    if (!token) {
      return Detail(400,
                    "The continuation token is not one this server gave out; pass the "
                    "continuation_token of a previous response unchanged");
    }
    range.offset = full_content ? 0 : token->offset;
    range.try_key = std::move(token->try_key);
  }
  range.uncapped = full_content;

  auto accept = req.headers.find("accept");
  const std::string type = accept == req.headers.end() ? "" : Lower(accept->second);
  const bool wants_json = type.empty() || type.find("application/json") != std::string::npos;
  std::optional<LogFormat> format = LogFormat::kJson;
  std::string content_type = "application/json";
  if (!wants_json && type.find("application/x-ndjson") != std::string::npos) {
    format = LogFormat::kNdjson;
    content_type = "application/x-ndjson";
  } else if (!wants_json && type.find("text/plain") != std::string::npos) {
    format.reset();
    content_type = "text/plain; charset=utf-8";
  }
  // Events are whole lines: a read that ends mid-line would split one line into two events.
  range.whole_lines = format.has_value() && !follow;

  auto log = service.OpenLog(id.dag_id, id.run_id, id.task_id, id.try_number, range);
  if (!log.ok()) return ErrorResponse(log.status());

  Response response(200, content_type, "");
  if (follow) {
    response.live =
        MakeLiveBody<LogFollower>(service, options.log_poll, service, id, std::move(*log), format);
    return response;
  }
  if (format != LogFormat::kJson && !log->try_ended()) {
    // The header precedes the body: it names where the bytes this response will serve end.
    response.headers.emplace_back(kTokenHeader, EncodeLogToken({log->try_key(), log->end()}));
  }
  response.stream = Snapshot(std::move(*log), format);
  return response;
}

}  // namespace dagd::api
