#include "dagd/scheduler/credentials.hpp"

#include <argon2.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <vector>

namespace dagd::scheduler {
namespace {

constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;
constexpr size_t kApiTokenSecretBytes = 32;
constexpr size_t kMinJwtSecretBytes = 32;

std::string Hex(const unsigned char* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '\0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

struct CFree {
  void operator()(char* p) const { std::free(p); }
};

Status Refuse(std::string* reason, std::string why) {
  if (reason) *reason = std::move(why);
  return Status::InvalidArgument("Invalid or expired token");
}

}  // namespace

StatusOr<std::string> HashPassword(std::string_view password, const PasswordCost& cost) {
  if (password.empty()) return Status::InvalidArgument("the password is empty");
  if (password.size() > kMaxPasswordBytes) {
    return Status::InvalidArgument("the password is longer than " +
                                   std::to_string(kMaxPasswordBytes) + " bytes");
  }
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof salt) != 1) {
    return Status::Internal("the random generator failed (RAND_bytes)");
  }
  const size_t length = argon2_encodedlen(cost.passes, cost.memory_kib, cost.lanes, kSaltBytes,
                                          kHashBytes, Argon2_id);
  std::string encoded(length, '\0');
  const int rc = argon2id_hash_encoded(cost.passes, cost.memory_kib, cost.lanes, password.data(),
                                       password.size(), salt, sizeof salt, kHashBytes,
                                       encoded.data(), encoded.size());
  if (rc != ARGON2_OK) {
    return Status::Internal(std::string("argon2id_hash_encoded failed: ") +
                            argon2_error_message(rc));
  }
  encoded.resize(encoded.find('\0'));
  return encoded;
}

bool VerifyPassword(const std::string& encoded, std::string_view password) {
  if (password.size() > kMaxPasswordBytes || !encoded.starts_with("$argon2id$")) return false;
  return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

StatusOr<std::string> RandomHex(size_t bytes) {
  std::vector<unsigned char> buffer(bytes);
  if (RAND_bytes(buffer.data(), static_cast<int>(buffer.size())) != 1) {
    return Status::Internal("the random generator failed (RAND_bytes)");
  }
  std::string out = Hex(buffer.data(), buffer.size());
  OPENSSL_cleanse(buffer.data(), buffer.size());
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  return Hex(digest, size);
}

StatusOr<std::string> NewApiTokenSecret() {
  auto hex = RandomHex(kApiTokenSecretBytes);
  if (!hex.ok()) return hex.status();
  return std::string(kApiTokenPrefix) + *hex;
}

StatusOr<std::string> IssueJwt(const JwtOptions& options, const std::string& subject, Role role,
                               TimePoint now) {
  if (options.secret.size() < kMinJwtSecretBytes) {
    return Status::Internal("the JWT secret is shorter than 32 bytes");
  }
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return Status::Internal("jwt_new failed");
  JwtPtr jwt(raw);
  const long iat = static_cast<long>(
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  const long exp = iat + static_cast<long>(options.lifetime.count());
  const std::string role_name(ToString(role));
  if (jwt_add_grant(jwt.get(), "sub", subject.c_str()) != 0 ||
      jwt_add_grant(jwt.get(), "role", role_name.c_str()) != 0 ||
      jwt_add_grant(jwt.get(), "iss", options.issuer.c_str()) != 0 ||
      jwt_add_grant_int(jwt.get(), "iat", iat) != 0 ||
      jwt_add_grant_int(jwt.get(), "exp", exp) != 0 ||
      jwt_set_alg(jwt.get(), JWT_ALG_HS256,
                  reinterpret_cast<const unsigned char*>(options.secret.data()),
                  static_cast<int>(options.secret.size())) != 0) {
    return Status::Internal("could not build the JWT (libjwt)");
  }
  std::unique_ptr<char, CFree> text(jwt_encode_str(jwt.get()));
  if (!text) return Status::Internal("could not sign the JWT (libjwt)");
  return std::string(text.get());
}

StatusOr<Principal> VerifyJwt(const JwtOptions& options, const std::string& token, TimePoint now,
                              std::string* reason) {
  if (options.secret.size() < kMinJwtSecretBytes) {
    return Status::Internal("the JWT secret is shorter than 32 bytes");
  }
  jwt_t* raw = nullptr;
  // With a key, libjwt refuses alg "none" and checks the signature of the algorithm the header
  // names; only HS256 is accepted below, so a token signed otherwise is refused too.
  const int rc =
      jwt_decode(&raw, token.c_str(), reinterpret_cast<const unsigned char*>(options.secret.data()),
                 static_cast<int>(options.secret.size()));
  JwtPtr jwt(raw);
  if (rc != 0 || !jwt) return Refuse(reason, "malformed or bad signature");
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) return Refuse(reason, "not HS256");
  const char* iss = jwt_get_grant(jwt.get(), "iss");
  if (iss == nullptr || options.issuer != iss) return Refuse(reason, "wrong issuer");
  errno = 0;
  const long exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno != 0) return Refuse(reason, "no exp");
  const long now_s = static_cast<long>(
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  if (exp <= now_s) return Refuse(reason, "expired");
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  const char* role_name = jwt_get_grant(jwt.get(), "role");
  if (sub == nullptr || *sub == '\0' || role_name == nullptr) {
    return Refuse(reason, "no sub or role");
  }
  auto role = ParseRole(role_name);
  if (!role) return Refuse(reason, "unknown role");
  return Principal{sub, *role, "password"};
}

}  // namespace dagd::scheduler
