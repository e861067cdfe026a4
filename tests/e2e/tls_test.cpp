// --tls-cert/--tls-key on the real daemon: HTTPS with a certificate made at test time, plain HTTP
// on the same port refused cleanly, a renewed certificate served after SIGHUP (a broken one not),
// and flag combinations that cannot serve refused at start with a sentence.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "e2e_support.hpp"
#include "self_signed.hpp"

namespace dagd::testing {
namespace {

// Polls `url` with `ca_file` until it answers `status`, for up to 10 s.
bool EventuallyAnswers(const std::string& url, const std::string& ca_file, long status) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (HttpGet(url, {}, {ca_file}).status == status) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(Tls, ServesHttpsRefusesPlainHttpAndReloadsARenewedCertificateOnSighup) {
  TempDir certs;
  const CertificateFiles files = MakeSelfSignedCertificate(certs.path(), "dagd", "first");
  const std::string first_ca = (certs.path() / "first.pem").string();
  std::filesystem::copy_file(files.cert, first_ca);
  Daemon d(ExampleDags(), {"--tls-cert", files.cert, "--tls-key", files.key});
  d.process->UseHttps(first_ca);
  d.Start();

  // HTTPS with the certificate trusted; the API behaves as over HTTP.
  auto version = HttpGet(d.Url("/api/v2/version"), {}, {first_ca});
  ASSERT_EQ(version.status, 200) << version.error;
  auto dags = HttpGet(d.Url("/api/v2/dags"), {}, {first_ca});
  EXPECT_EQ(dags.status, 200) << dags.body;
  // Not trusted: the client refuses the connection.
  EXPECT_EQ(HttpGet(d.Url("/api/v2/version")).status, 0);

  // Plain HTTP on the HTTPS port: a sentence, and the daemon keeps serving.
  const std::string plain_url = "http://127.0.0.1:" + std::to_string(d.port) + "/api/v2/version";
  auto plain = HttpGet(plain_url);
  EXPECT_EQ(plain.status, 400) << plain.error;
  EXPECT_NE(plain.body.find("HTTPS only"), std::string::npos) << plain.body;
  EXPECT_EQ(HttpGet(d.Url("/api/v2/version"), {}, {first_ca}).status, 200);

  // A renewed certificate written over the files is served after SIGHUP.
  MakeSelfSignedCertificate(certs.path(), "dagd", "renewed");
  ASSERT_EQ(::kill(d.process->pid(), SIGHUP), 0);
  EXPECT_TRUE(EventuallyAnswers(d.Url("/api/v2/version"), files.cert, 200)) << d.process->Log();
  EXPECT_EQ(HttpGet(d.Url("/api/v2/version"), {}, {first_ca}).status, 0)
      << "the old certificate is still served";
  EXPECT_NE(d.process->Log().find("TLS certificate reloaded"), std::string::npos);

  // A broken key on SIGHUP: logged, and the renewed certificate stays in service.
  std::ofstream(files.key) << "not a key\n";
  ASSERT_EQ(::kill(d.process->pid(), SIGHUP), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (d.process->Log().find("TLS certificate not reloaded") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(d.process->Log().find("TLS certificate not reloaded"), std::string::npos)
      << d.process->Log();
  EXPECT_EQ(HttpGet(d.Url("/api/v2/version"), {}, {files.cert}).status, 200);
}

// Starts dagd with `tls_args` and expects it to refuse at start with `sentence` in its output.
void ExpectRefusedAtStart(const std::vector<std::string>& tls_args, const std::string& sentence) {
  TempDir state;
  const int port = FreePort();
  std::vector<std::string> args = {"--state-dir",   state.path().string(),
                                   "--dags-folder", ExampleDags(),
                                   "--listen",      "127.0.0.1:" + std::to_string(port)};
  for (auto& arg : RunAsArgs()) args.push_back(arg);
  args.insert(args.end(), tls_args.begin(), tls_args.end());
  DagdProcess process(args, (state.path() / "dagd.log").string(), port);
  EXPECT_THROW(process.Start(std::chrono::seconds(10)), std::runtime_error);
  EXPECT_NE(process.Log().find(sentence), std::string::npos) << process.Log();
}

TEST(Tls, FlagsThatCannotServeHttpsAreRefusedAtStartWithASentence) {
  TempDir certs;
  const CertificateFiles a = MakeSelfSignedCertificate(certs.path(), "a");
  const CertificateFiles b = MakeSelfSignedCertificate(certs.path(), "b");
  ExpectRefusedAtStart({"--tls-cert", a.cert}, "--tls-cert was given without --tls-key");
  ExpectRefusedAtStart({"--tls-key", a.key}, "--tls-key was given without --tls-cert");
  ExpectRefusedAtStart({"--tls-cert", a.cert, "--tls-key", b.key},
                       "does not match the certificate in " + a.cert);
  const std::string missing = (certs.path() / "missing.crt").string();
  ExpectRefusedAtStart({"--tls-cert", missing, "--tls-key", a.key},
                       "cannot read the TLS certificate file " + missing);
  ExpectRefusedAtStart({"--tls-cert", a.key, "--tls-key", a.key},
                       "holds no usable PEM certificate");
}

}  // namespace
}  // namespace dagd::testing
