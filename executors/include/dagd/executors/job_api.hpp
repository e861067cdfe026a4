// The API compiled transform jobs are written against.
//
// A Job is a plain function of a JobContext. It signals failure by throwing (any exception; the
// message, what() for std::exception, becomes the try's error). Returning normally is success.
// Jobs run on the executor's worker threads, so a job must not block forever: long work checks
// cancelled() (set on shutdown and when execution_timeout passes) or sleeps with WaitFor().
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::executors {

using Json = scheduler::Json;
using scheduler::TimePoint;

// What one try knows about itself. Plain values, filled by the executor (or by a test).
struct JobInfo {
  Json args = Json::object();    // the task's args, templates rendered
  Json params = Json::object();  // DAG params, top-level keys overridden by run conf keys
  Json conf = Json::object();    // the run's conf, verbatim
  std::string dag_id;
  std::string run_id;
  std::string task_id;
  int try_number = 1;
  std::optional<TimePoint> logical_date;
  std::optional<TimePoint> data_interval_start;
  std::optional<TimePoint> data_interval_end;
};

// The context handed to a running job. Owned by the executor for the duration of one try; a job
// must not keep a reference after it returns. Log, XcomPush and cancelled are thread-safe (a job
// may fan out to its own threads); the accessors return immutable data.
class JobContext {
 public:
  // Receives one log line (without timestamp or newline); must be thread-safe.
  using LogSink = std::function<void(std::string_view line)>;

  // `cancelled` is the try's cancellation token; null means "never cancelled".
  JobContext(JobInfo info, LogSink log, std::shared_ptr<const std::atomic<bool>> cancelled);
  JobContext(const JobContext&) = delete;
  JobContext& operator=(const JobContext&) = delete;

  const Json& args() const { return info_.args; }
  const Json& params() const { return info_.params; }
  const Json& conf() const { return info_.conf; }
  const std::string& dag_id() const { return info_.dag_id; }
  const std::string& run_id() const { return info_.run_id; }
  const std::string& task_id() const { return info_.task_id; }
  int try_number() const { return info_.try_number; }
  const std::optional<TimePoint>& logical_date() const { return info_.logical_date; }
  const std::optional<TimePoint>& data_interval_start() const { return info_.data_interval_start; }
  const std::optional<TimePoint>& data_interval_end() const { return info_.data_interval_end; }

  // Appends a timestamped line to the per-try log.
  void Log(std::string_view line);

  // True once the try should stop: daemon shutdown or execution_timeout reached. Cooperative: the
  // executor never kills a thread, so a job that ignores it runs to its end.
  bool cancelled() const;

  // Sleeps `duration` in small steps; returns false early (and promptly) when cancelled.
  bool WaitFor(std::chrono::milliseconds duration) const;

  // Records an XCom returned with a successful outcome. Pushing a key twice keeps the last value.
  // Throws std::invalid_argument (failing the try) for an empty key or a NUL character anywhere
  // in key or value: PostgreSQL cannot store U+0000.
  void XcomPush(std::string key, Json value);

  // The XComs pushed so far, in first-push order; leaves the context without them.
  std::vector<scheduler::XcomEntry> TakeXcom();

 private:
  const JobInfo info_;
  const LogSink log_;
  const std::shared_ptr<const std::atomic<bool>> cancelled_;
  std::mutex xcom_mu_;  // guards xcom_
  std::vector<scheduler::XcomEntry> xcom_;
};

using Job = std::function<void(JobContext&)>;

}  // namespace dagd::executors
