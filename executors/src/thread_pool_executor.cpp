#include "dagd/executors/thread_pool_executor.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>  // sigabbrev_np
#include <exception>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "bash_operator.hpp"
#include "dagd/executors/system_account.hpp"
#include "dagd/executors/template.hpp"
#include "process_group.hpp"
#include "task_account.hpp"
#include "try_control.hpp"
#include "try_directory.hpp"
#include "try_log.hpp"

namespace dagd::executors {
namespace {

using scheduler::TaskAssignment;
using scheduler::TaskEvent;
using scheduler::TaskOutcome;

std::shared_ptr<spdlog::logger> Logger() {
  auto logger = spdlog::get("executors");
  return logger ? logger : spdlog::default_logger();
}

std::string DefaultHostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

constexpr std::string_view kTaskPath = "/usr/local/bin:/usr/bin:/bin";

std::vector<std::string> InheritedEnvironment() {
  std::vector<std::string> out;
  for (const char* name : {"LANG", "TZ"}) {
    if (const char* value = std::getenv(name); value != nullptr) {
      out.push_back(std::string(name) + "=" + value);
    }
  }
  return out;
}

// A name bash can hold as a variable and an environment entry can carry.
bool ValidEnvName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name.front()))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

TaskOutcome Failed(std::string error) {
  TaskOutcome o;
  o.kind = TaskOutcome::Kind::kFailed;
  o.error = std::move(error);
  return o;
}

TaskOutcome Succeeded() {
  TaskOutcome o;
  o.kind = TaskOutcome::Kind::kSuccess;
  return o;
}

TaskOutcome Interrupted() {
  TaskOutcome o;
  o.kind = TaskOutcome::Kind::kInterrupted;
  o.error = "interrupted: the executor was asked to stop running tries";
  return o;
}

// A stop request decides the outcome whatever the job or command did afterwards.
std::optional<TaskOutcome> StopOutcome(const TryControl& control) {
  switch (control.stop_reason()) {
    case StopReason::kTimeout:
      return Failed(TimeoutMessage(control.timeout));
    case StopReason::kInterrupt:
      return Interrupted();
    case StopReason::kStopped:
      return Failed(control.stop_message);
    case StopReason::kNone:
      break;
  }
  return std::nullopt;
}

TaskOutcome FromWaitStatus(int status) {
  if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    if (code == 0) return Succeeded();
    return Failed(fmt::format("command exited with status {}", code));
  }
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return Failed(fmt::format("command was killed by signal {}{} ({})", abbrev ? "SIG" : "",
                              abbrev ? abbrev : std::to_string(sig), sig));
  }
  return Failed(fmt::format("command ended with wait status {}", status));
}

