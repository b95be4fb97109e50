// Every payload type the daemon publishes, captured from a real broker and validated
// against its JSON Schema (config/schemas/) with an independent validator (Debian's
// python3-jsonschema, through tests/support/validate_json.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

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
    const bool isState = topic.rfind("alerts/", 0) == 0 && topic.ends_with("/state");
    const std::string schema = topic == "alerts"                 ? "alert"
                               : isState                         ? "alert-state"
                               : topic == "status"               ? "lane-status"
                               : topic == "acks"                 ? "ack"
                               : topic == "telemetry"            ? "scan-telemetry"
                               : topic.rfind("devices/", 0) == 0 ? "device-status"
                                                                 : "unknown topic " + topic;
    bySchema[schema] += line.substr(tab + 1) + "\n";
  }
  for (const char* schema : {"alert", "alert-state", "lane-status", "ack", "device-status"}) {
    ASSERT_TRUE(bySchema.count(schema)) << "nothing captured for " << schema << ":\n" << capture.out();
    const auto file = dir.file(std::string(schema) + ".jsonl");
    writeFile(file, bySchema[schema]);
    const auto r = validate(schema, file);
    EXPECT_EQ(r.code, 0) << schema << ":\n" << r.out << r.err << "\n" << bySchema[schema];
  }
  EXPECT_EQ(bySchema.size(), 5u) << "a payload on a topic no schema covers";

  // The check can fail: the same alert without its seq is rejected.
  auto alert = nlohmann::json::parse(bySchema["alert"].substr(0, bySchema["alert"].find('\n')));
  alert.erase("seq");
  writeFile(dir.file("bad.jsonl"), alert.dump() + "\n");
  const auto bad = validate("alert", dir.file("bad.jsonl"));
  EXPECT_EQ(bad.code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("seq"), std::string::npos) << bad.out;
}

// Copies bundle `id` from `gen` into `inbox` with the bundle's time and container number
// set to `time` and `container` (the JSON last, by rename).
void copyBundleAs(const std::string& gen, const std::string& id, const std::string& inbox,
                  const std::string& time, const std::string& container) {
  auto meta = nlohmann::json::parse(readFile(gen + "/" + id + ".json"));
  meta["time"] = time;
  meta["conveyance"]["kind"] = "container";
  meta["conveyance"]["ids"] = {container};
  std::filesystem::copy_file(gen + "/" + id + ".tiff", inbox + "/" + id + ".tiff");
  writeFile(inbox + "/." + id + ".json.part", meta.dump());
  std::filesystem::rename(inbox + "/." + id + ".json.part", inbox + "/" + id + ".json");
}

// Captured "topic\tpayload" lines of one topic under lanegate/v1/it/lane-1/, parsed.
std::vector<nlohmann::json> capturedOn(const Process& capture, const std::string& topic) {
  std::vector<nlohmann::json> out;
  std::istringstream in(capture.out());
  const std::string want = "lanegate/v1/it/lane-1/" + topic + "\t";
  for (std::string line; std::getline(in, line);)
    if (line.rfind(want, 0) == 0)
      out.push_back(nlohmann::json::parse(line.substr(want.size()), nullptr, false));
  return out;
}

