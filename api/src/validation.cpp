#include "validation.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include "request_text.hpp"
#include "responses.hpp"

namespace dagd::api {

namespace {

constexpr size_t kMaxEchoBytes = 200;  // of a client's input quoted back in an error
constexpr size_t kMaxErrors = 20;      // entries of one 422

// A client's input as Pydantic's `input` shows it, bounded: short values as they are, a long
// string shortened, a large object or array replaced by a description.
Json Echo(const Json& input) {
  if (input.is_string()) return Shorten(input.get_ref<const std::string&>());
  if (!input.is_structured() || Dump(input).size() <= kMaxEchoBytes) return input;
  const std::string count = std::to_string(input.size());
  return (input.is_object() ? "an object of " + count + (input.size() == 1 ? " key" : " keys")
                            : "an array of " + count + (input.size() == 1 ? " item" : " items")) +
         " (too large to show)";
}

// Adds an error for every string (key or value) in `value` holding a NUL character, which
// PostgreSQL would cut (text) or refuse (jsonb). Recursion is bounded by kMaxJsonDepth.
void CheckNul(const Json& value, Json& loc, Errors& errors) {
  auto nul_error = [&](const Json& input) {
    errors.Add("string_nul", loc, "String should not contain a NUL character (\\u0000)", input);
  };
  if (value.is_string()) {
    if (value.get_ref<const std::string&>().find('\0') != std::string::npos) nul_error(value);
  } else if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      loc.push_back(key);
      if (key.find('\0') != std::string::npos) nul_error(key);
      CheckNul(item, loc, errors);
      loc.erase(loc.size() - 1);
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      loc.push_back(i);
      CheckNul(value[i], loc, errors);
      loc.erase(loc.size() - 1);
    }
  }
}

}  // namespace

std::string Shorten(const std::string& text) {
  if (text.size() <= kMaxEchoBytes) return text;
  return std::string(Utf8Prefix(text, kMaxEchoBytes)) + "... (" + std::to_string(text.size()) +
         " bytes)";
}

void Errors::Add(std::string type, Json loc, std::string msg, const Json& input, Json ctx) {
  if (list_.size() >= kMaxErrors) return;
  for (Json& part : loc) {
    if (part.is_string()) part = Shorten(part.get_ref<const std::string&>());
  }
  Json e = {{"type", std::move(type)},
            {"loc", std::move(loc)},
            {"msg", std::move(msg)},
            {"input", Echo(input)}};
  if (!ctx.is_null()) e["ctx"] = std::move(ctx);
  list_.push_back(std::move(e));
}

Response Errors::ToResponse() const { return JsonResponse(422, Json{{"detail", list_}}); }

std::optional<int64_t> ParseInt(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<int64_t> PathInt(const std::string& text, const char* name, Errors& errors,
                               int64_t minimum, bool wide) {
  const std::optional<int64_t> v = ParseInt(text);
  const bool in_type = v && (wide || (*v >= std::numeric_limits<int>::min() &&
                                      *v <= std::numeric_limits<int>::max()));
  if (!in_type) {
    errors.Add("int_parsing", {"path", name},
               "Input should be a valid integer, unable to parse string as an integer", text);
    return std::nullopt;
  }
  if (*v < minimum) {
    errors.Add("greater_than", {"path", name},
               "Input should be greater than " + std::to_string(minimum - 1), text,
               {{"gt", minimum - 1}});
    return std::nullopt;
  }
  return v;
}

Query::Query(std::string_view raw) {
  if (raw.empty()) return;
  for (std::string_view pair : Split(raw, '&')) {
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string name = PercentDecode(pair.substr(0, eq), true);
    std::string value =
        eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1), true);
    values_.emplace_back(std::move(name), std::move(value));
  }
}

std::vector<std::string> Query::All(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : values_) {
    if (n == name) out.push_back(v);
  }
  return out;
}

std::optional<std::string> Query::First(std::string_view name) const {
  for (const auto& [n, v] : values_) {
    if (n == name) return v;
  }
  return std::nullopt;
}

int Query::Int(std::string_view name, int fallback, int minimum, Errors& errors) const {
  auto text = First(name);
  if (!text) return fallback;
  auto v = ParseInt(*text);
  if (!v || *v > std::numeric_limits<int>::max() || *v < std::numeric_limits<int>::min()) {
    errors.Add("int_parsing", {"query", name},
               "Input should be a valid integer, unable to parse string as an integer", *text);
    return fallback;
  }
  if (*v < minimum) {
    errors.Add("greater_than_equal", {"query", name},
               "Input should be greater than or equal to " + std::to_string(minimum), *text,
               {{"ge", minimum}});
    return fallback;
  }
  return static_cast<int>(*v);
}

