#include "jwt_key.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dagd/scheduler/credentials.hpp"
#include "errno_text.hpp"

namespace dagd::daemon {
namespace {

constexpr size_t kMinSecretBytes = 32;
constexpr size_t kMaxKeyFileBytes = 4096;

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

StatusOr<std::string> ReadKeyFile(const std::filesystem::path& path, int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return Status::Internal("cannot stat " + path.string() + ": " + ErrnoText(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::FailedPrecondition(path.string() + " is not a regular file");
  }
  if (st.st_uid != ::geteuid()) {
    return Status::FailedPrecondition(
        path.string() + " belongs to another account; the JWT key must be dagd's own");
  }
  if ((st.st_mode & 077) != 0) {
    return Status::FailedPrecondition(fmt::format(
        "{} is open to its group or others (mode {:04o}): anyone who reads it can sign tokens; "
        "chmod 600 it, or delete it to have a new key made (tokens signed with it stop working)",
        path.string(), st.st_mode & 07777));
  }
  std::string text(kMaxKeyFileBytes, '\0');
  const ssize_t n = ::read(fd, text.data(), text.size());
  if (n < 0) return Status::Internal("cannot read " + path.string() + ": " + ErrnoText(errno));
  text.resize(static_cast<size_t>(n));
  text = Trimmed(std::move(text));
  if (text.size() < kMinSecretBytes) {
    return Status::FailedPrecondition(path.string() + " holds fewer than 32 bytes; delete it to " +
                                      "have a new key made");
  }
  return text;
}

}  // namespace

StatusOr<std::string> LoadJwtSecret(const std::optional<std::string>& given,
                                    const std::filesystem::path& state_dir) {
  if (given) {
    if (given->size() < kMinSecretBytes) {
      return Status::FailedPrecondition(fmt::format(
          "DAGD_JWT_SECRET holds {} bytes; it must hold at least 32 (e.g. the output of "
          "`openssl rand -hex 32`), or leave it unset to use {}",
          given->size(), (state_dir / "jwt.key").string()));
    }
    return *given;
  }
  const std::filesystem::path path = state_dir / "jwt.key";
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    auto secret = ReadKeyFile(path, fd);
    ::close(fd);
    return secret;
  }
  if (errno == ELOOP) {
    return Status::FailedPrecondition(path.string() + " is a symbolic link; it must be a file");
  }
  if (errno != ENOENT) {
    return Status::Internal("cannot open " + path.string() + ": " + ErrnoText(errno));
  }
  auto secret = scheduler::RandomHex(kMinSecretBytes);
  if (!secret.ok()) return secret.status();
  fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) return LoadJwtSecret(given, state_dir);  // made meanwhile
  if (fd < 0) return Status::Internal("cannot create " + path.string() + ": " + ErrnoText(errno));
  const std::string line = *secret + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                       ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!written) {
    ::unlink(path.c_str());
    return Status::Internal("cannot write " + path.string() + ": " + ErrnoText(saved));
  }
  return *secret;
}

}  // namespace dagd::daemon
