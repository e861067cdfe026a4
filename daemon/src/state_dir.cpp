#include "state_dir.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "dagd/executors/system_account.hpp"
#include "errno_text.hpp"
#include "logging.hpp"

namespace dagd::daemon {
namespace fs = std::filesystem;

namespace {

// Makes `dir` a directory with exactly `mode` (and group `group` when set), creating it if needed.
Status MakeDir(const fs::path& dir, mode_t mode, std::optional<gid_t> group) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Internal(fmt::format("cannot create {}: {}", dir.string(), ErrnoText(errno)));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return Status::Internal(fmt::format("cannot stat {}: {}", dir.string(), ErrnoText(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::FailedPrecondition(fmt::format("{} is not a directory", dir.string()));
  }
  if (group && st.st_gid != *group && ::chown(dir.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    return Status::FailedPrecondition(
        fmt::format("cannot set the group of {}: {}", dir.string(), ErrnoText(errno)));
  }
  const mode_t current = st.st_mode & 07777;
  if (current == mode) return Status::Ok();
  if (::chmod(dir.c_str(), mode) != 0) {
    return Status::FailedPrecondition(fmt::format(
        "{} has mode {:04o} and cannot be made {:04o}: {}; fix its owner or choose another "
        "--state-dir",
        dir.string(), current, mode, ErrnoText(errno)));
  }
  // Only a mode that gave someone more than we intend is worth a warning; a fresh directory or a
  // stricter one is not.
  if ((current & ~mode & 0077) != 0) {
    Log()->warn(
        "directory was accessible to other accounts, tightened dir={} mode={:04o} was={:04o}",
        dir.string(), mode, current);
  }
  return Status::Ok();
}

}  // namespace

Status PrepareStateDir(const fs::path& state_dir,
                       const std::optional<std::string>& traverse_account) {
  std::error_code ec;
  if (state_dir.has_parent_path()) fs::create_directories(state_dir.parent_path(), ec);
  if (ec) {
    return Status::Internal(
        fmt::format("cannot create {}: {}", state_dir.parent_path().string(), ec.message()));
  }
  // The embedded PostgreSQL runs as its own account when dagd is root, and must pass through the
  // state directory to reach postgres/ (which it owns, 0700). Search permission for that account's
  // group alone (0710) lets it through without letting anyone list or read the state directory;
  // every entry in it is private in turn (logs/ 0700, postgres/ 0700 of its account). 0711 would
  // let every local account through, and keeping the cluster outside the state directory would
  // split dagd's state in two places.
  std::optional<gid_t> group;
  mode_t mode = 0700;
  if (traverse_account) {
    auto account = executors::FindAccount(*traverse_account);
    if (!account) {
      return Status::InvalidArgument(fmt::format("account '{}' does not exist", *traverse_account));
    }
    group = account->gid;
    mode = 0710;
  }
  if (Status s = MakeDir(state_dir, mode, group); !s.ok()) return s;
  return MakeDir(state_dir / "logs", 0700, std::nullopt);
}

}  // namespace dagd::daemon
