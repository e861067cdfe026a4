// The text of an errno value ("No such file or directory") for messages and the log.
#pragma once

#include <string>
#include <system_error>

namespace dagd::daemon {

inline std::string ErrnoText(int err) {
  return std::error_code(err, std::generic_category()).message();
}

}  // namespace dagd::daemon
