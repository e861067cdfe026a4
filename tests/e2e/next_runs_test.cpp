// `dagd dags next-runs`: the binary prints a DAG's next runs offline, by file or by dag_id.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

// Runs the binary: its exit code and all it printed (stdout, then stderr).
std::pair<int, std::string> NextRuns(const std::vector<std::string>& args) {
  CliResult r = RunDagd(args);
  return {r.exit_code, r.out + r.err};
}

TEST(NextRunsCommand, PrintsRunsInUtcAndTheDagZoneByFileOrId) {
  TempDir dags;
  dags.Write("ny.json", R"({"dag_id": "ny", "schedule": "@daily",
    "timezone": "America/New_York", "start_date": "2099-01-01",
    "tasks": [{"task_id": "a", "operator": "empty"}]})");
  auto [code, out] = NextRuns({"dags", "next-runs", (dags.path() / "ny.json").string(), "-n", "2"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("logical_date 2099-01-01T05:00:00Z (2099-01-01T00:00:00-05:00)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("logical_date 2099-01-02T05:00:00Z"), std::string::npos) << out;
  EXPECT_EQ(out.find("2099-01-03"), std::string::npos) << out;

  auto [id_code, id_out] =
      NextRuns({"--dags-folder", dags.path().string(), "dags", "next-runs", "ny", "-n", "1"});
  EXPECT_EQ(id_code, 0) << id_out;
  EXPECT_NE(id_out.find("schedule: @daily (At 00:00)"), std::string::npos) << id_out;

  auto [missing_code, missing_out] =
      NextRuns({"--dags-folder", dags.path().string(), "dags", "next-runs", "nope"});
  EXPECT_EQ(missing_code, 1) << missing_out;
  EXPECT_NE(missing_out.find("'nope' is neither a DAG file nor the dag_id"), std::string::npos);
}

TEST(NextRunsCommand, RefusesABadScheduleNamingTheField) {
  TempDir dags;
  dags.Write("bad.json", R"({"dag_id": "bad", "schedule": "61 * * * *",
    "tasks": [{"task_id": "a", "operator": "empty"}]})");
  auto [code, out] = NextRuns({"dags", "next-runs", (dags.path() / "bad.json").string()});
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("DAG field 'schedule': minute field: 61 is out of range 0-59"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace dagd::testing
