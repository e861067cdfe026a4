// Text helpers for the parts of a request (path, query string, header values, tokens). Pure
// functions, safe from any thread; a returned string_view points into the argument.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dagd::api {

// %XX → byte; an invalid escape is kept verbatim. In a query string '+' also means a space.
std::string PercentDecode(std::string_view in, bool plus_is_space);

// The parts of `text` between occurrences of `sep`, empty ones included (at least one part).
std::vector<std::string_view> Split(std::string_view text, char sep);

// ASCII letters lower-cased, other bytes unchanged.
std::string Lower(std::string_view s);

// Without leading and trailing spaces and tabs.
std::string_view Trim(std::string_view s);

// Well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF) without NUL:
// what PostgreSQL's text columns hold without cutting or refusing it.
bool IsCleanText(std::string_view s);

// The longest prefix of `text` (valid UTF-8) of at most `max` bytes that ends at a character
// boundary.
std::string_view Utf8Prefix(std::string_view text, size_t max);

// Base64url without padding (RFC 4648 section 5).
std::string Base64Url(std::string_view bytes);
// The bytes Base64Url encoded; nullopt for a character outside its alphabet. Spare bits are
// ignored: a caller wanting one text per value compares Base64Url of the result with `text`.
std::optional<std::string> FromBase64Url(std::string_view text);

}  // namespace dagd::api