std::string_view KindName(TaskOutcome::Kind kind) {
  switch (kind) {
    case TaskOutcome::Kind::kSuccess:
      return "success";
    case TaskOutcome::Kind::kFailed:
      return "failed";
    case TaskOutcome::Kind::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

void Emit(const scheduler::TaskEventSink& sink, TaskEvent event) {
  if (!sink) return;
  const std::string ti_id = event.ti_id;
  try {
    sink(std::move(event));
  } catch (const std::exception& e) {
    Logger()->error("event sink threw ti={} error=\"{}\"", ti_id, e.what());
  } catch (...) {
    Logger()->error("event sink threw ti={} error=\"unknown exception\"", ti_id);
  }
}

}  // namespace

std::string SecondsText(scheduler::Duration d) {
  const auto us = d.count();
  std::string seconds;
  if (us % 1'000'000 == 0) {
    seconds = std::to_string(us / 1'000'000);
  } else {
    seconds = fmt::format("{:.6f}", static_cast<double>(us) / 1e6);
    while (seconds.back() == '0') seconds.pop_back();
  }
  return seconds + "s";
}

std::string TimeoutMessage(scheduler::Duration timeout) {
  return "execution_timeout of " + SecondsText(timeout) + " exceeded";
}

ThreadPoolExecutor::ThreadPoolExecutor(ExecutorOptions options, const JobRegistry& registry,
                                       const scheduler::Clock& clock)
    : options_([&] {
        if (options.parallelism < 1) options.parallelism = 1;
        if (options.hostname.empty()) options.hostname = DefaultHostname();
        if (options.kill_grace.count() < 0) options.kill_grace = std::chrono::milliseconds(0);
        if (options.cancel_grace.count() < 0) options.cancel_grace = std::chrono::milliseconds(0);
        return std::move(options);
      }()),
      registry_(registry),
      clock_(clock),
      pid_(static_cast<int>(::getpid())),
      unixname_(AccountName(::geteuid())),
      inherited_env_(InheritedEnvironment()) {
  if (options_.metrics != nullptr) RegisterMetrics(*options_.metrics);
  workers_.reserve(static_cast<size_t>(options_.parallelism));
  for (int i = 0; i < options_.parallelism; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  watchdog_ = std::thread([this] { WatchdogLoop(); });
}

void ThreadPoolExecutor::RegisterMetrics(scheduler::MetricsRegistry& registry) {
  using scheduler::MetricType;
  using scheduler::Sample;
  auto one = [](size_t value) { return std::vector<Sample>{{{}, static_cast<double>(value)}}; };
  metric_callbacks_.push_back(registry.AddCallback(
      "dagd_executor_workers", "Worker threads of the executor (its parallelism).",
      MetricType::kGauge, [this, one] { return one(static_cast<size_t>(options_.parallelism)); }));
  metric_callbacks_.push_back(registry.AddCallback(
      "dagd_executor_workers_busy", "Worker threads running a try now.", MetricType::kGauge,
      [this, one] { return one(RunningCount()); }));
  metric_callbacks_.push_back(registry.AddCallback(
      "dagd_executor_abandoned_threads",
      "Worker threads still running a transform job that ignored its cancellation for longer "
      "than the cancel grace; its try was reported failed and the thread holds its slot.",
      MetricType::kGauge, [this, one] {
        std::lock_guard lock(mu_);
        return one(abandoned_);
      }));
  metric_callbacks_.push_back(registry.AddCallback(
      "dagd_executor_queued_tries", "Tries submitted to the executor and waiting for a worker.",
      MetricType::kGauge, [this, one] {
        std::lock_guard lock(mu_);
        return one(queue_.size());
      }));
}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  metric_callbacks_.clear();  // waits for a scrape reading this executor
  StopAccepting();
  CancelRunning();
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
  }
  work_cv_.notify_all();
  watchdog_cv_.notify_all();
  for (auto& t : workers_) t.join();
  watchdog_.join();
}

void ThreadPoolExecutor::Submit(scheduler::TaskAssignment assignment,
                                scheduler::TaskEventSink sink) {
  {
    std::lock_guard lock(mu_);
    if (!accepting_) return;
    queue_.push_back({std::move(assignment), std::move(sink)});
  }
  work_cv_.notify_one();
}

void ThreadPoolExecutor::StopAccepting() {
  std::deque<Pending> dropped;
  {
    std::lock_guard lock(mu_);
    accepting_ = false;
    dropped.swap(queue_);
  }
  idle_cv_.notify_all();
  if (!dropped.empty()) {
    Logger()->info("executor stopped accepting dropped_queued={}", dropped.size());
  }
}  // `dropped` (and the sinks it holds) is destroyed outside the lock

void ThreadPoolExecutor::StopLocked(TryControl& control, StopReason reason) {
  control.Stop(reason);
  if (!control.stopped_at) control.stopped_at = std::chrono::steady_clock::now();
  if (control.cooperative) watchdog_cv_.notify_all();  // its grace starts now
}

void ThreadPoolExecutor::MarkCooperative(TryControl& control) {
  std::lock_guard lock(mu_);
  control.cooperative = true;
  if (control.stopped_at) watchdog_cv_.notify_all();  // asked to stop before the job began
}

void ThreadPoolExecutor::CancelRunning() {
  std::lock_guard lock(mu_);
  for (auto& [key, control] : running_) StopLocked(*control, StopReason::kInterrupt);
}

bool ThreadPoolExecutor::StopTry(const std::string& ti_id, int try_number, std::string reason) {
  std::optional<Pending> dropped;
  {
    std::lock_guard lock(mu_);
    // O(parallelism + queue): both are bounded, and a try is stopped this way rarely.
    for (auto& [key, control] : running_) {
      if (control->ti_id != ti_id || control->try_number != try_number) continue;
      // A try already asked to stop keeps its first reason (and its message is being read).
      if (control->stop_reason() == StopReason::kNone) {
        control->stop_message = std::move(reason);
        StopLocked(*control, StopReason::kStopped);
      }
      return true;
    }
    auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Pending& p) {
      return p.assignment.ti_id == ti_id && p.assignment.try_number == try_number;
    });
    if (it == queue_.end()) return false;
    dropped = std::move(*it);
    queue_.erase(it);
  }
  idle_cv_.notify_all();
  return false;
}  // `dropped` (and the sink it holds) is destroyed outside the lock

bool ThreadPoolExecutor::WaitIdle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  while (!running_.empty() || !queue_.empty()) {
    if (idle_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return running_.empty() && queue_.empty();
    }
  }
  return true;
}

