// MetricsRegistry and its text format: every rendered line is checked against the exposition
// grammar by an independent reader (tests/support/prometheus_text.hpp).
#include "dagd/scheduler/metrics.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>
#include <vector>

#include "dagd/scheduler/process_metrics.hpp"
#include "prometheus_text.hpp"

namespace dagd::scheduler {
namespace {

using testing::ParsePrometheusText;
using testing::PromText;

PromText Scrape(const MetricsRegistry& registry) {
  PromText text = ParsePrometheusText(registry.Render());
  for (const std::string& e : text.errors) ADD_FAILURE() << e << "\n" << registry.Render();
  return text;
}

TEST(Metrics, RendersHelpTypeAndOneLinePerSeries) {
  MetricsRegistry registry;
  registry.AddCounter("dagd_things_total", "Things done.", {{"kind", "a"}}).Inc(3);
  registry.AddCounter("dagd_things_total", "Things done.", {{"kind", "b"}});
  registry.AddGauge("dagd_level", "A level.").Set(2.5);
  const std::string text = registry.Render();
  EXPECT_EQ(text,
            "# HELP dagd_level A level.\n"
            "# TYPE dagd_level gauge\n"
            "dagd_level 2.5\n"
            "# HELP dagd_things_total Things done.\n"
            "# TYPE dagd_things_total counter\n"
            "dagd_things_total{kind=\"a\"} 3\n"
            "dagd_things_total{kind=\"b\"} 0\n");
  Scrape(registry);
}

TEST(Metrics, LabelValuesAreEscapedAndReadBackUnchanged) {
  MetricsRegistry registry;
  const std::string nasty = "back\\slash \"quoted\"\nnew line {curly},=";
  registry.AddGauge("dagd_escaped", "Help with a \\ and a\nnewline.", {{"v", nasty}}).Set(1);
  const std::string text = registry.Render();
  EXPECT_NE(text.find(R"(dagd_escaped{v="back\\slash \"quoted\"\nnew line {curly},="} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# HELP dagd_escaped Help with a \\\\ and a\\nnewline.\n"), std::string::npos)
      << text;
  PromText parsed = Scrape(registry);
  ASSERT_EQ(parsed.samples.size(), 1u);
  EXPECT_EQ(parsed.samples[0].labels.at("v"), nasty);
  EXPECT_EQ(parsed.help.at("dagd_escaped"), "Help with a \\ and a\nnewline.");
}

TEST(Metrics, HistogramBucketsAreCumulativeAndEndInInfEqualToCount) {
  MetricsRegistry registry;
  Histogram& h =
      registry.AddHistogram("dagd_wait_seconds", "Waits.", {0.1, 1, 10}, {{"route", "/x"}});
  for (double v : {0.05, 0.1, 0.5, 2.0, 20.0, 30.0}) h.Observe(v);
  PromText parsed = Scrape(registry);
  auto bucket = [&](const char* le) {
    return parsed.Value("dagd_wait_seconds_bucket", {{"route", "/x"}, {"le", le}});
  };
  EXPECT_EQ(bucket("0.1"), 2);  // le is inclusive
  EXPECT_EQ(bucket("1"), 3);
  EXPECT_EQ(bucket("10"), 4);
  EXPECT_EQ(bucket("+Inf"), 6);
  EXPECT_EQ(parsed.Value("dagd_wait_seconds_count", {{"route", "/x"}}), 6);
  EXPECT_DOUBLE_EQ(*parsed.Value("dagd_wait_seconds_sum", {{"route", "/x"}}), 52.65);
  EXPECT_EQ(parsed.types.at("dagd_wait_seconds"), "histogram");
}

TEST(Metrics, CountersCountEveryIncrementFromManyThreadsAndNeverGoDown) {
  MetricsRegistry registry;
  Counter& c = registry.AddCounter("dagd_hits_total", "Hits.");
  Histogram& h = registry.AddHistogram("dagd_hit_seconds", "Hit times.", LatencyBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.Inc();
        h.Observe(0.003);
      }
    });
  }
  double last = 0;
  for (int i = 0; i < 20; ++i) {  // scrapes while the threads count
    PromText parsed = ParsePrometheusText(registry.Render());
    EXPECT_TRUE(parsed.errors.empty());
    const double now = *parsed.Value("dagd_hits_total");
    EXPECT_GE(now, last);
    last = now;
  }
  for (auto& t : threads) t.join();
  PromText parsed = Scrape(registry);
  EXPECT_EQ(parsed.Value("dagd_hits_total"), 40000);
  EXPECT_EQ(parsed.Value("dagd_hit_seconds_count"), 40000);
  EXPECT_EQ(parsed.Value("dagd_hit_seconds_bucket", {{"le", "0.005"}}), 40000);
  EXPECT_EQ(parsed.Value("dagd_hit_seconds_bucket", {{"le", "0.0025"}}), 0);
}

