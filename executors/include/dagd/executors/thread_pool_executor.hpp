// ThreadPoolExecutor: the TaskExecutor port on a bounded pool of worker threads.
//
// `parallelism` workers take assignments in submission (FIFO) order; the scheduler orders by
// priority before submitting. Per try, a worker:
//   1. creates the per-try log at assignment.log_path (directories 0700, file 0600, see
//      try_log.hpp), writes a header line, runs the operator, writes an outcome line;
//   2. sends kStarted: for `bash` once the command runs, with its pid, its process group
//      (`process`) and the account it runs as; for other operators before they run, with the
//      daemon's pid and account. A try that fails before its command starts still sends kStarted;
//   3. sends kFinished with the outcome. A failure to open or write the log (a full disk) or to
//      render a template is a kFailed outcome like any other; nothing a job or a command does can
//      crash the daemon.
// Operators: `empty` succeeds; `transform` runs the registered job in-process (a throwing job is
// kFailed with the exception text); `bash` runs `/bin/bash -c` (see bash_operator.hpp):
//   - as the task account (task_account.hpp: never root nor postgres_account; the task's
//     run_as_user only when allowed), in task.cwd or else a fresh temporary directory removed after
//     the try;
//   - with templated values passed as environment variables, never as code
//     (RenderBashCommand in template.hpp);
//   - with only this environment: PATH (/usr/local/bin:/usr/bin:/bin), LANG and TZ when the
//     daemon has them, HOME of the task account, the task's own `env` (which may override
//     those), Airflow's AIRFLOW_CTX_DAG_ID, AIRFLOW_CTX_TASK_ID, AIRFLOW_CTX_DAG_RUN_ID,
//     AIRFLOW_CTX_TRY_NUMBER and AIRFLOW_CTX_LOGICAL_DATE (when the run has one), and the
//     AIRFLOW_TEMPLATE_<n> variables. Nothing else of the daemon's environment;
//   - its output piped into the log, cut at max_log_bytes with a note of what was dropped;
//   - the rest of its process group killed when bash exits.
//
// execution_timeout: at the deadline the try's cancellation token is set and bash process groups
// get SIGTERM, then SIGKILL after kill_grace; the try is kFailed "execution_timeout of Ns
// exceeded" (for a transform job, once the job returns: cancellation is cooperative).
// A transform job that has not returned cancel_grace after its token was set is given up on:
// the watchdog thread reports its try kFailed (kInterrupted after CancelRunning) with the reason
// plus "the job did not stop within 10s of its cancellation; its thread is still running and is
// counted in dagd_executor_abandoned_threads", and its late return reports nothing. Its thread
// keeps its worker slot (busy, not replaced): a thread cannot be killed, and replacing it would
// let jobs that never return multiply threads without bound; dagd_executor_workers_busy and
// dagd_executor_abandoned_threads show the lost capacity, and WaitIdle and the destructor still
// wait for the job to return.
// CancelRunning does the same for every running try, which then report kInterrupted; StopTry
// for one try, which reports kFailed with the reason given (its task instance was marked, its
// run ended or timed out).
// StopOrphanedProcess stops a group a previous daemon process left behind (process_group.hpp).
//
// Thread-safety: every method may be called from any thread. The sink is called from a worker
// thread (from the watchdog thread for a try given up on, before the try leaves the executor),
// never with an executor lock held. The destructor stops accepting, cancels running tries and
// joins every thread (so it blocks until running jobs return).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dagd/executors/job_registry.hpp"
#include "dagd/scheduler/metrics.hpp"
#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::executors {

struct ExecutorOptions {
  int parallelism = 8;                         // worker threads; values below 1 mean 1
  std::string hostname;                        // reported in kStarted; empty = gethostname()
  std::chrono::milliseconds kill_grace{5000};  // SIGTERM → SIGKILL for bash process groups
  // How long a transform job may run on after its token is set (execution_timeout, StopTry,
  // CancelRunning) before its try is reported failed and its thread counted as abandoned.
  std::chrono::milliseconds cancel_grace{10000};
  // The account bash tries run as when their task names none. Only root can switch: when the
  // executor is not root, tries run as its own account and this must be empty or name it. Empty
  // as root: bash tries fail (tasks never run as root).
  std::string run_as_user;
  // Further accounts a task may name in run_as_user (as root). Checked again here, for DAG
  // versions stored before the configuration changed.
  std::set<std::string> allowed_run_as;
  // The embedded PostgreSQL's account (--pg-user), empty when none: as root, no task runs as an
  // account with its uid, since that account owns the database files.
  std::string postgres_account;
  // Per-try log cap in bytes; output beyond it is dropped and counted. 0: no cap.
  uint64_t max_log_bytes = uint64_t{100} << 20;
  // Where the executor reports its workers (dagd_executor_workers, _busy) and its queue
  // (dagd_executor_queued_tries), read at each scrape. Must outlive the executor; none: nowhere.
  scheduler::MetricsRegistry* metrics = nullptr;
};

