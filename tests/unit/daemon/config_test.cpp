// Config validation: every error names file:line and says what is wrong.
#include "daemon/config.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(errorsOf("site: a\nlane: b\nbroker:\n  uri: tcp://h:1\n  tls:\n    ca_file: /etc/ca.pem\n"),
            "t.yaml:6: broker: TLS files are set but the uri 'tcp://h:1' is not ssl://\n");
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
