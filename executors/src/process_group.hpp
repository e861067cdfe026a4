// Identifying and stopping process groups through /proc (Linux).
//
// A group is named by its id and the start key of its leader, "<boot id>:<start time>": the
// boot id from /proc/sys/kernel/random/boot_id and field 22 (starttime, clock ticks since boot)
// of /proc/<pid>/stat. Together they tell the group a try started from a later one that reuses
// the id, across daemon restarts and reboots.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "dagd/scheduler/records.hpp"
#include "dagd/scheduler/status.hpp"

namespace dagd::executors {

// The start key of a running (or not yet reaped) process; nullopt when /proc does not know it.
std::optional<std::string> ProcessStartKey(int pid);

// How many live processes (zombies aside) group `pgid` has.
size_t LiveProcessesInGroup(int pgid);

// Stops what is left of the recorded group, if anything: SIGTERM to the group, SIGKILL after
// `grace`, then waits (bounded) until no live process of it remains. Nothing is signalled when
// the key names another boot, or the group's leader is alive but is a later process (a reused
// id). ok when nothing of the group is left; invalid_argument for a malformed record;
// unavailable when a signal is refused or processes outlive the wait. Blocks; thread-safe.
Status StopProcessGroup(const scheduler::TryProcess& process, std::chrono::milliseconds grace);

}  // namespace dagd::executors
