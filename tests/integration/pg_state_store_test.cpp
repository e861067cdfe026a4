// PgStateStore against a real PostgreSQL (one throwaway database per test).
#include "dagd/storage/pg_state_store.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pg_store_fixture.hpp"

namespace dagd::storage {
namespace {

using scheduler::DagSource;
using test::At;
using test::DagRun;
using test::kT0;
using test::MakeDag;
using test::MakeRun;
using test::MakeTis;
using test::RunState;
using test::TaskInstance;
using test::TaskState;
using test::TimePoint;
using test::Us;
using TiKind = scheduler::TiTransition::Kind;
using RunKind = scheduler::RunTransition::Kind;

using PgStateStoreTest = test::PgStoreTest;

// --- DAGs ----------------------------------------------------------------------------------------

TEST_F(PgStateStoreTest, PingSucceedsOnAnOpenStore) { EXPECT_TRUE(store_->Ping().ok()); }

TEST_F(PgStateStoreTest, SyncDagKeepsTheVersionForTheSameDocumentAndAddsOneWhenItChanges) {
  auto v1 = store_->SyncDag(*MakeDag("etl", "one"), "/dags/etl.json", kT0, DagSource::kFile);
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(*v1, 1);
  auto again = store_->SyncDag(*MakeDag("etl", "one"), "/dags/etl.json", kT0, DagSource::kFile);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 1);
  auto v2 = store_->SyncDag(*MakeDag("etl", "two"), "/dags/etl.json", kT0, DagSource::kFile);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(*v2, 2);
  // Changing back is a change too: versions are a history, not a set of documents.
  auto v3 = store_->SyncDag(*MakeDag("etl", "one"), "/dags/etl.json", kT0, DagSource::kFile);
  ASSERT_TRUE(v3.ok());
  EXPECT_EQ(*v3, 3);
  EXPECT_EQ(Count("SELECT count(*) FROM dag_version WHERE dag_id = 'etl'"), 3);

  auto dag = store_->GetDag("etl");
  ASSERT_TRUE(dag.ok());
  EXPECT_EQ(dag->latest_version, 3);
  EXPECT_EQ(dag->description, "one");

  auto version2 = store_->GetDagVersion("etl", 2);
  ASSERT_TRUE(version2.ok()) << version2.status().ToString();
  EXPECT_EQ(version2->hash, MakeDag("etl", "two")->hash);
  EXPECT_EQ(version2->document, MakeDag("etl", "two")->document);
  EXPECT_EQ(version2->version_number, 2);

  auto missing = store_->GetDagVersion("etl", 9);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST_F(PgStateStoreTest, SyncDagStoresTheDenormalisedFieldsOfTheLatestVersion) {
  ASSERT_TRUE(store_->SyncDag(*MakeDag("etl"), "/dags/etl.json", kT0, DagSource::kFile).ok());
  auto dag = store_->GetDag("etl");
  ASSERT_TRUE(dag.ok()) << dag.status().ToString();
  EXPECT_EQ(dag->dag_id, "etl");
  EXPECT_EQ(dag->fileloc, "/dags/etl.json");
  EXPECT_EQ(dag->last_parsed_time, kT0);
  EXPECT_EQ(dag->description, "demo");
  EXPECT_EQ(dag->tags, (std::vector<std::string>{"etl", "daily"}));
  EXPECT_EQ(dag->owners, (std::vector<std::string>{"ops"}));
  EXPECT_EQ(dag->schedule, "0 * * * *");
  EXPECT_EQ(dag->max_active_runs, 3);
  EXPECT_FALSE(dag->is_paused);
  EXPECT_FALSE(dag->is_stale);
  EXPECT_FALSE(dag->has_import_errors);
}

TEST_F(PgStateStoreTest, SyncDagPausesANewDagWhenAskedAndNeverOverridesALaterUnpause) {
  ASSERT_TRUE(
      store_->SyncDag(*MakeDag("p", "d", true), "/dags/p.json", kT0, DagSource::kFile).ok());
  EXPECT_TRUE(store_->GetDag("p")->is_paused);
  ASSERT_TRUE(store_->SetPaused("p", false).ok());
  ASSERT_TRUE(
      store_->SyncDag(*MakeDag("p", "changed", true), "/dags/p.json", kT0, DagSource::kFile).ok());
  EXPECT_FALSE(store_->GetDag("p")->is_paused);
  Status missing = store_->SetPaused("nope", true);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.message(), "DAG with dag_id: 'nope' not found");
}

TEST_F(PgStateStoreTest, ConcurrentSyncsOfOneDagCreateOneVersion) {
  auto dag = MakeDag("race");
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      auto v = store_->SyncDag(*dag, "/dags/race.json", kT0, DagSource::kFile);
      if (!v.ok() || *v != 1) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM dag_version WHERE dag_id = 'race'"), 1);
}

TEST_F(PgStateStoreTest, MarkStaleExceptHidesMissingDagsUntilTheyAreSyncedAgain) {
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE(
        store_->SyncDag(*MakeDag(id), std::string("/dags/") + id, kT0, DagSource::kFile).ok());
  }
  ASSERT_TRUE(store_->MarkStaleExcept({"a", "c"}).ok());
  EXPECT_TRUE(store_->GetDag("b")->is_stale);
  EXPECT_FALSE(store_->GetDag("a")->is_stale);

  scheduler::DagQuery q;
  auto visible = store_->ListDags(q);
  ASSERT_TRUE(visible.ok());
  EXPECT_EQ(visible->total_entries, 2);
  q.include_stale = true;
  EXPECT_EQ(store_->ListDags(q)->total_entries, 3);

  ASSERT_TRUE(store_->SyncDag(*MakeDag("b"), "/dags/b", kT0, DagSource::kFile).ok());
  EXPECT_FALSE(store_->GetDag("b")->is_stale);
}

