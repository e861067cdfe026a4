#include "dagd/scheduler/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dagd::scheduler {
namespace {

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

bool IsMetricName(const std::string& name) {
  return !name.empty() && IsNameStart(name[0]) && std::all_of(name.begin(), name.end(), IsNameChar);
}

// Label names may not hold ':' and `__` is reserved; `le` belongs to histograms.
bool IsLabelName(const std::string& name) {
  return !name.empty() && IsNameStart(name[0]) &&
         std::all_of(name.begin(), name.end(), [](char c) { return IsNameChar(c) && c != ':'; }) &&
         !name.starts_with("__") && name != "le";
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// The text format's escaping: backslash and newline, and in a label value the double quote.
std::string Escape(const std::string& text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// Go's float syntax, which Prometheus parses: shortest round-trip digits, +Inf, -Inf, NaN.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

std::string FormatLabels(const Labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    out += Escape(value, true);
    out += '"';
  }
  if (le != nullptr) {
    if (!first) out += ',';
    out += "le=\"" + *le + "\"";
  }
  out += '}';
  return out;
}

void CheckLabels(const Labels& labels) {
  for (size_t i = 0; i < labels.size(); ++i) {
    if (!IsLabelName(labels[i].first)) {
      throw std::logic_error("invalid metric label name '" + labels[i].first + "'");
    }
    for (size_t j = 0; j < i; ++j) {
      if (labels[j].first == labels[i].first) {
        throw std::logic_error("metric label '" + labels[i].first + "' given twice");
      }
    }
  }
}

}  // namespace

// --- Histogram ----------------------------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                       bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.reserve(bounds_.size() + 1);
  // The count is the sum of the buckets read, so that +Inf and _count always agree.
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    s.count += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(s.count);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
}

// --- Registry -----------------------------------------------------------------------------------

struct MetricsRegistry::Series {
  Labels labels;
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
};

struct MetricsRegistry::Family {
  std::string help;
  MetricType type;
  std::vector<double> bounds;
  std::vector<std::unique_ptr<Series>> series;  // in creation order; addresses stay put
};

struct MetricsRegistry::Callback {
  std::string name;
  std::string help;
  MetricType type;
  std::function<std::vector<Sample>()> collect;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::FamilyFor(const std::string& name,
                                                    const std::string& help, MetricType type,
                                                    const std::vector<double>& bounds) {
  if (!IsMetricName(name)) throw std::logic_error("invalid metric name '" + name + "'");
  auto it = families_.find(name);
  if (it == families_.end()) {
    if (callback_names_.count(name) != 0) {
      throw std::logic_error("metric '" + name + "' is already a callback");
    }
    auto family = std::make_unique<Family>();
    family->help = help;
    family->type = type;
    family->bounds = bounds;
    it = families_.emplace(name, std::move(family)).first;
  }
  Family& family = *it->second;
  if (family.type != type || family.help != help || family.bounds != bounds) {
    throw std::logic_error("metric '" + name + "' registered again with another type or help");
  }
  return family;
}

MetricsRegistry::Series& MetricsRegistry::SeriesFor(Family& family, Labels labels) {
  for (auto& series : family.series) {
    if (series->labels == labels) return *series;
  }
  CheckLabels(labels);
  auto series = std::make_unique<Series>();
  series->labels = std::move(labels);
  switch (family.type) {
    case MetricType::kCounter:
      series->counter = std::make_unique<Counter>();
      break;
    case MetricType::kGauge:
      series->gauge = std::make_unique<Gauge>();
      break;
    case MetricType::kHistogram:
      series->histogram = std::make_unique<Histogram>(family.bounds);
      break;
  }
  family.series.push_back(std::move(series));
  return *family.series.back();
}

Counter& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                     Labels labels) {
  std::lock_guard lock(mu_);
  return *SeriesFor(FamilyFor(name, help, MetricType::kCounter, {}), std::move(labels)).counter;
}

Gauge& MetricsRegistry::AddGauge(const std::string& name, const std::string& help, Labels labels) {
  std::lock_guard lock(mu_);
  return *SeriesFor(FamilyFor(name, help, MetricType::kGauge, {}), std::move(labels)).gauge;
}

