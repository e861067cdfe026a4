// `dagd` (serve): runs the daemon until SIGTERM/SIGINT; SIGHUP reloads the dags folder.
#pragma once

#include "config.hpp"

namespace dagd::daemon {

// Returns the process exit code: 0 after a graceful stop, 1 when start-up failed (the reason is
// logged as one sentence).
int Serve(const Config& config);

}  // namespace dagd::daemon