TEST_F(PgStateStoreTest, ImportErrorsAreReplacedListedAndFlagTheirDag) {
  ASSERT_TRUE(store_->SyncDag(*MakeDag("etl"), "/dags/etl.json", kT0, DagSource::kFile).ok());
  Status first = store_->ReplaceImportErrors({{0, "/dags/old.json", "stale", kT0}});
  ASSERT_TRUE(first.ok()) << first.ToString();
  Status second =
      store_->ReplaceImportErrors({{0, "/dags/etl.json", "task 'b': unknown upstream 'x'", kT0},
                                   {0, "/dags/z.json", "bad", kT0 + Us(1)}});
  ASSERT_TRUE(second.ok()) << second.ToString();
  scheduler::Page page;
  auto errors = store_->ListImportErrors(page);
  ASSERT_TRUE(errors.ok()) << errors.status().ToString();
  ASSERT_EQ(errors->total_entries, 2);
  EXPECT_EQ(errors->items[0].filename, "/dags/etl.json");
  EXPECT_EQ(errors->items[0].message, "task 'b': unknown upstream 'x'");
  EXPECT_EQ(errors->items[1].timestamp, kT0 + Us(1));
  EXPECT_GT(errors->items[0].id, 0);
  EXPECT_TRUE(store_->GetDag("etl")->has_import_errors);

  page.order_by = {"-filename"};
  EXPECT_EQ(store_->ListImportErrors(page)->items[0].filename, "/dags/z.json");
}

TEST_F(PgStateStoreTest, ListDagsFiltersByPatternTagsAndPausedWithPaging) {
  for (const char* id : {"sales_daily", "sales_hourly", "users", "Sales_weekly"}) {
    ASSERT_TRUE(store_->SyncDag(*MakeDag(id), "/dags/x", kT0, DagSource::kFile).ok());
  }
  ASSERT_TRUE(store_->SetPaused("users", true).ok());

  scheduler::DagQuery q;
  q.dag_id_pattern = "sales";
  auto sales = store_->ListDags(q);
  ASSERT_TRUE(sales.ok()) << sales.status().ToString();
  EXPECT_EQ(sales->total_entries, 3);  // case-insensitive substring

  q.dag_id_pattern = "sales%ly";
  EXPECT_EQ(store_->ListDags(q)->total_entries, 3);

  q = {};
  q.paused = true;
  auto paused = store_->ListDags(q);
  ASSERT_EQ(paused->items.size(), 1u);
  EXPECT_EQ(paused->items[0].dag_id, "users");

  q = {};
  q.tags = {"nope", "daily"};
  EXPECT_EQ(store_->ListDags(q)->total_entries, 4);
  q.tags = {"nope"};
  EXPECT_EQ(store_->ListDags(q)->total_entries, 0);

  q = {};
  q.page.limit = 2;
  q.page.offset = 1;
  auto page = store_->ListDags(q);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->total_entries, 4);
  ASSERT_EQ(page->items.size(), 2u);
  // Default order is dag_id (byte order in the C.UTF-8 test cluster: "S" < "s").
  EXPECT_EQ(page->items[0].dag_id, "sales_daily");
  EXPECT_EQ(page->items[1].dag_id, "sales_hourly");

  q.page.offset = 10;
  auto beyond = store_->ListDags(q);
  ASSERT_TRUE(beyond.ok());
  EXPECT_TRUE(beyond->items.empty());
  EXPECT_EQ(beyond->total_entries, 4);

  q.page = {};
  q.page.order_by = {"-dag_id"};
  EXPECT_EQ(store_->ListDags(q)->items.front().dag_id, "users");
}

TEST_F(PgStateStoreTest, GetDagOfAnUnknownIdIsNotFoundInAirflowsWords) {
  auto dag = store_->GetDag("ghost");
  ASSERT_FALSE(dag.ok());
  EXPECT_EQ(dag.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(dag.status().message(), "DAG with dag_id: 'ghost' not found");
}

// --- Runs ----------------------------------------------------------------------------------------

TEST_F(PgStateStoreTest, CreateRunStoresTheRunAndItsTaskInstancesWithIdsAndEvents) {
  auto dag = MakeDag("etl");
  ASSERT_TRUE(store_->SyncDag(*dag, "/dags/etl.json", kT0, DagSource::kFile).ok());
  auto tis = MakeTis(*dag);
  auto run = store_->CreateRun(MakeRun("etl", "manual__1"), tis);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_GT(run->id, 0);
  EXPECT_EQ(run->run_id, "manual__1");
  EXPECT_EQ(run->state, RunState::kQueued);
  EXPECT_EQ(run->conf, (scheduler::Json{{"input", "s3://raw"}, {"n", 3}}));
  EXPECT_EQ(run->note, "first");
  std::set<std::string> ids;
  for (const auto& ti : tis) {
    EXPECT_EQ(ti.id.size(), 36u) << ti.task_id;
    EXPECT_EQ(ti.run_id_key, run->id);
    EXPECT_EQ(ti.run_id, "manual__1");
    ids.insert(ti.id);
  }
  EXPECT_EQ(ids.size(), 3u);

  const auto stored = Load(run->id).task_instances;
  ASSERT_EQ(stored.size(), 3u);
  EXPECT_EQ(stored[0].task_id, "extract");  // ordered by task_id
  EXPECT_EQ(stored[0].state, TaskState::kNone);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instance WHERE state IS NULL"), 3);

  // One event, the run's: task instances created without a state are not a transition.
  EXPECT_EQ(db_.Query("SELECT seq || ':' || coalesce(task_id, '-') || ':' || coalesce(state, "
                      "'null') || ':' || coalesce(origin::text, 'none') FROM event"),
            std::vector<std::string>{"1:-:queued:none"});
}

TEST_F(PgStateStoreTest, CreateRunWithATakenRunIdIsAlreadyExistsAndWritesNothing) {
  auto dag = MakeDag("etl");
  CreateRunOf(*dag, "r1");
  const int64_t events = Count("SELECT count(*) FROM event");
  auto tis = MakeTis(*dag);
  auto again = store_->CreateRun(MakeRun("etl", "r1"), tis);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().message(), "DAG run 'r1' already exists for DAG 'etl'");
  EXPECT_EQ(Count("SELECT count(*) FROM event"), events);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instance"), 3);
  for (const auto& ti : tis) EXPECT_TRUE(ti.id.empty());
}

TEST_F(PgStateStoreTest, CreateRunForAnUnknownDagIsNotFound) {
  std::vector<TaskInstance> tis;
  auto run = store_->CreateRun(MakeRun("ghost", "r1"), tis);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kNotFound);
}

