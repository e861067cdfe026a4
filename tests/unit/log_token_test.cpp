// The continuation token of task logs: what EncodeLogToken writes decodes to the same token,
// and nothing else decodes (tampered, truncated, padded or foreign text).
#include "dagd/api/log_token.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>

namespace dagd::api {
namespace {

// Base64url without padding, written independently of the code under test.
std::string Base64Url(std::string_view raw) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  for (size_t i = 0; i < raw.size(); i += 3) {
    const size_t n = std::min<size_t>(3, raw.size() - i);
    uint32_t v = 0;
    for (size_t j = 0; j < 3; ++j) {
      v = v << 8 | (j < n ? static_cast<unsigned char>(raw[i + j]) : 0);
    }
    for (size_t j = 0; j < n + 1; ++j) out += kAlphabet[(v >> (18 - 6 * j)) & 63];
  }
  return out;
}

TEST(LogToken, DecodesWhatItEncodes) {
  for (uint64_t offset : {uint64_t{0}, uint64_t{1}, uint64_t{65536}, ~uint64_t{0}}) {
    for (const std::string& key :
         {std::string("a"), std::string("0f6c-uuid/1"), std::string("x\0y", 3)}) {
      const std::string text = EncodeLogToken({key, offset});
      auto token = DecodeLogToken(text);
      ASSERT_TRUE(token.has_value()) << text;
      EXPECT_EQ(token->offset, offset);
      EXPECT_EQ(token->try_key, key);
      EXPECT_EQ(text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789-_"),
                std::string::npos)
          << "the token must travel in a query string unescaped: " << text;
    }
  }
}

TEST(LogToken, ATokenIsOpaque) {
  const std::string text = EncodeLogToken({"ti/1", 42});
  EXPECT_EQ(text.find("42"), std::string::npos);
  EXPECT_EQ(text.find("ti"), std::string::npos);
}

TEST(LogToken, TamperedTextIsRefused) {
  const std::string text = EncodeLogToken({"ti-1/1", 1234});
  for (size_t i = 0; i < text.size(); ++i) {
    for (char c : std::string("AZaz09-_+/=.")) {
      if (c == text[i]) continue;
      std::string changed = text;
      changed[i] = c;
      auto token = DecodeLogToken(changed);
      // A changed character breaks the token or names another (a try that the service will
      // not find, or another offset of the same log, readable whole anyway), never the same.
      if (token) {
        EXPECT_FALSE(token->try_key == "ti-1/1" && token->offset == 1234) << changed;
      }
    }
  }
}

TEST(LogToken, MalformedTextIsRefused) {
  const std::string good = EncodeLogToken({"ti/1", 7});
  EXPECT_FALSE(DecodeLogToken(""));
  EXPECT_FALSE(DecodeLogToken(good + "="));          // padding
  EXPECT_FALSE(DecodeLogToken(good.substr(0, 1)));   // a lone character holds no byte
  EXPECT_FALSE(DecodeLogToken(good.substr(0, 10)));  // cut short
  EXPECT_FALSE(DecodeLogToken("not a token"));
  EXPECT_FALSE(DecodeLogToken(std::string(kMaxLogTokenBytes + 1, 'A')));
  // Well-formed base64url of the wrong text: another version, an offset not in its one decimal
  // spelling, no key.
  for (const char* raw : {"dagd-log-2\n5\nti/1", "dagd-log-1\n+5\nti/1", "dagd-log-1\n05\nti/1",
                          "dagd-log-1\n-5\nti/1", "dagd-log-1\n5\n", "dagd-log-1\n5",
                          "dagd-log-1\n99999999999999999999\nti/1"}) {
    EXPECT_FALSE(DecodeLogToken(Base64Url(raw))) << raw;
  }
  EXPECT_TRUE(DecodeLogToken(Base64Url("dagd-log-1\n5\nti/1")));  // the helper is right
  EXPECT_FALSE(DecodeLogToken(EncodeLogToken({"", 5})));          // an empty key is never written
  EXPECT_FALSE(DecodeLogToken(EncodeLogToken({"a\nb", 5})));
}

}  // namespace
}  // namespace dagd::api
