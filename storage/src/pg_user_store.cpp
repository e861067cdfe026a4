#include "dagd/storage/pg_user_store.hpp"

#include <stdexcept>

#include "migrations.hpp"
#include "pg.hpp"

namespace dagd::storage {

using scheduler::ApiTokenRecord;
using scheduler::Role;
using scheduler::TimePoint;
using scheduler::UserRecord;

namespace {

constexpr const char* kUserColumns = "name, role, password_hash, dagd_us(created_at) AS created_at";
constexpr const char* kTokenColumns =
    "name, role, token_hash, dagd_us(created_at) AS created_at, dagd_us(expires_at) AS "
    "expires_at, dagd_us(last_used_at) AS last_used_at";

int64_t Us(TimePoint t) { return t.time_since_epoch().count(); }

std::optional<int64_t> Us(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return Us(*t);
}

TimePoint TimeOf(const pqxx::field& f) {
  return TimePoint(std::chrono::microseconds(f.as<int64_t>()));
}

std::optional<TimePoint> OptTimeOf(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return TimeOf(f);
}

// The table's CHECK admits only the four spellings: anything else is corruption (internal).
Role RoleOf(const pqxx::field& f) {
  auto role = scheduler::ParseRole(f.c_str());
  if (!role) throw std::runtime_error("unknown role in database: " + f.as<std::string>());
  return *role;
}

UserRecord UserOf(const pqxx::row& r) {
  return UserRecord{r["name"].as<std::string>(), RoleOf(r["role"]),
                    r["password_hash"].as<std::string>(), TimeOf(r["created_at"])};
}

ApiTokenRecord TokenOf(const pqxx::row& r) {
  return ApiTokenRecord{r["name"].as<std::string>(),       RoleOf(r["role"]),
                        r["token_hash"].as<std::string>(), TimeOf(r["created_at"]),
                        OptTimeOf(r["expires_at"]),        OptTimeOf(r["last_used_at"])};
}

// ok when the statement touched a row; not_found naming the object otherwise.
Status Touched(const pqxx::result& r, const std::string& what, const std::string& name) {
  if (r.affected_rows() == 0) return Status::NotFound("no " + what + " '" + name + "'");
  return Status::Ok();
}

// A unique violation is already_exists with the pool's generic message; say which name.
Status NameTaken(Status s, const std::string& what, const std::string& name) {
  if (s.code() == StatusCode::kAlreadyExists) {
    return Status::AlreadyExists("a " + what + " named '" + name + "' already exists");
  }
  return s;
}

}  // namespace

StatusOr<std::unique_ptr<PgUserStore>> PgUserStore::Open(const PgOptions& options) {
  auto pool = std::make_unique<pg::Pool>(options);
  Status migrated = pool->WithConnection(
      [](pqxx::connection_base& conn) { ApplyMigrations(conn, EmbeddedMigrations()); });
  if (!migrated.ok()) return migrated;
  return std::unique_ptr<PgUserStore>(new PgUserStore(std::move(pool)));
}

PgUserStore::PgUserStore(std::unique_ptr<pg::Pool> pool) : pool_(std::move(pool)) {}
PgUserStore::~PgUserStore() = default;

Status PgUserStore::AddUser(const UserRecord& user) {
  Status s = pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> Status {
    tx.exec_params(
        "INSERT INTO dagd_user (name, role, password_hash, created_at) "
        "VALUES ($1, $2, $3, dagd_ts($4))",
        user.name, std::string(scheduler::ToString(user.role)), user.password_hash,
        Us(user.created_at));
    return Status::Ok();
  });
  return NameTaken(std::move(s), "user", user.name);
}

StatusOr<UserRecord> PgUserStore::GetUser(const std::string& name) {
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> StatusOr<UserRecord> {
    const pqxx::result r = tx.exec_params(
        std::string("SELECT ") + kUserColumns + " FROM dagd_user WHERE name = $1", name);
    if (r.empty()) return Status::NotFound("no user '" + name + "'");
    return UserOf(r[0]);
  });
}

StatusOr<std::vector<UserRecord>> PgUserStore::ListUsers() {
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> StatusOr<std::vector<UserRecord>> {
    std::vector<UserRecord> out;
    for (const auto& row :
         tx.exec(std::string("SELECT ") + kUserColumns + " FROM dagd_user ORDER BY name")) {
      out.push_back(UserOf(row));
    }
    return out;
  });
}

Status PgUserStore::DeleteUser(const std::string& name) {
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> Status {
    return Touched(tx.exec_params("DELETE FROM dagd_user WHERE name = $1", name), "user", name);
  });
}

Status PgUserStore::SetRole(const std::string& name, Role role) {
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> Status {
    return Touched(tx.exec_params("UPDATE dagd_user SET role = $2 WHERE name = $1", name,
                                  std::string(scheduler::ToString(role))),
                   "user", name);
  });
}

Status PgUserStore::SetPassword(const std::string& name, const std::string& password_hash) {
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> Status {
    return Touched(tx.exec_params("UPDATE dagd_user SET password_hash = $2 WHERE name = $1", name,
                                  password_hash),
                   "user", name);
  });
}

Status PgUserStore::AddToken(const ApiTokenRecord& token) {
  Status s = pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> Status {
    tx.exec_params(
        "INSERT INTO api_token (name, role, token_hash, created_at, expires_at) "
        "VALUES ($1, $2, $3, dagd_ts($4), dagd_ts($5))",
        token.name, std::string(scheduler::ToString(token.role)), token.token_hash,
        Us(token.created_at), Us(token.expires_at));
    return Status::Ok();
  });
  return NameTaken(std::move(s), "token", token.name);
}

StatusOr<std::vector<ApiTokenRecord>> PgUserStore::ListTokens() {
  return pool_->RunAutocommit(
      [&](pqxx::nontransaction& tx) -> StatusOr<std::vector<ApiTokenRecord>> {
        std::vector<ApiTokenRecord> out;
        for (const auto& row :
             tx.exec(std::string("SELECT ") + kTokenColumns + " FROM api_token ORDER BY name")) {
          out.push_back(TokenOf(row));
        }
        return out;
      });
}

Status PgUserStore::RevokeToken(const std::string& name) {
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> Status {
    return Touched(tx.exec_params("DELETE FROM api_token WHERE name = $1", name), "token", name);
  });
}

StatusOr<ApiTokenRecord> PgUserStore::FindToken(const std::string& token_hash) {
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> StatusOr<ApiTokenRecord> {
    const pqxx::result r = tx.exec_params(
        std::string("SELECT ") + kTokenColumns + " FROM api_token WHERE token_hash = $1",
        token_hash);
    if (r.empty()) return Status::NotFound("no such API token");
    return TokenOf(r[0]);
  });
}

Status PgUserStore::TouchToken(const std::string& name, TimePoint used_at) {
  return pool_->RunAutocommit([&](pqxx::nontransaction& tx) -> Status {
    return Touched(tx.exec_params("UPDATE api_token SET last_used_at = dagd_ts($2) WHERE name = $1",
                                  name, Us(used_at)),
                   "token", name);
  });
}

}  // namespace dagd::storage
