// Where per-try logs live: <logs_root>/<dag_id>/<run_id>/<task_id>/<try_number>.log.
// Each id is percent-encoded except [A-Za-z0-9_.-] (and never "." or ".." alone), so no input can
// climb out of logs_root.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace dagd::scheduler {

std::string EncodePathComponent(std::string_view id);

std::filesystem::path TryLogPath(const std::filesystem::path& logs_root, std::string_view dag_id,
                                 std::string_view run_id, std::string_view task_id, int try_number);

}  // namespace dagd::scheduler