// Acceptance 7 (issue 13): Contract 5 v1.1 envelopes from the real daemon. An X-ray
// alert's time and subject are its bundle's time and container number (not when it was
// accepted); seq counts alerts only, without gaps, with telemetry interleaved; every
// captured payload validates against its schema.
TEST(SchemaIT, XrayAlertTimeAndSubjectAreTheBundlesAndAlertSeqHasNoGaps) {
  TempDir dir;
  const std::string gen = phantoms(dir, 12, 606);
  const auto flagged = flaggedScans(gen, 2);
  ASSERT_EQ(flagged.size(), 2u);
  std::string clear;  // a scan analysed before the second flagged one, and not flagged
  for (const auto& e : std::filesystem::directory_iterator(gen)) {
    const std::string n = e.path().filename().string();
    if (!n.ends_with(".json") || n.ends_with(".truth.json")) continue;
    const std::string id = n.substr(0, n.size() - 5);
    if (id < flagged[1] && id != flagged[0] && (clear.empty() || id < clear)) clear = id;
  }
  ASSERT_FALSE(clear.empty());
  const std::string inbox = dir.file("inbox");
  std::filesystem::create_directories(inbox);

  Broker broker(dir);
  Process capture({MOSQUITTO_SUB_BIN, "-h", "127.0.0.1", "-p", std::to_string(broker.port()), "-t",
                   "lanegate/v1/it/lane-1/#", "-q", "1", "-F", "%t\t%p"},
                  dir.file("capture"));
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1",
                 "--no-ack"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s))
      << watch.err();
  Daemon d(dir, configText(dir, broker.uri(), "devices:\n" + xrayEntry(inbox, freeLoopbackPort())));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();

  auto alertsSeen = [&] { return capturedOn(capture, "alerts").size(); };
  ASSERT_EQ(d.ctl({"test-alert"}).code, 0);
  ASSERT_TRUE(waitFor([&] { return alertsSeen() == 1; }, 15s));
  copyBundleAs(gen, flagged[0], inbox, "2025-03-04T05:06:07.890+01:00", "CSQU3054383");
  ASSERT_TRUE(waitFor([&] { return alertsSeen() == 2; }, 60s)) << d.process().err();
  copyBundleAs(gen, clear, inbox, "2025-03-04T05:07:00Z", "MSCU1000022");
  ASSERT_TRUE(waitFor([&] { return !capturedOn(capture, "telemetry").empty(); }, 60s))
      << d.process().err();
  ASSERT_EQ(d.ctl({"test-alert"}).code, 0);
  copyBundleAs(gen, flagged[1], inbox, "2025-03-04T04:10:00Z", "TGHU9876543");
  ASSERT_TRUE(waitFor([&] { return alertsSeen() == 4; }, 60s)) << d.process().err();

  const auto alerts = capturedOn(capture, "alerts");
  std::vector<std::uint64_t> seqs;
  std::map<std::string, nlohmann::json> xray;  // by scan id
  std::string lines;
  for (const auto& a : alerts) {
    ASSERT_TRUE(a.is_object());
    seqs.push_back(a["seq"]);
    lines += a.dump() + "\n";
    if (a["type"] == "org.lanegate.xray.hit") xray[a["data"]["scan_id"]] = a;
  }
  std::sort(seqs.begin(), seqs.end());
  EXPECT_EQ(seqs, (std::vector<std::uint64_t>{1, 2, 3, 4}))
      << "seq counts alerts only, without gaps:\n"
      << lines;
  ASSERT_EQ(xray.size(), 2u) << lines;
  EXPECT_EQ(xray[flagged[0]]["time"], "2025-03-04T04:06:07.890Z") << "the bundle's time, in UTC";
  EXPECT_EQ(xray[flagged[0]]["subject"], "CSQU3054383");
  EXPECT_EQ(xray[flagged[1]]["time"], "2025-03-04T04:10:00.000Z");
  EXPECT_EQ(xray[flagged[1]]["subject"], "TGHU9876543");
  EXPECT_EQ(xray[flagged[0]]["dataschema"],
            "https://lanegate.org/schemas/v1/xray-hit-data.schema.json");
  const auto telemetry = capturedOn(capture, "telemetry");
  EXPECT_EQ(telemetry[0]["time"], "2025-03-04T05:07:00.000Z");
  EXPECT_EQ(telemetry[0]["subject"], "MSCU1000022");

  writeFile(dir.file("alerts.jsonl"), lines);
  const auto v = validate("alert", dir.file("alerts.jsonl"));
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  writeFile(dir.file("telemetry.jsonl"), telemetry[0].dump() + "\n");
  const auto t = validate("scan-telemetry", dir.file("telemetry.jsonl"));
  EXPECT_EQ(t.code, 0) << t.out << t.err;
  d.process().signal(SIGTERM);
  ASSERT_EQ(d.process().wait(10s), 0);
  ASSERT_TRUE(waitFor(
      [&] {
        return !capturedOn(capture, "status").empty() &&
               capturedOn(capture, "status").back().value("state", "") == "offline";
      },
      10s));
  std::string statuses;
  for (const auto& s : capturedOn(capture, "status")) {
    EXPECT_GE(s.value("session", 0), 1) << s.dump();
    statuses += s.dump() + "\n";
  }
  writeFile(dir.file("status.jsonl"), statuses);
  const auto st = validate("lane-status", dir.file("status.jsonl"));
  EXPECT_EQ(st.code, 0) << st.out << st.err;
}

