// Pure credential primitives: Argon2id password hashes, API token secrets, HS256 JWTs (libjwt).
// No I/O besides the system's random generator (OpenSSL RAND_bytes). Thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "dagd/scheduler/auth.hpp"
#include "dagd/scheduler/status.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::scheduler {

// Argon2id cost: 2 passes over 19 MiB, one lane (OWASP's minimum; ≈30 ms on one core).
struct PasswordCost {
  uint32_t passes = 2;
  uint32_t memory_kib = 19 * 1024;
  uint32_t lanes = 1;
};

// The encoded hash ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>") with a fresh 16-byte salt.
// invalid_argument for an empty password or one longer than kMaxPasswordBytes; internal when
// the random generator or libargon2 fails.
inline constexpr size_t kMaxPasswordBytes = 1024;
StatusOr<std::string> HashPassword(std::string_view password, const PasswordCost& cost = {});
// Whether `password` matches `encoded`; false for a malformed hash.
bool VerifyPassword(const std::string& encoded, std::string_view password);

// `bytes` random bytes as lower-case hex; internal when the generator fails.
StatusOr<std::string> RandomHex(size_t bytes);
// Lower-case hex SHA-256.
std::string Sha256Hex(std::string_view data);

// API tokens are "dagd_" + 64 hex digits (32 random bytes); JWTs never start that way.
inline constexpr std::string_view kApiTokenPrefix = "dagd_";
StatusOr<std::string> NewApiTokenSecret();

struct JwtOptions {
  std::string secret;                    // HS256 key: at least 32 bytes
  std::chrono::seconds lifetime{86400};  // Airflow's default jwt_expiration_time
  std::string issuer = "dagd";
};

// A JWT signed with HS256 carrying sub, role, iat, exp (iat + lifetime) and iss.
StatusOr<std::string> IssueJwt(const JwtOptions& options, const std::string& subject, Role role,
                               TimePoint now);
// The caller a JWT names (via "password"), after checking the HS256 signature (alg none and
// other algorithms are refused), iss, exp after `now`, sub and a known role. Any failure is
// invalid_argument "Invalid or expired token"; `reason`, when given, gets why (for the log).
// internal when the secret is too short.
StatusOr<Principal> VerifyJwt(const JwtOptions& options, const std::string& token, TimePoint now,
                              std::string* reason = nullptr);

}  // namespace dagd::scheduler
