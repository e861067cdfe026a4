#include "dagd/scheduler/event_hub.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "logger.hpp"

namespace dagd::scheduler {

namespace {

struct Watcher {
  explicit Watcher(std::function<void()> w) : wake(std::move(w)) {}
  const std::function<void()> wake;
  // Held during each call of wake, so that unregistering can wait for a call in progress.
  std::mutex call_mu;
  std::atomic<bool> active{true};
};

}  // namespace

struct EventHub::State {
  mutable std::mutex mu;  // guards everything below
  std::condition_variable cv;
  bool pending = false;  // a change arrived since the last round
  bool started = false;
  bool stop = false;
  std::map<uint64_t, std::shared_ptr<Watcher>> watchers;
  uint64_t next_id = 1;
  std::thread::id thread_id;  // the hub's thread: the only caller of wakes
};

class EventHub::Handle final : public ChangeWatch {
 public:
  Handle(std::shared_ptr<State> state, uint64_t id, std::shared_ptr<Watcher> watcher)
      : state_(std::move(state)), id_(id), watcher_(std::move(watcher)) {}
  ~Handle() override {
    bool on_hub_thread = false;
    {
      std::lock_guard lock(state_->mu);
      state_->watchers.erase(id_);
      on_hub_thread = state_->thread_id == std::this_thread::get_id();
    }
    // The hub's thread calls wakes one at a time: when that is this thread, the call in
    // progress (if any) is the one destroying this handle, and waiting for it would deadlock.
    if (on_hub_thread) {
      watcher_->active = false;
    } else {
      std::lock_guard call(watcher_->call_mu);
      watcher_->active = false;
    }
  }

 private:
  std::shared_ptr<State> state_;
  uint64_t id_;
  std::shared_ptr<Watcher> watcher_;
};

EventHub::EventHub(StateStore& store, std::chrono::milliseconds retry)
    : store_(store), retry_(retry), state_(std::make_shared<State>()) {}

EventHub::~EventHub() { Stop(); }

void EventHub::Start() {
  std::lock_guard lock(state_->mu);
  if (state_->started) return;
  state_->started = true;
  thread_ = std::thread([this] { Loop(); });
}

void EventHub::Stop() {
  {
    std::lock_guard lock(state_->mu);
    state_->stop = true;
  }
  state_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::unique_ptr<ChangeWatch> EventHub::Watch(std::function<void()> wake) {
  auto watcher = std::make_shared<Watcher>(std::move(wake));
  std::lock_guard lock(state_->mu);
  const uint64_t id = state_->next_id++;
  state_->watchers.emplace(id, watcher);
  return std::make_unique<Handle>(state_, id, std::move(watcher));
}

size_t EventHub::WatcherCount() const {
  std::lock_guard lock(state_->mu);
  return state_->watchers.size();
}

void EventHub::Loop() {
  std::optional<StateStore::SubscriptionId> subscription;
  std::unique_lock lock(state_->mu);
  state_->thread_id = std::this_thread::get_id();
  while (!state_->stop) {
    if (!subscription) {
      lock.unlock();
      // The store's callback runs on its listener thread: it only raises the flag.
      auto subscribed = store_.Subscribe([state = state_](std::optional<int64_t>) {
        {
          std::lock_guard guard(state->mu);
          state->pending = true;
        }
        state->cv.notify_one();
      });
      lock.lock();
      if (subscribed.ok()) {
        subscription = *subscribed;
        state_->pending = true;  // whatever committed before the subscription
      } else {
        Log()->warn("event hub cannot subscribe to changes, retrying retry_ms={} error=\"{}\"",
                    retry_.count(), subscribed.status().message());
        state_->cv.wait_for(lock, retry_, [&] { return state_->stop; });
        continue;
      }
    }
    state_->cv.wait(lock, [&] { return state_->stop || state_->pending; });
    if (state_->stop) break;
    state_->pending = false;
    std::vector<std::shared_ptr<Watcher>> round;
    round.reserve(state_->watchers.size());
    for (const auto& [id, watcher] : state_->watchers) round.push_back(watcher);
    lock.unlock();
    for (const auto& watcher : round) {
      std::lock_guard call(watcher->call_mu);
      if (watcher->active) watcher->wake();
    }
    round.clear();
    lock.lock();
  }
  state_->thread_id = {};
  lock.unlock();
  if (subscription) store_.Unsubscribe(*subscription);
}

}  // namespace dagd::scheduler