TEST_F(PgStateStoreTest, TimesRoundTripToTheMicrosecond) {
  auto dag = MakeDag("etl");
  ASSERT_TRUE(store_->SyncDag(*dag, "/dags/etl.json", kT0, DagSource::kFile).ok());
  DagRun run = MakeRun("etl", "times");
  run.logical_date = At(1767323045123457);
  run.start_date = At(1);                // just after the epoch
  run.end_date = At(-1234567);           // before it
  run.run_after = At(4102444799999999);  // 2099-12-31T23:59:59.999999Z
  run.last_scheduling_decision = std::nullopt;
  std::vector<TaskInstance> tis;
  ASSERT_TRUE(store_->CreateRun(run, tis).ok());
  auto got = store_->GetRun("etl", "times");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->logical_date, run.logical_date);
  EXPECT_EQ(got->start_date, run.start_date);
  EXPECT_EQ(got->end_date, run.end_date);
  EXPECT_EQ(got->run_after, run.run_after);
  EXPECT_EQ(got->data_interval_start, run.data_interval_start);
  EXPECT_FALSE(got->last_scheduling_decision.has_value());
  // And the database holds the same instant, not a shifted one.
  EXPECT_EQ(db_.Query("SELECT to_char(logical_date AT TIME ZONE 'UTC', "
                      "'YYYY-MM-DD\"T\"HH24:MI:SS.US') FROM dag_run")[0],
            "2026-01-02T03:04:05.123457");
}

TEST_F(PgStateStoreTest, GetRunOfAnUnknownRunIsNotFoundInAirflowsWords) {
  auto run = store_->GetRun("etl", "nope");
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(run.status().message(),
            "The DagRun with dag_id: 'etl' and run_id: 'nope' was not found");
}

TEST_F(PgStateStoreTest, LoadRunsReturnsTheKnownRunsWithTheirTaskInstancesInTheGivenOrder) {
  auto etl = MakeDag("etl");
  auto fan = test::MakeFanOutDag("fan", 4);
  std::vector<TaskInstance> etl_tis;
  const DagRun a = CreateRunOf(*etl, "a", &etl_tis);
  const DagRun b = CreateRunOf(*fan, "b");
  const DagRun c = CreateRunOf(*etl, "c");
  const int64_t unknown = c.id + 1000;
  ASSERT_TRUE(store_->SetPaused("fan", true).ok());

  auto loaded = store_->LoadRuns({c.id, unknown, a.id, b.id});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ASSERT_EQ(loaded->size(), 3u);
  EXPECT_EQ((*loaded)[0].run.id, c.id);
  EXPECT_EQ((*loaded)[1].run.id, a.id);
  EXPECT_EQ((*loaded)[2].run.id, b.id);
  EXPECT_EQ((*loaded)[1].run.run_id, "a");
  EXPECT_EQ((*loaded)[1].run.conf, a.conf);
  EXPECT_EQ((*loaded)[0].task_instances.size(), 3u);
  ASSERT_EQ((*loaded)[1].task_instances.size(), 3u);
  EXPECT_EQ((*loaded)[2].task_instances.size(), 5u);
  // Each run comes with its DAG's paused flag.
  EXPECT_FALSE((*loaded)[0].dag_paused);
  EXPECT_TRUE((*loaded)[2].dag_paused);
  for (const auto& rows : *loaded) {
    for (const auto& ti : rows.task_instances) {
      EXPECT_EQ(ti.run_id_key, rows.run.id) << ti.task_id;
      EXPECT_EQ(ti.run_id, rows.run.run_id) << ti.task_id;
    }
  }
  // Ordered by task_id, as LoadRuns orders them.
  EXPECT_EQ((*loaded)[1].task_instances[0].task_id, "extract");
  EXPECT_EQ((*loaded)[1].task_instances[0].id, etl_tis[0].id);
  EXPECT_EQ((*loaded)[1].task_instances[2].task_id, "transform");

  auto none = store_->LoadRuns({unknown});
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());
  auto empty = store_->LoadRuns({});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST_F(PgStateStoreTest, ListRunsFiltersPagesAndOrders) {
  auto dag = MakeDag("etl");
  ASSERT_TRUE(store_->SyncDag(*dag, "/dags/etl.json", kT0, DagSource::kFile).ok());
  ASSERT_TRUE(store_->SyncDag(*MakeDag("other"), "/dags/other.json", kT0, DagSource::kFile).ok());
  for (int i = 0; i < 5; ++i) {
    DagRun run = MakeRun("etl", "run_" + std::to_string(i));
    run.logical_date = kT0 + std::chrono::hours(i);
    run.state = i % 2 == 0 ? RunState::kSuccess : RunState::kFailed;
    run.run_type = i == 4 ? scheduler::RunType::kScheduled : scheduler::RunType::kManual;
    std::vector<TaskInstance> none;
    ASSERT_TRUE(store_->CreateRun(run, none).ok());
  }
  std::vector<TaskInstance> none;
  ASSERT_TRUE(store_->CreateRun(MakeRun("other", "x"), none).ok());

  scheduler::RunQuery q;
  q.dag_id = "etl";
  auto all = store_->ListRuns(q);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->total_entries, 5);
  EXPECT_EQ(all->items.front().run_id, "run_0");  // default: creation order

  q.dag_id = "~";
  EXPECT_EQ(store_->ListRuns(q)->total_entries, 6);
  q.dag_id = "";
  EXPECT_EQ(store_->ListRuns(q)->total_entries, 6);
  q.run_ids = {"run_1", "x", "nope"};
  EXPECT_EQ(store_->ListRuns(q)->total_entries, 2);
  q.run_ids = {};

  q.dag_id = "etl";
  q.states = {RunState::kSuccess};
  EXPECT_EQ(store_->ListRuns(q)->total_entries, 3);
  q.states = {RunState::kSuccess, RunState::kFailed};
  EXPECT_EQ(store_->ListRuns(q)->total_entries, 5);
  q.states = {};
  q.run_types = {scheduler::RunType::kScheduled};
  auto scheduled = store_->ListRuns(q);
  ASSERT_EQ(scheduled->items.size(), 1u);
  EXPECT_EQ(scheduled->items[0].run_id, "run_4");
  q.run_types = {};

  using Op = scheduler::Bound::Op;
  auto time_bound = [](Op op, TimePoint t) { return scheduler::Bound{"logical_date", op, t, {}}; };
  q.bounds = {time_bound(Op::kGte, kT0 + std::chrono::hours(1)),
              time_bound(Op::kLte, kT0 + std::chrono::hours(3))};
  EXPECT_EQ(store_->ListRuns(q)->total_entries, 3);
  // bounds are exact to the µs
  q.bounds[0] = time_bound(Op::kGte, kT0 + std::chrono::hours(1) + Us(1));
  EXPECT_EQ(store_->ListRuns(q)->total_entries, 2);
  q.bounds[0] = time_bound(Op::kGt, kT0 + std::chrono::hours(1));
  EXPECT_EQ(store_->ListRuns(q)->total_entries, 2);
  q.bounds = {scheduler::Bound{"state", Op::kGt, kT0, {}}};
  EXPECT_EQ(store_->ListRuns(q).status().code(), StatusCode::kInvalidArgument);
  q.bounds.clear();
  q.dag_ids = {"nope"};
  EXPECT_EQ(store_->ListRuns(q)->total_entries, 0);
  q.dag_ids.clear();

  q.page.order_by = {"-logical_date"};
  q.page.limit = 2;
  q.page.offset = 1;
  auto page = store_->ListRuns(q);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->total_entries, 5);
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].run_id, "run_3");
  EXPECT_EQ(page->items[1].run_id, "run_2");

  q.page = {};
  q.page.order_by = {"state", "-dag_run_id"};
  auto by_state = store_->ListRuns(q);
  ASSERT_TRUE(by_state.ok());
  EXPECT_EQ(by_state->items[0].run_id, "run_3");  // failed < success, then run id descending
  EXPECT_EQ(by_state->items[2].run_id, "run_4");

  q.page.order_by = {"-nonsense"};
  auto bad = store_->ListRuns(q);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(),
            "Ordering with 'nonsense' is disallowed or the attribute does not exist on the model");
}

