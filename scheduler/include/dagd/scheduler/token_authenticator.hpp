// The Authenticator of the daemon: passwords checked against the UserStore's Argon2id hashes,
// JWTs (HS256, credentials.hpp) issued for them, and API tokens looked up by the SHA-256 of their
// secret. A JWT is trusted for its lifetime (its role is the one the user had when it was issued,
// as in Airflow); an API token is looked up on every use, so revoking it takes effect at once.
//
// An unknown user costs the same password verification as a wrong password (against a dummy
// hash made at construction), so the answer time does not tell which names exist.
//
// Each password check costs Argon2id's 19 MiB and tens of milliseconds of a core, so at most
// kMaxPasswordChecks run at once; a login that cannot start one within kPasswordCheckWait fails
// with deadline_exceeded ("too many logins at once"), so that a flood of logins can take neither
// the daemon's memory nor every API thread.
// Thread-safe; `users` and `clock` must outlive it.
#pragma once

#include <chrono>
#include <memory>
#include <semaphore>
#include <string>
#include <string_view>

#include "dagd/scheduler/auth.hpp"
#include "dagd/scheduler/credentials.hpp"

namespace dagd::scheduler {

class TokenAuthenticator final : public Authenticator {
 public:
  // internal when the dummy hash cannot be made (the random generator failed).
  static StatusOr<std::unique_ptr<TokenAuthenticator>> Create(JwtOptions options, UserStore& users,
                                                              const Clock& clock);

  StatusOr<std::string> IssueToken(const std::string& username,
                                   const std::string& password) override;
  StatusOr<Principal> Authenticate(std::string_view bearer) override;

  static constexpr int kMaxPasswordChecks = 2;
  static constexpr std::chrono::seconds kPasswordCheckWait{5};

 private:
  TokenAuthenticator(JwtOptions options, UserStore& users, const Clock& clock,
                     std::string dummy_hash);

  const JwtOptions options_;
  UserStore& users_;
  const Clock& clock_;
  const std::string dummy_hash_;
  std::counting_semaphore<kMaxPasswordChecks> password_checks_{kMaxPasswordChecks};
};

}  // namespace dagd::scheduler
