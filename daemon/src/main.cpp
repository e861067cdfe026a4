// dagd: the composition root. Parses the command line and runs the chosen command.
#include <iostream>

#include "accounts.hpp"
#include "config.hpp"
#include "next_runs.hpp"
#include "serve.hpp"
#include "validate.hpp"

int main(int argc, char** argv) {
  using dagd::daemon::Command;
  dagd::daemon::Invocation inv = dagd::daemon::ParseCommandLine(argc, argv);
  switch (inv.command) {
    case Command::kExit:
      return inv.exit_code;
    case Command::kValidate:
      return dagd::daemon::ValidateFiles(inv.validate_files, std::cout, std::cerr);
    case Command::kNextRuns:
      return dagd::daemon::PrintNextRuns(
          inv.next_runs_target, inv.next_runs_count, inv.config.dags_folder,
          dagd::scheduler::SystemClock().Now(), std::cout, std::cerr);
    case Command::kUsers:
    case Command::kTokens:
      return dagd::daemon::RunAccountCommand(inv.command, inv.config, inv.account, std::cin,
                                             std::cout, std::cerr);
    case Command::kServe:
      return dagd::daemon::Serve(inv.config);
  }
  return 1;
}
