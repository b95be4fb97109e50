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

const std::string kToken = "0123456789abcdef0123456789abcdef";

// An event as the outbox renders it: numbered, with an ack token, of `schema`'s data.
std::string event(const std::string& type, const std::string& id, std::uint64_t seq,
                  const std::string& device, const std::string& data, const std::string& schema,
                  const std::string& subject = "") {
  return cloudEvent(
      kLane, EventHead{type, id, seq, device, kTime, subject, dataSchemaUri(schema), kToken}, data);
}

TEST(Payloads, CloudEventCarriesTheDataTextAsSerialised) {
  const std::string data = R"({"a":[2.5,"x"],"b":1})";  // as a dump writes it: keys in order
  const std::string event = cloudEvent(
      kLane,
      EventHead{"org.lanegate.test", "abc", 42, "lanegated", kTime, "", "https://x/y.json", ""},
      data);
  EXPECT_NE(event.find("\"data\":" + data), std::string::npos) << event;
  const auto e = nlohmann::json::parse(event);
  EXPECT_EQ(e["specversion"], "1.0");
  EXPECT_EQ(e["type"], "org.lanegate.test");
  EXPECT_EQ(e["id"], "abc");
  EXPECT_EQ(e["seq"], 42);
  EXPECT_EQ(e["source"], "lanegate://s1/l1/lanegated");
  EXPECT_EQ(e["time"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(e["datacontenttype"], "application/json");
  EXPECT_EQ(e["dataschema"], "https://x/y.json");
  EXPECT_FALSE(e.contains("subject")) << "no conveyance, no subject";
  EXPECT_EQ(event, e.dump()) << "the same text as one nlohmann dump: keys in order, no spaces";
}

TEST(Payloads, AlertEnvelopeV11CarriesSubjectAndAckTokenInData) {
  const std::string withToken = event("org.lanegate.test", "abc", 3, "lanegated", R"({"b":1})",
                                      "test-alert-data", "CSQU3054383");
  const auto e = nlohmann::json::parse(withToken);
  EXPECT_EQ(e["subject"], "CSQU3054383");
  EXPECT_EQ(e["data"]["ack_token"], kToken);
  EXPECT_EQ(e["data"]["b"], 1);
  EXPECT_EQ(withToken, e.dump()) << "still one canonical dump";
  EXPECT_EQ(nlohmann::json::parse(event("t", "i", 1, "d", "{}", "x"))["data"],
            nlohmann::json({{"ack_token", kToken}}));
}

TEST(Payloads, Rfc3339ParsesOffsetsAndFractionsAndRefusesTheRest) {
  const auto t = parseRfc3339("2023-11-14T22:13:20.123Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, kTime);
  EXPECT_EQ(parseRfc3339("2023-11-15T00:13:20.123+02:00"), kTime);
  EXPECT_EQ(parseRfc3339("2023-11-14T21:43:20.123-00:30"), kTime);
  EXPECT_EQ(rfc3339(*parseRfc3339("2026-11-27T12:00:00Z")), "2026-11-27T12:00:00.000Z");
  for (const char* bad : {"", "2023-11-14", "2023-11-14T22:13:20", "2023-13-14T22:13:20Z",
                          "2023-02-30T22:13:20Z", "2023-11-14T22:13:20.Z",
                          "2023-11-14T22:13:20Zjunk", "2023-11-14 22:13:20Z", "yesterday at noon"})
    EXPECT_FALSE(parseRfc3339(bad)) << bad;
}

TEST(Payloads, SubjectIsTheFirstContainerElsePlateElseAirWaybill) {
  ConveyanceRecord r = container();
  EXPECT_EQ(subjectOf(r), "CSQU3054383");
  r.conveyance.ids.clear();
  r.conveyance.plate = "AB-123-CD";
  r.conveyance.awb = "020-12345675";
  EXPECT_EQ(subjectOf(r), "AB-123-CD");
  r.conveyance.plate.clear();
  EXPECT_EQ(subjectOf(r), "020-12345675");
  r.conveyance.awb.clear();
  EXPECT_EQ(subjectOf(r), "");
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
  EXPECT_EQ(d["readings_valid"], true);

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
  expectValid("alert", event("org.lanegate.trace.hit", r->id, 7, "ims-1", correlated,
                             "trace-hit-data", subjectOf(*r->conveyance)));
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
  expectValid("alert", event("org.lanegate.xray.hit", id, 3, "xray-1", data, "xray-hit-data",
                             subjectOf(hit.conveyance)));
  expectValid(
      "scan-telemetry",
      cloudEvent(kLane,
                 EventHead{"org.lanegate.xray.scan", xrayScanId(kLane, "xray-1", clear.scanId), 4,
                           "xray-1", kTime, subjectOf(clear.conveyance),
                           dataSchemaUri("scan-telemetry") + "#/properties/data", ""},
                 scanTelemetryData(clear)));
}

TEST(Payloads, TestAlertValidates) {
  const std::string data = testAlertData(kLane);
  expectValid("test-alert-data", data);
  expectValid("alert", event("org.lanegate.test", "0b0c", 1, "lanegated", data, "test-alert-data"));
}

}  // namespace
}  // namespace lanegate::lane::test
