// Logging set-up: one stderr sink, UTC timestamps, one named logger per module (daemon,
// scheduler, storage, executors, api). Messages are an event plus key=value fields.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace dagd::daemon {

// Returns false when `level` is not a spdlog level name.
bool SetUpLogging(const std::string& level);

std::shared_ptr<spdlog::logger> Log();  // the "daemon" logger

}  // namespace dagd::daemon
