// The scheduler module's named logger ("scheduler"), configured by the daemon; falls back to
// spdlog's default logger when the daemon did not register one (tests).
#pragma once

#include <spdlog/spdlog.h>

namespace dagd::scheduler {

inline std::shared_ptr<spdlog::logger> Log() {
  auto logger = spdlog::get("scheduler");
  return logger ? logger : spdlog::default_logger();
}

}  // namespace dagd::scheduler