class TryLog;       // the per-try log file (private)
enum class StopReason : int;  // why a try was asked to stop (private)
struct TryControl;  // per running try: cancellation token, deadline, stop reason (private)

class ThreadPoolExecutor final : public scheduler::TaskExecutor {
 public:
  // `registry` and `clock` must outlive the executor. The clock stamps events and log lines;
  // timeouts are measured on std::chrono::steady_clock.
  ThreadPoolExecutor(ExecutorOptions options, const JobRegistry& registry,
                     const scheduler::Clock& clock);
  ~ThreadPoolExecutor() override;
  ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
  ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

  // Queues the assignment; dropped silently (no events) after StopAccepting.
  void Submit(scheduler::TaskAssignment assignment, scheduler::TaskEventSink sink) override;
  // Drops queued, not-started assignments (without events) and every later Submit.
  void StopAccepting() override;
  // Sets every running try's token, TERM→KILL to their process groups; they end kInterrupted.
  void CancelRunning() override;
  // Sets that try's token (TERM→KILL to its group); it ends kFailed with `reason`, true. A
  // queued, not-started one is dropped without events, false.
  bool StopTry(const std::string& ti_id, int try_number, std::string reason) override;
  // True once nothing runs and nothing is queued; false when `timeout` passes first.
  bool WaitIdle(std::chrono::milliseconds timeout) override;
  size_t RunningCount() const override;
  Status StopOrphanedProcess(const scheduler::TryProcess& process) override;

  const ExecutorOptions& options() const { return options_; }

 private:
  struct Pending {
    scheduler::TaskAssignment assignment;
    scheduler::TaskEventSink sink;
  };

  void RegisterMetrics(scheduler::MetricsRegistry& registry);
  void WorkerLoop();
  void WatchdogLoop();
  void RunOne(Pending& pending, const std::shared_ptr<TryControl>& control);
  // Sets a running try's token and notes when (mu_ held).
  void StopLocked(TryControl& control, StopReason reason);
  // Reports a try whose job ignored its token past cancel_grace (no lock held).
  void ReportAbandoned(const TryControl& control, const scheduler::TaskEventSink& sink);
  // A transform job of this try is about to run: the cancel grace applies from now on.
  void MarkCooperative(TryControl& control);
  // `started` sends kStarted (once) with the pid, account and process group of the try.
  using StartedFn = std::function<void(int pid, const std::string& unixname,
                                       const std::optional<scheduler::TryProcess>& process)>;
  scheduler::TaskOutcome RunOperator(const scheduler::TaskAssignment& a, TryLog& log,
                                     const std::shared_ptr<TryControl>& control,
                                     const StartedFn& started);
  scheduler::TaskOutcome RunBashTask(const scheduler::TaskAssignment& a, TryLog& log,
                                     TryControl& control, const StartedFn& started);

  const ExecutorOptions options_;
  const JobRegistry& registry_;
  const scheduler::Clock& clock_;
  const int pid_;
  const std::string unixname_;  // the daemon's account: transform and empty tries run as it
  const std::vector<std::string> inherited_env_;  // LANG and TZ of the daemon, when set

  mutable std::mutex mu_;  // guards queue_, accepting_, shutdown_, running_, abandoned_
  std::condition_variable work_cv_;      // queue_ gained an item, or shutdown_
  std::condition_variable idle_cv_;      // a try ended (running_ shrank) or the queue was dropped
  std::condition_variable watchdog_cv_;  // a try with a deadline started, or shutdown_
  std::deque<Pending> queue_;
  bool accepting_ = true;
  bool shutdown_ = false;
  uint64_t next_try_key_ = 0;
  std::unordered_map<uint64_t, std::shared_ptr<TryControl>> running_;
  size_t abandoned_ = 0;  // tries of running_ given up on (TryControl::abandoned)
  std::vector<scheduler::MetricsRegistry::Registration> metric_callbacks_;  // read mu_'s fields

  // Declared last: started after every member above exists, joined in the destructor.
  std::vector<std::thread> workers_;
  std::thread watchdog_;
};

}  // namespace dagd::executors
