#include "process_group.hpp"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

namespace dagd::executors {
namespace {

struct ProcStat {
  char state = '?';
  long pgrp = 0;
  unsigned long long start_time = 0;
};

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string& BootId() {
  static const std::string id = [] {
    std::string text = ReadSmallFile("/proc/sys/kernel/random/boot_id");
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
  }();
  return id;
}

// Fields 3 (state), 5 (pgrp) and 22 (starttime) of /proc/<pid>/stat. The command name (field 2)
// is in parentheses and may itself hold spaces and parentheses: fields are counted from the
// last ')'.
std::optional<ProcStat> ReadProcStat(long pid) {
  const std::string text = ReadSmallFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(paren + 1));
  ProcStat st;
  std::string skip;
  fields >> st.state >> skip >> st.pgrp;  // 3 state, 4 ppid, 5 pgrp
  for (int field = 6; field < 22; ++field) fields >> skip;
  fields >> st.start_time;
  if (!fields) return std::nullopt;
  return st;
}

std::optional<unsigned long long> ParseTicks(std::string_view text) {
  unsigned long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

bool Alive(const ProcStat& st) { return st.state != 'Z' && st.state != 'X'; }

// Live processes (not zombies, whose parent merely has not reaped them) of group `pgid` that
// started at or after `since`.
size_t LiveMembers(long pgid, unsigned long long since) {
  size_t count = 0;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return 0;
  while (const dirent* entry = ::readdir(dir)) {
    long pid = 0;
    const std::string_view name(entry->d_name);
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec != std::errc() || end != name.data() + name.size()) continue;
    auto st = ReadProcStat(pid);
    if (st && st->pgrp == pgid && st->start_time >= since && Alive(*st)) ++count;
  }
  ::closedir(dir);
  return count;
}

// Polls until the group has no live member or `wait` passed; true when it is gone.
bool WaitGone(long pgid, unsigned long long since, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    if (LiveMembers(pgid, since) == 0) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

std::optional<std::string> ProcessStartKey(int pid) {
  auto st = ReadProcStat(pid);
  if (!st || BootId().empty()) return std::nullopt;
  return BootId() + ":" + std::to_string(st->start_time);
}

size_t LiveProcessesInGroup(int pgid) { return LiveMembers(pgid, 0); }

Status StopProcessGroup(const scheduler::TryProcess& process, std::chrono::milliseconds grace) {
  const std::string& key = process.start_key;
  const size_t colon = key.rfind(':');
  const auto since = colon == std::string::npos
                         ? std::nullopt
                         : ParseTicks(std::string_view(key).substr(colon + 1));
  if (process.pgid <= 1 || !since) {
    return Status::InvalidArgument("the recorded process group " + std::to_string(process.pgid) +
                                   " with start key '" + key + "' is malformed");
  }
  // Another boot: everything the recorded group held died with it.
  if (key.substr(0, colon) != BootId()) return Status::Ok();
  // A process that started later owns the leader's id: the recorded group cannot exist any more
  // (Linux does not reuse an id while a group of that id has members).
  if (auto leader = ReadProcStat(process.pgid); leader && leader->start_time != *since) {
    return Status::Ok();
  }
  if (LiveMembers(process.pgid, *since) == 0) return Status::Ok();

  const std::string group = "process group " + std::to_string(process.pgid);
  if (::kill(-process.pgid, SIGTERM) != 0 && errno != ESRCH) {
    return Status::Unavailable("cannot signal " + group + ": " + std::strerror(errno));
  }
  if (WaitGone(process.pgid, *since, grace)) return Status::Ok();
  if (::kill(-process.pgid, SIGKILL) != 0 && errno != ESRCH) {
    return Status::Unavailable("cannot signal " + group + ": " + std::strerror(errno));
  }
  if (WaitGone(process.pgid, *since, std::chrono::seconds(10))) return Status::Ok();
  return Status::Unavailable(group + " still has processes 10s after SIGKILL");
}

}  // namespace dagd::executors
