// The continuation token of task logs (GET .../logs/{try_number}?token=...): opaque to clients,
// it names the try (scheduler::LogReader::try_key) and the byte of the log file read up to.
// Wire form: base64url without padding of "dagd-log-1\n<offset>\n<try key>".
//
// It is not signed: every field is checked against the request (the try named in the path, the
// file's size), and nothing in it grants access: a token anyone forges can only name a byte of a
// log its bearer may read whole anyway. Strictly validated instead: only the exact text
// EncodeLogToken would write for some token decodes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dagd::api {

struct LogToken {
  std::string try_key;
  uint64_t offset = 0;
};

inline constexpr size_t kMaxLogTokenBytes = 1024;

std::string EncodeLogToken(const LogToken& token);

// nullopt unless `text` is what EncodeLogToken writes for a token with a non-empty key (and at
// most kMaxLogTokenBytes long).
std::optional<LogToken> DecodeLogToken(std::string_view text);

}  // namespace dagd::api
