// OS accounts as the passwd and group databases (NSS) describe them.
// Errors: none; an account that does not exist, or a lookup that fails, is std::nullopt.
// Thread-safety: every function may be called from any thread (getpw*_r, getgrouplist).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace dagd::executors {

struct SystemAccount {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;              // primary group
  std::vector<gid_t> groups;  // every group, primary included (getgrouplist)
  std::string home;           // "/" when the account has none
};

std::optional<SystemAccount> FindAccount(const std::string& name);
std::optional<SystemAccount> FindAccount(uid_t uid);

// The name of `uid`, or its number in decimal when it has no passwd entry (a container's uid).
std::string AccountName(uid_t uid);

}  // namespace dagd::executors
