#include "logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>

namespace dagd::daemon {

bool SetUpLogging(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") return false;
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  for (const char* name : {"daemon", "scheduler", "storage", "executors", "api"}) {
    auto logger = std::make_shared<spdlog::logger>(name, sink);
    logger->set_level(parsed);
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ level=%l module=%n %v",
                        spdlog::pattern_time_type::utc);
    logger->flush_on(spdlog::level::info);
    spdlog::drop(name);
    spdlog::register_logger(logger);
  }
  spdlog::set_default_logger(spdlog::get("daemon"));
  return true;
}

std::shared_ptr<spdlog::logger> Log() { return spdlog::get("daemon"); }

}  // namespace dagd::daemon
