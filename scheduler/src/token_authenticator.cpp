#include "dagd/scheduler/token_authenticator.hpp"

#include <chrono>

#include "logger.hpp"

namespace dagd::scheduler {
namespace {

// Longer credentials are refused before any work: nothing dagd issues comes near.
constexpr size_t kMaxBearerBytes = 4096;
constexpr size_t kMaxUsernameBytes = 256;
// last_used_at is written at most this often per token, not on every request.
constexpr auto kTouchInterval = std::chrono::minutes(1);

Status BadPassword() { return Status::InvalidArgument("Invalid username or password"); }
Status BadToken() { return Status::InvalidArgument("Invalid or expired token"); }

}  // namespace

StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::Create(JwtOptions options,
                                                                         UserStore& users,
                                                                         const Clock& clock) {
  auto secret = RandomHex(16);
  if (!secret.ok()) return secret.status();
  auto dummy = HashPassword(*secret);
  if (!dummy.ok()) return dummy.status();
  return std::unique_ptr<TokenAuthenticator>(
      new TokenAuthenticator(std::move(options), users, clock, std::move(*dummy)));
}

TokenAuthenticator::TokenAuthenticator(JwtOptions options, UserStore& users, const Clock& clock,
                                       std::string dummy_hash)
    : options_(std::move(options)),
      users_(users),
      clock_(clock),
      dummy_hash_(std::move(dummy_hash)) {}

StatusOr<std::string> TokenAuthenticator::IssueToken(const std::string& username,
                                                     const std::string& password) {
  if (username.empty() || username.size() > kMaxUsernameBytes ||
      password.size() > kMaxPasswordBytes) {
    return BadPassword();
  }
  auto user = users_.GetUser(username);
  if (!user.ok() && user.status().code() != StatusCode::kNotFound) return user.status();
  if (!password_checks_.try_acquire_for(kPasswordCheckWait)) {
    return Status::DeadlineExceeded("Too many logins are being checked at once; try again in a "
                                    "moment");
  }
  // An unknown user is checked against the dummy hash: the same cost as a wrong password.
  const bool matches = VerifyPassword(user.ok() ? user->password_hash : dummy_hash_, password);
  password_checks_.release();
  if (!user.ok() || !matches) return BadPassword();
  return IssueJwt(options_, user->name, user->role, clock_.Now());
}

StatusOr<Principal> TokenAuthenticator::Authenticate(std::string_view bearer) {
  if (bearer.empty() || bearer.size() > kMaxBearerBytes) return BadToken();
  if (!bearer.starts_with(kApiTokenPrefix)) {
    std::string reason;
    auto principal = VerifyJwt(options_, std::string(bearer), clock_.Now(), &reason);
    if (!principal.ok() && principal.status().code() == StatusCode::kInvalidArgument) {
      Log()->debug("JWT refused reason=\"{}\"", reason);
    }
    return principal;
  }
  auto token = users_.FindToken(Sha256Hex(bearer));
  if (!token.ok()) {
    return token.status().code() == StatusCode::kNotFound ? BadToken() : token.status();
  }
  const TimePoint now = clock_.Now();
  if (token->expires_at && *token->expires_at <= now) return BadToken();
  if (!token->last_used_at || now - *token->last_used_at >= kTouchInterval) {
    if (Status s = users_.TouchToken(token->name, now); !s.ok()) {
      Log()->warn("could not record an API token's use token={} error=\"{}\"", token->name,
                  s.message());
    }
  }
  return Principal{token->name, token->role, "token:" + token->name};
}

}  // namespace dagd::scheduler
