// Server-side TLS settings built from PEM files, for HttpServer (HTTPS) and its start-up checks.
#pragma once

#include <memory>
#include <string>

#include "dagd/scheduler/status.hpp"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace dagd::api::http_internal {

// A server context serving the certificate chain in `cert_file` with the private key in
// `key_file` (PEM; an encrypted key is refused, nothing prompts): TLS 1.2 and 1.3 only, forward-
// secret AEAD ciphers in the server's order of preference, no renegotiation, no compression.
// invalid_argument, with a sentence naming the file, when a file cannot be read, holds no
// certificate or key, or the key does not match the certificate.
StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeTlsContext(const std::string& cert_file,
                                                                    const std::string& key_file);

}  // namespace dagd::api::http_internal
