#include "try_directory.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace dagd::executors {
namespace {

// Empties the directory open as `fd` (which this function closes), depth first; false on the
// first entry it could not remove. `depth` bounds recursion against pathological trees.
bool EmptyDirectory(int fd, int depth) {
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return false;
  }
  bool ok = true;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (::unlinkat(fd, name.c_str(), 0) == 0) continue;
    if (errno != EISDIR && errno != EPERM) {
      ok = false;
      continue;
    }
    const int child = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child < 0 || depth <= 0 || !EmptyDirectory(child, depth - 1) ||
        ::unlinkat(fd, name.c_str(), AT_REMOVEDIR) != 0) {
      if (child >= 0 && depth <= 0) ::close(child);
      ok = false;
    }
  }
  ::closedir(dir);
  return ok;
}

}  // namespace

StatusOr<std::filesystem::path> MakeTryDirectory(const TaskAccount& account) {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string pattern = (base / "dagd-try-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return Status::Internal("cannot create a working directory in '" + base.string() +
                            "': " + std::strerror(errno));
  }
  if (account.switch_to && ::chown(pattern.c_str(), account.uid, account.gid) != 0) {
    const int err = errno;
    ::rmdir(pattern.c_str());
    return Status::Internal("cannot give the working directory '" + pattern + "' to account '" +
                            account.name + "': " + std::strerror(err));
  }
  return std::filesystem::path(pattern);
}

Status RemoveTryDirectory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::Internal("cannot open '" + dir.string() + "': " + std::strerror(errno));
  }
  const bool emptied = EmptyDirectory(fd, 256);
  if (!emptied || ::rmdir(dir.c_str()) != 0) {
    return Status::Internal("cannot remove everything in '" + dir.string() + "'");
  }
  return Status::Ok();
}

}  // namespace dagd::executors
