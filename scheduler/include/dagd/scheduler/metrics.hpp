// MetricsRegistry: counters, gauges and histograms served as Prometheus text (exposition format
// 0.0.4, the body of GET /metrics), with no third-party library.
//
// A series is one (name, label set). Components create theirs once, at construction, and keep
// the returned reference: recording is then one atomic operation (Counter::Inc, Gauge::Set,
// Histogram::Observe: one bucket increment and one add to the sum), with no lock and no
// allocation. Series of one name form a family with one HELP and one TYPE line; a name must keep
// its type, help, and (for histograms) buckets. Values read from elsewhere (the database, /proc,
// the HTTP server) are callbacks evaluated at each scrape (AddCallback).
//
// Names follow Prometheus's conventions: `dagd_` prefix, base units (seconds, bytes), `_total`
// for counters. Label values may hold any text; Render escapes `\`, `"` and newlines.
//
// Thread-safety: everything may be called from any thread. Series live as long as the registry;
// a callback until its Registration is destroyed (which waits for a scrape running it).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace dagd::scheduler {

using Labels = std::vector<std::pair<std::string, std::string>>;  // (name, value), in order

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Fixed upper bounds (ascending, finite); an observation counts in the first bucket whose bound
// is >= the value, or in +Inf. NaN observations are ignored.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (+Inf)
  std::atomic<double> sum_{0};
};

// Bucket bounds for latencies from a millisecond to five minutes.
std::vector<double> LatencyBuckets();

enum class MetricType { kCounter, kGauge, kHistogram };

// One value of a callback family: its labels and value.
struct Sample {
  Labels labels;
  double value = 0;
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The series (name, labels), created on first call; later calls return the same one. Throws
  // std::logic_error when the name is not a valid metric name, a label name is invalid, or
  // the name was registered with another type, help or buckets (programmer errors).
  Counter& AddCounter(const std::string& name, const std::string& help, Labels labels = {});
  Gauge& AddGauge(const std::string& name, const std::string& help, Labels labels = {});
  Histogram& AddHistogram(const std::string& name, const std::string& help,
                          std::vector<double> bounds, Labels labels = {});

  // Holds a callback in the registry; destroying it removes the callback.
  class Registration {
   public:
    Registration() = default;
    Registration(MetricsRegistry* registry, uint64_t id) : registry_(registry), id_(id) {}
    Registration(Registration&& other) noexcept { *this = std::move(other); }
    Registration& operator=(Registration&& other) noexcept;
    ~Registration();

   private:
    MetricsRegistry* registry_ = nullptr;
    uint64_t id_ = 0;
  };

  // A family (kCounter or kGauge) whose samples `collect` returns at each scrape. It must not
  // call the registry; it may block briefly (a database query) and may return no samples (its
  // source is unavailable: the family is left out of that scrape).
  [[nodiscard]] Registration AddCallback(const std::string& name, const std::string& help,
                                         MetricType type,
                                         std::function<std::vector<Sample>()> collect);

  // Every family, in name order, as Prometheus text format 0.0.4.
  std::string Render() const;

 private:
  struct Series;
  struct Family;
  struct Callback;
  Family& FamilyFor(const std::string& name, const std::string& help, MetricType type,
                    const std::vector<double>& bounds);
  Series& SeriesFor(Family& family, Labels labels);
  void Remove(uint64_t id);

  // Held while callbacks run, so that removing one waits for a scrape running it. Taken before
  // mu_, never after it: creating a series does not wait for a slow callback.
  mutable std::mutex callbacks_mu_;  // guards callbacks_, next_id_
  std::map<uint64_t, std::unique_ptr<Callback>> callbacks_;
  uint64_t next_id_ = 1;
  mutable std::mutex mu_;  // guards families_, callback_names_ (series values are atomics)
  std::map<std::string, std::unique_ptr<Family>> families_;
  std::set<std::string> callback_names_;
};

}  // namespace dagd::scheduler
