#include <algorithm>

#include <gtest/gtest.h>

#include "trace/synth.h"

namespace lanegate::trace {
namespace {

TEST(Synth, WorkedExampleDriftTimes) {
  // ims-trace.md §2: L = 7 cm, V = 1750 V, 383 K, 760 Torr.
  EXPECT_NEAR(driftTimeMs(1.86, 383.0, 1013.25, 7.0, 1750.0), 10.7, 0.05);
  EXPECT_NEAR(driftTimeMs(1.16, 383.0, 1013.25, 7.0, 1750.0), 17.2, 0.05);
  EXPECT_NEAR(driftTimeMs(1.00, 383.0, 1013.25, 7.0, 1750.0), 20.0, 0.05);
}

TEST(Synth, DriftTimeScalesWithPressureOverTemperature) {
  const double t0 = driftTimeMs(1.16, 383.15, 1013.25, 7.0, 1750.0);
  const double t1 = driftTimeMs(1.16, 378.15, 1033.25, 7.0, 1750.0);
  EXPECT_NEAR(t1 / t0, (1033.25 / 1013.25) * (383.15 / 378.15), 1e-12);
}

TEST(Synth, SameSeedSameSpectrum) {
  SynthParams p;
  p.seed = 42;
  p.ions.push_back({1.16, 500.0, {}});
  const Spectrum a = synthesize(p);
  const Spectrum b = synthesize(p);
  EXPECT_EQ(a.points, b.points);
  p.seed = 43;
  EXPECT_NE(synthesize(p).points, a.points);
  EXPECT_EQ(a.points.size(), 2000u);
  EXPECT_DOUBLE_EQ(a.periodNs, 12500.0);
}

TEST(Synth, PeakLandsAtItsDriftTime) {
  SynthParams p;
  p.electronicNoise = 0.0;
  p.countsPerIon = 0.0;
  p.baselineWander = 0.0;
  p.calibrantK0.reset();
  const Spectrum s = synthesize(p);
  const auto top = std::max_element(s.points.begin(), s.points.end()) - s.points.begin();
  const double expectedMs = driftTimeMs(*p.reactantK0, p.driftTempK, p.pressureHpa, 7.0, 1750.0);
  EXPECT_NEAR(static_cast<double>(top) * p.periodNs * 1e-6, expectedMs, p.periodNs * 1e-6);
}

TEST(Synth, ClipsAtFullScaleAndDepletes) {
  SynthParams p;
  p.reactantAmplitude = 120000.0;
  const Spectrum clipped = synthesize(p);
  EXPECT_GE(std::count(clipped.points.begin(), clipped.points.end(), 65535), 5);
  p.reactantAmplitude = 30000.0;
  p.ripDepletion = 0.9;
  const Spectrum depleted = synthesize(p);
  EXPECT_LT(*std::max_element(depleted.points.begin(), depleted.points.end()), 5000);
}

}  // namespace
}  // namespace lanegate::trace
