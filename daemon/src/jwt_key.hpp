// The HS256 key of the API's JWTs: DAGD_JWT_SECRET when set (Config::jwt_secret), else the key
// file <state_dir>/jwt.key, made on first start (32 random bytes as hex, mode 0600). Every
// refusal is a sentence for the operator, never quoting the key.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "dagd/scheduler/status.hpp"

namespace dagd::daemon {

// failed_precondition: the given secret is shorter than 32 bytes; the key file is not a regular
// file, is readable or writable by its group or others, is not owned by this account, or holds
// fewer than 32 bytes. internal: it cannot be read or created.
StatusOr<std::string> LoadJwtSecret(const std::optional<std::string>& given,
                                    const std::filesystem::path& state_dir);

}  // namespace dagd::daemon