size_t ThreadPoolExecutor::RunningCount() const {
  std::lock_guard lock(mu_);
  return running_.size();
}

Status ThreadPoolExecutor::StopOrphanedProcess(const scheduler::TryProcess& process) {
  Status s = StopProcessGroup(process, options_.kill_grace);
  if (!s.ok()) {
    Logger()->warn("cannot stop an orphaned process group pgid={} start_key={} error=\"{}\"",
                   process.pgid, process.start_key, s.message());
  }
  return s;
}

void ThreadPoolExecutor::WorkerLoop() {
  for (;;) {
    Pending pending;
    auto control = std::make_shared<TryControl>();
    uint64_t key = 0;
    {
      std::unique_lock lock(mu_);
      while (queue_.empty() && !shutdown_) work_cv_.wait(lock);
      if (queue_.empty()) return;  // shutdown_
      pending = std::move(queue_.front());
      queue_.pop_front();
      const auto& a = pending.assignment;
      if (a.dag && a.task_index < a.dag->tasks.size() && a.task().execution_timeout) {
        control->timeout = *a.task().execution_timeout;
        control->deadline = std::chrono::steady_clock::now() + control->timeout;
      }
      control->ti_id = a.ti_id;
      control->try_number = a.try_number;
      control->sink = pending.sink;
      key = next_try_key_++;
      running_.emplace(key, control);
    }
    if (control->deadline) watchdog_cv_.notify_all();
    RunOne(pending, control);
    pending = Pending{};  // release the sink and the DAG before reporting idle
    {
      std::unique_lock lock(mu_);
      // The watchdog may still be reporting this try: its sink call ends before the try leaves
      // the executor (WaitIdle's callers may destroy what the sink reaches).
      while (control->reporting) idle_cv_.wait(lock);
      if (control->abandoned) {
        --abandoned_;
        Logger()->warn("an abandoned try's job returned at last ti={} try={}", control->ti_id,
                       control->try_number);
      }
      control->sink = nullptr;
      running_.erase(key);
    }
    idle_cv_.notify_all();
  }
}

void ThreadPoolExecutor::WatchdogLoop() {
  std::unique_lock lock(mu_);
  while (!shutdown_) {
    const auto now = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> next;
    auto wake_at = [&](std::chrono::steady_clock::time_point t) {
      if (!next || t < *next) next = t;
    };
    // Tries given up on, with their sinks copied while the lock is held (the worker clears
    // its own copy when the job returns).
    std::vector<std::pair<std::shared_ptr<TryControl>, scheduler::TaskEventSink>> given_up;
    for (auto& [key, control] : running_) {
      if (control->deadline && control->stop_reason() == StopReason::kNone) {
        if (*control->deadline <= now) {
          StopLocked(*control, StopReason::kTimeout);
        } else {
          wake_at(*control->deadline);
        }
      }
      if (!control->cooperative || !control->stopped_at || control->abandoned) continue;
      const auto give_up_at = *control->stopped_at + options_.cancel_grace;
      if (give_up_at > now) {
        wake_at(give_up_at);
      } else if (!control->reported.exchange(true)) {  // else the job returned just now
        control->abandoned = true;
        control->reporting = true;
        ++abandoned_;
        given_up.emplace_back(control, control->sink);
      }
    }
    if (!given_up.empty()) {
      lock.unlock();  // the sink is never called with a lock held
      for (const auto& [control, sink] : given_up) ReportAbandoned(*control, sink);
      lock.lock();
      for (const auto& [control, sink] : given_up) control->reporting = false;
      idle_cv_.notify_all();  // a worker whose job returned meanwhile waits for that
      continue;
    }
    if (next) {
      watchdog_cv_.wait_until(lock, *next);
    } else {
      watchdog_cv_.wait(lock);
    }
  }
}

void ThreadPoolExecutor::ReportAbandoned(const TryControl& control,
                                         const scheduler::TaskEventSink& sink) {
  TaskOutcome outcome = StopOutcome(control).value_or(Failed("stopped"));
  const std::string message =
      fmt::format("the job did not stop within {} of its cancellation; its thread is still "
                  "running and is counted in dagd_executor_abandoned_threads",
                  SecondsText(options_.cancel_grace));
  outcome.error = outcome.error.empty() ? message : outcome.error + "; " + message;
  Logger()->error("try abandoned ti={} try={} error=\"{}\"", control.ti_id, control.try_number,
                  outcome.error);
  TaskEvent finished;
  finished.kind = TaskEvent::Kind::kFinished;
  finished.ti_id = control.ti_id;
  finished.try_number = control.try_number;
  finished.at = clock_.Now();
  finished.outcome = std::move(outcome);
  Emit(sink, std::move(finished));
}

