// Payloads: typed results serialised once, into data that its JSON Schema accepts, inside a
// CloudEvent that carries the data text as it was serialised.
#include "lane/payloads.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lane/correlator.h"
#include "lane_test_support.h"
#include "tests/support/harness.h"

namespace lanegate::lane::test {
namespace {

const LaneIdentity kLane{"s1", "l1"};
const auto kTime =
    std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));

// Validates a document with tests/support/validate_json.py against a schema of config/schemas.
void expectValid(const std::string& schema, const std::string& json) {
  lanegate::test::TempDir dir;
  lanegate::test::writeFile(dir.file("doc.json"), json);
  const auto v = lanegate::test::run(
      {LANEGATE_SYSTEM_PYTHON, LANEGATE_SOURCE_DIR "/tests/support/validate_json.py", "--schemas",
       LANEGATE_SOURCE_DIR "/config/schemas", schema, dir.file("doc.json")});
  EXPECT_EQ(v.code, 0) << schema << ": " << v.out << v.err << "\n" << json.substr(0, 2000);
}

ConveyanceRecord container() {
  vision::ScanMeta meta;
  meta.scanId = "scan-1";
  meta.conveyance.kind = "container";
  meta.conveyance.ids = {"CSQU3054383"};
  meta.conveyance.declared.empty = false;
  meta.conveyance.declared.description = "frozen fish";
  return checkedConveyance(meta);
}

TEST(Payloads, CloudEventCarriesTheDataTextAsSerialised) {
  const std::string data = R"({"a":[2.5,"x"],"b":1})";  // as a dump writes it: keys in order
  const std::string event =
      cloudEvent(kLane, "org.lanegate.test", "abc", 42, "lanegated", kTime, data);
  EXPECT_NE(event.find("\"data\":" + data), std::string::npos) << event;
  const auto e = nlohmann::json::parse(event);
  EXPECT_EQ(e["specversion"], "1.0");
  EXPECT_EQ(e["type"], "org.lanegate.test");
  EXPECT_EQ(e["id"], "abc");
  EXPECT_EQ(e["seq"], 42);
  EXPECT_EQ(e["source"], "lanegate://s1/l1/lanegated");
  EXPECT_EQ(e["time"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(e["datacontenttype"], "application/json");
  EXPECT_EQ(event, e.dump()) << "the same text as one nlohmann dump: keys in order, no spaces";
}

TEST(Payloads, TraceHitDataValidatesWithAndWithoutAConveyance) {
  const auto lib = smallLibrary();
  auto r = evaluateTrace(
      "ims-1", traceSample(lib, "cocaine", 1500, {{1, "cocaine", 1400}, {7, std::nullopt, 5}}),
      kTime, lib, "s1/l1");
  ASSERT_TRUE(r) << r.error();
  const std::string alone = traceHitData(*r);
  expectValid("trace-hit-data", alone);
  const auto d = nlohmann::json::parse(alone);
  EXPECT_EQ(d["device"], "ims-1");
  EXPECT_EQ(d["sample_time"], "2026-09-21T14:13:20.000Z");
  EXPECT_EQ(d["device_verdict"]["alarm"], true);
  EXPECT_EQ(d["device_verdict"]["substances"][1]["substance"], nullptr);
  EXPECT_EQ(d["spectrum"]["points"].size(), 2000u);
  EXPECT_TRUE(d["spectrum"]["period_ns"].is_number_integer()) << "whole ns as an integer";
  EXPECT_EQ(d["priority"], "normal");
  EXPECT_FALSE(d.contains("conveyance"));

  Correlator c;
  c.onScan(container(), "xray:s1:l1:xray-1:scan-1");
  c.attribute(*r);
  const std::string correlated = traceHitData(*r);
  expectValid("trace-hit-data", correlated);
  const auto j = nlohmann::json::parse(correlated);
  EXPECT_EQ(j["conveyance"]["ids"], nlohmann::json::array({"CSQU3054383"}));
  EXPECT_EQ(j["conveyance"]["id_checks"][0]["valid"], true);
  EXPECT_EQ(j["correlated_alerts"], nlohmann::json::array({"xray:s1:l1:xray-1:scan-1"}));
  EXPECT_EQ(j["priority"], "high");
  expectValid("alert",
              cloudEvent(kLane, "org.lanegate.trace.hit", r->id, 7, "ims-1", kTime, correlated));
}

TEST(Payloads, XrayHitAndScanTelemetryValidate) {
  vision::PhantomOptions o;
  o.pixelMm = 20;
  XrayScan hit, clear;
  for (int i = 0; i < 40 && (hit.scanId.empty() || clear.scanId.empty()); ++i) {
    auto p = vision::generatePhantom(77, i, o);
    p.bundle.meta.scanId = "scan-" + std::to_string(i);
    const XrayOutcome out = processBundle(bundleBytes(p.bundle), {});
    ASSERT_TRUE(out.scan) << out.error;
    (out.scan->alert() ? hit : clear) = *out.scan;
  }
  ASSERT_FALSE(hit.scanId.empty());
  ASSERT_FALSE(clear.scanId.empty());
  const std::string id = xrayAlertId(kLane, "xray-1", hit.scanId);
  EXPECT_EQ(id, "xray:s1:l1:xray-1:" + hit.scanId);
  const std::string topic = laneTopic(kLane, "alerts/" + id + "/image");
  const std::string data = xrayHitData(hit, topic);
  expectValid("xray-hit-data", data);
  const auto d = nlohmann::json::parse(data);
  EXPECT_EQ(d["image"]["topic"], topic);
  EXPECT_EQ(d["image"]["sha256"], hit.imageSha256);
  EXPECT_EQ(d["image"]["bytes"], hit.image.size());
  EXPECT_EQ(d["findings"].size(), hit.findings.size());
  EXPECT_EQ(d["findings"][0]["kind"], hit.findings[0].kind);
  expectValid("alert", cloudEvent(kLane, "org.lanegate.xray.hit", id, 3, "xray-1", kTime, data));
  expectValid("scan-telemetry",
              cloudEvent(kLane, "org.lanegate.xray.scan", xrayScanId(kLane, "xray-1", clear.scanId),
                         4, "xray-1", kTime, scanTelemetryData(clear)));
}

TEST(Payloads, TestAlertValidates) {
  const std::string data = testAlertData(kLane);
  expectValid("test-alert-data", data);
  expectValid("alert", cloudEvent(kLane, "org.lanegate.test", "0b0c", 1, "lanegated", kTime, data));
}

}  // namespace
}  // namespace lanegate::lane::test