TEST_F(PgStateStoreTest, LoadActiveRunsReturnsQueuedAndRunningOldestQueuedFirst) {
  auto dag = MakeDag("etl");
  ASSERT_TRUE(store_->SyncDag(*dag, "/dags/etl.json", kT0, DagSource::kFile).ok());
  const std::vector<std::pair<std::string, RunState>> runs = {
      {"late", RunState::kQueued}, {"early", RunState::kRunning}, {"done", RunState::kSuccess}};
  for (size_t i = 0; i < runs.size(); ++i) {
    DagRun run = MakeRun("etl", runs[i].first);
    run.state = runs[i].second;
    run.queued_at = runs[i].first == "late" ? kT0 + std::chrono::seconds(10) : kT0;
    std::vector<TaskInstance> none;
    ASSERT_TRUE(store_->CreateRun(run, none).ok());
  }
  auto active = store_->LoadActiveRuns();
  ASSERT_TRUE(active.ok()) << active.status().ToString();
  ASSERT_EQ(active->size(), 2u);
  EXPECT_EQ((*active)[0].run_id, "early");
  EXPECT_EQ((*active)[1].run_id, "late");
}

// --- Transitions ---------------------------------------------------------------------------------

TEST_F(PgStateStoreTest, ApplyWritesRunsTaskInstancesTriesXcomsAndEventsTogether) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  const int64_t events_before = Count("SELECT count(*) FROM event");

  scheduler::Transition t;
  t.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0 + Us(5)));
  TaskInstance extract = tis[0];
  t.task_instances.push_back(test::Queue(extract, epoch, kT0 + Us(7)));
  TaskInstance transform = tis[1];
  t.task_instances.push_back(test::Settle(transform, TaskState::kSkipped, kT0 + Us(9)));
  ApplyOk(t);

  scheduler::Transition started;
  started.task_instances.push_back(test::Start(extract, kT0 + Us(8)));
  started.xcoms.push_back({run.id, extract.id, {"return_value", {{"rows", 12}}}});
  started.xcoms.push_back({run.id, extract.id, {"note", "text value"}});
  ApplyOk(started);

  auto stored_run = store_->GetRun("etl", "r1");
  ASSERT_TRUE(stored_run.ok());
  EXPECT_EQ(stored_run->state, RunState::kRunning);
  EXPECT_EQ(stored_run->start_date, kT0 + Us(5));
  EXPECT_EQ(stored_run->last_scheduling_decision, kT0 + Us(5));

  auto got = store_->GetTaskInstance("etl", "r1", "extract");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->state, TaskState::kRunning);
  EXPECT_EQ(got->try_number, 1);
  EXPECT_EQ(got->queued_when, kT0 + Us(7));
  EXPECT_EQ(got->start_date, kT0 + Us(8));
  EXPECT_EQ(got->hostname, "host-a");
  EXPECT_EQ(got->pid, 4242);
  EXPECT_EQ(got->owner_epoch, epoch);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "transform")->state, TaskState::kSkipped);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "load")->state, TaskState::kNone);

  auto tries = store_->ListTries("etl", "r1", "extract");
  ASSERT_TRUE(tries.ok()) << tries.status().ToString();
  ASSERT_EQ(tries->size(), 1u);
  EXPECT_EQ((*tries)[0].state, TaskState::kRunning);
  EXPECT_EQ((*tries)[0].pid, 4242);
  EXPECT_EQ((*tries)[0].task_id, "extract");
  // try_number 0 (settled without a try) has no try row.
  EXPECT_TRUE(store_->ListTries("etl", "r1", "transform")->empty());

  auto xcom = store_->ListXcom(extract.id);
  ASSERT_TRUE(xcom.ok()) << xcom.status().ToString();
  ASSERT_EQ(xcom->size(), 2u);
  EXPECT_EQ((*xcom)[0].key, "note");
  EXPECT_EQ((*xcom)[0].value, "text value");
  EXPECT_EQ((*xcom)[1].value, (scheduler::Json{{"rows", 12}}));

  // The starting run first, then the task instances; our epoch as origin.
  EXPECT_EQ(Count("SELECT count(*) FROM event") - events_before, 4);
  const std::string after = std::to_string(events_before);
  EXPECT_EQ(db_.Query("SELECT kind || ':' || coalesce(state, 'null') || ':' || "
                      "coalesce(try_number::text, '-') FROM event WHERE seq > " +
                      after + " AND task_id IS DISTINCT FROM 'transform' ORDER BY seq"),
            (std::vector<std::string>{"dag_run:running:-", "task_instance:queued:1",
                                      "task_instance:running:1"}));
  EXPECT_EQ(Count("SELECT count(*) FROM event WHERE seq > " + after +
                  " AND origin = " + std::to_string(epoch)),
            4);
}

