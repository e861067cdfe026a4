// A scheduler::Service that knows nothing: every read is not_found (or an empty listing), every
// write not_found, the event log empty and change watches inert. Test doubles derive from it and
// override only what their test is about, so that a new Service method touches one file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dagd/scheduler/service.hpp"

namespace dagd::testing {

class StubService : public scheduler::Service {
 public:
  template <typename T>
  using Listing = scheduler::Listing<T>;

  scheduler::HealthReport Health() override { return {}; }
  StatusOr<Listing<scheduler::DagRecord>> ListDags(const scheduler::DagQuery&) override {
    return Listing<scheduler::DagRecord>{};
  }
  StatusOr<scheduler::DagDetails> GetDag(const std::string& dag_id) override {
    return Status::NotFound("DAG with dag_id: '" + dag_id + "' not found");
  }
  StatusOr<scheduler::DagDetails> SetPaused(const std::string& dag_id, bool) override {
    return GetDag(dag_id);
  }
  StatusOr<Listing<scheduler::ImportError>> ListImportErrors(const scheduler::Page&) override {
    return Listing<scheduler::ImportError>{};
  }
  StatusOr<Listing<scheduler::DagVersionRecord>> ListDagVersions(
      const scheduler::DagVersionQuery&) override {
    return Listing<scheduler::DagVersionRecord>{};
  }
  StatusOr<scheduler::DagVersionRecord> GetDagVersion(const std::string&, int) override {
    return Status::NotFound("no such DAG version");
  }
  StatusOr<std::vector<scheduler::DagRunStats>> CountRunsByState(
      const std::vector<std::string>&) override {
    return std::vector<scheduler::DagRunStats>{};
  }
  StatusOr<scheduler::DagRun> PatchRun(const std::string& dag_id, const std::string& run_id,
                                       const scheduler::RunPatch&) override {
    return Status::NotFound("The DagRun with dag_id: '" + dag_id + "' and run_id: '" + run_id +
                            "' was not found");
  }
  StatusOr<std::vector<scheduler::TaskInstance>> PatchTaskInstance(
      const std::string&, const std::string&, const std::string&,
      const scheduler::TaskInstanceMark&) override {
    return Status::NotFound("no such task instance");
  }
  StatusOr<std::vector<scheduler::TaskInstance>> ClearTaskInstances(
      const std::string& dag_id, const scheduler::ClearRequest&) override {
    return Status::NotFound("DAG with dag_id: '" + dag_id + "' not found");
  }
  StatusOr<scheduler::DagUpload> UploadDag(const std::string& dag_id, std::string_view) override {
    return Status::FailedPrecondition("uploads of '" + dag_id + "' are not stubbed");
  }
  Status DeleteDag(const std::string& dag_id) override {
    return Status::NotFound("DAG with dag_id: '" + dag_id + "' not found");
  }
  StatusOr<scheduler::DagRun> Trigger(const std::string& dag_id,
                                      const scheduler::TriggerRequest&) override {
    return Status::NotFound("DAG with dag_id: '" + dag_id + "' not found");
  }
  StatusOr<Listing<scheduler::DagRun>> ListRuns(const scheduler::RunQuery&) override {
    return Listing<scheduler::DagRun>{};
  }
  StatusOr<scheduler::DagRun> GetRun(const std::string&, const std::string&) override {
    return Status::NotFound("no such DAG run");
  }
  StatusOr<Listing<scheduler::TaskInstance>> ListTaskInstances(
      const scheduler::TaskInstanceQuery&) override {
    return Listing<scheduler::TaskInstance>{};
  }
  StatusOr<scheduler::TaskInstance> GetTaskInstance(const std::string&, const std::string&,
                                                    const std::string&) override {
    return Status::NotFound("no such task instance");
  }
  StatusOr<std::vector<scheduler::TaskTry>> ListTries(const std::string&, const std::string&,
                                                      const std::string&) override {
    return Status::NotFound("no such task instance");
  }
  StatusOr<scheduler::LogReader> OpenLog(const std::string&, const std::string&, const std::string&,
                                         int, const scheduler::LogRange&) override {
    return Status::NotFound("no such log");
  }
  StatusOr<scheduler::EventBounds> EventLogBounds() override { return scheduler::EventBounds{}; }
  StatusOr<scheduler::EventPage> ReadEvents(int64_t, int, const scheduler::EventFilter&) override {
    return scheduler::EventPage{};
  }
  std::unique_ptr<scheduler::ChangeWatch> WatchChanges(std::function<void()>) override {
    return std::make_unique<scheduler::ChangeWatch>();
  }
  StatusOr<scheduler::Json> ReturnValue(const std::string&, const std::string&,
                                        const std::string&) override {
    return Status::NotFound("no such task instance");
  }
  // The audit log keeps nothing: recording succeeds, listings are empty.
  StatusOr<int64_t> RecordAudit(const scheduler::AuditEntry&) override { return 1; }
  StatusOr<Listing<scheduler::AuditEntry>> ListAudit(const scheduler::AuditQuery&) override {
    return Listing<scheduler::AuditEntry>{};
  }
  StatusOr<scheduler::AuditEntry> GetAudit(int64_t) override {
    return Status::NotFound("no such event log");
  }
  StatusOr<std::vector<scheduler::Dependency>> ExplainTaskInstance(const std::string&,
                                                                   const std::string&,
                                                                   const std::string&) override {
    return Status::NotFound("no such task instance");
  }
  StatusOr<scheduler::BackfillRecord> CreateBackfill(const scheduler::BackfillRequest&) override {
    return Status::NotFound("Could not find dag");
  }
  StatusOr<std::vector<scheduler::TimePoint>> DryRunBackfill(
      const scheduler::BackfillRequest&) override {
    return Status::NotFound("Could not find dag");
  }
  StatusOr<scheduler::Listing<scheduler::BackfillRecord>> ListBackfills(
      const scheduler::BackfillQuery&) override {
    return scheduler::Listing<scheduler::BackfillRecord>{};
  }
  StatusOr<scheduler::BackfillRecord> GetBackfill(int64_t) override {
    return Status::NotFound("Backfill not found");
  }
  StatusOr<scheduler::BackfillRecord> SetBackfillPaused(int64_t, bool) override {
    return Status::NotFound("Could not find backfill");
  }
  StatusOr<scheduler::BackfillRecord> CancelBackfill(int64_t) override {
    return Status::NotFound("Could not find backfill");
  }
};

}  // namespace dagd::testing
