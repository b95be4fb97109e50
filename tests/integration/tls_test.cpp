// Issue 13, acceptance 3: TLS to the broker against a real mosquitto whose only listener
// speaks TLS (no plaintext connection can be made), with certificates made by openssl in
// the test. The good configuration connects and delivers; a certificate for another host,
// a CA we do not trust, and a missing or expired client certificate each leave the daemon
// running, retrying with backoff, and saying why on its status.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

// openssl (or another tool) through env: the test needs no fixed path to it.
void tool(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/usr/bin/env"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = run(argv, 60s);
  ASSERT_EQ(r.code, 0) << args[0] << " " << args[1] << ": " << r.out << r.err;
}

// A small PKI in `dir`: two CAs, broker certificates for 127.0.0.1 and for another host,
// and client certificates, one of them expired.
class Pki {
 public:
  explicit Pki(const TempDir& dir) : dir_(dir) {
    ca("ca");
    ca("other-ca");
    leaf("server", "ca", "/CN=127.0.0.1", "subjectAltName=DNS:localhost,IP:127.0.0.1");
    leaf("elsewhere", "ca", "/CN=broker.elsewhere.example",
         "subjectAltName=DNS:broker.elsewhere.example");
    leaf("client", "ca", "/CN=lanegate-it", "extendedKeyUsage=clientAuth");
    // Valid for one day in 2020: expired now.
    leaf("expired", "ca", "/CN=lanegate-it", "extendedKeyUsage=clientAuth", "2020-01-01 00:00:00");
  }
  [[nodiscard]] std::string path(const std::string& name) const { return dir_.file(name); }