void ThreadPoolExecutor::RunOne(Pending& pending, const std::shared_ptr<TryControl>& control) {
  const TaskAssignment& a = pending.assignment;
  bool sent_started = false;
  const StartedFn started = [&](int pid, const std::string& unixname,
                                const std::optional<scheduler::TryProcess>& process) {
    if (sent_started) return;
    sent_started = true;
    TaskEvent event;
    event.kind = TaskEvent::Kind::kStarted;
    event.ti_id = a.ti_id;
    event.try_number = a.try_number;
    event.at = clock_.Now();
    event.hostname = options_.hostname;
    event.unixname = unixname;
    event.pid = pid;
    event.process = process;
    Emit(pending.sink, std::move(event));
  };
  const bool valid = a.dag && a.task_index < a.dag->tasks.size();
  // A command reports kStarted once it runs, with its process group; anything else now.
  if (!valid || a.task().operator_name != scheduler::kOperatorBash) {
    started(pid_, unixname_, std::nullopt);
  }

  TaskOutcome outcome;
  if (!valid) {
    outcome = Failed("the assignment names no task of its DAG");
    Logger()->error("bad assignment ti={} task_index={}", a.ti_id, a.task_index);
  } else if (auto log = TryLog::Open(a.log_path, clock_, options_.max_log_bytes); !log.ok()) {
    outcome = Failed(log.status().message());
    Logger()->warn("cannot open try log dag={} run={} task={} try={} error=\"{}\"", a.run.dag_id,
                   a.run.run_id, a.task().task_id, a.try_number, log.status().message());
  } else {
    TryLog& try_log = **log;
    try_log.Note(fmt::format("dagd: task={} try={} max_tries={} operator={} dag={} run={} host={}",
                             a.task().task_id, a.try_number, a.max_tries, a.task().operator_name,
                             a.dag->dag_id, a.run.run_id, options_.hostname));
    try {
      outcome = RunOperator(a, try_log, control, started);
    } catch (const std::exception& e) {
      outcome = Failed(fmt::format("internal error running the task: {}", e.what()));
    } catch (...) {
      outcome = Failed("internal error running the task");
    }
    try_log.NoteDropped();
    // Output that never reached the log fails the try, saying why (a full disk), rather than
    // passing or failing with an empty log and only the command's exit status.
    if (auto lost = try_log.write_error();
        lost && outcome.kind != TaskOutcome::Kind::kInterrupted) {
      outcome = Failed(outcome.kind == TaskOutcome::Kind::kSuccess
                           ? *lost
                           : fmt::format("{}; {}", *lost, outcome.error));
      outcome.xcom.clear();
    }
    if (outcome.kind == TaskOutcome::Kind::kSuccess) {
      try_log.Note("dagd: outcome=success");
    } else {
      try_log.Note(
          fmt::format("dagd: outcome={} error=\"{}\"", KindName(outcome.kind), outcome.error));
    }
  }
  started(pid_, unixname_, std::nullopt);  // a command that never started
  Logger()->debug("try finished ti={} try={} outcome={} error=\"{}\"", a.ti_id, a.try_number,
                  KindName(outcome.kind), outcome.error);

  TaskEvent finished;
  finished.kind = TaskEvent::Kind::kFinished;
  finished.ti_id = a.ti_id;
  finished.try_number = a.try_number;
  finished.at = clock_.Now();
  finished.outcome = std::move(outcome);
  // A try given up on was reported by the watchdog already.
  if (!control->reported.exchange(true)) Emit(pending.sink, std::move(finished));
}

