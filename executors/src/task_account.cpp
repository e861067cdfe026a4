#include "task_account.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

namespace dagd::executors {
namespace {

std::optional<TaskAccount> LookUp(const std::string* name, uid_t uid) {
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  int rc;
  while ((rc = name != nullptr
                   ? ::getpwnam_r(name->c_str(), &entry, buffer.data(), buffer.size(), &found)
                   : ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found)) == ERANGE) {
    buffer.resize(buffer.size() * 2);
  }
  if (rc != 0 || found == nullptr) return std::nullopt;
  TaskAccount account;
  account.name = found->pw_name;
  account.uid = found->pw_uid;
  account.gid = found->pw_gid;
  account.home = found->pw_dir != nullptr && *found->pw_dir != '\0' ? found->pw_dir : "/";
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

StatusOr<TaskAccount> ChooseTaskAccount(const std::string& task_id, const std::string& requested,
                                        const std::string& default_account,
                                        const std::set<std::string>& allowed) {
  const std::string task = "task '" + task_id + "'";
  const uid_t euid = ::geteuid();
  if (euid != 0) {
    TaskAccount self;
    if (auto found = LookUp(nullptr, euid)) {
      self = std::move(*found);
    } else {  // a container uid without a passwd entry
      self.name = std::to_string(euid);
      self.uid = euid;
      self.gid = ::getegid();
      self.home = "/";
    }
    for (const std::string* wanted : {&requested, &default_account}) {
      if (!wanted->empty() && *wanted != self.name) {
        return Status::FailedPrecondition(task + " should run as '" + *wanted +
                                          "', but dagd runs as '" + self.name +
                                          "' and only root can run a command as another account");
      }
    }
    return self;
  }
  if (!requested.empty() && requested != default_account && !allowed.contains(requested)) {
    return Status::FailedPrecondition(task + " asks to run as '" + requested +
                                      "', which the daemon does not allow (--allow-run-as)");
  }
  const std::string& name = requested.empty() ? default_account : requested;
  if (name.empty()) {
    return Status::FailedPrecondition(task + " was not run: bash tasks never run as root, and " +
                                      "dagd runs as root without a task account (--run-as)");
  }
  auto account = LookUp(&name, 0);
  if (!account) {
    return Status::FailedPrecondition(task + " should run as '" + name +
                                      "', but no such account exists");
  }
  if (account->uid == 0) {
    return Status::FailedPrecondition(task + " was not run: bash tasks never run as root, and " +
                                      "account '" + name + "' has uid 0");
  }
  account->switch_to = true;
  return *account;
}

}  // namespace dagd::executors
