// The audit log in PostgreSQL: entries stored as given and read back, every filter of
// GET /eventLogs, ordering and paging, against a real database.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pg_store_fixture.hpp"

namespace dagd::storage {
namespace {

using scheduler::AuditEntry;
using scheduler::AuditQuery;
using test::kT0;
using Json = nlohmann::json;

class PgAuditLogTest : public test::PgStoreTest {
 protected:
  int64_t Append(AuditEntry e) {
    auto id = store_->AppendAudit(e);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : 0;
  }

  static AuditEntry Entry(const std::string& event, int seconds, const std::string& owner,
                          std::optional<std::string> dag_id = std::nullopt) {
    AuditEntry e;
    e.at = kT0 + std::chrono::seconds(seconds);
    e.event = event;
    e.owner = owner;
    e.via = "password";
    e.dag_id = std::move(dag_id);
    e.method = "POST";
    e.path = "/api/v2/x";
    e.status = 200;
    e.remote_address = "127.0.0.1";
    return e;
  }

  std::vector<std::string> Events(const AuditQuery& q) {
    auto listing = store_->ListAudit(q);
    EXPECT_TRUE(listing.ok()) << listing.status().ToString();
    std::vector<std::string> out;
    if (!listing.ok()) return out;
    for (const auto& e : listing->items) out.push_back(e.event);
    return out;
  }
};

TEST_F(PgAuditLogTest, AnEntryIsStoredAsGivenAndReadBackById) {
  AuditEntry e = Entry("trigger_dag_run", 0, "alice", "etl");
  e.run_id = "manual__1";
  e.task_id = "extract";
  e.map_index = -1;
  e.try_number = 2;
  e.logical_date = kT0 - std::chrono::hours(1);
  e.via = "token:ci";
  e.status = 409;
  e.remote_address = "::1";
  e.body = {{"conf", "***"}, {"note", "ü"}};
  const int64_t id = Append(e);
  ASSERT_GT(id, 0);

  auto got = store_->GetAudit(id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, id);
  EXPECT_EQ(got->at, e.at);
  EXPECT_EQ(got->event, "trigger_dag_run");
  EXPECT_EQ(got->owner, "alice");
  EXPECT_EQ(got->via, "token:ci");
  EXPECT_EQ(got->dag_id, "etl");
  EXPECT_EQ(got->run_id, "manual__1");
  EXPECT_EQ(got->task_id, "extract");
  EXPECT_EQ(got->map_index, -1);
  EXPECT_EQ(got->try_number, 2);
  EXPECT_EQ(got->logical_date, e.logical_date);
  EXPECT_EQ(got->method, "POST");
  EXPECT_EQ(got->path, "/api/v2/x");
  EXPECT_EQ(got->status, 409);
  EXPECT_EQ(got->remote_address, "::1");
  EXPECT_EQ(got->body, e.body);

  EXPECT_EQ(store_->GetAudit(id + 100).status().code(), StatusCode::kNotFound);
}

TEST_F(PgAuditLogTest, AnUnauthenticatedEntryHasNoOwner) {
  AuditEntry e = Entry("login_failed", 0, "");
  e.owner.reset();
  e.via.clear();
  auto got = store_->GetAudit(Append(e));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_FALSE(got->owner.has_value());
  EXPECT_FALSE(got->dag_id.has_value());
  EXPECT_FALSE(got->logical_date.has_value());
}

TEST_F(PgAuditLogTest, EveryFilterSelectsItsEntries) {
  Append(Entry("trigger_dag_run", 1, "alice", "etl"));
  Append(Entry("patch_dag", 2, "bob", "etl"));
  AuditEntry ti = Entry("patch_task_instance", 3, "alice", "songs");
  ti.run_id = "r1";
  ti.task_id = "load";
  ti.map_index = 0;
  ti.try_number = 3;
  Append(ti);
  Append(Entry("login_failed", 4, "mallory"));

  auto q = [] { return AuditQuery{}; };
  EXPECT_EQ(Events(q()).size(), 4u);
  AuditQuery by;
  by = q(), by.dag_id = "etl";
  EXPECT_EQ(Events(by), (std::vector<std::string>{"trigger_dag_run", "patch_dag"}));
  by = q(), by.task_id = "load";
  EXPECT_EQ(Events(by), (std::vector<std::string>{"patch_task_instance"}));
  by = q(), by.run_id = "r1";
  EXPECT_EQ(Events(by), (std::vector<std::string>{"patch_task_instance"}));
  by = q(), by.map_index = 0;
  EXPECT_EQ(Events(by), (std::vector<std::string>{"patch_task_instance"}));
  by = q(), by.try_number = 3;
  EXPECT_EQ(Events(by), (std::vector<std::string>{"patch_task_instance"}));
  by = q(), by.owner = "alice";
  EXPECT_EQ(Events(by), (std::vector<std::string>{"trigger_dag_run", "patch_task_instance"}));
  by = q(), by.event = "patch_dag";
  EXPECT_EQ(Events(by), (std::vector<std::string>{"patch_dag"}));
  by = q(), by.included_events = {"patch_dag", "login_failed"};
  EXPECT_EQ(Events(by), (std::vector<std::string>{"patch_dag", "login_failed"}));
  by = q(), by.excluded_events = {"patch_dag", "login_failed"};
  EXPECT_EQ(Events(by), (std::vector<std::string>{"trigger_dag_run", "patch_task_instance"}));
  by = q(), by.after = kT0 + std::chrono::seconds(2);  // strictly after
  EXPECT_EQ(Events(by), (std::vector<std::string>{"patch_task_instance", "login_failed"}));
  by = q(), by.before = kT0 + std::chrono::seconds(2);  // strictly before
  EXPECT_EQ(Events(by), (std::vector<std::string>{"trigger_dag_run"}));
  by = q(), by.dag_id_pattern = "ON";  // case-insensitive substring
  EXPECT_EQ(Events(by), (std::vector<std::string>{"patch_task_instance"}));
  by = q(), by.task_id_pattern = "oa";
  EXPECT_EQ(Events(by), (std::vector<std::string>{"patch_task_instance"}));
  by = q(), by.run_id_pattern = "r";
  EXPECT_EQ(Events(by), (std::vector<std::string>{"patch_task_instance"}));
  by = q(), by.owner_pattern = "LL";
  EXPECT_EQ(Events(by), (std::vector<std::string>{"login_failed"}));
  by = q(), by.event_pattern = "patch_%";
  EXPECT_EQ(Events(by), (std::vector<std::string>{"patch_dag", "patch_task_instance"}));
  by = q(), by.owner = "alice", by.dag_id = "etl";
  EXPECT_EQ(Events(by), (std::vector<std::string>{"trigger_dag_run"}));
}

TEST_F(PgAuditLogTest, EntriesAreOrderedAndPaged) {
  Append(Entry("b", 3, "zed", "d2"));
  Append(Entry("a", 1, "amy", "d1"));
  Append(Entry("c", 2, "max", "d3"));

  AuditQuery q;
  EXPECT_EQ(Events(q), (std::vector<std::string>{"b", "a", "c"}));  // by id
  q.page.order_by = {"when"};
  EXPECT_EQ(Events(q), (std::vector<std::string>{"a", "c", "b"}));
  q.page.order_by = {"-dttm"};
  EXPECT_EQ(Events(q), (std::vector<std::string>{"b", "c", "a"}));
  q.page.order_by = {"owner"};
  EXPECT_EQ(Events(q), (std::vector<std::string>{"a", "c", "b"}));
  q.page.order_by = {"-event_log_id"};
  EXPECT_EQ(Events(q), (std::vector<std::string>{"c", "a", "b"}));
  for (const char* field :
       {"id", "dag_id", "task_id", "run_id", "event", "logical_date", "extra"}) {
    q.page.order_by = {field};
    EXPECT_EQ(Events(q).size(), 3u) << field;
  }

  q.page.order_by = {"event"};
  q.page.limit = 2;
  q.page.offset = 1;
  auto page = store_->ListAudit(q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].event, "b");
  EXPECT_EQ(page->total_entries, 3);
  q.page.offset = 5;
  page = store_->ListAudit(q);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->items.empty());
  EXPECT_EQ(page->total_entries, 3);

  q.page.order_by = {"colour"};
  EXPECT_EQ(store_->ListAudit(q).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dagd::storage
