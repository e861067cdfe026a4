#include "dagd/scheduler/admission.hpp"

#include <gtest/gtest.h>

namespace dagd::scheduler {
namespace {

using namespace std::chrono_literals;

const TimePoint kNow = TimePoint(Duration(1'700'000'000'000'000));

AdmissionInput Queue(std::vector<QueuedRun> queued, int running = 0, int max_active_runs = 16) {
  AdmissionInput input;
  input.queued = std::move(queued);
  input.running = running;
  input.max_active_runs = max_active_runs;
  return input;
}

TEST(Admission, DueRunsStartOldestFirstUpToMaxActiveRuns) {
  Admission a = AdmitRuns(Queue({{1, {}}, {2, {}}, {3, {}}}, /*running=*/1, /*max=*/3), kNow);
  EXPECT_EQ(a.start, (std::vector<int64_t>{1, 2}));
  EXPECT_FALSE(a.next_wakeup);
}

TEST(Admission, NothingStartsAtTheLimit) {
  EXPECT_TRUE(AdmitRuns(Queue({{1, {}}}, 2, 2), kNow).start.empty());
  EXPECT_TRUE(AdmitRuns(Queue({{1, {}}}, 3, 2), kNow).start.empty());
}

TEST(Admission, NothingStartsWhilePausedOrDraining) {
  AdmissionInput paused = Queue({{1, {}}});
  paused.paused = true;
  EXPECT_TRUE(AdmitRuns(paused, kNow).start.empty());
  AdmissionInput draining = Queue({{1, {}}});
  draining.draining = true;
  EXPECT_TRUE(AdmitRuns(draining, kNow).start.empty());
}

TEST(Admission, ARunTriggeredForLaterWaitsAndDoesNotHoldBackAYoungerDueRun) {
  Admission a = AdmitRuns(Queue({{1, kNow + 30s}, {2, {}}, {3, kNow - 1s}}, 0, 2), kNow);
  EXPECT_EQ(a.start, (std::vector<int64_t>{2, 3}));
  ASSERT_TRUE(a.next_wakeup);
  EXPECT_EQ(*a.next_wakeup, kNow + 30s);
  Admission later = AdmitRuns(Queue({{1, kNow + 30s}}, 0, 2), kNow + 30s);
  EXPECT_EQ(later.start, std::vector<int64_t>{1});
}

}  // namespace
}  // namespace dagd::scheduler
