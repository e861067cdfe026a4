#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "dagd/scheduler/service.hpp"

namespace dagd::scheduler {

LogReader::LogReader(std::string note, std::unique_ptr<std::istream> in, size_t length,
                     LogOrigin origin)
    : note_(std::move(note)),
      in_(std::move(in)),
      remaining_(in_ ? length : 0),
      origin_(std::move(origin)) {}

std::string LogReader::Read(size_t max_bytes) {
  if (!note_.empty()) {
    std::string out = note_.substr(0, max_bytes);
    note_.erase(0, out.size());
    return out;
  }
  if (remaining_ == 0) return {};
  std::string out(std::min(max_bytes, remaining_), '\0');
  in_->read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<size_t>(std::max<std::streamsize>(in_->gcount(), 0)));
  if (out.empty()) {
    // Formatted in one piece: GCC 12 at -O2 reports a false -Wrestrict on assigning and then
    // appending to a std::string here.
    note_ = fmt::format("{}[dagd: the log ended {} bytes early while being read]\n",
                        ends_line_ ? "" : "\n", remaining_);
    remaining_ = 0;
    return Read(max_bytes);
  }
  remaining_ -= out.size();
  origin_.offset += out.size();
  ends_line_ = out.back() == '\n';
  return out;
}

bool LogReader::Grow() {
  if (!note_.empty() || remaining_ > 0) return true;
  if (!in_) {
    if (!origin_.open_later) return false;
    in_ = origin_.open_later();
    if (!in_) return false;
  }
  // A stream that hit the end of the file is in a failed state: clear it to look again.
  in_->clear();
  in_->seekg(0, std::ios::end);
  const std::streamoff size = in_->tellg();
  in_->clear();
  // A file shorter than what was read was truncated or replaced: nothing follows from here.
  if (size < 0 || static_cast<uint64_t>(size) <= origin_.offset) return false;
  in_->seekg(static_cast<std::streamoff>(origin_.offset));
  if (!*in_) return false;
  remaining_ = static_cast<size_t>(static_cast<uint64_t>(size) - origin_.offset);
  return true;
}

}  // namespace dagd::scheduler
