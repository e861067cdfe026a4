#include "task_account.hpp"

#include <unistd.h>

namespace dagd::executors {

StatusOr<TaskAccount> ChooseTaskAccount(const std::string& task_id, const std::string& requested,
                                        const std::string& default_account,
                                        const std::set<std::string>& allowed,
                                        const std::string& postgres_account) {
  const std::string task = "task '" + task_id + "'";
  const uid_t euid = ::geteuid();
  if (euid != 0) {
    // A container uid may have no passwd entry: then it is known by its number.
    std::optional<SystemAccount> found = FindAccount(euid);
    if (!found)
      found = SystemAccount{std::to_string(euid), euid, ::getegid(), {}, std::string(1, '/')};
    const TaskAccount self{std::move(*found), false};
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
  auto found = FindAccount(name);
  if (!found) {
    return Status::FailedPrecondition(task + " should run as '" + name +
                                      "', but no such account exists");
  }
  if (found->uid == 0) {
    return Status::FailedPrecondition(task + " was not run: bash tasks never run as root, and " +
                                      "account '" + name + "' has uid 0");
  }
  // Checked here as well as at start: the account databases may have changed since.
  if (!postgres_account.empty()) {
    auto postgres = FindAccount(postgres_account);
    if (postgres && postgres->uid == found->uid) {
      return Status::FailedPrecondition(task + " was not run: account '" + name +
                                        "' is the PostgreSQL account, which owns the database " +
                                        "files");
    }
  }
  return TaskAccount{std::move(*found), true};
}

}  // namespace dagd::executors
