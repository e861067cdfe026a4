// Planning scheduled runs over simulated time: a fake clock walks a week in steps, runs "finish"
// as the test says, and every slot must be created once, oldest first, within max_active_runs.
#include "dagd/scheduler/schedule_plan.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <set>
#include <string>
#include <vector>

#include "dagd/scheduler/dag_parser.hpp"

namespace dagd::scheduler {
namespace {

using namespace std::chrono_literals;

TimePoint At(std::string_view text) {
  auto t = ParseRfc3339(text);
  EXPECT_TRUE(t.has_value()) << text;
  return t.value_or(TimePoint{});
}

DagPtr MakeDag(const std::string& fields) {
  ParseResult parsed = ParseDag(
      R"({"dag_id": "d", )" + fields + R"(, "tasks": [{"task_id": "t", "operator": "empty"}]})",
      ParseOptions{});
  EXPECT_TRUE(parsed.dag) << (parsed.errors.empty() ? "" : parsed.errors.front());
  return parsed.dag;
}

// What a scheduler would do over [from, to): plan every `step`, create what the plan says, and
// finish each created run `run_time` after it was created. Returns the logical dates created,
// in creation order, and the most runs active at once.
struct Simulation {
  std::vector<TimePoint> created;
  int most_active = 0;
  int rounds = 0;
};

Simulation Simulate(const Dag& dag, TimePoint from, TimePoint to, Duration step,
                    Duration run_time, std::optional<TimePoint> paused_until = std::nullopt) {
  Simulation sim;
  std::deque<TimePoint> active_until;  // end times of the active runs
  std::optional<TimePoint> last;
  for (TimePoint now = from; now < to; now += step) {
    while (!active_until.empty() && active_until.front() <= now) active_until.pop_front();
    ScheduleState state{last, static_cast<int>(active_until.size()),
                        paused_until && now < *paused_until};
    SchedulePlan plan = PlanScheduledRuns(dag, state, now, 1000);
    ++sim.rounds;
    for (const RunSlot& slot : plan.create) {
      sim.created.push_back(slot.logical_date);
      last = slot.logical_date;
      active_until.push_back(now + run_time);
    }
    sim.most_active = std::max(sim.most_active, static_cast<int>(active_until.size()));
  }
  return sim;
}

TEST(SchedulePlanTest, CatchupOverASimulatedWeekCreatesEveryHourOnceOldestFirst) {
  // Down for a week: start_date a week before the scheduler first looks.
  DagPtr dag = MakeDag(R"("schedule": "@hourly", "start_date": "2026-03-01T00:00:00Z",
                          "catchup": true, "max_active_runs": 3)");
  const TimePoint from = At("2026-03-08T00:00:30Z");
  Simulation sim = Simulate(*dag, from, from + 24h * 7, 1min, 90s);
  // 168 missed hours plus the 168 of the simulated week, less the last (not due before `to`).
  ASSERT_EQ(sim.created.size(), 168u * 2);
  for (size_t i = 0; i < sim.created.size(); ++i) {
    EXPECT_EQ(sim.created[i], At("2026-03-01T00:00:00Z") + std::chrono::hours(i)) << i;
  }
  EXPECT_EQ(sim.most_active, 3);
}

TEST(SchedulePlanTest, WithoutCatchupOnlyTheLatestMissedRunIsCreated) {
  DagPtr dag = MakeDag(R"("schedule": "@hourly", "start_date": "2026-03-01T00:00:00Z")");
  const TimePoint from = At("2026-03-08T00:00:30Z");
  Simulation sim = Simulate(*dag, from, from + 3h, 1min, 10s);
  // The simulation's last round is at 02:59:30: 03:00 is not due yet.
  ASSERT_EQ(sim.created.size(), 3u);
  EXPECT_EQ(sim.created[0], At("2026-03-08T00:00:00Z"));  // the latest missed one
  EXPECT_EQ(sim.created[1], At("2026-03-08T01:00:00Z"));
  EXPECT_EQ(sim.created[2], At("2026-03-08T02:00:00Z"));
}

TEST(SchedulePlanTest, PausedCreatesNothingAndUnpausingResumes) {
  DagPtr dag = MakeDag(R"("schedule": "*/10 * * * *", "start_date": "2026-03-01T00:00:00Z")");
  const TimePoint from = At("2026-03-01T00:00:00Z");
  Simulation sim = Simulate(*dag, from, from + 2h, 1min, 1s, At("2026-03-01T01:05:00Z"));
  // Paused until 01:05: the latest missed run (01:00) on unpausing, then 01:10 ... 01:50.
  ASSERT_EQ(sim.created.size(), 6u);
  EXPECT_EQ(sim.created.front(), At("2026-03-01T01:00:00Z"));
  EXPECT_EQ(sim.created.back(), At("2026-03-01T01:50:00Z"));
}

TEST(SchedulePlanTest, MaxActiveRunsHoldsTheNextRunAndSaysItIsBlocked) {
  DagPtr dag = MakeDag(R"("schedule": "@daily", "start_date": "2026-03-01T00:00:00Z",
                          "catchup": true, "max_active_runs": 2)");
  const TimePoint now = At("2026-03-05T12:00:00Z");
  SchedulePlan plan = PlanScheduledRuns(*dag, ScheduleState{}, now, 100);
  ASSERT_EQ(plan.create.size(), 2u);
  EXPECT_EQ(plan.create[1].logical_date, At("2026-03-02T00:00:00Z"));
  ASSERT_TRUE(plan.next);
  EXPECT_EQ(plan.next->logical_date, At("2026-03-03T00:00:00Z"));
  EXPECT_TRUE(plan.blocked);

  plan = PlanScheduledRuns(*dag, ScheduleState{At("2026-03-05T00:00:00Z"), 0, false}, now, 100);
  EXPECT_TRUE(plan.create.empty());
  EXPECT_FALSE(plan.blocked);
  ASSERT_TRUE(plan.next);
  EXPECT_EQ(plan.next->run_after, At("2026-03-06T00:00:00Z"));  // in the future: the wake time
}

TEST(SchedulePlanTest, AtMostMaxCreatePerPlanTheRestIsDueNext) {
  DagPtr dag = MakeDag(R"("schedule": "* * * * *", "start_date": "2026-03-01T00:00:00Z",
                          "catchup": true, "max_active_runs": 1000)");
  SchedulePlan plan =
      PlanScheduledRuns(*dag, ScheduleState{}, At("2026-03-01T10:00:00Z"), 64);
  EXPECT_EQ(plan.create.size(), 64u);
  ASSERT_TRUE(plan.next);
  EXPECT_EQ(plan.next->logical_date, At("2026-03-01T01:04:00Z"));
  EXPECT_FALSE(plan.blocked);
}

TEST(SchedulePlanTest, EndDateAndOnceStopTheSchedule) {
  DagPtr once = MakeDag(R"("schedule": "@once", "start_date": "2026-03-01T00:00:00Z")");
  const TimePoint now = At("2026-03-02T00:00:00Z");
  SchedulePlan plan = PlanScheduledRuns(*once, ScheduleState{}, now, 10);
  ASSERT_EQ(plan.create.size(), 1u);
  EXPECT_FALSE(plan.next);
  EXPECT_TRUE(PlanScheduledRuns(*once, ScheduleState{plan.create[0].logical_date, 0, false}, now,
                                10)
                  .create.empty());

  DagPtr ended = MakeDag(R"("schedule": "@daily", "start_date": "2026-03-01T00:00:00Z",
                            "end_date": "2026-03-03T00:00:00Z", "catchup": true)");
  Simulation sim = Simulate(*ended, now, now + 24h * 5, 1h, 1min);
  ASSERT_EQ(sim.created.size(), 3u);
  EXPECT_EQ(sim.created.back(), At("2026-03-03T00:00:00Z"));
}

TEST(SchedulePlanTest, DataIntervalRunsFireAtTheEndOfTheirInterval) {
  DagPtr dag = MakeDag(R"("schedule": "@hourly", "timetable": "data_interval",
                          "start_date": "2026-03-01T00:00:00Z", "catchup": true)");
  SchedulePlan plan =
      PlanScheduledRuns(*dag, ScheduleState{}, At("2026-03-01T02:30:00Z"), 100);
  ASSERT_EQ(plan.create.size(), 2u);
  EXPECT_EQ(plan.create[0].logical_date, At("2026-03-01T00:00:00Z"));
  EXPECT_EQ(plan.create[0].run_after, At("2026-03-01T01:00:00Z"));
  EXPECT_EQ(plan.create[1].data_interval_end, At("2026-03-01T02:00:00Z"));
  ASSERT_TRUE(plan.next);
  EXPECT_EQ(plan.next->run_after, At("2026-03-01T03:00:00Z"));
}

}  // namespace
}  // namespace dagd::scheduler
