// The OS account a bash try runs as, and the rules for choosing it:
//  - the task's run_as_user when it names one, which must then be the executor's default
//    account or one of its allowed accounts (the daemon's --allow-run-as);
//  - else the executor's run_as_user;
//  - when the daemon is not root it cannot switch: tries run as the daemon's own account, and a
//    try that asks for another one fails;
//  - never root (uid 0): as root without a task account, bash tries fail;
//  - never the embedded PostgreSQL's account (by uid), which owns the database files.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>

#include "dagd/executors/system_account.hpp"
#include "dagd/scheduler/status.hpp"

namespace dagd::executors {

struct TaskAccount : SystemAccount {
  bool switch_to = false;  // the daemon is root: setgroups/setgid/setuid in the child
};

// `task_id` and `requested` (the task's run_as_user, may be empty) are for the messages.
// `postgres_account` (may be empty) is the embedded PostgreSQL's account.
// Errors: failed_precondition with a sentence naming the task and the account.
StatusOr<TaskAccount> ChooseTaskAccount(const std::string& task_id, const std::string& requested,
                                        const std::string& default_account,
                                        const std::set<std::string>& allowed,
                                        const std::string& postgres_account);

}  // namespace dagd::executors
