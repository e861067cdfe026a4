// PgUserStore (users and API tokens, migration 005) and the TokenAuthenticator on top of it, on a
// real PostgreSQL.
#include "dagd/storage/pg_user_store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>

#include "dagd/scheduler/credentials.hpp"
#include "dagd/scheduler/token_authenticator.hpp"
#include "test_database.hpp"

namespace dagd::storage {
namespace {

using namespace std::chrono_literals;
using scheduler::ApiTokenRecord;
using scheduler::Role;
using scheduler::TimePoint;
using scheduler::UserRecord;

const TimePoint kT0 = TimePoint(std::chrono::seconds(1'800'000'000));

class ManualClock : public scheduler::Clock {
 public:
  TimePoint Now() const override { return TimePoint(std::chrono::microseconds(now_us.load())); }
  std::atomic<int64_t> now_us{kT0.time_since_epoch().count()};
  void Advance(std::chrono::seconds s) {
    now_us += std::chrono::duration_cast<std::chrono::microseconds>(s).count();
  }
};

class PgUserStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PgOptions options;
    options.url = db_.url();
    options.pool_size = 2;
    auto opened = PgUserStore::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(*opened);
  }

  testing::TestDatabase db_;
  std::unique_ptr<PgUserStore> store_;
};

TEST_F(PgUserStoreTest, UsersRoundTripAndNamesAreUnique) {
  ASSERT_TRUE(store_->AddUser({"bob", Role::kUser, "$argon2id$hash-b", kT0}).ok());
  ASSERT_TRUE(store_->AddUser({"alice", Role::kAdmin, "$argon2id$hash-a", kT0 + 1s}).ok());
  Status taken = store_->AddUser({"bob", Role::kViewer, "x", kT0});
  EXPECT_EQ(taken.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(taken.message(), "a user named 'bob' already exists");

  auto users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 2u);
  EXPECT_EQ((*users)[0].name, "alice");
  EXPECT_EQ((*users)[0].role, Role::kAdmin);
  EXPECT_EQ((*users)[0].created_at, kT0 + 1s);
  EXPECT_EQ((*users)[1].password_hash, "$argon2id$hash-b");

  ASSERT_TRUE(store_->SetRole("bob", Role::kOp).ok());
  ASSERT_TRUE(store_->SetPassword("bob", "$argon2id$new").ok());
  auto bob = store_->GetUser("bob");
  ASSERT_TRUE(bob.ok());
  EXPECT_EQ(bob->role, Role::kOp);
  EXPECT_EQ(bob->password_hash, "$argon2id$new");

  ASSERT_TRUE(store_->DeleteUser("bob").ok());
  EXPECT_EQ(store_->GetUser("bob").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetUser("bob").status().message(), "no user 'bob'");
  EXPECT_EQ(store_->DeleteUser("bob").code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->SetRole("bob", Role::kUser).code(), StatusCode::kNotFound);
}

TEST_F(PgUserStoreTest, TokensAreFoundByHashTouchedAndRevoked) {
  const ApiTokenRecord ci{"ci", Role::kUser,    scheduler::Sha256Hex("secret-1"),
                          kT0,  kT0 + 90 * 24h, std::nullopt};
  const ApiTokenRecord cron{"cron", Role::kViewer, scheduler::Sha256Hex("secret-2"),
                            kT0,    std::nullopt,  std::nullopt};
  ASSERT_TRUE(store_->AddToken(ci).ok());
  ASSERT_TRUE(store_->AddToken(cron).ok());
  EXPECT_EQ(store_->AddToken(ci).code(), StatusCode::kAlreadyExists);

  auto found = store_->FindToken(scheduler::Sha256Hex("secret-1"));
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->name, "ci");
  EXPECT_EQ(found->role, Role::kUser);
  EXPECT_EQ(found->expires_at, kT0 + 90 * 24h);
  EXPECT_FALSE(found->last_used_at);
  EXPECT_EQ(store_->FindToken(scheduler::Sha256Hex("nope")).status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(store_->TouchToken("ci", kT0 + 5s).ok());
  auto tokens = store_->ListTokens();
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 2u);
  EXPECT_EQ((*tokens)[0].last_used_at, kT0 + 5s);
  EXPECT_FALSE((*tokens)[1].expires_at);

