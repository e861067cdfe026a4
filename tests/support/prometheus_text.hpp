// A strict reader of Prometheus text exposition format 0.0.4 for tests: every line must be a
// `# HELP name text`, a `# TYPE name type`, another comment, or a sample
// `name{label="value",...} value`, with the format's escapes (backslash, double quote and
// newline as \\, \" and \n in label values; backslash and newline in help). It also checks
// what Prometheus relies on: one TYPE per family, before its samples, a family's samples
// together, histograms with ascending `le` buckets that are cumulative, end with +Inf and agree
// with _count. Problems are collected, not thrown, so that a test prints them all. Header-only.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace dagd::testing {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped values
  double value = 0;
};

struct PromText {
  std::vector<PromSample> samples;
  std::map<std::string, std::string> types;  // family → type
  std::map<std::string, std::string> help;   // family → unescaped help
  std::vector<std::string> errors;           // one sentence per problem, with the line

  // The value of the one sample with this name whose labels include `labels`; nullopt when none.
  std::optional<double> Value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) const {
    for (const PromSample& s : samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) match = false;
      }
      if (match) return s.value;
    }
    return std::nullopt;
  }
};

namespace prom_detail {

inline bool NameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
inline bool NameChar(char c) { return NameStart(c) || (c >= '0' && c <= '9'); }

inline size_t ReadName(const std::string& s, size_t i, bool label) {
  if (i >= s.size() || !NameStart(s[i]) || (label && s[i] == ':')) return i;
  while (i < s.size() && NameChar(s[i]) && !(label && s[i] == ':')) ++i;
  return i;
}

inline std::optional<double> ParseValue(const std::string& text) {
  if (text == "+Inf" || text == "Inf") return INFINITY;
  if (text == "-Inf") return -INFINITY;
  if (text == "NaN") return NAN;
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  // strtod also takes hex floats and "inf"/"nan" spellings that Go's ParseFloat does not.
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) {
      return std::nullopt;
    }
  }
  return v;
}

// The family a sample name belongs to, given the TYPE lines seen.
inline std::string FamilyOf(const std::string& name, const std::map<std::string, std::string>& t) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string sfx(suffix);
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      const std::string base = name.substr(0, name.size() - sfx.size());
      auto it = t.find(base);
      if (it != t.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return name;
}

}  // namespace prom_detail

inline PromText ParsePrometheusText(const std::string& text) {
  using namespace prom_detail;
  PromText out;
  if (!text.empty() && text.back() != '\n') out.errors.push_back("the text does not end in \\n");
  std::istringstream in(text);
  std::string line;
  std::set<std::string> finished;  // families whose samples are behind us
  std::string current;             // the family of the previous sample
  int n = 0;
  auto error = [&](const std::string& what) {
    out.errors.push_back("line " + std::to_string(n) + ": " + what + ": " + line);
  };
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line.substr(1));
      std::string keyword, name;
      words >> keyword >> name;
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a plain comment
      if (name.empty() || ReadName(name, 0, false) != name.size()) {
        error("bad metric name in " + keyword);
        continue;
      }
      const size_t at = line.find(name, 1 + keyword.size() + 1);
      std::string rest = at + name.size() < line.size() ? line.substr(at + name.size() + 1) : "";
      if (keyword == "TYPE") {
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (kTypes.count(rest) == 0) error("unknown type");
        if (out.types.count(name) != 0) error("a second TYPE line");
        if (finished.count(name) != 0 || current == name) error("TYPE after the samples");
        out.types[name] = rest;
      } else {
        std::string help;
        for (size_t i = 0; i < rest.size(); ++i) {
          if (rest[i] != '\\') {
            help += rest[i];
          } else if (i + 1 < rest.size() && rest[i + 1] == '\\') {
            help += '\\';
            ++i;
          } else if (i + 1 < rest.size() && rest[i + 1] == 'n') {
            help += '\n';
            ++i;
          } else {
            error("bad escape in HELP");
          }
        }
        if (out.help.count(name) != 0) error("a second HELP line");
        out.help[name] = help;
      }
      continue;
    }
    PromSample sample;
    size_t i = ReadName(line, 0, false);
    if (i == 0) {
      error("no metric name");
      continue;
    }
    sample.name = line.substr(0, i);
    bool ok = true;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (ok && i < line.size() && line[i] != '}') {
        const size_t name_end = ReadName(line, i, true);
        if (name_end == i || name_end >= line.size() || line[name_end] != '=' ||
            name_end + 1 >= line.size() || line[name_end + 1] != '"') {
          ok = false;
          break;
        }
        const std::string label = line.substr(i, name_end - i);
        i = name_end + 2;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (i + 1 >= line.size()) {
              ok = false;
              break;
            }
            const char e = line[i + 1];
            if (e == '\\' || e == '"') {
              value += e;
            } else if (e == 'n') {
              value += '\n';
            } else {
              ok = false;
              break;
            }
            i += 2;
          } else {
            value += line[i++];
          }
        }
        if (!ok || i >= line.size()) {
          ok = false;
          break;
        }
        ++i;  // the closing quote
        if (sample.labels.count(label) != 0) ok = false;
        sample.labels[label] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (!ok || i >= line.size() || line[i] != '}') {
        error("bad label set");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      error("no space before the value");
      continue;
    }
    std::istringstream rest(line.substr(i + 1));
    std::string value_text, timestamp, extra;
    rest >> value_text >> timestamp >> extra;
    auto value = ParseValue(value_text);
    if (!value || !extra.empty() ||
        (!timestamp.empty() && timestamp.find_first_not_of("-0123456789") != std::string::npos)) {
      error("bad value or timestamp");
      continue;
    }
    sample.value = *value;
    const std::string family = FamilyOf(sample.name, out.types);
    if (out.types.count(family) == 0) error("a sample before its TYPE line");
    if (family != current) {
      if (finished.count(family) != 0) error("the family's samples are not together");
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    out.samples.push_back(std::move(sample));
  }

  // Histograms: per label set (without le), ascending le, cumulative counts, +Inf == _count.
  for (const auto& [family, type] : out.types) {
    if (type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    std::map<std::map<std::string, std::string>, double> counts;
    for (const PromSample& s : out.samples) {
      auto labels = s.labels;
      if (s.name == family + "_bucket") {
        auto le = labels.find("le");
        auto bound = le == labels.end() ? std::nullopt : ParseValue(le->second);
        if (!bound) {
          out.errors.push_back(family + ": a bucket without a valid le");
          continue;
        }
        labels.erase("le");
        buckets[labels].emplace_back(*bound, s.value);
      } else if (s.name == family + "_count") {
        counts[labels] = s.value;
      }
    }
    for (const auto& [labels, series] : buckets) {
      for (size_t k = 1; k < series.size(); ++k) {
        if (!(series[k].first > series[k - 1].first)) {
          out.errors.push_back(family + ": le not ascending");
        }
        if (series[k].second < series[k - 1].second) {
          out.errors.push_back(family + ": buckets not cumulative");
        }
      }
      if (series.empty() || !std::isinf(series.back().first)) {
        out.errors.push_back(family + ": no +Inf bucket");
      } else if (counts.count(labels) == 0 || counts[labels] != series.back().second) {
        out.errors.push_back(family + ": +Inf bucket differs from _count");
      }
    }
  }
  return out;
}

}  // namespace dagd::testing