// A settled task never ran: no try row is written for it. ListTries still shows an `empty`
// task's successful try (the task instance stands for it), and nothing for a skipped task, which
// has no try; a task settled after a try a worker ran keeps that try's row as it ended.
TEST_F(PgStateStoreTest, SettledTasksWriteNoTryRowYetListTriesShowsTheirCurrentTry) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  CreateRunOf(*dag, "r1", &tis);
  TaskInstance empty_success = tis[0];
  TaskInstance skipped = tis[1];
  TaskInstance retried = tis[2];
  {
    scheduler::Transition t;
    t.task_instances.push_back(test::Queue(retried, epoch, kT0));
    ApplyOk(t);
  }
  {
    scheduler::Transition t;
    TaskInstance after = empty_success;
    after.try_number = 1;
    after.state = TaskState::kSuccess;
    after.start_date = kT0 + Us(3);
    after.end_date = kT0 + Us(3);
    after.duration = 0;
    t.task_instances.push_back(test::Change(TiKind::kSettle, empty_success, after));
    empty_success = after;
    t.task_instances.push_back(test::Settle(skipped, TaskState::kSkipped, kT0 + Us(3)));
    t.task_instances.push_back(test::Finish(retried, TaskState::kUpForRetry, kT0 + Us(4)));
    ApplyOk(t);
  }
  {
    scheduler::Transition t;  // the retry needs no worker: try 2 settles as success
    TaskInstance after = retried;
    after.try_number = 2;
    after.state = TaskState::kSuccess;
    after.start_date = kT0 + Us(6);
    after.end_date = kT0 + Us(6);
    after.duration = 0;
    t.task_instances.push_back(test::Change(TiKind::kSettle, retried, after));
    ApplyOk(t);
  }
  EXPECT_EQ(db_.Query("SELECT t.task_id || ':' || y.try_number || ':' || y.state "
                      "FROM task_instance_try y JOIN task_instance t ON t.id = y.ti_id"),
            std::vector<std::string>{"load:1:up_for_retry"});

  auto empty_tries = store_->ListTries("etl", "r1", "extract");
  ASSERT_TRUE(empty_tries.ok()) << empty_tries.status().ToString();
  ASSERT_EQ(empty_tries->size(), 1u);
  EXPECT_EQ((*empty_tries)[0].try_number, 1);
  EXPECT_EQ((*empty_tries)[0].state, TaskState::kSuccess);
  EXPECT_EQ((*empty_tries)[0].start_date, kT0 + Us(3));
  EXPECT_EQ((*empty_tries)[0].ti_id, empty_success.id);

  auto skipped_tries = store_->ListTries("etl", "r1", "transform");
  ASSERT_TRUE(skipped_tries.ok());
  EXPECT_TRUE(skipped_tries->empty());

  auto retried_tries = store_->ListTries("etl", "r1", "load");
  ASSERT_TRUE(retried_tries.ok());
  ASSERT_EQ(retried_tries->size(), 2u);
  EXPECT_EQ((*retried_tries)[0].try_number, 1);
  EXPECT_EQ((*retried_tries)[0].state, TaskState::kUpForRetry);
  EXPECT_EQ((*retried_tries)[1].try_number, 2);
  EXPECT_EQ((*retried_tries)[1].state, TaskState::kSuccess);
  EXPECT_EQ((*retried_tries)[1].end_date, kT0 + Us(6));
}

TEST_F(PgStateStoreTest, ApplyKeepsOneTryRowPerTryAcrossRetries) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  TaskInstance ti = tis[0];
  auto step = [&](scheduler::TiTransition change) {
    scheduler::Transition t;
    change.after.max_tries = 1;
    ti.max_tries = 1;
    t.task_instances.push_back(change);
    ApplyOk(t);
  };
  step(test::Queue(ti, epoch));
  step(test::Start(ti, kT0 + Us(1)));
  step(test::Finish(ti, TaskState::kUpForRetry, kT0 + Us(2)));
  step(test::Queue(ti, epoch));
  step(test::Start(ti, kT0 + Us(3)));
  step(test::Finish(ti, TaskState::kSuccess, kT0 + Us(4)));
  auto tries = store_->ListTries("etl", "r1", "extract");
  ASSERT_TRUE(tries.ok());
  ASSERT_EQ(tries->size(), 2u);
  EXPECT_EQ((*tries)[0].try_number, 1);
  EXPECT_EQ((*tries)[0].state, TaskState::kUpForRetry);
  EXPECT_EQ((*tries)[1].try_number, 2);
  EXPECT_EQ((*tries)[1].state, TaskState::kSuccess);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->max_tries, 1);

  // The run finishing with its last tasks: the run's event comes after the tasks'.
  scheduler::Transition start;
  start.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
  ApplyOk(start);
  scheduler::Transition t;
  for (size_t i = 1; i < tis.size(); ++i) {
    t.task_instances.push_back(test::Settle(tis[i], TaskState::kSkipped, kT0 + Us(5)));
  }
  t.runs.push_back(
      test::RunChange(RunKind::kFinish, run, RunState::kSuccess, kT0 + std::chrono::seconds(1)));
  ApplyOk(t);
  EXPECT_EQ(db_.Query("SELECT kind || ':' || state FROM event ORDER BY seq DESC LIMIT 1")[0],
            "dag_run:success");
  auto finished = store_->GetRun("etl", "r1");
  EXPECT_EQ(finished->end_date, kT0 + std::chrono::seconds(1));
  EXPECT_EQ(finished->start_date, kT0);
}