TEST(Metrics, TheSameNameAndLabelsAreTheSameSeries) {
  MetricsRegistry registry;
  Counter& a = registry.AddCounter("dagd_x_total", "X.", {{"k", "1"}});
  Counter& b = registry.AddCounter("dagd_x_total", "X.", {{"k", "1"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &registry.AddCounter("dagd_x_total", "X.", {{"k", "2"}}));
}

TEST(Metrics, ProgrammerErrorsAreRefusedAtRegistration) {
  MetricsRegistry registry;
  registry.AddCounter("dagd_x_total", "X.");
  EXPECT_THROW(registry.AddGauge("dagd_x_total", "X."), std::logic_error);
  EXPECT_THROW(registry.AddCounter("dagd_x_total", "Other help."), std::logic_error);
  EXPECT_THROW(registry.AddGauge("9starts_with_digit", "X."), std::logic_error);
  EXPECT_THROW(registry.AddGauge("dagd-dash", "X."), std::logic_error);
  EXPECT_THROW(registry.AddGauge("dagd_y", "Y.", {{"le", "1"}}), std::logic_error);
  EXPECT_THROW(registry.AddGauge("dagd_y", "Y.", {{"__reserved", "1"}}), std::logic_error);
  EXPECT_THROW(registry.AddGauge("dagd_y", "Y.", {{"a", "1"}, {"a", "2"}}), std::logic_error);
  EXPECT_THROW(registry.AddHistogram("dagd_h", "H.", {1, 0.5}), std::logic_error);
  EXPECT_THROW(registry.AddHistogram("dagd_h", "H.", {1, 1}), std::logic_error);
  EXPECT_THROW((void)registry.AddCallback("dagd_x_total", "X.", MetricType::kCounter,
                                          [] { return std::vector<Sample>{}; }),
               std::logic_error);
}

TEST(Metrics, CallbacksAreReadAtEachScrapeUntilTheirRegistrationGoes) {
  MetricsRegistry registry;
  double depth = 1;
  {
    auto registration = registry.AddCallback("dagd_depth", "Depth.", MetricType::kGauge, [&] {
      return std::vector<Sample>{{{{"queue", "a"}}, depth}, {{{"queue", "b"}}, 0}};
    });
    EXPECT_EQ(Scrape(registry).Value("dagd_depth", {{"queue", "a"}}), 1);
    depth = 7;
    EXPECT_EQ(Scrape(registry).Value("dagd_depth", {{"queue", "a"}}), 7);
    auto moved = std::move(registration);  // moving keeps it registered
    EXPECT_EQ(Scrape(registry).Value("dagd_depth", {{"queue", "b"}}), 0);
  }
  EXPECT_EQ(registry.Render(), "");
  // The name is free again.
  registry.AddGauge("dagd_depth", "Depth.").Set(1);
  EXPECT_EQ(Scrape(registry).Value("dagd_depth"), 1);
}

TEST(Metrics, ACallbackWithNoSamplesLeavesItsFamilyOutOfTheScrape) {
  MetricsRegistry registry;
  auto r = registry.AddCallback("dagd_db_thing", "From a database that is down.",
                                MetricType::kGauge, [] { return std::vector<Sample>{}; });
  registry.AddGauge("dagd_other", "Other.").Set(1);
  const std::string text = registry.Render();
  EXPECT_EQ(text.find("dagd_db_thing"), std::string::npos) << text;
  EXPECT_EQ(Scrape(registry).Value("dagd_other"), 1);
}

TEST(Metrics, SpecialValuesUseTheFormatsSpelling) {
  MetricsRegistry registry;
  registry.AddGauge("dagd_a", "A.").Set(INFINITY);
  registry.AddGauge("dagd_b", "B.").Set(-INFINITY);
  registry.AddGauge("dagd_c", "C.").Set(NAN);
  registry.AddGauge("dagd_d", "D.").Set(1e-7);
  const std::string text = registry.Render();
  EXPECT_NE(text.find("dagd_a +Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dagd_b -Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dagd_c NaN\n"), std::string::npos) << text;
  EXPECT_DOUBLE_EQ(*Scrape(registry).Value("dagd_d"), 1e-7);
}

TEST(Metrics, NaNObservationsAreIgnored) {
  MetricsRegistry registry;
  Histogram& h = registry.AddHistogram("dagd_h_seconds", "H.", {1});
  h.Observe(NAN);
  h.Observe(0.5);
  EXPECT_EQ(Scrape(registry).Value("dagd_h_seconds_count"), 1);
}

TEST(ProcessMetrics, ReadTheProcessFromProc) {
  MetricsRegistry registry;
  const auto registrations = RegisterProcessMetrics(registry);
  std::vector<char> held(64 << 20, 1);  // resident: touched
  PromText parsed = Scrape(registry);
  EXPECT_GT(*parsed.Value("process_resident_memory_bytes"), 64.0 * (1 << 20));
  EXPECT_GE(*parsed.Value("process_virtual_memory_bytes"),
            *parsed.Value("process_resident_memory_bytes"));
  EXPECT_GE(*parsed.Value("process_cpu_seconds_total"), 0);
  EXPECT_GE(*parsed.Value("process_open_fds"), 3);  // at least stdin, stdout, stderr
  EXPECT_GE(*parsed.Value("process_max_fds"), *parsed.Value("process_open_fds"));
  const double start = *parsed.Value("process_start_time_seconds");
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600);  // this test process started within the hour
  EXPECT_EQ(parsed.types.at("process_cpu_seconds_total"), "counter");
  EXPECT_EQ(held[12345], 1);
}

}  // namespace
}  // namespace dagd::scheduler
