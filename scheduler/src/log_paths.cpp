#include "dagd/scheduler/log_paths.hpp"

#include <cstdint>
#include <string>

namespace dagd::scheduler {
namespace {

bool IsPlain(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

void AppendEscaped(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out += '%';
  out += kHex[c >> 4];
  out += kHex[c & 0xF];
}

uint64_t Fnv1a64(std::string_view data) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// File names are limited to 255 bytes (NAME_MAX). Valid ids (≤ 250 safe chars) are kept whole,
// but a run id full of ':' triples when encoded: such names keep a readable prefix plus a hash of
// the whole id (230 + 1 + 16 bytes). '~' never appears in an encoded name (it is escaped), so a
// shortened name cannot equal a plain one.
constexpr size_t kMaxComponent = 250;
constexpr size_t kKeptPrefix = 230;

}  // namespace

std::string EncodePathComponent(std::string_view id) {
  std::string out;
  // "", "." and ".." would name the parent or the directory itself: escape them whole. A lone
  // "%" is never produced otherwise (a '%' in an id becomes "%25"), so "" stays distinct.
  if (id.empty()) return "%";
  if (id == "." || id == "..") {
    for (unsigned char c : id) AppendEscaped(out, c);
    return out;
  }
  out.reserve(id.size());
  for (unsigned char c : id) {
    if (IsPlain(static_cast<char>(c))) {
      out += static_cast<char>(c);
    } else {
      AppendEscaped(out, c);
    }
  }
  if (out.size() > kMaxComponent) {
    size_t cut = kKeptPrefix;
    // Do not split a "%XX" triple.
    if (out[cut - 1] == '%') {
      cut -= 1;
    } else if (out[cut - 2] == '%') {
      cut -= 2;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    uint64_t hash = Fnv1a64(id);
    out.resize(cut);
    out += '~';
    for (int shift = 60; shift >= 0; shift -= 4) out += kHex[(hash >> shift) & 0xF];
  }
  return out;
}

std::filesystem::path TryLogPath(const std::filesystem::path& logs_root, std::string_view dag_id,
                                 std::string_view run_id, std::string_view task_id,
                                 int try_number) {
  return logs_root / EncodePathComponent(dag_id) / EncodePathComponent(run_id) /
         EncodePathComponent(task_id) / (std::to_string(try_number) + ".log");
}

}  // namespace dagd::scheduler
