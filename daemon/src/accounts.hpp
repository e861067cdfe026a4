// `dagd users ...` and `dagd tokens ...`: manage API users and API tokens in the daemon's
// database. With the embedded PostgreSQL they use the running daemon's cluster (its socket in the
// state directory) or, when no daemon runs, start the cluster for the command and stop it after.
//
// users add reads the password from stdin (one line) when stdin is not a terminal or with
// --password-stdin, else asks for it twice without echo. tokens create prints the token alone on
// stdout, once; it is stored only as its SHA-256.
#pragma once

#include <iosfwd>

#include "config.hpp"

namespace dagd::daemon {

// The process exit code: 0 done, 1 refused or failed (a sentence on `err`), 2 bad input.
int RunAccountCommand(Command command, const Config& config, const AccountCommand& account,
                      std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace dagd::daemon
