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

}  // namespace
}  // namespace dagd::scheduler
