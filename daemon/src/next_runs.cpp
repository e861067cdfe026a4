#include "next_runs.hpp"

#include <system_error>

#include "dagd/dags/register.hpp"
#include "dagd/executors/job_registry.hpp"
#include "dagd/scheduler/dag_parser.hpp"

namespace dagd::daemon {

namespace {

using scheduler::FormatRfc3339;

std::string Both(const scheduler::TimeZone& zone, scheduler::TimePoint t) {
  return FormatRfc3339(t) + " (" + zone.FormatLocal(t) + ")";
}

std::string OrNone(const scheduler::TimeZone& zone, std::optional<scheduler::TimePoint> t) {
  return t ? Both(zone, *t) : "none";
}

}  // namespace

int PrintNextRuns(const std::string& target, int count, const std::filesystem::path& dags_folder,
                  scheduler::TimePoint now, std::ostream& out, std::ostream& err) {
  executors::JobRegistry registry;
  dags::RegisterAllJobs(registry);
  scheduler::ParseOptions options;
  options.job_exists = [&registry](std::string_view job) { return registry.Contains(job); };

  scheduler::DagPtr dag;
  std::error_code ec;
  if (std::filesystem::exists(target, ec)) {
    auto text = scheduler::ReadDagFile(target);
    if (!text.ok()) {
      err << target << ": " << text.status().message() << "\n";
      return 1;
    }
    scheduler::ParseResult result = scheduler::ParseDag(std::string_view(*text), options);
    for (const std::string& e : result.errors) err << target << ": " << e << "\n";
    if (!result.dag) return 1;
    dag = result.dag;
  } else {
    for (const auto& file : scheduler::LoadDagFolder(dags_folder, options)) {
      if (file.dag && file.dag->dag_id == target) dag = file.dag;
    }
    if (!dag) {
      err << "dagd: '" << target << "' is neither a DAG file nor the dag_id of a valid DAG in "
          << dags_folder.string() << "\n";
      return 1;
    }
  }

  const scheduler::Timetable& timetable = *dag->timetable;
  const scheduler::TimeZone& zone = timetable.zone();
  out << "dag_id: " << dag->dag_id << "\n"
      << "schedule: " << timetable.Summary() << " (" << timetable.Description() << ")\n"
      << "timetable: " << scheduler::ToString(timetable.mode()) << ", timezone: " << zone.name()
      << ", catchup: " << (dag->catchup ? "true" : "false") << "\n"
      << "start_date: " << OrNone(zone, dag->start_date) << "\n"
      << "end_date: " << OrNone(zone, dag->end_date) << "\n";
  auto runs = timetable.Upcoming(now, count, dag->start_date, dag->end_date);
  if (runs.empty()) {
    out << (timetable.Periodic() ? "no scheduled runs after now\n"
                                 : "no scheduled runs (manual runs only)\n");
    return 0;
  }
  for (const auto& run : runs) {
    out << "logical_date " << Both(zone, run.logical_date) << "  run_after "
        << Both(zone, run.run_after) << "  data_interval ["
        << FormatRfc3339(run.data_interval_start) << ", " << FormatRfc3339(run.data_interval_end)
        << ")\n";
  }
  return 0;
}

}  // namespace dagd::daemon
