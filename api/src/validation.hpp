// Validation of query strings and JSON bodies, answered in Pydantic's 422 shape (router.hpp):
// Errors collects at most 20 entries, each echoing the client's input bounded in size; Query is
// the decoded query string, whose typed getters add an error and return a fallback on bad input;
// ParseBodyObject accepts only a JSON object free of NUL characters, ForbidExtraFields refuses
// its unknown fields. Pure: safe from any thread, one Errors per request.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dagd/api/codecs.hpp"
#include "dagd/api/router.hpp"
#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::api {

// `text` cut to about 200 bytes at a character boundary, saying how long it was.
std::string Shorten(const std::string& text);

class Errors {
 public:
  // Ignored once 20 entries are held. String parts of `loc` are shortened; `input` is echoed
  // bounded: a long string shortened, a large object or array described.
  void Add(std::string type, Json loc, std::string msg, const Json& input, Json ctx = nullptr);
  bool empty() const { return list_.empty(); }
  Response ToResponse() const;

 private:
  Json list_ = Json::array();
};

// A decimal integer with an optional sign; nullopt unless the whole of `s` is one.
std::optional<int64_t> ParseInt(std::string_view s);

// An integer path parameter `name` (an int, or any int64 when `wide`) of at least `minimum`;
// nullopt with Pydantic's int_parsing or greater_than error added to `errors` otherwise.
std::optional<int64_t> PathInt(const std::string& text, const char* name, Errors& errors,
                               int64_t minimum = std::numeric_limits<int>::min(),
                               bool wide = false);

// The query string, decoded; names may repeat.
class Query {
 public:
  explicit Query(std::string_view raw);

  std::vector<std::string> All(std::string_view name) const;
  std::optional<std::string> First(std::string_view name) const;

  int Int(std::string_view name, int fallback, int minimum, Errors& errors) const;
  std::optional<bool> Bool(std::string_view name, Errors& errors) const;
  std::optional<scheduler::TimePoint> Time(std::string_view name, Errors& errors) const;

  // Every value of a repeatable enum filter, each parsed by `parse`.
  template <typename T, typename Parse>
  std::vector<T> Enums(std::string_view name, Parse parse, std::string_view expected,
                       Errors& errors) const {
    std::vector<T> out;
    for (const std::string& text : All(name)) {
      if (auto v = parse(text)) {
        out.push_back(*v);
      } else {
        errors.Add("enum", {"query", name}, "Input should be " + std::string(expected), text,
                   {{"expected", std::string(expected)}});
      }
    }
    return out;
  }

  // Names and values PostgreSQL would cut (NUL) or refuse (not UTF-8).
  void CheckText(Errors& errors) const;

  // An error for each parameter not in `supported`: dagd answers a filter it does not implement
  // (one of Airflow's, or a misspelling) with a sentence rather than ignore it.
  void CheckSupported(std::initializer_list<std::string_view> supported, Errors& errors) const;

  // Every value of a repeatable integer filter.
  std::vector<int> Ints(std::string_view name, Errors& errors) const;
  // A finite number.
  std::optional<double> Number(std::string_view name, Errors& errors) const;

  // A limit above `max_limit` is reduced to it, as Airflow 3 does.
  scheduler::Page Page(int max_limit, Errors& errors) const;

 private:
  std::vector<std::pair<std::string, std::string>> values_;
};

// Parses a JSON request body that must be an object, with no NUL character in any key or string
// (which PostgreSQL would cut or refuse). On failure `error` holds the 422.
std::optional<Json> ParseBodyObject(const Request& req, Response& error);

// Pydantic's extra="forbid": an extra_forbidden error for each key of `body` not in `fields`.
void ForbidExtraFields(const Json& body, const std::set<std::string, std::less<>>& fields,
                       Errors& errors);

}  // namespace dagd::api