Histogram& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> bounds, Labels labels) {
  if (!std::is_sorted(bounds.begin(), bounds.end()) ||
      std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end() ||
      std::any_of(bounds.begin(), bounds.end(), [](double b) { return !std::isfinite(b); })) {
    throw std::logic_error("histogram '" + name + "' needs finite, ascending bucket bounds");
  }
  std::lock_guard lock(mu_);
  return *SeriesFor(FamilyFor(name, help, MetricType::kHistogram, bounds), std::move(labels))
              .histogram;
}

MetricsRegistry::Registration MetricsRegistry::AddCallback(
    const std::string& name, const std::string& help, MetricType type,
    std::function<std::vector<Sample>()> collect) {
  if (!IsMetricName(name)) throw std::logic_error("invalid metric name '" + name + "'");
  if (type == MetricType::kHistogram) {
    throw std::logic_error("metric callback '" + name + "' must be a counter or a gauge");
  }
  std::scoped_lock lock(callbacks_mu_, mu_);
  if (families_.count(name) != 0 || callback_names_.count(name) != 0) {
    throw std::logic_error("metric '" + name + "' is already registered");
  }
  callback_names_.insert(name);
  const uint64_t id = next_id_++;
  callbacks_.emplace(id,
                     std::make_unique<Callback>(Callback{name, help, type, std::move(collect)}));
  return Registration(this, id);
}

void MetricsRegistry::Remove(uint64_t id) {
  std::lock_guard lock(callbacks_mu_);
  auto it = callbacks_.find(id);
  if (it == callbacks_.end()) return;
  std::lock_guard names_lock(mu_);
  callback_names_.erase(it->second->name);
  callbacks_.erase(it);
}

MetricsRegistry::Registration& MetricsRegistry::Registration::operator=(
    Registration&& other) noexcept {
  if (this != &other) {
    if (registry_ != nullptr) registry_->Remove(id_);
    registry_ = std::exchange(other.registry_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

MetricsRegistry::Registration::~Registration() {
  if (registry_ != nullptr) registry_->Remove(id_);
}

std::string MetricsRegistry::Render() const {
  // Each family's text, by name, so that callbacks and series come out in one order.
  std::map<std::string, std::string> text;
  auto header = [](const std::string& name, const std::string& help, MetricType type) {
    return fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, Escape(help, false), name,
                       TypeName(type));
  };
  {
    std::lock_guard lock(callbacks_mu_);
    for (const auto& [id, callback] : callbacks_) {
      const std::vector<Sample> samples = callback->collect();
      if (samples.empty()) continue;
      std::string out = header(callback->name, callback->help, callback->type);
      for (const Sample& sample : samples) {
        out +=
            callback->name + FormatLabels(sample.labels) + ' ' + FormatValue(sample.value) + '\n';
      }
      text[callback->name] = std::move(out);
    }
  }
  std::lock_guard lock(mu_);
  for (const auto& [name, family] : families_) {
    std::string out = header(name, family->help, family->type);
    for (const auto& series : family->series) {
      switch (family->type) {
        case MetricType::kCounter:
          out += name + FormatLabels(series->labels) + ' ' +
                 std::to_string(series->counter->Value()) + '\n';
          break;
        case MetricType::kGauge:
          out += name + FormatLabels(series->labels) + ' ' + FormatValue(series->gauge->Value()) +
                 '\n';
          break;
        case MetricType::kHistogram: {
          const Histogram::Snapshot s = series->histogram->Read();
          for (size_t i = 0; i <= s.bounds.size(); ++i) {
            const std::string le = i < s.bounds.size() ? FormatValue(s.bounds[i]) : "+Inf";
            out += name + "_bucket" + FormatLabels(series->labels, &le) + ' ' +
                   std::to_string(s.cumulative[i]) + '\n';
          }
          out += name + "_sum" + FormatLabels(series->labels) + ' ' + FormatValue(s.sum) + '\n';
          out +=
              name + "_count" + FormatLabels(series->labels) + ' ' + std::to_string(s.count) + '\n';
          break;
        }
      }
    }
    text[name] = std::move(out);
  }
  std::string out;
  for (const auto& [name, family_text] : text) out += family_text;
  return out;
}

}  // namespace dagd::scheduler
