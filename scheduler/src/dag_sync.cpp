#include "dagd/scheduler/dag_sync.hpp"

#include "logger.hpp"

namespace dagd::scheduler {

StatusOr<SyncReport> SyncDagFolder(StateStore& store, const std::filesystem::path& folder,
                                   const ParseOptions& options, const Clock& clock) {
  SyncReport report;
  const TimePoint now = clock.Now();
  std::vector<ImportError> import_errors;
  std::vector<std::string> present;
  for (const LoadedFile& file : LoadDagFolder(folder, options)) {
    if (!file.dag) {
      ImportError error;
      error.filename = file.path.string();
      error.timestamp = now;
      for (const std::string& e : file.errors) {
        error.message += e + "\n";
        Log()->error("DAG file rejected file={} error=\"{}\"", error.filename, e);
      }
      import_errors.push_back(std::move(error));
      ++report.failed_files;
      continue;
    }
    auto before = store.GetDag(file.dag->dag_id);
    auto version = store.SyncDag(*file.dag, file.path.string(), now);
    if (!version.ok()) return version.status();
    if (!before.ok() || before->latest_version != *version) {
      ++report.new_versions;
      Log()->info("DAG version recorded dag={} version={} file={}", file.dag->dag_id, *version,
                  file.path.string());
    }
    present.push_back(file.dag->dag_id);
    ++report.loaded;
  }
  if (Status s = store.ReplaceImportErrors(import_errors); !s.ok()) return s;
  if (Status s = store.MarkStaleExcept(present); !s.ok()) return s;
  Log()->info("DAG folder synced folder={} dags={} new_versions={} bad_files={}", folder.string(),
              report.loaded, report.new_versions, report.failed_files);
  return report;
}

}  // namespace dagd::scheduler
