#include "dagd/executors/system_account.hpp"

#include <grp.h>
#include <pwd.h>

#include <cerrno>

namespace dagd::executors {
namespace {

// Calls `get` (getpwnam_r or getpwuid_r with its key bound) with a buffer that grows until the
// entry fits; 16 KiB holds any ordinary entry.
template <typename Get>
std::optional<passwd> LookUp(std::vector<char>& buffer, Get get) {
  buffer.resize(16384);
  passwd entry{};
  passwd* found = nullptr;
  int rc;
  while ((rc = get(&entry, buffer.data(), buffer.size(), &found)) == ERANGE) {
    buffer.resize(buffer.size() * 2);
  }
  if (rc != 0 || found == nullptr) return std::nullopt;
  return entry;
}

std::optional<SystemAccount> ToAccount(const std::optional<passwd>& entry) {
  if (!entry) return std::nullopt;
  SystemAccount account;
  account.name = entry->pw_name;
  account.uid = entry->pw_uid;
  account.gid = entry->pw_gid;
  account.home = entry->pw_dir != nullptr && *entry->pw_dir != '\0' ? entry->pw_dir : "/";
  int count = 32;
  account.groups.resize(static_cast<size_t>(count));
  while (::getgrouplist(account.name.c_str(), account.gid, account.groups.data(), &count) < 0) {
    account.groups.resize(static_cast<size_t>(count) + 32);
    count = static_cast<int>(account.groups.size());
  }
  account.groups.resize(static_cast<size_t>(count));
  return account;
}

}  // namespace

std::optional<SystemAccount> FindAccount(const std::string& name) {
  std::vector<char> buffer;
  return ToAccount(LookUp(buffer, [&name](passwd* entry, char* data, size_t size, passwd** found) {
    return ::getpwnam_r(name.c_str(), entry, data, size, found);
  }));
}

std::optional<SystemAccount> FindAccount(uid_t uid) {
  std::vector<char> buffer;
  return ToAccount(LookUp(buffer, [uid](passwd* entry, char* data, size_t size, passwd** found) {
    return ::getpwuid_r(uid, entry, data, size, found);
  }));
}

std::string AccountName(uid_t uid) {
  std::vector<char> buffer;
  auto entry = LookUp(buffer, [uid](passwd* e, char* data, size_t size, passwd** found) {
    return ::getpwuid_r(uid, e, data, size, found);
  });
  return entry ? std::string(entry->pw_name) : std::to_string(uid);
}

}  // namespace dagd::executors
