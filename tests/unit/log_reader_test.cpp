// LogReader: a log served piece by piece, note first, never ending silently short.
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>

#include "dagd/scheduler/service.hpp"

namespace dagd::scheduler {
namespace {

std::string ReadAll(LogReader& reader, size_t piece) {
  std::string out;
  for (std::string chunk; !(chunk = reader.Read(piece)).empty();) {
    EXPECT_LE(chunk.size(), piece);
    out += chunk;
  }
  return out;
}

TEST(LogReader, ServesTheNoteThenTheBytesInPiecesOfAtMostTheSizeAsked) {
  auto in = std::make_unique<std::istringstream>("0123456789");
  in->seekg(4);
  LogReader reader("[note]\n", std::move(in), 6);
  EXPECT_EQ(ReadAll(reader, 4), "[note]\n456789");
  EXPECT_EQ(reader.Read(4), "");
}

TEST(LogReader, StopsAtTheLengthGivenWhenTheFileGrows) {
  LogReader reader("", std::make_unique<std::istringstream>("abcdef"), 3);
  EXPECT_EQ(ReadAll(reader, 100), "abc");
}

TEST(LogReader, AFileShorterThanPromisedEndsWithALineSayingSo) {
  LogReader reader("", std::make_unique<std::istringstream>("abc"), 10);
  EXPECT_EQ(ReadAll(reader, 2), "abc\n[dagd: the log ended 7 bytes early while being read]\n");
  LogReader whole_lines("", std::make_unique<std::istringstream>("abc\n"), 10);
  EXPECT_EQ(ReadAll(whole_lines, 100),
            "abc\n[dagd: the log ended 6 bytes early while being read]\n");
}

TEST(LogReader, ADefaultReaderIsAnEmptyLog) {
  LogReader reader;
  EXPECT_EQ(reader.Read(10), "");
}

TEST(LogReader, CountsPositionsInTheFileNotInTheNote) {
  auto in = std::make_unique<std::istringstream>("0123456789");
  in->seekg(4);
  LogReader reader("[note]\n", std::move(in), 6, LogOrigin{"ti/1", false, 4, {}});
  EXPECT_EQ(reader.position(), 4u);
  EXPECT_EQ(reader.end(), 10u);
  EXPECT_EQ(reader.Read(3), "[no");
  EXPECT_EQ(reader.position(), 4u);
  EXPECT_EQ(ReadAll(reader, 3), "te]\n456789");
  EXPECT_EQ(reader.position(), 10u);
  EXPECT_EQ(reader.try_key(), "ti/1");
  EXPECT_FALSE(reader.try_ended());
}

TEST(LogReader, GrowTakesInWhatTheFileGainedAfterItsEnd) {
  auto stream = std::make_unique<std::stringstream>();
  std::stringstream* file = stream.get();
  *file << "one\n";
  LogReader reader("", std::move(stream), 4, LogOrigin{"ti/1", false, 0, {}});
  EXPECT_EQ(ReadAll(reader, 100), "one\n");
  EXPECT_FALSE(reader.Grow());
  file->clear();
  file->seekp(0, std::ios::end);
  *file << "two\n";
  EXPECT_TRUE(reader.Grow());
  EXPECT_EQ(reader.end(), 8u);
  EXPECT_EQ(ReadAll(reader, 3), "two\n");
  EXPECT_FALSE(reader.Grow());
  EXPECT_EQ(reader.position(), 8u);
}

TEST(LogReader, ALogNotWrittenYetIsOpenedByGrowOnceItExists) {
  bool exists = false;
  LogOrigin origin{"ti/1", false, 0, [&exists]() -> std::unique_ptr<std::istream> {
                     if (!exists) return nullptr;
                     return std::make_unique<std::istringstream>("hello\n");
                   }};
  LogReader reader("", nullptr, 0, std::move(origin));
  EXPECT_EQ(reader.Read(10), "");
  EXPECT_FALSE(reader.Grow());
  exists = true;
  EXPECT_TRUE(reader.Grow());
  EXPECT_EQ(ReadAll(reader, 10), "hello\n");
}

}  // namespace
}  // namespace dagd::scheduler
