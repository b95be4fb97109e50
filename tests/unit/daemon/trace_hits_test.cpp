// Trace samples to trace-hit alert data: our analysis next to the device's verdict.
#include "daemon/trace_hits.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/harness.h"
#include "trace/synth.h"

namespace lanegate {
namespace {

trace::SubstanceLibrary library() {
  auto lib = trace::SubstanceLibrary::parse(test::readFile(LANEGATE_SOURCE_DIR "/config/ims/substances.yaml"),
                                            "substances.yaml");
  EXPECT_TRUE(lib) << lib.error();
  return *lib;
}

// A sample as an IMS driver emits it, with a synthesised plasmagram.
std::string sample(const trace::SubstanceLibrary& lib, const std::string& substance, double amplitude,
                   const nlohmann::json& alarms, std::uint64_t seed = 3) {
  auto params = trace::synthDefaults(lib, trace::IonMode::kPositive);
  EXPECT_TRUE(params) << params.error();
  params->seed = seed;
  if (!substance.empty()) {
    auto ion = trace::synthIon(lib, substance, amplitude);
    EXPECT_TRUE(ion) << ion.error();
    params->ions.push_back(*ion);
  }
  const auto spectrum = trace::synthesize(*params);
  return nlohmann::json{{"device", "ims-1"}, {"sample_seq", 42}, {"sample_time", 1'790'000'000},
                        {"status", alarms.empty() ? 1 : 5}, {"mode", "positive"},
                        {"drift_temp_k", *spectrum.driftTempK}, {"pressure_hpa", *spectrum.pressureHpa},
                        {"desorber_temp_c", 250.0}, {"period_ns", spectrum.periodNs}, {"segments", 16},
                        {"alarms", alarms}, {"points", spectrum.points}}
      .dump();
}

test::RunResult validateData(const std::string& json) {
  test::TempDir dir;
  test::writeFile(dir.file("d.json"), json);
  return test::run({LANEGATE_SYSTEM_PYTHON, LANEGATE_SOURCE_DIR "/tests/support/validate_json.py", "--schemas",
                    LANEGATE_SOURCE_DIR "/config/schemas", "trace-hit-data", dir.file("d.json")});
}

TEST(TraceHits, OurMatchAloneRaisesAnAlertThatDisagreesWithTheDevice) {
  const auto lib = library();
  const auto out = evaluateTraceSample(sample(lib, "cocaine", 1500, nlohmann::json::array()), lib, "s/l");
  ASSERT_TRUE(out) << out.error();
  EXPECT_TRUE(out->alert);
  EXPECT_EQ(out->verdict, "hit");
  EXPECT_EQ(out->id, "trace:s/l/ims-1/1790000000/42");
  const auto d = nlohmann::json::parse(out->dataJson);
  EXPECT_EQ(d["device_verdict"]["alarm"], false);
  EXPECT_EQ(d["our_verdict"]["verdict"], "hit");
  EXPECT_EQ(d["agree"], false);
  EXPECT_EQ(d["substances"], nlohmann::json::array({"cocaine"}));
  EXPECT_EQ(d["spectrum"]["points"].size(), 2000u) << "the centre gets the spectrum to re-analyse";
  const auto v = validateData(out->dataJson);
  EXPECT_EQ(v.code, 0) << v.out << v.err;
}

TEST(TraceHits, DeviceAndUsAgreeOnTheSameSubstance) {
  const auto lib = library();
  const auto alarms = nlohmann::json::array({{{"code", 1}, {"substance", "cocaine"}, {"amplitude", 1400}}});
  const auto out = evaluateTraceSample(sample(lib, "cocaine", 1500, alarms), lib, "s/l");
  ASSERT_TRUE(out) << out.error();
  const auto d = nlohmann::json::parse(out->dataJson);
  EXPECT_TRUE(out->alert);
  EXPECT_EQ(d["agree"], true);
  EXPECT_EQ(validateData(out->dataJson).code, 0);
}

TEST(TraceHits, DeviceAlarmOnACleanSpectrumStillAlerts) {
  const auto lib = library();
  const auto alarms = nlohmann::json::array({{{"code", 7}, {"substance", nullptr}, {"amplitude", 300}}});
  const auto out = evaluateTraceSample(sample(lib, "", 0, alarms), lib, "s/l");
  ASSERT_TRUE(out) << out.error();
  EXPECT_TRUE(out->alert) << "whichever comes first: the device's alarm is enough";
  const auto d = nlohmann::json::parse(out->dataJson);
  EXPECT_EQ(d["our_verdict"]["verdict"], "clear");
  EXPECT_EQ(d["agree"], false);
  EXPECT_EQ(validateData(out->dataJson).code, 0);
}

TEST(TraceHits, CleanSampleWithoutAlarmIsNoAlert) {
  const auto lib = library();
  const auto out = evaluateTraceSample(sample(lib, "", 0, nlohmann::json::array()), lib, "s/l");
  ASSERT_TRUE(out) << out.error();
  EXPECT_FALSE(out->alert);
  EXPECT_EQ(out->verdict, "clear");
}

TEST(TraceHits, MalformedSamplesAreErrorsNamingTheField) {
  const auto lib = library();
  EXPECT_EQ(evaluateTraceSample("[1]", lib, "s/l").error(), "trace sample is not a JSON object");
  auto s = nlohmann::json::parse(sample(lib, "", 0, nlohmann::json::array()));
  s.erase("points");
  EXPECT_EQ(evaluateTraceSample(s.dump(), lib, "s/l").error(), "trace sample has no 'points'");
  s = nlohmann::json::parse(sample(lib, "", 0, nlohmann::json::array()));
  s["points"] = std::vector<int>(4001, 1);
  const auto e = evaluateTraceSample(s.dump(), lib, "s/l");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().find("4001"), std::string::npos) << e.error();
}

}  // namespace
}  // namespace lanegate
