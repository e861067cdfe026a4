// Jobs of the example DAGs. They show the job API: args, params, logging, cooperative
// cancellation, XCom, and failure by throwing.
#include "example_jobs.hpp"

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>

namespace dagd::dags {
namespace {

using executors::JobContext;
using executors::Json;

// Reads an integer arg that may arrive as a number or, after templating, as text.
long long IntArg(const JobContext& ctx, const char* name, long long fallback) {
  const Json& args = ctx.args();
  if (!args.is_object() || !args.contains(name)) return fallback;
  const Json& v = args.at(name);
  if (v.is_number_integer()) return v.get<long long>();
  if (v.is_string()) {
    try {
      return std::stoll(v.get<std::string>());
    } catch (const std::exception&) {
    }
  }
  throw std::invalid_argument(std::string("arg '") + name + "' must be an integer, got " +
                              v.dump());
}

// example.start: logs what the run was given and hands the batch size to the workers.
void Start(JobContext& ctx) {
  ctx.Log("starting run " + ctx.run_id() + " with params " + ctx.params().dump());
  ctx.XcomPush("batch", Json{{"workers", 10}, {"run_id", ctx.run_id()}});
}

// example.work: "works" for 1–2 s (args.sleep_ms overrides) in 100 ms steps, stopping early when
// cancelled, then pushes its result.
void Work(JobContext& ctx) {
  const long long default_ms =
      1000 + static_cast<long long>(std::hash<std::string>{}(ctx.task_id()) % 1000);
  const long long total_ms = IntArg(ctx, "sleep_ms", default_ms);
  ctx.Log("working for " + std::to_string(total_ms) + " ms");
  long long done_ms = 0;
  while (done_ms < total_ms) {
    const long long step = std::min<long long>(100, total_ms - done_ms);
    if (!ctx.WaitFor(std::chrono::milliseconds(step))) {
      throw std::runtime_error("cancelled after " + std::to_string(done_ms) + " ms of work");
    }
    done_ms += step;
    if (done_ms % 500 == 0 || done_ms == total_ms) {
      ctx.Log("progress " + std::to_string(done_ms) + "/" + std::to_string(total_ms) + " ms");
    }
  }
  ctx.XcomPush("result", Json{{"task_id", ctx.task_id()},
                              {"worked_ms", total_ms},
                              {"index", ctx.args().value("index", Json())}});
}

// example.join: the end of the fan-in.
void Join(JobContext& ctx) { ctx.Log("all workers of run " + ctx.run_id() + " are done"); }

// example.flaky: fails until try args.succeed_on_try (default 3).
void Flaky(JobContext& ctx) {
  const long long succeed_on = IntArg(ctx, "succeed_on_try", 3);
  if (ctx.try_number() < succeed_on) {
    throw std::runtime_error("flaky failure on try " + std::to_string(ctx.try_number()) +
                             " (succeeds on try " + std::to_string(succeed_on) + ")");
  }
  ctx.Log("succeeded on try " + std::to_string(ctx.try_number()));
  ctx.XcomPush("try_number", ctx.try_number());
}

}  // namespace

void RegisterExampleJobs(executors::JobRegistry& registry) {
  registry.Register("example.start", Start);
  registry.Register("example.work", Work);
  registry.Register("example.join", Join);
  registry.Register("example.flaky", Flaky);
}

}  // namespace dagd::dags