scheduler::TaskOutcome ThreadPoolExecutor::RunOperator(const TaskAssignment& a, TryLog& log,
                                                       const std::shared_ptr<TryControl>& control,
                                                       const StartedFn& started) {
  const scheduler::TaskSpec& task = a.task();
  if (auto stopped = StopOutcome(*control)) return *stopped;
  if (task.operator_name == scheduler::kOperatorEmpty) return Succeeded();

  const TemplateContext tctx = MakeTemplateContext(a);
  if (task.operator_name == scheduler::kOperatorTransform) {
    const Job* job = registry_.Find(task.job);
    if (job == nullptr) return Failed("job '" + task.job + "' is not registered");
    auto args = RenderJson(task.args, tctx);
    if (!args.ok()) return Failed(args.status().message());
    JobInfo info;
    info.args = std::move(*args);
    info.params = tctx.params;
    info.conf = tctx.conf;
    info.dag_id = tctx.dag_id;
    info.run_id = tctx.run_id;
    info.task_id = tctx.task_id;
    info.try_number = a.try_number;
    info.logical_date = a.run.logical_date;
    info.data_interval_start = a.run.data_interval_start;
    info.data_interval_end = a.run.data_interval_end;
    // The token aliases the control block, so it stays valid however long the job keeps it.
    JobContext ctx(
        std::move(info), [&log](std::string_view line) { log.Line(line); },
        std::shared_ptr<const std::atomic<bool>>(control, &control->cancel));
    std::optional<std::string> error;
    MarkCooperative(*control);
    try {
      (*job)(ctx);
    } catch (const std::exception& e) {
      error = *e.what() ? e.what() : "job threw an exception with an empty message";
    } catch (...) {
      error = "job threw an exception that is not a std::exception";
    }
    if (auto stopped = StopOutcome(*control)) return *stopped;
    if (error) return Failed(std::move(*error));
    TaskOutcome ok = Succeeded();
    ok.xcom = ctx.TakeXcom();
    return ok;
  }

  if (task.operator_name == scheduler::kOperatorBash) return RunBashTask(a, log, *control, started);
  return Failed("unknown operator '" + task.operator_name + "'");
}

scheduler::TaskOutcome ThreadPoolExecutor::RunBashTask(const TaskAssignment& a, TryLog& log,
                                                       TryControl& control,
                                                       const StartedFn& started) {
  const scheduler::TaskSpec& task = a.task();
  const TemplateContext tctx = MakeTemplateContext(a);
  auto account = ChooseTaskAccount(task.task_id, task.run_as_user, options_.run_as_user,
                                   options_.allowed_run_as, options_.postgres_account);
  if (!account.ok()) return Failed(account.status().message());
  auto rendered = RenderBashCommand(task.bash_command, tctx);
  if (!rendered.ok()) return Failed(rendered.status().message());

  // Later entries win: the task's env may replace the defaults, never the context or templates.
  std::map<std::string, std::string> env;
  env["PATH"] = kTaskPath;
  for (const std::string& entry : inherited_env_) {
    const size_t eq = entry.find('=');
    env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  env["HOME"] = account->home;
  for (const auto& [name, value] : task.env) {
    if (!ValidEnvName(name)) {
      return Failed("env name '" + name + "' of task '" + task.task_id +
                    "' is not a shell variable name");
    }
    auto v = RenderBashValue(value, tctx);
    if (!v.ok()) return Failed(v.status().message());
    if (v->find('\0') != std::string::npos) {
      return Failed("env '" + name + "' of task '" + task.task_id + "' holds a NUL byte");
    }
    env[name] = std::move(*v);
  }
  env["AIRFLOW_CTX_DAG_ID"] = tctx.dag_id;
  env["AIRFLOW_CTX_TASK_ID"] = tctx.task_id;
  env["AIRFLOW_CTX_DAG_RUN_ID"] = tctx.run_id;
  env["AIRFLOW_CTX_TRY_NUMBER"] = std::to_string(a.try_number);
  if (a.run.logical_date) env["AIRFLOW_CTX_LOGICAL_DATE"] = IsoFormat(*a.run.logical_date);
  for (auto& [name, value] : rendered->variables) env[name] = std::move(value);

  BashCommand cmd;
  cmd.command = std::move(rendered->command);
  for (auto& [name, value] : env) cmd.env.push_back(name + "=" + value);
  cmd.account = std::move(*account);
  std::optional<std::filesystem::path> temp_dir;
  if (task.cwd.empty()) {
    auto dir = MakeTryDirectory(cmd.account);
    if (!dir.ok()) return Failed(dir.status().message());
    temp_dir = std::move(*dir);
    cmd.cwd = temp_dir->string();
  } else {
    cmd.cwd = task.cwd;
  }

  auto status = RunBash(cmd, log, control, options_.kill_grace,
                        [&](int pid, const std::optional<scheduler::TryProcess>& process) {
                          started(pid, cmd.account.name, process);
                        });
  if (temp_dir) {
    if (Status s = RemoveTryDirectory(*temp_dir); !s.ok()) {
      log.Note("dagd: " + s.message());
      Logger()->warn("cannot remove a try's working directory dir={} error=\"{}\"",
                     temp_dir->string(), s.message());
    }
  }
  if (auto stopped = StopOutcome(control)) return *stopped;
  if (!status.ok()) return Failed(status.status().message());
  return FromWaitStatus(*status);
}

}  // namespace dagd::executors
