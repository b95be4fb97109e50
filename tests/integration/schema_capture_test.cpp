// Every payload type the daemon publishes, captured from a real broker and validated
// against its JSON Schema (config/schemas/) with an independent validator (Debian's
// python3-jsonschema, through tests/support/validate_json.py).
#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <sstream>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

RunResult validate(const std::string& schema, const std::string& jsonlFile) {
  return run({LANEGATE_SYSTEM_PYTHON, LANEGATE_SOURCE_DIR "/tests/support/validate_json.py", "--schemas",
              LANEGATE_SOURCE_DIR "/config/schemas", schema, "--jsonl", jsonlFile});
}

TEST(SchemaIT, EveryPublishedPayloadValidates) {
  TempDir dir;
  Broker broker(dir);
  const std::string port = std::to_string(broker.port());
  Process capture({MOSQUITTO_SUB_BIN, "-h", "127.0.0.1", "-p", port, "-t", "lanegate/v1/it/lane-1/#", "-q", "1",
                   "-F", "%t\t%p"},
                  dir.file("capture"));
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1", "--count", "2"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s)) << watch.err();
  Daemon d(dir, configText(dir, broker.uri(), "devices:\n  - name: m1\n    type: mock\n"));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  ASSERT_EQ(d.ctl({"test-alert", "--count", "2"}).code, 0);
  ASSERT_EQ(watch.wait(15s), 0) << "the watcher received both alerts and acknowledged them";
  ASSERT_TRUE(waitFor([&] { return d.outbox().value("acked", -1) == 2; }, 15s));
  d.process().signal(SIGTERM);  // a clean stop publishes the offline status
  ASSERT_EQ(d.process().wait(5s), 0);
  ASSERT_TRUE(waitFor([&] { return capture.out().find("\"offline\"") != std::string::npos; }, 10s)) << capture.out();

  std::map<std::string, std::string> bySchema;  // schema → JSON lines
  std::istringstream in(capture.out());
  const std::string prefix = "lanegate/v1/it/lane-1/";
  for (std::string line; std::getline(in, line);) {
    const auto tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    const std::string topic = line.substr(prefix.size(), tab - prefix.size());
    const std::string schema = topic == "alerts" ? "alert"
                               : topic == "status" ? "lane-status"
                               : topic == "acks" ? "ack"
                               : topic == "telemetry" ? "scan-telemetry"
                               : topic.rfind("devices/", 0) == 0 ? "device-status"
                                                                  : "unknown topic " + topic;
    bySchema[schema] += line.substr(tab + 1) + "\n";
  }
  for (const char* schema : {"alert", "lane-status", "ack", "device-status"}) {
    ASSERT_TRUE(bySchema.count(schema)) << "nothing captured for " << schema << ":\n" << capture.out();
    const auto file = dir.file(std::string(schema) + ".jsonl");
    writeFile(file, bySchema[schema]);
    const auto r = validate(schema, file);
    EXPECT_EQ(r.code, 0) << schema << ":\n" << r.out << r.err << "\n" << bySchema[schema];
  }
  EXPECT_EQ(bySchema.size(), 4u) << "a payload on a topic no schema covers";

  // The check can fail: the same alert without its seq is rejected.
  auto alert = nlohmann::json::parse(bySchema["alert"].substr(0, bySchema["alert"].find('\n')));
  alert.erase("seq");
  writeFile(dir.file("bad.jsonl"), alert.dump() + "\n");
  const auto bad = validate("alert", dir.file("bad.jsonl"));
  EXPECT_EQ(bad.code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("seq"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace lanegate::test
