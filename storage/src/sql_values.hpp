// Statement parameters as PostgreSQL text, shared by the store's files: JSON documents (invalid
// UTF-8 replaced rather than thrown on), and arrays for `= ANY($n::bigint[])` / `text[]`.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace dagd::storage {

inline std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A bigint[] parameter as PostgreSQL's array text ("{1,2,3}").
inline std::string BigintArray(const std::vector<int64_t>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(values[i]);
  }
  return out + "}";
}

// A text[] literal for the statement itself, each value quoted by `tx`.
inline std::string TextArray(pqxx::transaction_base& tx, const std::vector<std::string>& values) {
  std::string out = "ARRAY[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += tx.quote(values[i]);
  }
  return out + "]::text[]";
}

}  // namespace dagd::storage
