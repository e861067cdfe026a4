// A throwaway PostgreSQL database per test, on the cluster that tests/run-tests.sh starts.
//
// The cluster is named by DAGD_TEST_PG (a libpq conninfo without dbname). Each TestDatabase
// creates a uniquely named database and drops it when destroyed, so tests can run in parallel.
// Construction fails the calling test (via an exception with a clear message) when DAGD_TEST_PG is
// unset or the cluster is unreachable: integration tests never pass by skipping.
#pragma once

#include <string>
#include <vector>

namespace dagd::testing {

class TestDatabase {
 public:
  TestDatabase();
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  // A libpq conninfo for the new database ("host=... port=... user=... dbname=...").
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

  // Runs one SQL statement on the test database (for assertions); returns the first column of
  // every row.
  std::vector<std::string> Query(const std::string& sql) const;

 private:
  std::string admin_;
  std::string name_;
  std::string url_;
};

}  // namespace dagd::testing
