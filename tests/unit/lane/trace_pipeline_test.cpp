// The trace pipeline in memory: a typed sample through our analysis next to the device's
// verdict, to a typed result. No io_context, no file, no broker.
#include "lane/trace_pipeline.h"

#include <gtest/gtest.h>

#include "lane_test_support.h"

namespace lanegate::lane::test {
namespace {

const auto kReadAt = std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'001));

const trace::SubstanceLibrary& lib() {
  static const trace::SubstanceLibrary library = smallLibrary();
  return library;
}

// The result of a sample that must evaluate (a test failure, and an empty result, if not).
TraceResult evaluated(TraceSample sample) {
  auto r = evaluateTrace("ims-1", std::move(sample), kReadAt, lib(), "s/l");
  EXPECT_TRUE(r) << r.error();
  return r ? std::move(*r) : TraceResult{};
}

TEST(TracePipeline, OurMatchAloneRaisesAnAlertThatDisagreesWithTheDevice) {
  const TraceResult r = evaluated(traceSample(lib(), "cocaine", 1500));
  EXPECT_TRUE(r.alert);
  EXPECT_EQ(r.verdict, "hit");
  EXPECT_EQ(r.id, "trace:s/l/ims-1/1790000000/42");
  EXPECT_EQ(r.readAt, kReadAt);
  EXPECT_FALSE(r.deviceAlarm);
  EXPECT_EQ(r.ours.verdict, trace::Verdict::kHit);
  EXPECT_FALSE(r.agree);
  EXPECT_EQ(r.substances, std::vector<std::string>{"cocaine"});
  EXPECT_EQ(r.spectrum.points.size(), 2000u) << "the centre gets the spectrum to re-analyse";
  EXPECT_FALSE(r.conveyance) << "the correlator, not the pipeline, names the conveyance";
}

TEST(TracePipeline, DeviceAndUsAgreeOnTheSameSubstance) {
  const TraceResult r = evaluated(traceSample(lib(), "cocaine", 1500, {{1, "cocaine", 1400}}));
  EXPECT_TRUE(r.alert);
  EXPECT_TRUE(r.deviceAlarm);
  EXPECT_TRUE(r.agree);
}

TEST(TracePipeline, DeviceAlarmOnACleanSpectrumStillAlerts) {
  const TraceResult r = evaluated(traceSample(lib(), "", 0, {{7, std::nullopt, 300}}));
  EXPECT_TRUE(r.alert) << "whichever comes first: the device's alarm is enough";
  EXPECT_EQ(r.ours.verdict, trace::Verdict::kClear);
  EXPECT_FALSE(r.agree);
  EXPECT_TRUE(r.substances.empty()) << "a code without a name names no substance";
}

// The driver decides the alarm from the profile's status bit; an alarm bit with an empty
// alarm list (ACME T2 raises no list) is a device alarm all the same.
TEST(TracePipeline, TheAlarmBitAloneIsADeviceAlarm) {
  TraceSample t = traceSample(lib(), "", 0);
  t.alarmed = true;
  const TraceResult r = evaluated(std::move(t));
  EXPECT_TRUE(r.deviceAlarm);
  EXPECT_TRUE(r.alert);
}

TEST(TracePipeline, CleanSampleWithoutAlarmIsNoAlert) {
  const TraceResult r = evaluated(traceSample(lib(), "", 0));
  EXPECT_FALSE(r.alert);
  EXPECT_EQ(r.verdict, "clear");
}

TEST(TracePipeline, ImpossibleSamplesAreErrorsNamingTheField) {
  TraceSample t = traceSample(lib(), "", 0);
  t.points.clear();
  EXPECT_EQ(evaluateTrace("ims-1", t, kReadAt, lib(), "s/l").error(),
            "trace sample from \"ims-1\": points: empty");
  t.points.assign(4001, 1);
  const auto tooMany = evaluateTrace("ims-1", t, kReadAt, lib(), "s/l");
  ASSERT_FALSE(tooMany);
  EXPECT_NE(tooMany.error().find("4001"), std::string::npos) << tooMany.error();
  t.points.assign(100, 1);
  t.periodNs = 0;
  const auto noPeriod = evaluateTrace("ims-1", t, kReadAt, lib(), "s/l");
  ASSERT_FALSE(noPeriod);
  EXPECT_NE(noPeriod.error().find("period_ns"), std::string::npos) << noPeriod.error();
}

TEST(TracePipeline, ImplausibleReadingsStayForAuditButNotInTheSpectrum) {
  TraceSample t = traceSample(lib(), "cocaine", 1500);
  t.driftTempK = 110.0;  // °C read as K: a unit mistake
  const TraceResult r = evaluated(std::move(t));
  EXPECT_EQ(r.driftTempK, 110.0);
  EXPECT_FALSE(r.spectrum.driftTempK.has_value());
  EXPECT_TRUE(r.alert) << "the hit is not lost over a sensor reading";
  EXPECT_FALSE(r.readingsValid);
  EXPECT_NE(r.readingsProblem.find("drift_temp_k"), std::string::npos) << r.readingsProblem;
}

// Issue 13: an out-of-range pressure marks the readings invalid; the device's own alarm
// still makes an alert, and so does our match alone; a clean sample is none.
TEST(TracePipeline, OutOfRangePressureStillAlertsOnTheDevicesAlarmMarkedInvalid) {
  TraceSample alarmed = traceSample(lib(), "", 0, {{1, "cocaine", 1400}});
  alarmed.pressureHpa = 6553.5;  // 0xFFFF tenths: a sensor that is not there
  const TraceResult a = evaluated(std::move(alarmed));
  EXPECT_TRUE(a.alert);
  EXPECT_FALSE(a.readingsValid);
  EXPECT_NE(a.readingsProblem.find("pressure_hpa 6553.5"), std::string::npos) << a.readingsProblem;
  EXPECT_EQ(a.pressureHpa, 6553.5) << "kept for audit";

  TraceSample ours = traceSample(lib(), "cocaine", 1500);
  ours.pressureHpa = 0.0;
  const TraceResult o = evaluated(std::move(ours));
  EXPECT_TRUE(o.alert) << "a substance identified by us still alerts";
  EXPECT_FALSE(o.readingsValid);

  TraceSample quiet = traceSample(lib(), "", 0);
  quiet.pressureHpa = 6553.5;
  const TraceResult q = evaluated(std::move(quiet));
  EXPECT_FALSE(q.alert);
  EXPECT_FALSE(q.readingsValid) << "the device is at fault even when nothing alarmed";

  EXPECT_TRUE(evaluated(traceSample(lib(), "", 0)).readingsValid);
}

}  // namespace
}  // namespace lanegate::lane::test