// A restarted daemon stops what its predecessor left running before retrying it: the process
// group of a running try must survive the trip through the database, on the task instance and
// on the try's own row.
TEST_F(PgStateStoreTest, ARunningTrysProcessGroupRoundTripsAndANewTryStartsWithoutOne) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  CreateRunOf(*dag, "r1", &tis);
  TaskInstance ti = tis[0];
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->process, std::nullopt);
  scheduler::Transition queued;
  queued.task_instances.push_back(test::Queue(ti, epoch));
  ApplyOk(queued);
  ti.process = scheduler::TryProcess{4242, "0d6f3b8e-boot:123456"};
  scheduler::Transition t;
  t.task_instances.push_back(test::Start(ti, kT0));
  ApplyOk(t);

  auto stored = store_->GetTaskInstance("etl", "r1", "extract");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->process, ti.process);
  const auto loaded = Load(stored->run_id_key).task_instances;
  auto extract = std::find_if(loaded.begin(), loaded.end(),
                              [](const TaskInstance& x) { return x.task_id == "extract"; });
  ASSERT_NE(extract, loaded.end());
  EXPECT_EQ(extract->process, ti.process);
  EXPECT_EQ(extract->owner_epoch, epoch);
  EXPECT_EQ(db_.Query("SELECT process_pgid || ' ' || process_start_key FROM task_instance_try"),
            std::vector<std::string>{"4242 0d6f3b8e-boot:123456"});

  scheduler::Transition failed;
  failed.task_instances.push_back(test::Finish(ti, TaskState::kUpForRetry, kT0 + Us(1)));
  ApplyOk(failed);
  scheduler::Transition next;
  next.task_instances.push_back(test::Queue(ti, epoch));
  ApplyOk(next);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->process, std::nullopt);
  EXPECT_EQ(db_.Query("SELECT coalesce(process_pgid::text, '-') FROM task_instance_try "
                      "ORDER BY try_number"),
            (std::vector<std::string>{"4242", "-"}));
}

TEST_F(PgStateStoreTest, ApplyRecordsARunEventOnlyWhenTheRunStateChanges) {
  Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  auto apply = [&](RunKind kind, RunState state, TimePoint at) {
    scheduler::Transition t;
    if (kind == RunKind::kFinish) {
      for (auto& ti : tis) t.task_instances.push_back(test::Settle(ti, TaskState::kSkipped, at));
    }
    t.runs.push_back(test::RunChange(kind, run, state, at));
    ApplyOk(t);
  };
  apply(RunKind::kStart, RunState::kRunning, kT0);
  apply(RunKind::kStart, RunState::kRunning, kT0 + std::chrono::seconds(1));  // a decision only
  EXPECT_EQ(store_->GetRun("etl", "r1")->last_scheduling_decision, kT0 + std::chrono::seconds(1));
  apply(RunKind::kFinish, RunState::kSuccess, kT0 + std::chrono::seconds(2));
  EXPECT_EQ(db_.Query("SELECT state FROM event WHERE kind = 'dag_run' ORDER BY seq"),
            (std::vector<std::string>{"queued", "running", "success"}));
  EXPECT_EQ(store_->GetRun("etl", "r1")->last_scheduling_decision, kT0 + std::chrono::seconds(2));
}

TEST_F(PgStateStoreTest, ApplyWithAnUnknownTaskInstanceReportsItsRunAndWritesNothingOfIt) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  const int64_t events_before = Count("SELECT count(*) FROM event");
  scheduler::Transition t;
  t.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
  t.task_instances.push_back(test::Queue(tis[0], epoch));
  TaskInstance ghost = tis[1];
  ghost.id = "00000000-0000-0000-0000-000000000000";
  t.task_instances.push_back(test::Queue(ghost, epoch));
  auto applied = store_->Apply(t);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(applied->conflicts, std::vector<int64_t>{run.id});
  EXPECT_EQ(Count("SELECT count(*) FROM event"), events_before);
  EXPECT_EQ(store_->GetRun("etl", "r1")->state, RunState::kQueued);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->state, TaskState::kNone);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instance_try"), 0);
}

TEST_F(PgStateStoreTest, ApplyWritesAThousandTaskFanOutInOneBatch) {
  const int64_t epoch = Epoch();
  std::vector<TaskInstance> tis;
  CreateRunOf(*test::MakeFanOutDag("fan", 1000), "big", &tis);
  ASSERT_EQ(tis.size(), 1001u);
  scheduler::Transition t;
  for (auto& ti : tis) t.task_instances.push_back(test::Queue(ti, epoch));
  const auto start = std::chrono::steady_clock::now();
  ApplyOk(t);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(Count("SELECT count(*) FROM task_instance WHERE state = 'queued'"), 1001);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instance_try"), 1001);
  EXPECT_EQ(Count("SELECT count(*) FROM event WHERE kind = 'task_instance' AND state = 'queued'"),
            1001);
  // One statement for the whole batch: far below a second even on a loaded 2-core machine.
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 3000);
}

