#include "dagd/api/log_token.hpp"

#include <charconv>

#include "request_text.hpp"

namespace dagd::api {

namespace {

constexpr std::string_view kMagic = "dagd-log-1";

}  // namespace

std::string EncodeLogToken(const LogToken& token) {
  std::string text(kMagic);
  text += '\n';
  text += std::to_string(token.offset);
  text += '\n';
  text += token.try_key;
  return Base64Url(text);
}

std::optional<LogToken> DecodeLogToken(std::string_view text) {
  if (text.empty() || text.size() > kMaxLogTokenBytes) return std::nullopt;
  auto bytes = FromBase64Url(text);
  if (!bytes) return std::nullopt;
  std::string_view rest = *bytes;
  if (!rest.starts_with(kMagic) || rest.size() == kMagic.size() || rest[kMagic.size()] != '\n') {
    return std::nullopt;
  }
  rest.remove_prefix(kMagic.size() + 1);
  const size_t newline = rest.find('\n');
  if (newline == std::string_view::npos || newline == 0) return std::nullopt;
  LogToken token;
  const char* first = rest.data();
  const char* last = rest.data() + newline;
  auto [ptr, ec] = std::from_chars(first, last, token.offset);
  if (ec != std::errc() || ptr != last) return std::nullopt;
  token.try_key = std::string(rest.substr(newline + 1));
  if (token.try_key.empty() || token.try_key.find('\n') != std::string::npos) return std::nullopt;
  // Canonical only: leading zeros, spare bits and the like make another text for the same token.
  if (EncodeLogToken(token) != text) return std::nullopt;
  return token;
}

}  // namespace dagd::api
