// A LiveBody (router.hpp) driven by a Source woken by the Service's change notifications: the
// streams of events, run waits and followed task logs. A Source has `void Wake()` (called from
// the change watch's thread), `std::optional<std::string> Poll(steady_clock::time_point)` (the
// LiveBody's poll) and, when it can stop a poll with something left to read, `bool Behind()`:
// then the body wakes the server at once rather than at the next notification. The Service must
// outlive the body.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "dagd/api/router.hpp"
#include "dagd/scheduler/service.hpp"

namespace dagd::api {

// A body's source, its change watch and the server's wake. The watch is declared after the
// source it wakes: it goes first, and its destruction waits for a wake in progress.
template <typename Source>
struct LiveState {
  template <typename... Args>
  explicit LiveState(Args&&... args) : source(std::forward<Args>(args)...) {}
  Source source;
  std::function<void()> wake;  // the server's; set by arm before the first poll
  std::unique_ptr<scheduler::ChangeWatch> watch;
};

// A LiveBody whose source is a Source made of `args`, polled every `idle_poll` when idle.
template <typename Source, typename... Args>
std::shared_ptr<LiveBody> MakeLiveBody(scheduler::Service& service,
                                       std::chrono::milliseconds idle_poll, Args&&... args) {
  auto state = std::make_shared<LiveState<Source>>(std::forward<Args>(args)...);
  auto body = std::make_shared<LiveBody>();
  body->idle_poll = idle_poll;
  // The closures hold the state: it lives as long as the LiveBody the server holds.
  body->arm = [state, &service](std::function<void()> wake) {
    state->wake = wake;
    Source* source = &state->source;
    state->watch = service.WatchChanges([source, wake = std::move(wake)] {
      source->Wake();
      wake();
    });
  };
  body->poll = [state]() -> std::optional<std::string> {
    auto piece = state->source.Poll(std::chrono::steady_clock::now());
    if constexpr (requires { state->source.Behind(); }) {
      if (piece && state->source.Behind() && state->wake) state->wake();
    }
    return piece;
  };
  return body;
}

}  // namespace dagd::api
