#include "tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace dagd::api::http_internal {
namespace {

namespace ssl = boost::asio::ssl;

// Mozilla's "intermediate" TLS 1.2 list: ECDHE only (forward secrecy), AEAD only. TLS 1.3 has
// its own (all good) suites, left at OpenSSL's defaults.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// "" when `path` can be opened for reading, else why not.
std::string Unreadable(const std::string& path) {
  std::ifstream in(path);
  if (in) return "";
  return std::strerror(errno);
}

}  // namespace

StatusOr<std::shared_ptr<ssl::context>> MakeTlsContext(const std::string& cert_file,
                                                       const std::string& key_file) {
  if (auto why = Unreadable(cert_file); !why.empty()) {
    return Status::InvalidArgument("cannot read the TLS certificate file " + cert_file + ": " +
                                   why);
  }
  if (auto why = Unreadable(key_file); !why.empty()) {
    return Status::InvalidArgument("cannot read the TLS key file " + key_file + ": " + why);
  }
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(
      native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
    return Status::Internal("OpenSSL accepts none of dagd's TLS 1.2 ciphers");
  }
  // An encrypted key would make OpenSSL prompt on the terminal: refuse it instead.
  context->set_password_callback(
      [](std::size_t, ssl::context::password_purpose) { return std::string(); });
  boost::system::error_code ec;
  context->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return Status::InvalidArgument("the TLS certificate file " + cert_file +
                                   " holds no usable PEM certificate (" + ec.message() + ")");
  }
  context->use_private_key_file(key_file, ssl::context::pem, ec);
  // OpenSSL compares the key with the certificate as it loads it.
  const bool mismatch =
      ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH;
  if (mismatch || (!ec && SSL_CTX_check_private_key(native) != 1)) {
    ERR_clear_error();
    return Status::InvalidArgument("the TLS key file " + key_file +
                                   " does not match the certificate in " + cert_file);
  }
  if (ec) {
    return Status::InvalidArgument("the TLS key file " + key_file +
                                   " holds no usable unencrypted PEM private key (" + ec.message() +
                                   ")");
  }
  return context;
}

}  // namespace dagd::api::http_internal
