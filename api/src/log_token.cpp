#include "dagd/api/log_token.hpp"

#include <array>
#include <charconv>

namespace dagd::api {

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kMagic = "dagd-log-1";

std::string Base64Url(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : bytes) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out += kAlphabet[(bits >> count) & 63];
    }
  }
  if (count > 0) out += kAlphabet[(bits << (6 - count)) & 63];
  return out;
}

std::optional<std::string> FromBase64Url(std::string_view text) {
  static const std::array<int, 256> kValue = [] {
    std::array<int, 256> v{};
    v.fill(-1);
    for (size_t i = 0; i < kAlphabet.size(); ++i) v[static_cast<unsigned char>(kAlphabet[i])] = i;
    return v;
  }();
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : text) {
    const int value = kValue[c];
    if (value < 0) return std::nullopt;
    bits = ((bits << 6) | static_cast<uint32_t>(value)) & 0xffffff;
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

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