// Contract 5 v1.1, the lane's retained topics: a device removed from the config at reload
// has its retained status cleared; the will is JSON with its content type, carries the
// session of the start it belongs to, and waits its delay before saying offline.
TEST(SchemaIT, RemovedDeviceIsClearedAndTheWillIsDelayedJsonWithTheSession) {
  TempDir dir;
  Broker broker(dir);
  const std::string two = "devices:\n  - name: m1\n    type: mock\n  - name: m2\n    type: mock\n";
  Daemon d(dir, configText(dir, broker.uri(), two));
  ASSERT_TRUE(waitFor([&] { return statusIs(broker, "online"); }, 15s)) << d.process().err();
  const std::string m2 = "lanegate/v1/it/lane-1/devices/m2/status";
  ASSERT_TRUE(waitFor([&] { return !retained(broker, m2, 1s).empty(); }, 15s));
  const auto online = nlohmann::json::parse(retained(broker, kStatusTopic));
  ASSERT_TRUE(online.contains("session")) << online.dump();

  writeFile(d.configPath(),
            configText(dir, broker.uri(), "devices:\n  - name: m1\n    type: mock\n"));
  ASSERT_EQ(d.ctl({"reload"}).code, 0);
  EXPECT_TRUE(waitFor([&] { return retained(broker, m2, 500ms).empty(); }, 15s))
      << "m2 left the config but its status stays: " << retained(broker, m2);
  EXPECT_FALSE(retained(broker, "lanegate/v1/it/lane-1/devices/m1/status").empty());

  Process capture({MOSQUITTO_SUB_BIN, "-V", "mqttv5", "-h", "127.0.0.1", "-p",
                   std::to_string(broker.port()), "-t", kStatusTopic, "-q", "1", "-F", "%C|%p"},
                  dir.file("will"));
  ASSERT_TRUE(waitFor([&] { return capture.out().find("online") != std::string::npos; }, 10s));
  d.process().signal(SIGKILL);
  ASSERT_TRUE(d.process().wait(5s));
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(statusIs(broker, "online")) << "the will waits its delay (5 s) before saying offline";
  ASSERT_TRUE(waitFor([&] { return statusIs(broker, "offline"); }, 15s))
      << retained(broker, kStatusTopic);
  ASSERT_TRUE(waitFor([&] { return capture.out().find("offline") != std::string::npos; }, 5s));
  std::string last;
  std::istringstream lines(capture.out());
  for (std::string line; std::getline(lines, line);)
    if (line.find("offline") != std::string::npos) last = line;
  EXPECT_EQ(last.rfind("application/json|", 0), 0u) << "the will has no content type: " << last;
  const auto will = nlohmann::json::parse(last.substr(last.find('|') + 1), nullptr, false);
  ASSERT_TRUE(will.is_object()) << last;
  EXPECT_EQ(will["state"], "offline");
  EXPECT_EQ(will["session"], online["session"]) << "the will names the start it belongs to";
  writeFile(dir.file("will.jsonl"), will.dump() + "\n");
  const auto v = validate("lane-status", dir.file("will.jsonl"));
  EXPECT_EQ(v.code, 0) << v.out << v.err;
}

}  // namespace
}  // namespace lanegate::test
