// A bash try whose daemon was killed (kill -9) is stopped, with its whole process group, before
// the restarted daemon starts its retry: two tries of one task never run side by side.
//
// Needs the executor to report each bash try's process group (TaskEvent::process) and to stop
// an orphaned one (ThreadPoolExecutor::StopOrphanedProcess); without them this test fails at
// "the try's process group was never recorded" or waits for a retry that never starts.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "e2e_support.hpp"

namespace dagd::testing {
namespace {

using namespace std::chrono_literals;

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Processes of group `pgid` that still run (zombies excluded: they run nothing and are reaped by
// whoever adopted them, possibly late).
int LiveMembers(int pgid) {
  int live = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::filesystem::path dir = it->path();
    const std::string name = dir.filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(dir / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    char state = '?';
    int ppid = 0, group = 0;
    rest >> state >> ppid >> group;
    if (group == pgid && state != 'Z') ++live;
  }
  return live;
}

size_t Count(const std::string& text, const std::string& word) {
  size_t n = 0;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

// Regression: after kill -9 of dagd mid-try, try 2 started while try 1 was still running, and
// both wrote `end`.
TEST(OrphanedTry, AKilledDaemonsBashTryIsStoppedBeforeItsRetryStarts) {
  TempDir dags;
  TempDir marks_dir;
  // Tasks may run as an unprivileged account: let it write the marks.
  ASSERT_EQ(chmod(marks_dir.path().c_str(), 0777), 0);
  const std::string marks = (marks_dir.path() / "marks").string();
  // Each try notes whether a live (not zombie) process of the previous try's group exists when it
  // starts. (Found through /proc: procps may not be installed.)
  const std::string command =
      "prev=$(sed -n 's/^start //p' " + marks +
      " 2>/dev/null | tail -n 1); "
      "if [ -n \"$prev\" ]; then for s in /proc/[0-9]*/stat; do "
      "read -r _ _ st _ g _ < \"$s\" 2>/dev/null && [ \"$g\" = \"$prev\" ] && "
      "[ \"$st\" != Z ] && "
      "{ echo overlap >> " +
      marks +
      "; break; }; done; fi; "
      "echo start $$ >> " +
      marks + "; sleep 8; echo end >> " + marks;
  Json dag = {{"dag_id", "slow"},
              {"tasks",
               Json::array({{{"task_id", "t"}, {"operator", "bash"}, {"bash_command", command}}})}};
  std::ofstream(dags.path() / "slow.json") << dag.dump();

  Daemon d(dags.path().string());
  d.Start();
  Trigger(d, "slow", "r1");
  // Running, with its process group recorded.
  std::string pgid;
  for (int i = 0; i < 400 && pgid.empty(); ++i) {
    auto rows = d.db.Query(
        "SELECT coalesce(process_pgid::text, '') FROM task_instance "
        "WHERE dag_id = 'slow' AND state = 'running'");
    if (!rows.empty()) pgid = rows[0];
    if (pgid.empty()) std::this_thread::sleep_for(25ms);
  }
  ASSERT_FALSE(pgid.empty()) << "the try's process group was never recorded\n" << d.process->Log();
  const auto try1_started = std::chrono::steady_clock::now();
  // Until the try reaches its `sleep`, bash is the group's only member, and the death signal that
  // kills bash with dagd would leave nothing to orphan: wait for it.
  for (int i = 0; i < 400 && ReadAll(marks).find("start ") == std::string::npos; ++i) {
    std::this_thread::sleep_for(25ms);
  }
  std::this_thread::sleep_for(200ms);
  ASSERT_GT(LiveMembers(std::stoi(pgid)), 0) << "try 1's group should be running";

  d.process->Kill9();
  ASSERT_GT(LiveMembers(std::stoi(pgid)), 0) << "killing dagd alone leaves the try (the fault)";
  d.Start();

  Json run = WaitForRun(d, "slow", "r1", {"success", "failed"}, 60s);
  EXPECT_EQ(run["state"], "success") << run.dump() << d.process->Log();
  EXPECT_EQ(LiveMembers(std::stoi(pgid)), 0) << "try 1's process group outlived its retry";
  // Had try 1 survived, it would have written `end` by now.
  std::this_thread::sleep_until(try1_started + 9s);
  const std::string text = ReadAll(marks);
  EXPECT_EQ(Count(text, "start "), 2u) << text;
  EXPECT_EQ(Count(text, "end"), 1u) << text;
  EXPECT_EQ(Count(text, "overlap"), 0u) << "try 2 started beside try 1:\n" << text;
  EXPECT_EQ(d.db.Query("SELECT max(try_number) FROM task_instance_try"),
            std::vector<std::string>{"2"});
}

}  // namespace
}  // namespace dagd::testing