 private:
  void ca(const std::string& name) {
    tool({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes", "-keyout", path(name + ".key"), "-out", path(name + ".crt"), "-days", "2",
          "-subj", "/CN=lanegate test " + name});
  }
  void leaf(const std::string& name, const std::string& ca, const std::string& subject,
            const std::string& extension, const std::string& at = "") {
    tool({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", path(name + ".key"), "-out", path(name + ".csr"), "-subj", subject});
    writeFile(path(name + ".ext"), extension + "\n");
    std::vector<std::string> sign{"openssl",
                                  "x509",
                                  "-req",
                                  "-in",
                                  path(name + ".csr"),
                                  "-CA",
                                  path(ca + ".crt"),
                                  "-CAkey",
                                  path(ca + ".key"),
                                  "-CAcreateserial",
                                  "-out",
                                  path(name + ".crt"),
                                  "-days",
                                  at.empty() ? "2" : "1",
                                  "-extfile",
                                  path(name + ".ext")};
    if (!at.empty()) sign.insert(sign.begin(), {"faketime", at});
    tool(sign);
    ::chmod(path(name + ".key").c_str(), 0600);
  }

  const TempDir& dir_;
};

// A mosquitto with one listener, TLS, requiring a client certificate from our CA.
std::string brokerTls(const Pki& pki, const std::string& serverCert) {
  return "cafile " + pki.path("ca.crt") + "\ncertfile " + pki.path(serverCert + ".crt") +
         "\nkeyfile " + pki.path(serverCert + ".key") +
         "\nrequire_certificate true\nlog_type all\n";
}

// The daemon's config for the TLS broker on `port`.
std::string daemonTls(const TempDir& dir, int port, const std::string& ca,
                      const std::string& client) {
  std::string tls = "  tls:\n    ca_file: " + dir.file(ca + ".crt") + "\n";
  if (!client.empty())
    tls += "    cert_file: " + dir.file(client + ".crt") +
           "\n    key_file: " + dir.file(client + ".key") + "\n";
  std::string text = configText(dir, "ssl://127.0.0.1:" + std::to_string(port));
  // The broker section ends with its reconnect keys: TLS goes right after them.
  const std::string anchor = "  reconnect_max_s: 0.5\n";
  text.insert(text.find(anchor) + anchor.size(), tls);
  return text;
}

// How many connections the broker has seen (its log, one line each).
std::size_t connectionsSeen(const TempDir& dir) {
  return countOf(readFile(dir.file("mosquitto.err")) + readFile(dir.file("mosquitto.out")),
                 "New connection from");
}

// Expects the daemon to stay up and disconnected, retrying (the broker sees attempt after
// attempt), with a last error that says it is TLS and what to check.
void expectRefusedAndRetrying(const TempDir& dir, const Daemon& d, Process& daemon) {
  ASSERT_TRUE(waitFor([&] { return connectionsSeen(dir) >= 3; }, 20s))
      << "the daemon stopped retrying; broker log:\n"
      << readFile(dir.file("mosquitto.err")) << "\ndaemon log:\n"
      << daemon.err();
  ASSERT_TRUE(daemon.running()) << daemon.err();
  const auto s = d.status();
  ASSERT_TRUE(s.is_object()) << daemon.err();
  EXPECT_EQ(s["broker"]["connected"], false);
  EXPECT_EQ(s["broker"]["connections"], 0) << "no connection may ever have been made";
  const std::string why = s["broker"].value("last_error", "");
  EXPECT_NE(why.find("TLS"), std::string::npos) << why;
  EXPECT_NE(why.find("ca_file"), std::string::npos) << why;
}

TEST(TlsIT, TheGoodConfigurationConnectsAndDeliversATestAlert) {
  TempDir dir;
  Pki pki(dir);
  Broker broker(dir, brokerTls(pki, "server"));
  // Credentials over TLS: accepted (this broker ignores them), never logged.
  writeFile(dir.file("credentials"), "lane-user\nS3cret-pass-4-test\n");
  ::chmod(dir.file("credentials").c_str(), 0600);
  std::string config = daemonTls(dir, broker.port(), "ca", "client");
  config.insert(config.find("  keepalive_s"),
                "  credentials_file: " + dir.file("credentials") + "\n");
  const std::string port = std::to_string(broker.port());
  const std::vector<std::string> sub{MOSQUITTO_SUB_BIN,
                                     "-h",
                                     "127.0.0.1",
                                     "-p",
                                     port,
                                     "--cafile",
                                     pki.path("ca.crt"),
                                     "--cert",
                                     pki.path("client.crt"),
                                     "--key",
                                     pki.path("client.key"),
                                     "-c",
                                     "-i",
                                     "it-tls-room",
                                     "-q",
                                     "1",
                                     "-t",
                                     kAlertsTopic};
  auto reg = sub;
  reg.push_back("-E");
  ASSERT_EQ(run(reg).code, 0) << "the test's own TLS subscriber cannot connect";

  Daemon d(dir, config);
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  const auto r = d.ctl({"test-alert"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto got = sub;
  got.insert(got.end(), {"-C", "1", "-W", "10"});
  const auto alert = run(got);
  ASSERT_EQ(alert.code, 0) << alert.err;
  EXPECT_EQ(nlohmann::json::parse(alert.out)["id"], r.out.substr(0, r.out.find('\n')));
  EXPECT_EQ(d.process().err().find("S3cret-pass-4-test"), std::string::npos)
      << "the password reached the log";
}

TEST(TlsIT, ACertificateForAnotherHostIsRefused) {
  TempDir dir;
  Pki pki(dir);
  // Signed by the CA we trust, but for broker.elsewhere.example, not 127.0.0.1.
  Broker broker(dir, brokerTls(pki, "elsewhere"));
  Daemon d(dir, daemonTls(dir, broker.port(), "ca", "client"));
  expectRefusedAndRetrying(dir, d, d.process());
}

TEST(TlsIT, ABrokerCertificateFromAnotherCaIsRefused) {
  TempDir dir;
  Pki pki(dir);
  Broker broker(dir, brokerTls(pki, "server"));
  Daemon d(dir, daemonTls(dir, broker.port(), "other-ca", "client"));
  expectRefusedAndRetrying(dir, d, d.process());
}

TEST(TlsIT, WithoutAClientCertificateTheBrokerRefuses) {
  TempDir dir;
  Pki pki(dir);
  Broker broker(dir, brokerTls(pki, "server"));
  Daemon d(dir, daemonTls(dir, broker.port(), "ca", ""));
  expectRefusedAndRetrying(dir, d, d.process());
}

TEST(TlsIT, AnExpiredClientCertificateIsRefused) {
  TempDir dir;
  Pki pki(dir);
  Broker broker(dir, brokerTls(pki, "server"));
  Daemon d(dir, daemonTls(dir, broker.port(), "ca", "expired"));
  expectRefusedAndRetrying(dir, d, d.process());
}

TEST(TlsIT, ConfigCheckRefusesWhatWouldLeakOrTrustTooMuch) {
  TempDir dir;
  writeFile(dir.file("credentials"), "lane-user\nS3cret\n");
  ::chmod(dir.file("credentials").c_str(), 0640);
  struct Case {
    std::string broker;
    std::string says;
  };
  const std::vector<Case> cases{
      {"  uri: ssl://127.0.0.1:8883\n", ":4: broker: an ssl:// uri needs tls.ca_file"},
      {"  uri: tcp://127.0.0.1:1883\n  credentials_file: " + dir.file("credentials") + "\n",
       ":5: broker: 'credentials_file' with the plain uri 'tcp://127.0.0.1:1883' would send the "
       "password in clear"},
      {"  uri: ssl://127.0.0.1:8883\n  credentials_file: " + dir.file("credentials") +
           "\n  tls:\n    ca_file: /etc/ssl/certs/ca-certificates.crt\n",
       ":5: broker: 'credentials_file' " + dir.file("credentials") +
           " is open to group or others (mode 0640)"},
  };
  for (const auto& c : cases) {
    writeFile(dir.file("l.yaml"), "site: it\nlane: l\nbroker:\n" + c.broker);
    const auto r = run({LANEGATED_BIN, "-c", dir.file("l.yaml"), "--check-config"});
    EXPECT_EQ(r.code, 1) << c.broker;
    EXPECT_NE(r.err.find(dir.file("l.yaml") + c.says), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("S3cret"), std::string::npos) << "a secret in an error: " << r.err;
  }
}

}  // namespace
}  // namespace lanegate::test