TEST_F(PgStateStoreTest, ListTaskInstancesFiltersByStateIncludingNoneAndTaskIds) {
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  CreateRunOf(*dag, "r1", &tis);
  CreateRunOf(*dag, "r2");
  Epoch();
  scheduler::Transition t;
  t.task_instances.push_back(test::Settle(tis[0], TaskState::kSuccess, kT0));
  t.task_instances.push_back(test::Settle(tis[1], TaskState::kFailed, kT0));
  ApplyOk(t);

  scheduler::TaskInstanceQuery q;
  q.dag_id = "etl";
  q.run_id = "r1";
  auto all = store_->ListTaskInstances(q);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->total_entries, 3);
  EXPECT_EQ(all->items[0].task_id, "extract");

  q.run_id = "~";
  EXPECT_EQ(store_->ListTaskInstances(q)->total_entries, 6);
  q.run_id = "r1";

  q.states = {TaskState::kNone};
  auto none = store_->ListTaskInstances(q);
  ASSERT_EQ(none->items.size(), 1u);
  EXPECT_EQ(none->items[0].task_id, "load");
  q.states = {TaskState::kNone, TaskState::kFailed};
  EXPECT_EQ(store_->ListTaskInstances(q)->total_entries, 2);
  q.states = {TaskState::kSuccess};
  EXPECT_EQ(store_->ListTaskInstances(q)->items.at(0).task_id, "extract");
  q.states = {};

  q.task_ids = {"load", "transform"};
  EXPECT_EQ(store_->ListTaskInstances(q)->total_entries, 2);
  q.task_ids = {};

  q.page.order_by = {"-task_id"};
  q.page.limit = 1;
  auto first = store_->ListTaskInstances(q);
  ASSERT_EQ(first->items.size(), 1u);
  EXPECT_EQ(first->items[0].task_id, "transform");
  EXPECT_EQ(first->total_entries, 3);

  q.page.order_by = {"bogus"};
  EXPECT_EQ(store_->ListTaskInstances(q).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PgStateStoreTest, ListTaskInstancesFiltersByRunsPoolsTriesAndBounds) {
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  CreateRunOf(*dag, "r1", &tis);
  CreateRunOf(*dag, "r2");
  Epoch();
  scheduler::Transition t;
  t.task_instances.push_back(test::Settle(tis[0], TaskState::kSuccess, kT0));
  ApplyOk(t);

  scheduler::TaskInstanceQuery q;
  q.run_ids = {"r2"};
  EXPECT_EQ(store_->ListTaskInstances(q)->total_entries, 3);
  q.run_ids = {"r1", "r2"};
  q.dag_ids = {"etl"};
  EXPECT_EQ(store_->ListTaskInstances(q)->total_entries, 6);
  q.pools = {"no_such_pool"};
  EXPECT_EQ(store_->ListTaskInstances(q)->total_entries, 0);
  q.pools.clear();
  q.run_id_pattern = "1";
  EXPECT_EQ(store_->ListTaskInstances(q)->total_entries, 3);
  q.run_id_pattern.clear();
  using Op = scheduler::Bound::Op;
  q.bounds = {scheduler::Bound{"end_date", Op::kLte, kT0, {}}};
  EXPECT_EQ(store_->ListTaskInstances(q)->total_entries, 1);
  q.bounds = {scheduler::Bound{"duration", Op::kGte, {}, 0.0}};
  EXPECT_EQ(store_->ListTaskInstances(q)->total_entries, 1);
  q.bounds = {scheduler::Bound{"logical_date", Op::kGte, kT0, {}}};
  EXPECT_EQ(store_->ListTaskInstances(q).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PgStateStoreTest, RunsAndTaskInstancesReadByTheApiCarryTheirVersionsCreationTime) {
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  CreateRunOf(*dag, "r1", &tis);
  auto version = store_->GetDagVersion("etl", 1);
  ASSERT_TRUE(version.ok());
  auto run = store_->GetRun("etl", "r1");
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->version_created_at, version->created_at);
  scheduler::RunQuery rq;
  EXPECT_EQ(store_->ListRuns(rq)->items.at(0).version_created_at, version->created_at);
  auto ti = store_->GetTaskInstance("etl", "r1", tis[0].task_id);
  ASSERT_TRUE(ti.ok());
  EXPECT_EQ(ti->version_created_at, version->created_at);
  scheduler::TaskInstanceQuery tq;
  EXPECT_EQ(store_->ListTaskInstances(tq)->items.at(0).version_created_at, version->created_at);
  EXPECT_EQ(store_->GetDag("etl")->latest_version_created_at, version->created_at);
}

TEST_F(PgStateStoreTest, DagVersionsAreListedWithoutDocuments) {
  ASSERT_TRUE(
      store_->SyncDag(*MakeDag("etl", "one"), "/dags/etl.json", kT0, DagSource::kFile).ok());
  ASSERT_TRUE(
      store_->SyncDag(*MakeDag("etl", "two"), "/dags/etl.json", kT0, DagSource::kFile).ok());
  scheduler::DagVersionQuery q;
  q.dag_id = "etl";
  auto all = store_->ListDagVersions(q);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->items.size(), 2u);
  EXPECT_EQ(all->total_entries, 2);
  EXPECT_EQ(all->items[1].version_number, 2);
  EXPECT_TRUE(all->items[1].document.empty());
  q.version_number = 2;
  EXPECT_EQ(store_->ListDagVersions(q)->total_entries, 1);
  q.version_number.reset();
  q.page.order_by = {"-version_number"};
  EXPECT_EQ(store_->ListDagVersions(q)->items.at(0).version_number, 2);
  q.dag_id = "nope";
  EXPECT_EQ(store_->ListDagVersions(q).status().code(), StatusCode::kNotFound);
  q.dag_id = "~";
  EXPECT_EQ(store_->ListDagVersions(q)->total_entries, 2);
}

TEST_F(PgStateStoreTest, RunsAreCountedByStateForTheDagsNamedOrEveryFreshDag) {
  auto dag = MakeDag("etl");
  CreateRunOf(*dag, "r1");
  CreateRunOf(*dag, "r2");
  ASSERT_TRUE(store_->SyncDag(*MakeDag("quiet"), "/dags/quiet.json", kT0, DagSource::kFile).ok());
  auto all = store_->CountRunsByState({});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].dag_id, "etl");
  EXPECT_EQ((*all)[0].counts.at(RunState::kQueued), 2);
  EXPECT_TRUE((*all)[1].counts.empty());
  auto named = store_->CountRunsByState({"quiet", "missing"});
  ASSERT_EQ(named->size(), 1u);
  EXPECT_EQ((*named)[0].dag_id, "quiet");
}

TEST_F(PgStateStoreTest, UnknownTaskInstancesAreNotFoundInAirflowsWords) {
  const std::string expected =
      "The Task Instance with dag_id: 'etl', dag_run_id: 'r1', task_id: 'zzz' was not found";
  auto ti = store_->GetTaskInstance("etl", "r1", "zzz");
  ASSERT_FALSE(ti.ok());
  EXPECT_EQ(ti.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ti.status().message(), expected);
  auto tries = store_->ListTries("etl", "r1", "zzz");
  ASSERT_FALSE(tries.ok());
  EXPECT_EQ(tries.status().message(), expected);
  auto xcom = store_->ListXcom("not-a-uuid");
  ASSERT_TRUE(xcom.ok());
  EXPECT_TRUE(xcom->empty());
}

