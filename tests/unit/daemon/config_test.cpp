// Config validation: every error names file:line and says what is wrong.
#include "daemon/config.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace lanegate {
namespace {

const char* kValid = R"(site: pnv
lane: lane-1
broker:
  uri: tcp://127.0.0.1:1883
devices:
  - name: m1
    type: mock
)";

// Parses text and returns the errors, one "file:line: message" a line.
std::string errorsOf(const std::string& text) {
  auto c = parseConfig(text, "t.yaml");
  if (c) return "";
  return c.error().str();
}

TEST(Config, ValidConfigParsesWithDefaults) {
  auto c = parseConfig(kValid, "t.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->site, "pnv");
  EXPECT_EQ(c->lane, "lane-1");
  EXPECT_EQ(c->broker.clientId, "lanegate-pnv-lane-1");
  EXPECT_EQ(c->stateDir, "/var/lib/lanegate");
  EXPECT_EQ(c->controlSocket, "/run/lanegate/control.sock");
  EXPECT_EQ(c->broker.keepAliveS, 30);
  ASSERT_EQ(c->devices.size(), 1u);
  EXPECT_EQ(c->devices[0].name, "m1");
  EXPECT_EQ(c->devices[0].type, "mock");
  EXPECT_EQ(c->devices[0].line, 6);
}

TEST(Config, ShippedExampleIsValid) {
  auto c = loadConfig(LANEGATE_SOURCE_DIR "/config/lanegate.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->broker.uri, "tcp://127.0.0.1:1883");
  EXPECT_EQ(c->stateDir, "/var/lib/lanegate");
}

// Issue 13: the caps a scan bundle is checked against are config keys; the shipped example
// lists each with the default the daemon uses without it.
TEST(Config, DecodeCapsDefaultAndOverride) {
  auto shipped = loadConfig(LANEGATE_SOURCE_DIR "/config/lanegate.yaml");
  ASSERT_TRUE(shipped) << shipped.error().str();
  auto bare = parseConfig("site: a\nlane: b\nbroker:\n  uri: tcp://h:1\n", "t.yaml");
  ASSERT_TRUE(bare) << bare.error().str();
  const vision::DecodeLimits defaults;
  for (const Config* c : {&*shipped, &*bare}) {
    EXPECT_EQ(c->decode.maxWidth, defaults.maxWidth);
    EXPECT_EQ(c->decode.maxHeight, defaults.maxHeight);
    EXPECT_EQ(c->decode.maxPixels, defaults.maxPixels);
    EXPECT_EQ(c->decode.maxTiffBytes, defaults.maxTiffBytes);
    EXPECT_EQ(c->decode.maxJsonBytes, defaults.maxJsonBytes);
  }
  auto set = parseConfig(
      "site: a\nlane: b\nbroker:\n  uri: tcp://h:1\ndecode:\n  max_scan_pixels: 1000000\n"
      "  max_json_bytes: 4096\n",
      "t.yaml");
  ASSERT_TRUE(set) << set.error().str();
  EXPECT_EQ(set->decode.maxPixels, 1000000u);
  EXPECT_EQ(set->decode.maxJsonBytes, 4096u);
  EXPECT_EQ(
      errorsOf("site: a\nlane: b\nbroker:\n  uri: tcp://h:1\ndecode:\n  max_scan_pixels: 0\n"),
      "t.yaml:6: decode: 'max_scan_pixels' must be between 1 and 17179869184, got 0\n");
}

TEST(ConfigErrors, UnknownTopLevelKey) {
  EXPECT_EQ(errorsOf(std::string(kValid) + "colour: blue\n"),
            "t.yaml:8: config: unknown key 'colour'\n");
}

TEST(ConfigErrors, UnknownBrokerKeyNamesItsLine) {
  EXPECT_EQ(errorsOf("site: a\nlane: b\nbroker:\n  uri: tcp://h:1\n  port: 3\n"),
            "t.yaml:5: broker: unknown key 'port'\n");
}

TEST(ConfigErrors, MissingRequiredKey) {
  EXPECT_EQ(errorsOf("site: a\nbroker:\n  uri: tcp://h:1\n"),
            "t.yaml:1: config: missing required key 'lane'\n");
}

TEST(ConfigErrors, MissingBrokerUri) {
  EXPECT_EQ(errorsOf("site: a\nlane: b\nbroker:\n  keepalive_s: 30\n"),
            "t.yaml:4: broker: missing required key 'uri'\n");
}

TEST(ConfigErrors, WrongTypeInteger) {
  EXPECT_EQ(errorsOf("site: a\nlane: b\nbroker:\n  uri: tcp://h:1\n  keepalive_s: soon\n"),
            "t.yaml:5: broker: 'keepalive_s' must be an integer, got 'soon'\n");
}

TEST(ConfigErrors, WrongTypeMapWhereStringExpected) {
  EXPECT_EQ(errorsOf("site:\n  name: a\nlane: b\nbroker:\n  uri: tcp://h:1\n"),
            "t.yaml:2: config: 'site' must be a string, got a map\n");
}

TEST(ConfigErrors, NumberOutOfRange) {
  EXPECT_EQ(errorsOf("site: a\nlane: b\nbroker:\n  uri: tcp://h:1\n  keepalive_s: 2\n"),
            "t.yaml:5: broker: 'keepalive_s' must be between 5 and 3600, got 2\n");
}

TEST(ConfigErrors, BadUriScheme) {
  EXPECT_EQ(errorsOf("site: a\nlane: b\nbroker:\n  uri: http://h:1883\n"),
            "t.yaml:4: broker: bad uri 'http://h:1883': expected tcp://host:port or ssl://host:port\n");
}

TEST(ConfigErrors, BadUriPort) {
  EXPECT_EQ(errorsOf("site: a\nlane: b\nbroker:\n  uri: tcp://h:70000\n"),
            "t.yaml:4: broker: bad uri 'tcp://h:70000': port 70000 is out of range 1-65535\n");
}

TEST(ConfigErrors, DuplicateDeviceName) {
  EXPECT_EQ(errorsOf(std::string(kValid) + "  - name: m1\n    type: mock\n"),
            "t.yaml:8: duplicate device name 'm1' (first defined at line 6)\n");
}

TEST(ConfigErrors, UnknownDeviceType) {
  EXPECT_EQ(errorsOf("site: a\nlane: b\nbroker:\n  uri: tcp://h:1\ndevices:\n  - name: x\n    type: laser\n"),
            "t.yaml:7: device 'x': unknown type 'laser' (known: mock, ims, xray)\n");
}

TEST(ConfigErrors, DriverSettingValidatedByItsDriver) {
  EXPECT_EQ(errorsOf(std::string(kValid) + "    fail: sometimes\n"),
            "t.yaml:8: device 'm1': 'fail' must be one of none, open, poll, got 'sometimes'\n");
}

TEST(ConfigErrors, UnknownDeviceKey) {
  EXPECT_EQ(errorsOf(std::string(kValid) + "    colour: red\n"),
            "t.yaml:8: device 'm1': unknown key 'colour'\n");
}

TEST(ConfigErrors, NameUnsafeForTopics) {
  EXPECT_EQ(errorsOf("site: a/b\nlane: b\nbroker:\n  uri: tcp://h:1\n"),
            "t.yaml:1: 'site' must be 1-63 letters, digits, '.', '_' or '-' (it is part of MQTT "
            "topics), got 'a/b'\n");
}

TEST(ConfigErrors, RelativeStateDir) {
  EXPECT_EQ(errorsOf(std::string(kValid) + "state_dir: var/lib\n"),
            "t.yaml:8: 'state_dir' must be an absolute path, got 'var/lib'\n");
}

TEST(ConfigErrors, TlsFilesWithPlainTcp) {
  // Any readable file will do for a CA here: only the uri is wrong.
  EXPECT_EQ(
      errorsOf(
          "site: a\nlane: b\nbroker:\n  uri: tcp://h:1\n  tls:\n    ca_file: " LANEGATE_SOURCE_DIR
          "/config/lanegate.yaml\n"),
      "t.yaml:6: broker: TLS files are set but the uri 'tcp://h:1' is not ssl://\n");
}

TEST(Config, AdminSocketGoesBesideTheControlSocket) {
  auto c = parseConfig(std::string(kValid) + "control_socket: /srv/lg/c.sock\n", "t.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->adminSocket, "/srv/lg/admin.sock");
  c = parseConfig(kValid, "t.yaml");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->adminSocket, "/run/lanegate/admin.sock");
  EXPECT_EQ(c->controlMaxConnections, 16);
  EXPECT_EQ(c->controlIdleTimeoutS, 60.0);
}

TEST(ConfigErrors, AdminSocketMustDifferFromTheControlSocket) {
  EXPECT_EQ(errorsOf(std::string(kValid) + "admin_socket: /run/lanegate/control.sock\n"),
            "t.yaml:8: 'admin_socket' must differ from 'control_socket' (their groups differ)\n");
}

TEST(ConfigErrors, NonUtf8TextIsRefusedWithItsLine) {
  EXPECT_EQ(errorsOf(std::string(kValid) + "# caf\xe9\n"),
            "t.yaml:8: not valid UTF-8 (byte 0xE9 at column 6)\n");
  EXPECT_EQ(errorsOf("site: a\xc0\x80\n"), "t.yaml:1: not valid UTF-8 (byte 0xC0 at column 8)\n");
  EXPECT_EQ(errorsOf(std::string(kValid) + "# caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x9a\n"), "")
      << "valid UTF-8 of every length is fine";
}

TEST(ConfigErrors, SslNeedsACaFile) {
  EXPECT_EQ(errorsOf("site: a\nlane: b\nbroker:\n  uri: ssl://h:8883\n"),
            "t.yaml:4: broker: an ssl:// uri needs tls.ca_file, the CA that signed the broker's "
            "certificate (the system's whole trust store is not trusted for it)\n");
}

// A secret file in a temp dir with the given mode; removed at the end of the test.
struct SecretFile {
  explicit SecretFile(mode_t mode) {
    char tmpl[] = "/tmp/lanegate-secret-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    path = tmpl;
    ::fchmod(fd, mode);
    ::close(fd);
    std::ofstream(path) << "lane-user\nS3cret\n";
  }
  ~SecretFile() { std::remove(path.c_str()); }
  std::string path;
};

TEST(ConfigErrors, CredentialsOverPlainTcpAreRefused) {
  SecretFile cred(0600);
  EXPECT_EQ(errorsOf("site: a\nlane: b\nbroker:\n  uri: tcp://h:1883\n  credentials_file: " +
                     cred.path + "\n"),
            "t.yaml:5: broker: 'credentials_file' with the plain uri 'tcp://h:1883' would send the "
            "password in clear; use ssl://\n");
}

TEST(ConfigErrors, SecretsOpenToGroupOrOthersAreRefusedByPath) {
  SecretFile ca(0644), key(0600), openKey(0640), cred(0604);
  const std::string ok =
      "site: a\nlane: b\nbroker:\n  uri: ssl://h:8883\n  credentials_file: " + key.path +
      "\n  tls:\n    ca_file: " + ca.path + "\n    cert_file: " + ca.path +
      "\n    key_file: " + key.path + "\n";
  EXPECT_EQ(errorsOf(ok), "") << "0600 secrets and a 0644 certificate are fine";
  const std::string bad =
      "site: a\nlane: b\nbroker:\n  uri: ssl://h:8883\n  credentials_file: " + cred.path +
      "\n  tls:\n    ca_file: " + ca.path + "\n    cert_file: " + ca.path +
      "\n    key_file: " + openKey.path + "\n";
  const std::string e = errorsOf(bad);
  EXPECT_NE(e.find("t.yaml:5: broker: 'credentials_file' " + cred.path +
                   " is open to group or others (mode 0604)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("t.yaml:9: broker.tls: 'key_file' " + openKey.path +
                   " is open to group or others (mode 0640)"),
            std::string::npos)
      << e;
  EXPECT_EQ(e.find("S3cret"), std::string::npos) << "never the content";
  EXPECT_NE(errorsOf("site: a\nlane: b\nbroker:\n  uri: ssl://h:8883\n  tls:\n    ca_file: "
                     "/nonexistent/ca.pem\n")
                .find("t.yaml:6: broker.tls: cannot read 'ca_file' /nonexistent/ca.pem"),
            std::string::npos);
}

TEST(ConfigErrors, DevicesNotAList) {
  EXPECT_EQ(errorsOf(std::string("site: a\nlane: b\nbroker:\n  uri: tcp://h:1\ndevices: mock\n")),
            "t.yaml:5: config: 'devices' must be a list, got 'mock'\n");
}

TEST(ConfigErrors, YamlSyntaxError) {
  const auto e = errorsOf("site: a\nlane: [b\nbroker:\n");
  EXPECT_EQ(e.rfind("t.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
}

TEST(ConfigErrors, TopLevelNotAMap) {
  EXPECT_EQ(errorsOf("- a\n- b\n"), "t.yaml:1: expected a map of settings at the top level\n");
}

TEST(ConfigErrors, EveryErrorIsReportedNotJustTheFirst) {
  const auto e = errorsOf("site: a\nbroker:\n  uri: nope\n  colour: red\n");
  EXPECT_NE(e.find("t.yaml:1: config: missing required key 'lane'"), std::string::npos) << e;
  EXPECT_NE(e.find("t.yaml:3: broker: bad uri 'nope'"), std::string::npos) << e;
  EXPECT_NE(e.find("t.yaml:4: broker: unknown key 'colour'"), std::string::npos) << e;
}

TEST(ConfigErrors, MissingFileNamesIt) {
  auto c = loadConfig("/nonexistent/lanegate.yaml");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().str(),
            "/nonexistent/lanegate.yaml:0: cannot open config file: No such file or directory\n");
}

TEST(BrokerUri, Parses) {
  auto u = parseBrokerUri("ssl://broker.example:8883");
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "broker.example");
  EXPECT_EQ(u->port, 8883);
  EXPECT_FALSE(parseBrokerUri("tcp://:1883"));
  EXPECT_FALSE(parseBrokerUri("tcp://h"));
}

}  // namespace
}  // namespace lanegate
