#include "dagd/scheduler/log_paths.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace dagd::scheduler {
namespace {

// Whether `path`, normalised lexically, stays strictly inside `root`.
bool StaysUnder(const std::filesystem::path& root, const std::filesystem::path& path) {
  auto relative = path.lexically_normal().lexically_relative(root.lexically_normal());
  if (relative.empty()) return false;
  for (const auto& part : relative) {
    if (part == "..") return false;
  }
  return true;
}

TEST(LogPaths, KeepsSafeCharactersAsTheyAre) {
  EXPECT_EQ(EncodePathComponent("extract_v2.raw-zone"), "extract_v2.raw-zone");
  EXPECT_EQ(EncodePathComponent("ABCxyz019"), "ABCxyz019");
}

TEST(LogPaths, PercentEncodesEverythingElse) {
  EXPECT_EQ(EncodePathComponent("manual__2026-01-01T00:00:00+00:00"),
            "manual__2026-01-01T00%3A00%3A00%2B00%3A00");
  EXPECT_EQ(EncodePathComponent("a/b"), "a%2Fb");
  EXPECT_EQ(EncodePathComponent("a b%"), "a%20b%25");
  EXPECT_EQ(EncodePathComponent("é"), "%C3%A9");
  EXPECT_EQ(EncodePathComponent(std::string_view("a\0b", 3)), "a%00b");
  EXPECT_EQ(EncodePathComponent("~"), "%7E");
}

TEST(LogPaths, EncodesDotNamesAndEmptyWhole) {
  EXPECT_EQ(EncodePathComponent("."), "%2E");
  EXPECT_EQ(EncodePathComponent(".."), "%2E%2E");
  EXPECT_EQ(EncodePathComponent(""), "%");
  EXPECT_EQ(EncodePathComponent("..."), "...");  // not special to the file system
  EXPECT_EQ(EncodePathComponent(".hidden"), ".hidden");
}

TEST(LogPaths, DistinctIdsGetDistinctNames) {
  std::set<std::string> names;
  for (const char* id : {"", ".", "..", "%", "%2E", "%2E%2E", "a.b", "a%2Eb", "a/b", "a%2Fb"}) {
    EXPECT_TRUE(names.insert(EncodePathComponent(id)).second) << id;
  }
}

TEST(LogPaths, BuildsRootDagRunTaskTryLog) {
  EXPECT_EQ(TryLogPath("/var/lib/dagd/logs", "etl", "manual__2026-01-01T00:00:00+00:00", "load", 2),
            std::filesystem::path(
                "/var/lib/dagd/logs/etl/manual__2026-01-01T00%3A00%3A00%2B00%3A00/load/2.log"));
}

TEST(LogPaths, TraversalAttemptsStayUnderTheRoot) {
  const std::filesystem::path root = "/var/lib/dagd/logs";
  for (const char* evil :
       {"../../etc", "..", ".", "", "/etc/passwd", "a/../../..", "..\\..", "%2E%2E", "./../x"}) {
    auto path = TryLogPath(root, evil, evil, evil, 1);
    EXPECT_TRUE(StaysUnder(root, path)) << evil << " → " << path;
    // Exactly root + dag + run + task + file: no component was split or swallowed.
    auto relative = path.lexically_relative(root);
    EXPECT_EQ(std::distance(relative.begin(), relative.end()), 4) << path;
  }
}

TEST(LogPaths, LongIdsAreShortenedToValidFileNamesWithoutCollisions) {
  std::string colons(250, ':');  // 750 bytes once encoded
  std::string other = colons;
  other.back() = ';';
  std::string a = EncodePathComponent(colons);
  std::string b = EncodePathComponent(other);
  EXPECT_LE(a.size(), 255u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.substr(0, 6), "%3A%3A");
  EXPECT_NE(a.find('~'), std::string::npos);
  EXPECT_EQ(EncodePathComponent(std::string(250, 'x')), std::string(250, 'x'));
}

}  // namespace
}  // namespace dagd::scheduler