std::optional<bool> Query::Bool(std::string_view name, Errors& errors) const {
  auto text = First(name);
  if (!text) return std::nullopt;
  const std::string v = Lower(*text);
  if (v == "true" || v == "1" || v == "yes" || v == "on" || v == "t" || v == "y") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off" || v == "f" || v == "n") return false;
  errors.Add("bool_parsing", {"query", name},
             "Input should be a valid boolean, unable to interpret input", *text);
  return std::nullopt;
}

std::optional<scheduler::TimePoint> Query::Time(std::string_view name, Errors& errors) const {
  auto text = First(name);
  if (!text) return std::nullopt;
  auto t = scheduler::ParseRfc3339(*text);
  if (!t) {
    errors.Add("datetime_from_date_parsing", {"query", name},
               "Input should be a valid datetime or date, with a timezone (RFC 3339)", *text);
  }
  return t;
}

void Query::CheckText(Errors& errors) const {
  for (const auto& [name, value] : values_) {
    if (!IsCleanText(name)) {
      errors.Add("string_unicode", {"query"},
                 "A query parameter name is not valid UTF-8 or holds a NUL byte", nullptr);
    } else if (!IsCleanText(value)) {
      errors.Add("string_unicode", {"query", name},
                 "Input should be a valid string: not valid UTF-8 or holds a NUL byte", nullptr);
    }
  }
}

void Query::CheckSupported(std::initializer_list<std::string_view> supported,
                           Errors& errors) const {
  std::set<std::string_view> reported;
  for (const auto& [name, value] : values_) {
    if (std::find(supported.begin(), supported.end(), name) != supported.end()) continue;
    if (!reported.insert(name).second) continue;
    std::string list;
    for (std::string_view s : supported) list += (list.empty() ? "" : ", ") + std::string(s);
    errors.Add("unsupported_parameter", {"query", name},
               "dagd does not support the query parameter '" + Shorten(std::string(name)) +
                   "' on this endpoint; supported: " + (list.empty() ? "none" : list),
               value);
  }
}

std::vector<int> Query::Ints(std::string_view name, Errors& errors) const {
  std::vector<int> out;
  for (const std::string& text : All(name)) {
    auto v = ParseInt(text);
    if (!v || *v > std::numeric_limits<int>::max() || *v < std::numeric_limits<int>::min()) {
      errors.Add("int_parsing", {"query", name},
                 "Input should be a valid integer, unable to parse string as an integer", text);
    } else {
      out.push_back(static_cast<int>(*v));
    }
  }
  return out;
}

std::optional<double> Query::Number(std::string_view name, Errors& errors) const {
  auto text = First(name);
  if (!text) return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (text->empty() || ec != std::errc() || ptr != text->data() + text->size() ||
      !std::isfinite(v)) {
    errors.Add("float_parsing", {"query", name},
               "Input should be a valid number, unable to parse string as a number", *text);
    return std::nullopt;
  }
  return v;
}

scheduler::Page Query::Page(int max_limit, Errors& errors) const {
  scheduler::Page page;
  page.limit = std::min(Int("limit", 50, 0, errors), max_limit);
  page.offset = Int("offset", 0, 0, errors);
  page.order_by = All("order_by");
  return page;
}

std::optional<Json> ParseBodyObject(const Request& req, Response& error) {
  Errors errors;
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    errors.Add("missing", {"body"}, "Field required", nullptr);
    error = errors.ToResponse();
    return std::nullopt;
  }
  ParsedJson parsed = ParseUntrustedJson(req.body);
  if (!parsed.value) {
    Json loc = {"body"};
    if (parsed.byte) loc.push_back(*parsed.byte);
    errors.Add("json_invalid", std::move(loc), "JSON decode error", Json::object(),
               {{"error", parsed.error}});
    error = errors.ToResponse();
    return std::nullopt;
  }
  Json& body = *parsed.value;
  if (!body.is_object()) {
    errors.Add("model_attributes_type", {"body"},
               "Input should be a valid dictionary or object to extract fields from", body);
  } else {
    Json loc = {"body"};
    CheckNul(body, loc, errors);
  }
  if (!errors.empty()) {
    error = errors.ToResponse();
    return std::nullopt;
  }
  return std::move(body);
}

void ForbidExtraFields(const Json& body, const std::set<std::string, std::less<>>& fields,
                       Errors& errors) {
  for (const auto& [key, value] : body.items()) {
    if (!fields.contains(key)) {
      errors.Add("extra_forbidden", {"body", key}, "Extra inputs are not permitted", value);
    }
  }
}

}  // namespace dagd::api
