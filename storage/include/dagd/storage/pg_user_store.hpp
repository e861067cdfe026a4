// PgUserStore: the UserStore port (scheduler/auth.hpp) on PostgreSQL, tables dagd_user and
// api_token (migration 005). Open connects and applies the embedded migrations, as
// PgStateStore::Open does; each call is one statement on a small pool of its own. Errors as
// PgStateStore maps them (unavailable, already_exists for a taken name, internal), plus not_found
// naming the user or token. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dagd/scheduler/auth.hpp"
#include "dagd/storage/pg_state_store.hpp"

namespace dagd::storage {

class PgUserStore final : public scheduler::UserStore {
 public:
  // options.pool_size connections (2 is plenty: one lookup per API-token request).
  static StatusOr<std::unique_ptr<PgUserStore>> Open(const PgOptions& options);

  ~PgUserStore() override;
  PgUserStore(const PgUserStore&) = delete;
  PgUserStore& operator=(const PgUserStore&) = delete;

  Status AddUser(const scheduler::UserRecord& user) override;
  StatusOr<scheduler::UserRecord> GetUser(const std::string& name) override;
  StatusOr<std::vector<scheduler::UserRecord>> ListUsers() override;
  Status DeleteUser(const std::string& name) override;
  Status SetRole(const std::string& name, scheduler::Role role) override;
  Status SetPassword(const std::string& name, const std::string& password_hash) override;

  Status AddToken(const scheduler::ApiTokenRecord& token) override;
  StatusOr<std::vector<scheduler::ApiTokenRecord>> ListTokens() override;
  Status RevokeToken(const std::string& name) override;
  StatusOr<scheduler::ApiTokenRecord> FindToken(const std::string& token_hash) override;
  Status TouchToken(const std::string& name, scheduler::TimePoint used_at) override;

 private:
  explicit PgUserStore(std::unique_ptr<pg::Pool> pool);

  std::unique_ptr<pg::Pool> pool_;
};

}  // namespace dagd::storage
