// EventHub: one subscription to the store's change notifications for the whole daemon, fanned out
// to any number of watchers (event streams, waits on a run). The store's listener thread only
// raises a flag here; the hub's own thread calls the watchers' wake functions, so neither the
// listener nor the scheduler's notification waits for them, however many streams are open.
//
// Start subscribes to the store from the hub's thread, retried every `retry` while the database
// cannot be reached; once it succeeds every watcher is woken (changes may have been missed),
// as after the store's listener lost its connection. A wake is coalesced: several commits
// between two rounds wake each watcher once.
//
// Thread-safety: Watch and WatcherCount may be called from any thread. The returned handle
// unregisters when destroyed and returns once no call of its wake is in progress (destroyed
// from within its own wake, it does not wait). A wake must be cheap and must not block; it may
// destroy its own handle, not another's. Handles may outlive the hub (their wake is then never
// called again).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/service.hpp"

namespace dagd::scheduler {

class EventHub {
 public:
  // `store` must outlive the hub.
  explicit EventHub(StateStore& store,
                    std::chrono::milliseconds retry = std::chrono::milliseconds(1000));
  ~EventHub();  // Stop()
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Starts the hub's thread (once).
  void Start();
  // Joins the thread and unsubscribes from the store; no wake is called after it returns.
  void Stop();

  // Calls `wake` after every change commit until the handle is destroyed.
  std::unique_ptr<ChangeWatch> Watch(std::function<void()> wake);

  size_t WatcherCount() const;

 private:
  struct State;
  class Handle;
  void Loop();

  StateStore& store_;
  const std::chrono::milliseconds retry_;
  std::shared_ptr<State> state_;  // shared with the handles and the store's callback
  std::thread thread_;
};

}  // namespace dagd::scheduler
