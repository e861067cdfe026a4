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
    auto version = store.SyncDag(*file.dag, file.path.string(), now, DagSource::kFile);
    if (!version.ok()) {
      const Status& s = version.status();
      // The database is away or busy: the whole scan is retried, nothing is half-reported.
      if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kAborted) return s;
      // The store refused this DAG's values for good: that is this file's problem alone. The
      // database's own words go to the log; the import error says what happened.
      Log()->error("DAG file refused by the database file={} dag={} error=\"{}\"",
                   file.path.string(), file.dag->dag_id, s.message());
      ImportError error;
      error.filename = file.path.string();
      error.timestamp = now;
      error.message = "the database cannot store DAG '" + file.dag->dag_id + "' from this file (" +
                      std::string(ToString(s.code())) +
                      "; the daemon log has the database's message)\n";
      import_errors.push_back(std::move(error));
      ++report.failed_files;
      continue;
    }
    if (before.ok() && before->source == DagSource::kApi) {
      // The file took the DAG over from an upload: said once, by this scan's import errors.
      Log()->warn("DAG file replaces an uploaded DAG file={} dag={} version={}", file.path.string(),
                  file.dag->dag_id, *version);
      ImportError error;
      error.filename = file.path.string();
      error.timestamp = now;
      error.message = "DAG '" + file.dag->dag_id +
                      "' was uploaded through the API and is also defined by this file; the file "
                      "wins: its document is now the DAG's latest version (" +
                      std::to_string(*version) +
                      "), and uploads of this DAG are refused while the file exists\n";
      import_errors.push_back(std::move(error));
    }
    if (!before.ok() || before->latest_version != *version) {
      ++report.new_versions;
      Log()->info("DAG version recorded dag={} version={} file={}", file.dag->dag_id, *version,
                  file.path.string());
    }
    present.push_back(file.dag->dag_id);
    report.versions.emplace_back(*version, file.dag);
    ++report.loaded;
  }
  if (Status s = store.ReplaceImportErrors(import_errors); !s.ok()) return s;
  if (Status s = store.MarkStaleExcept(present); !s.ok()) return s;
  Log()->info("DAG folder synced folder={} dags={} new_versions={} bad_files={}", folder.string(),
              report.loaded, report.new_versions, report.failed_files);
  return report;
}

}  // namespace dagd::scheduler