TEST_F(PgStateStoreTest, ManyThreadsShareASmallPool) {
  ASSERT_TRUE(store_->SyncDag(*MakeDag("etl"), "/dags/etl.json", kT0, DagSource::kFile).ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 20; ++j) {
        if (!store_->GetDag("etl").ok() || !store_->Ping().ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  // The pool never opens more connections than its size (4 here).
  EXPECT_LE(Count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                  "AND pid <> pg_backend_pid()"),
            4);
}

// --- Data the database refuses -----------------------------------------------------------------

TEST_F(PgStateStoreTest, CreateRunWithANulInItsConfIsInvalidArgumentAndWritesNothing) {
  auto dag = MakeDag("etl");
  auto version = store_->SyncDag(*dag, "/dags/etl.json", kT0, DagSource::kFile);
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  const int64_t events = Count("SELECT count(*) FROM event");
  DagRun run = MakeRun("etl", "r1", *version);
  run.conf = {{"k", std::string("a\0b", 3)}};  // jsonb cannot hold \u0000
  auto tis = MakeTis(*dag, *version);
  auto created = store_->CreateRun(run, tis);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), StatusCode::kInvalidArgument) << created.status().ToString();
  EXPECT_EQ(created.status().message(),
            "unsupported Unicode escape sequence: \\u0000 cannot be converted to text.");
  EXPECT_EQ(Count("SELECT count(*) FROM dag_run"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instance"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM event"), events);
  for (const auto& ti : tis) EXPECT_TRUE(ti.id.empty());
}

TEST_F(PgStateStoreTest, ApplyWithANulInAnXcomValueIsInvalidArgumentAndWritesNothing) {
  const int64_t epoch = Epoch();
  auto dag = MakeDag("etl");
  std::vector<TaskInstance> tis;
  DagRun run = CreateRunOf(*dag, "r1", &tis);
  const int64_t events_before = Count("SELECT count(*) FROM event");
  scheduler::Transition t;
  t.runs.push_back(test::RunChange(RunKind::kStart, run, RunState::kRunning, kT0));
  t.task_instances.push_back(test::Queue(tis[0], epoch));
  t.xcoms.push_back({run.id, tis[0].id, {"good", "fine"}});
  t.xcoms.push_back({run.id, tis[0].id, {"return_value", {{"out", std::string("x\0y", 3)}}}});
  auto applied = store_->Apply(t);
  ASSERT_FALSE(applied.ok());
  const Status& s = applied.status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("unsupported Unicode escape sequence"), std::string::npos)
      << s.message();
  EXPECT_EQ(Count("SELECT count(*) FROM event"), events_before);
  EXPECT_EQ(Count("SELECT count(*) FROM xcom"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instance_try"), 0);
  EXPECT_EQ(store_->GetRun("etl", "r1")->state, RunState::kQueued);
  EXPECT_EQ(store_->GetTaskInstance("etl", "r1", "extract")->state, TaskState::kNone);
  // The store is fine afterwards: the same batch without the bad value goes through.
  t.xcoms.pop_back();
  ApplyOk(t);
  EXPECT_EQ(Count("SELECT count(*) FROM xcom"), 1);
}

// --- The scheduler lock --------------------------------------------------------------------------

TEST_F(PgStateStoreTest, OnlyOneStorePerDatabaseGetsTheSchedulerLockUntilItIsDestroyed) {
  ASSERT_TRUE(store_->AcquireSchedulerLock().ok());
  auto opened = PgStateStore::Open({.url = db_.url(), .pool_size = 1});
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<PgStateStore> second = std::move(opened).value();

  // The holder, as PostgreSQL knows it: the first store's dedicated connection.
  const auto holder = db_.Query(
      "SELECT pid || ' ' || to_char(backend_start AT TIME ZONE 'UTC', "
      "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM pg_stat_activity "
      "WHERE datname = current_database() AND application_name = 'dagd-scheduler'");
  ASSERT_EQ(holder.size(), 1u);
  const std::string pid = holder[0].substr(0, holder[0].find(' '));
  const std::string since = holder[0].substr(holder[0].find(' ') + 1);

  Status refused = second->AcquireSchedulerLock();
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_EQ(refused.message(),
            "another dagd scheduler already runs on this database (PostgreSQL backend pid " + pid +
                ", connected since " + since +
                "); stop it first or point this one at another database");
  // Refusal keeps no connection open: still only the holder's (a closed connection's backend
  // leaves pg_stat_activity a moment after the client closed it).
  int64_t lock_connections = 0;
  for (int i = 0; i < 100; ++i) {
    lock_connections = Count(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'dagd-scheduler'");
    if (lock_connections == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(lock_connections, 1);

  store_.reset();
  Status taken = second->AcquireSchedulerLock();
  EXPECT_TRUE(taken.ok()) << taken.ToString();
}

TEST_F(PgStateStoreTest, AcquiringTheSchedulerLockTwiceOnOneStoreIsOkAndUsesOneConnection) {
  ASSERT_TRUE(store_->AcquireSchedulerLock().ok());
  Status again = store_->AcquireSchedulerLock();
  EXPECT_TRUE(again.ok()) << again.ToString();
  EXPECT_EQ(Count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                  "AND application_name = 'dagd-scheduler'"),
            1);
}

TEST_F(PgStateStoreTest, TheSchedulerLockIsTakenAgainAfterItsConnectionIsLost) {
  ASSERT_TRUE(store_->AcquireSchedulerLock().ok());
  db_.Query(
      "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "  // waits for the exit
      "WHERE datname = current_database() AND application_name = 'dagd-scheduler'");
  Status again = store_->AcquireSchedulerLock();
  EXPECT_TRUE(again.ok()) << again.ToString();
  // A second store now sees the lock held again.
  auto opened = PgStateStore::Open({.url = db_.url(), .pool_size = 1});
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ((*opened)->AcquireSchedulerLock().code(), StatusCode::kFailedPrecondition);
}

// After a database restart every pooled connection is dead: the first call on each must not fail
// (BEGIN fails before anything could take effect, so a fresh connection is used instead).
TEST_F(PgStateStoreTest, AConnectionLostWhileIdleIsReplacedWithoutFailingTheCaller) {
  ASSERT_TRUE(store_->Ping().ok());
  db_.Query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  for (int i = 0; i < 100 && Count("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                   "current_database() AND pid <> pg_backend_pid()") > 0;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Status first = store_->Ping();
  EXPECT_TRUE(first.ok()) << first.ToString();
  EXPECT_TRUE(store_->Ping().ok());
}

}  // namespace
}  // namespace dagd::storage
