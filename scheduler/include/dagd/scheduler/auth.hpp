// Who may call the API: roles, the authenticated caller, the store of users and API tokens, and
// the Authenticator the API asks to turn credentials into a caller.
//
// Roles are Airflow's and ordered: each one may do everything the ones before it may.
//   viewer  read anything
//   user    trigger, clear and mark runs and task instances, pause DAGs
//   op      pools, variables, connections
//   admin   DAG upload and deletion, users
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dagd/scheduler/status.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::scheduler {

enum class Role { kViewer, kUser, kOp, kAdmin };

std::string_view ToString(Role role);                  // "viewer", "user", "op", "admin"
std::optional<Role> ParseRole(std::string_view text);  // exactly those spellings

// The caller of a request, once authenticated.
struct Principal {
  std::string name;  // the user's name, or the API token's name
  Role role = Role::kViewer;
  std::string via;  // "password" (a JWT from POST /auth/token) or "token:<name>" (an API token)
};

struct UserRecord {
  std::string name;
  Role role = Role::kViewer;
  std::string password_hash;  // Argon2id, encoded ("$argon2id$v=19$m=...")
  TimePoint created_at;
};

// A long-lived API token. Only the SHA-256 of its secret is stored: the secret is shown once.
struct ApiTokenRecord {
  std::string name;
  Role role = Role::kViewer;
  std::string token_hash;  // lower-case hex SHA-256 of the secret
  TimePoint created_at;
  std::optional<TimePoint> expires_at;  // none: never expires
  std::optional<TimePoint> last_used_at;
};

// Users and API tokens (PgUserStore in storage). Errors: already_exists for a taken name,
// not_found for an unknown one (the message names it: "no user 'x'"), unavailable when the
// database is down, internal otherwise. Thread-safe.
class UserStore {
 public:
  virtual ~UserStore() = default;

  virtual Status AddUser(const UserRecord& user) = 0;
  virtual StatusOr<UserRecord> GetUser(const std::string& name) = 0;
  virtual StatusOr<std::vector<UserRecord>> ListUsers() = 0;  // by name
  virtual Status DeleteUser(const std::string& name) = 0;
  virtual Status SetRole(const std::string& name, Role role) = 0;
  virtual Status SetPassword(const std::string& name, const std::string& password_hash) = 0;

  virtual Status AddToken(const ApiTokenRecord& token) = 0;
  virtual StatusOr<std::vector<ApiTokenRecord>> ListTokens() = 0;  // by name
  virtual Status RevokeToken(const std::string& name) = 0;         // deletes it
  // not_found when no token has this hash (revoked, or never issued).
  virtual StatusOr<ApiTokenRecord> FindToken(const std::string& token_hash) = 0;
  virtual Status TouchToken(const std::string& name, TimePoint used_at) = 0;
};

// Turns credentials into a Principal. Errors: invalid_argument with the sentence for the client
// (bad credentials: "Invalid username or password", "Invalid or expired token"); unavailable
// when the store cannot be reached; internal otherwise (message for the log). Thread-safe.
class Authenticator {
 public:
  virtual ~Authenticator() = default;

  // POST /auth/token: a signed JWT when the password is the user's.
  virtual StatusOr<std::string> IssueToken(const std::string& username,
                                           const std::string& password) = 0;
  // The credential of an `Authorization: Bearer` header: a JWT or an API token.
  virtual StatusOr<Principal> Authenticate(std::string_view bearer) = 0;
};

}  // namespace dagd::scheduler
