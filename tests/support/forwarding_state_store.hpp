// A StateStore that forwards every call to another one: the base of test stores that inject a
// fault into one or two calls and leave the rest to a real PostgreSQL store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dagd/scheduler/ports.hpp"

namespace dagd::testing {

class ForwardingStateStore : public scheduler::StateStore {
 public:
  // `inner` must outlive this store.
  explicit ForwardingStateStore(scheduler::StateStore& inner) : inner_(inner) {}

  Status Ping() override { return inner_.Ping(); }
  Status AcquireSchedulerLock() override { return inner_.AcquireSchedulerLock(); }
  std::optional<int64_t> SchedulerEpoch() const override { return inner_.SchedulerEpoch(); }
  StatusOr<int> SyncDag(const scheduler::Dag& dag, const std::string& fileloc,
                        scheduler::TimePoint at, scheduler::DagSource source) override {
    return inner_.SyncDag(dag, fileloc, at, source);
  }
  Status MarkStaleExcept(const std::vector<std::string>& ids) override {
    return inner_.MarkStaleExcept(ids);
  }
  Status DeleteDag(const std::string& dag_id) override { return inner_.DeleteDag(dag_id); }
  Status ReplaceImportErrors(const std::vector<scheduler::ImportError>& errors) override {
    return inner_.ReplaceImportErrors(errors);
  }
  StatusOr<scheduler::Listing<scheduler::ImportError>> ListImportErrors(
      const scheduler::Page& page) override {
    return inner_.ListImportErrors(page);
  }
  StatusOr<scheduler::Listing<scheduler::DagRecord>> ListDags(
      const scheduler::DagQuery& q) override {
    return inner_.ListDags(q);
  }
  StatusOr<scheduler::DagRecord> GetDag(const std::string& id) override {
    return inner_.GetDag(id);
  }
  Status SetPaused(const std::string& id, bool paused) override {
    return inner_.SetPaused(id, paused);
  }
  StatusOr<std::vector<scheduler::ScheduledDag>> ListScheduledDags() override {
    return inner_.ListScheduledDags();
  }
  Status SetNextDagRun(const std::string& id,
                       const std::optional<scheduler::RunSlot>& next) override {
    return inner_.SetNextDagRun(id, next);
  }
  StatusOr<scheduler::DagVersionRecord> GetDagVersion(const std::string& id, int n) override {
    return inner_.GetDagVersion(id, n);
  }
  StatusOr<scheduler::Listing<scheduler::DagVersionRecord>> ListDagVersions(
      const scheduler::DagVersionQuery& q) override {
    return inner_.ListDagVersions(q);
  }
  StatusOr<std::vector<scheduler::DagRunStats>> CountRunsByState(
      const std::vector<std::string>& dag_ids) override {
    return inner_.CountRunsByState(dag_ids);
  }
  StatusOr<scheduler::DagRun> CreateRun(const scheduler::DagRun& run,
                                        std::vector<scheduler::TaskInstance>& tis) override {
    return inner_.CreateRun(run, tis);
  }
  StatusOr<scheduler::DagRun> GetRun(const std::string& dag_id,
                                     const std::string& run_id) override {
    return inner_.GetRun(dag_id, run_id);
  }
  StatusOr<std::vector<scheduler::RunRows>> LoadRuns(const std::vector<int64_t>& keys) override {
    return inner_.LoadRuns(keys);
  }
  StatusOr<scheduler::Listing<scheduler::DagRun>> ListRuns(const scheduler::RunQuery& q) override {
    return inner_.ListRuns(q);
  }
  StatusOr<std::vector<scheduler::DagRun>> LoadActiveRuns() override {
    return inner_.LoadActiveRuns();
  }
  StatusOr<scheduler::Listing<scheduler::TaskInstance>> ListTaskInstances(
      const scheduler::TaskInstanceQuery& q) override {
    return inner_.ListTaskInstances(q);
  }
  StatusOr<scheduler::TaskInstance> GetTaskInstance(const std::string& d, const std::string& r,
                                                    const std::string& t) override {
    return inner_.GetTaskInstance(d, r, t);
  }
  StatusOr<std::vector<scheduler::TaskTry>> ListTries(const std::string& d, const std::string& r,
                                                      const std::string& t) override {
    return inner_.ListTries(d, r, t);
  }
  StatusOr<std::vector<scheduler::XcomEntry>> ListXcom(const std::string& ti_id) override {
    return inner_.ListXcom(ti_id);
  }
  StatusOr<scheduler::DagRun> PatchRun(const std::string& d, const std::string& r,
                                       const scheduler::RunPatch& patch,
                                       scheduler::TimePoint now) override {
    return inner_.PatchRun(d, r, patch, now);
  }
  StatusOr<std::vector<scheduler::TaskInstance>> PatchTaskInstances(
      const std::string& d, const std::string& r, const scheduler::TaskInstancePatch& patch,
      scheduler::TimePoint now) override {
    return inner_.PatchTaskInstances(d, r, patch, now);
  }
  StatusOr<std::vector<scheduler::TaskInstance>> ClearTaskInstances(
      const scheduler::TaskInstanceClear& clear, scheduler::TimePoint now) override {
    return inner_.ClearTaskInstances(clear, now);
  }
  StatusOr<scheduler::ApplyResult> Apply(const scheduler::Transition& t) override {
    return inner_.Apply(t);
  }
  StatusOr<std::vector<scheduler::EventRecord>> ReadEvents(int64_t after_seq, int limit) override {
    return inner_.ReadEvents(after_seq, limit);
  }
  StatusOr<scheduler::EventPage> ReadOtherEvents(int64_t after_seq, int limit,
                                                 int64_t skip_origin) override {
    return inner_.ReadOtherEvents(after_seq, limit, skip_origin);
  }
  StatusOr<scheduler::EventPage> ReadEventsMatching(int64_t after_seq, int limit,
                                                    const scheduler::EventFilter& filter,
                                                    int64_t scan_window) override {
    return inner_.ReadEventsMatching(after_seq, limit, filter, scan_window);
  }
  StatusOr<int64_t> LatestEventSeq() override { return inner_.LatestEventSeq(); }
  StatusOr<scheduler::EventBounds> ReadEventBounds() override { return inner_.ReadEventBounds(); }
  StatusOr<int64_t> PruneEvents(scheduler::TimePoint before, int64_t max_events) override {
    return inner_.PruneEvents(before, max_events);
  }
  StatusOr<SubscriptionId> Subscribe(ChangeCallback on_change) override {
    return inner_.Subscribe(std::move(on_change));
  }
  void Unsubscribe(SubscriptionId id) override { inner_.Unsubscribe(id); }
  StatusOr<int64_t> AppendAudit(const scheduler::AuditEntry& entry) override {
    return inner_.AppendAudit(entry);
  }
  StatusOr<scheduler::Listing<scheduler::AuditEntry>> ListAudit(
      const scheduler::AuditQuery& query) override {
    return inner_.ListAudit(query);
  }
  StatusOr<scheduler::AuditEntry> GetAudit(int64_t id) override { return inner_.GetAudit(id); }
  StatusOr<scheduler::BackfillRecord> CreateBackfill(const scheduler::NewBackfill& backfill,
                                                     scheduler::TimePoint now) override {
    return inner_.CreateBackfill(backfill, now);
  }
  StatusOr<std::vector<std::pair<scheduler::TimePoint, scheduler::RunState>>> RunStatesAt(
      const std::string& dag_id, const std::vector<scheduler::TimePoint>& dates) override {
    return inner_.RunStatesAt(dag_id, dates);
  }
  StatusOr<scheduler::Listing<scheduler::BackfillRecord>> ListBackfills(
      const scheduler::BackfillQuery& query) override {
    return inner_.ListBackfills(query);
  }
  StatusOr<scheduler::BackfillRecord> GetBackfill(int64_t id) override {
    return inner_.GetBackfill(id);
  }
  StatusOr<scheduler::BackfillRecord> SetBackfillPaused(int64_t id, bool paused,
                                                        scheduler::TimePoint now) override {
    return inner_.SetBackfillPaused(id, paused, now);
  }
  StatusOr<scheduler::BackfillRecord> CancelBackfill(int64_t id,
                                                     scheduler::TimePoint now) override {
    return inner_.CancelBackfill(id, now);
  }
  StatusOr<std::vector<scheduler::BackfillGate>> ListBackfillGates(
      const std::string& dag_id) override {
    return inner_.ListBackfillGates(dag_id);
  }
  StatusOr<int> CompleteEndedBackfills(scheduler::TimePoint now) override {
    return inner_.CompleteEndedBackfills(now);
  }

 protected:
  scheduler::StateStore& inner_;
};

}  // namespace dagd::testing
