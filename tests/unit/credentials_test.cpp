// Argon2id passwords, API token secrets and HS256 JWTs (scheduler/credentials.hpp), and the role
// names and order (scheduler/auth.hpp).
#include "dagd/scheduler/credentials.hpp"

#include <gtest/gtest.h>
#include <jwt.h>

#include <cstdlib>
#include <string>

namespace dagd::scheduler {
namespace {

using namespace std::chrono_literals;

// A cheap cost keeps the suite fast; the daemon's default is checked once below.
const PasswordCost kCheap{1, 64, 1};
const TimePoint kNow = TimePoint(std::chrono::seconds(1'800'000'000));

JwtOptions Options(std::string secret = std::string(32, 'k')) {
  JwtOptions o;
  o.secret = std::move(secret);
  return o;
}

TEST(Roles, AreOrderedAndSpelledAsAirflow) {
  EXPECT_LT(Role::kViewer, Role::kUser);
  EXPECT_LT(Role::kUser, Role::kOp);
  EXPECT_LT(Role::kOp, Role::kAdmin);
  for (Role r : {Role::kViewer, Role::kUser, Role::kOp, Role::kAdmin}) {
    EXPECT_EQ(ParseRole(ToString(r)), r);
  }
  EXPECT_EQ(ToString(Role::kOp), "op");
  EXPECT_FALSE(ParseRole("Admin"));
  EXPECT_FALSE(ParseRole(""));
}

TEST(Passwords, AHashVerifiesItsPasswordOnly) {
  auto hash = HashPassword("correct horse", kCheap);
  ASSERT_TRUE(hash.ok()) << hash.status().ToString();
  EXPECT_TRUE(hash->starts_with("$argon2id$v=19$m=64,t=1,p=1$")) << *hash;
  EXPECT_TRUE(VerifyPassword(*hash, "correct horse"));
  EXPECT_FALSE(VerifyPassword(*hash, "correct horsE"));
  EXPECT_FALSE(VerifyPassword(*hash, ""));
}

TEST(Passwords, TheDefaultCostIsArgon2idWith19MiBAndTwoPasses) {
  auto hash = HashPassword("pw");
  ASSERT_TRUE(hash.ok());
  EXPECT_TRUE(hash->starts_with("$argon2id$v=19$m=19456,t=2,p=1$")) << *hash;
  EXPECT_TRUE(VerifyPassword(*hash, "pw"));
}

TEST(Passwords, TwoHashesOfOnePasswordDifferBySalt) {
  EXPECT_NE(*HashPassword("pw", kCheap), *HashPassword("pw", kCheap));
}

TEST(Passwords, EmptyOrHugePasswordsAreRefusedAndMalformedHashesNeverVerify) {
  EXPECT_EQ(HashPassword("", kCheap).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(HashPassword(std::string(kMaxPasswordBytes + 1, 'x'), kCheap).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(VerifyPassword("", "pw"));
  EXPECT_FALSE(VerifyPassword("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA", "pw"));
  EXPECT_FALSE(VerifyPassword("$argon2id$garbage", "pw"));
}

TEST(ApiTokens, SecretsArePrefixedRandomHexAndHashedWithSha256) {
  auto a = NewApiTokenSecret();
  auto b = NewApiTokenSecret();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(a->starts_with("dagd_"));
  EXPECT_EQ(a->size(), 5u + 64u);
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Jwt, AnIssuedTokenVerifiesToItsSubjectAndRole) {
  auto token = IssueJwt(Options(), "alice", Role::kOp, kNow);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  auto who = VerifyJwt(Options(), *token, kNow + 10s);
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->name, "alice");
  EXPECT_EQ(who->role, Role::kOp);
  EXPECT_EQ(who->via, "password");
}

TEST(Jwt, ClaimsAreSubRoleIatExpAndIss) {
  auto token = IssueJwt(Options(), "alice", Role::kUser, kNow);
  jwt_t* raw = nullptr;
  const std::string key(32, 'k');
  ASSERT_EQ(jwt_decode(&raw, token->c_str(), reinterpret_cast<const unsigned char*>(key.data()),
                       static_cast<int>(key.size())),
            0);
  EXPECT_STREQ(jwt_get_grant(raw, "sub"), "alice");
  EXPECT_STREQ(jwt_get_grant(raw, "role"), "user");
  EXPECT_STREQ(jwt_get_grant(raw, "iss"), "dagd");
  EXPECT_EQ(jwt_get_grant_int(raw, "iat"), 1'800'000'000);
  EXPECT_EQ(jwt_get_grant_int(raw, "exp"), 1'800'000'000 + 86400);
  EXPECT_EQ(jwt_get_alg(raw), JWT_ALG_HS256);
  jwt_free(raw);
}

TEST(Jwt, AnExpiredTokenIsRefused) {
  auto token = IssueJwt(Options(), "alice", Role::kAdmin, kNow);
  std::string reason;
  auto who = VerifyJwt(Options(), *token, kNow + 86400s, &reason);
  EXPECT_EQ(who.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(who.status().message(), "Invalid or expired token");
  EXPECT_EQ(reason, "expired");
  EXPECT_TRUE(VerifyJwt(Options(), *token, kNow + 86399s).ok());
}

TEST(Jwt, ATokenSignedWithAnotherKeyIsRefused) {
  auto token = IssueJwt(Options(std::string(32, 'o')), "alice", Role::kAdmin, kNow);
  EXPECT_FALSE(VerifyJwt(Options(), *token, kNow).ok());
}

TEST(Jwt, AlgNoneIsRefused) {
  jwt_t* raw = nullptr;
  ASSERT_EQ(jwt_new(&raw), 0);
  jwt_add_grant(raw, "sub", "mallory");
  jwt_add_grant(raw, "role", "admin");
  jwt_add_grant(raw, "iss", "dagd");
  jwt_add_grant_int(raw, "exp", 1'900'000'000);
  ASSERT_EQ(jwt_set_alg(raw, JWT_ALG_NONE, nullptr, 0), 0);
  char* text = jwt_encode_str(raw);
  ASSERT_NE(text, nullptr);
  const std::string unsigned_token = text;
  free(text);
  jwt_free(raw);
  EXPECT_FALSE(VerifyJwt(Options(), unsigned_token, kNow).ok());
  // The same with the signature part of a real token glued on.
  auto real = IssueJwt(Options(), "alice", Role::kViewer, kNow);
  EXPECT_FALSE(
      VerifyJwt(Options(), unsigned_token + real->substr(real->rfind('.') + 1), kNow).ok());
}

TEST(Jwt, ATokenSignedWithHs512IsRefused) {
  jwt_t* raw = nullptr;
  ASSERT_EQ(jwt_new(&raw), 0);
  jwt_add_grant(raw, "sub", "alice");
  jwt_add_grant(raw, "role", "admin");
  jwt_add_grant(raw, "iss", "dagd");
  jwt_add_grant_int(raw, "exp", 1'900'000'000);
  const std::string key(32, 'k');
  jwt_set_alg(raw, JWT_ALG_HS512, reinterpret_cast<const unsigned char*>(key.data()), 32);
  char* text = jwt_encode_str(raw);
  const std::string token = text;
  free(text);
  jwt_free(raw);
  EXPECT_FALSE(VerifyJwt(Options(), token, kNow).ok());
}

TEST(Jwt, ATamperedPayloadIsRefused) {
  auto token = IssueJwt(Options(), "alice", Role::kViewer, kNow);
  const size_t first = token->find('.');
  const size_t second = token->find('.', first + 1);
  // Re-encode the payload with role admin, keeping the viewer's signature.
  auto viewer = IssueJwt(Options(), "alice", Role::kViewer, kNow);
  auto admin = IssueJwt(Options(), "alice", Role::kAdmin, kNow);
  const std::string forged =
      admin->substr(0, admin->rfind('.')) + viewer->substr(viewer->rfind('.'));
  EXPECT_FALSE(VerifyJwt(Options(), forged, kNow).ok());
  std::string flipped = *token;
  flipped[second - 2] = flipped[second - 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(VerifyJwt(Options(), flipped, kNow).ok());
  EXPECT_FALSE(VerifyJwt(Options(), "", kNow).ok());
  EXPECT_FALSE(VerifyJwt(Options(), "not a jwt", kNow).ok());
}

TEST(Jwt, ATokenOfAnotherIssuerIsRefused) {
  JwtOptions other = Options();
  other.issuer = "airflow";
  auto token = IssueJwt(other, "alice", Role::kAdmin, kNow);
  EXPECT_FALSE(VerifyJwt(Options(), *token, kNow).ok());
}

TEST(Jwt, AShortSecretIsAnInternalError) {
  EXPECT_EQ(IssueJwt(Options("short"), "a", Role::kViewer, kNow).status().code(),
            StatusCode::kInternal);
}

}  // namespace
}  // namespace dagd::scheduler