  ASSERT_TRUE(store_->RevokeToken("ci").ok());
  EXPECT_EQ(store_->FindToken(scheduler::Sha256Hex("secret-1")).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->RevokeToken("ci").code(), StatusCode::kNotFound);
}

TEST_F(PgUserStoreTest, OnlyTheSecretsHashIsStored) {
  ASSERT_TRUE(store_
                  ->AddToken({"ci", Role::kUser, scheduler::Sha256Hex("the-secret"), kT0,
                              std::nullopt, std::nullopt})
                  .ok());
  EXPECT_EQ(db_.Query("SELECT count(*) FROM api_token WHERE token_hash LIKE '%the-secret%'"),
            std::vector<std::string>{"0"});
  // A hash that is not 64 hex digits is refused by the table itself.
  EXPECT_FALSE(
      store_->AddToken({"bad", Role::kUser, "the-secret", kT0, std::nullopt, std::nullopt}).ok());
}

class AuthenticatorTest : public PgUserStoreTest {
 protected:
  void SetUp() override {
    PgUserStoreTest::SetUp();
    scheduler::JwtOptions options;
    options.secret = std::string(40, 's');
    options.lifetime = 60s;
    auto made = scheduler::TokenAuthenticator::Create(options, *store_, clock_);
    ASSERT_TRUE(made.ok());
    auth_ = std::move(*made);
    auto hash = scheduler::HashPassword("pw-alice");
    ASSERT_TRUE(hash.ok());
    ASSERT_TRUE(store_->AddUser({"alice", Role::kUser, *hash, kT0}).ok());
  }

  ManualClock clock_;
  std::unique_ptr<scheduler::TokenAuthenticator> auth_;
};

TEST_F(AuthenticatorTest, APasswordGivesAJwtThatAuthenticatesUntilItExpires) {
  auto jwt = auth_->IssueToken("alice", "pw-alice");
  ASSERT_TRUE(jwt.ok()) << jwt.status().ToString();
  auto who = auth_->Authenticate(*jwt);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->name, "alice");
  EXPECT_EQ(who->role, Role::kUser);
  EXPECT_EQ(who->via, "password");
  clock_.Advance(60s);
  EXPECT_EQ(auth_->Authenticate(*jwt).status().message(), "Invalid or expired token");
}

TEST_F(AuthenticatorTest, AWrongPasswordAndAnUnknownUserGetTheSameAnswer) {
  auto wrong = auth_->IssueToken("alice", "nope");
  auto unknown = auth_->IssueToken("mallory", "pw-alice");
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong.status().message(), "Invalid username or password");
  EXPECT_EQ(unknown.status().code(), wrong.status().code());
  EXPECT_EQ(unknown.status().message(), wrong.status().message());
}

TEST_F(AuthenticatorTest, AnApiTokenAuthenticatesUntilRevokedOrExpired) {
  auto secret = scheduler::NewApiTokenSecret();
  ASSERT_TRUE(
      store_
          ->AddToken({"ci", Role::kOp, scheduler::Sha256Hex(*secret), kT0, kT0 + 1h, std::nullopt})
          .ok());
  auto who = auth_->Authenticate(*secret);
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->name, "ci");
  EXPECT_EQ(who->role, Role::kOp);
  EXPECT_EQ(who->via, "token:ci");
  EXPECT_EQ(store_->ListTokens()->at(0).last_used_at, kT0);  // its use is recorded
  EXPECT_FALSE(auth_->Authenticate(*secret + "0").ok());
  clock_.Advance(3600s);
  EXPECT_EQ(auth_->Authenticate(*secret).status().message(), "Invalid or expired token");
  clock_.Advance(-3600s);
  ASSERT_TRUE(store_->RevokeToken("ci").ok());
  EXPECT_EQ(auth_->Authenticate(*secret).status().message(), "Invalid or expired token");
}

}  // namespace
}  // namespace dagd::storage
