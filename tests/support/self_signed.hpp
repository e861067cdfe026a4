// Self-signed certificates for HTTPS tests, made with the `openssl` command-line tool (OpenSSL 3)
// at test time: nothing secret is kept in the repository.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace dagd::testing {

struct CertificateFiles {
  std::string cert;  // PEM certificate; also the CA file a client trusts
  std::string key;   // PEM private key, unencrypted
};

// Writes <dir>/<name>.crt and <dir>/<name>.key: an ECDSA P-256 certificate for 127.0.0.1 and
// localhost, valid for two days. `subject` ends up as the CN, so tests can tell two apart.
// Throws when openssl is missing or fails.
inline CertificateFiles MakeSelfSignedCertificate(const std::filesystem::path& dir,
                                                  const std::string& name,
                                                  const std::string& subject = "dagd-test") {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0) {
    throw std::runtime_error("the openssl command-line tool is needed to make test certificates");
  }
  CertificateFiles files{(dir / (name + ".crt")).string(), (dir / (name + ".key")).string()};
  const std::string command =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
      " -subj '/CN=" +
      subject +
      "' -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost'"
      " -keyout '" +
      files.key + "' -out '" + files.cert + "' >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0) {
    throw std::runtime_error("openssl could not make a test certificate: " + command);
  }
  return files;
}

}  // namespace dagd::testing
