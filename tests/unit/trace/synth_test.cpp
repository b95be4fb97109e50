#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include "trace/synth.h"
#include "trace_test_support.h"

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

// Noise-free, flat but for the baseline's offset and slope.
SynthParams noiseFree() {
  SynthParams p;
  p.electronicNoise = 0.0;
  p.countsPerIon = 0.0;
  p.baselineWander = 0.0;
  return p;
}

TEST(Synth, TailingKeepsTheChargeAndMovesItLater) {
  SynthParams p = noiseFree();
  p.calibrantK0.reset();
  const Spectrum plain = synthesize(p);
  p.reactantTailShare = 0.2;
  p.reactantTailFwhm = 2.0;
  const Spectrum tailed = synthesize(p);
  double sumPlain = 0.0;
  double sumTailed = 0.0;
  double firstMomentPlain = 0.0;
  double firstMomentTailed = 0.0;
  for (std::size_t i = 0; i < plain.points.size(); ++i) {
    const double a =
        plain.points[i] - p.baselineOffset - p.baselineSlope * static_cast<double>(i) / 2000.0;
    const double b =
        tailed.points[i] - p.baselineOffset - p.baselineSlope * static_cast<double>(i) / 2000.0;
    sumPlain += a;
    sumTailed += b;
    firstMomentPlain += a * static_cast<double>(i);
    firstMomentTailed += b * static_cast<double>(i);
  }
  EXPECT_NEAR(sumTailed, sumPlain, 0.01 * sumPlain);
  EXPECT_GT(firstMomentTailed / sumTailed, firstMomentPlain / sumPlain + 1.0);
}

TEST(Synth, CorrelatedNoiseKeepsItsSigma) {
  SynthParams p;
  p.reactantK0.reset();
  p.calibrantK0.reset();
  p.baselineSlope = 0.0;
  p.baselineWander = 0.0;
  p.points = 4000;
  p.noiseCorrelation = 0.8;
  const Spectrum s = synthesize(p);
  double var = 0.0;
  double lag1 = 0.0;
  for (std::size_t i = 0; i < s.points.size(); ++i) {
    const double d = s.points[i] - p.baselineOffset;
    var += d * d;
    if (i > 0) lag1 += d * (s.points[i - 1] - p.baselineOffset);
  }
  var /= static_cast<double>(s.points.size());
  lag1 /= static_cast<double>(s.points.size() - 1);
  EXPECT_NEAR(std::sqrt(var), p.electronicNoise, 0.15 * p.electronicNoise);
  EXPECT_NEAR(lag1 / var, 0.8, 0.05);
}

TEST(Synth, SpikesLandWhereAsked) {
  SynthParams p = noiseFree();
  const Spectrum plain = synthesize(p);
  p.spikes.push_back({5.0, 900.0, 2});
  const Spectrum spiked = synthesize(p);
  const auto at = static_cast<std::size_t>(5.0 / (p.periodNs * 1e-6));
  for (std::size_t i = 0; i < plain.points.size(); ++i) {
    const int expected = (i == at || i == at + 1) ? 900 : 0;
    EXPECT_EQ(spiked.points[i] - plain.points[i], expected) << i;
  }
}

TEST(Synth, RandomSpectrumIsDeterministicAndVaried) {
  const SubstanceLibrary lib = testing::shippedLibrary();
  const auto a = randomSpectrum(lib, IonMode::kPositive, SynthScene::kBlank, 7);
  const auto b = randomSpectrum(lib, IonMode::kPositive, SynthScene::kBlank, 7);
  ASSERT_TRUE(a.has_value()) << a.error();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(synthesize(*a).points, synthesize(*b).points);
  double minT = 1e9, maxT = 0.0, minR = 1e9, maxR = 0.0, minNoise = 1e9, maxNoise = 0.0;
  int tailed = 0, spiked = 0, clustered = 0;
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    const auto p = randomSpectrum(lib, IonMode::kNegative, SynthScene::kBlank, seed);
    ASSERT_TRUE(p.has_value()) << p.error();
    minT = std::min(minT, p->driftTempK);
    maxT = std::max(maxT, p->driftTempK);
    minR = std::min(minR, p->resolvingPower);
    maxR = std::max(maxR, p->resolvingPower);
    minNoise = std::min(minNoise, p->electronicNoise);
    maxNoise = std::max(maxNoise, p->electronicNoise);
    tailed += p->reactantTailShare > 0.0 ? 1 : 0;
    spiked += p->spikes.empty() ? 0 : 1;
    clustered += p->ions.empty() ? 0 : 1;
    EXPECT_LE(p->points, kMaxSpectrumPoints);
    // A blank holds reactant cluster ions at most: nothing outside the reactant window.
    const Substance* rip = lib.reactant(IonMode::kNegative);
    for (const SynthIon& ion : p->ions) EXPECT_LE(std::abs(ion.k0 - rip->k0), rip->window);
  }
  EXPECT_GT(maxT - minT, 100.0);
  EXPECT_GT(maxR / minR, 2.5);
  EXPECT_GT(maxNoise / minNoise, 10.0);
  EXPECT_GT(tailed, 50);
  EXPECT_GT(spiked, 30);
  EXPECT_GT(clustered, 50);
}

TEST(Synth, InterferentsKeepOutOfTheirWindows) {
  const SubstanceLibrary lib = testing::shippedLibrary();
  const double margin = 0.008;
  for (const SynthScene scene : {SynthScene::kOutsideWatch, SynthScene::kInsideWatch}) {
    for (std::uint64_t seed = 1; seed <= 200; ++seed) {
      const IonMode mode = scene == SynthScene::kInsideWatch || seed % 2 == 0 ? IonMode::kPositive
                                                                              : IonMode::kNegative;
      const auto p = randomSpectrum(lib, mode, scene, seed, margin);
      ASSERT_TRUE(p.has_value()) << p.error();
      const Substance* rip = lib.reactant(mode);
      int interferents = 0;
      for (const SynthIon& ion : p->ions) {
        if (std::abs(ion.k0 - rip->k0) <= rip->window) continue;  // a reactant cluster ion
        ++interferents;
        for (const Substance& s : lib.substances()) {
          if (s.mode != mode) continue;
          EXPECT_GT(std::abs(ion.k0 - s.k0), s.window + margin) << s.name;
        }
        const bool watched = lib.watchWindowAt(mode, ion.k0 - margin, ion.k0 + margin) != nullptr;
        const bool inside = lib.watchWindowAt(mode, ion.k0, ion.k0) != nullptr;
        if (scene == SynthScene::kInsideWatch) {
          EXPECT_TRUE(inside) << ion.k0;
        } else {
          EXPECT_FALSE(watched) << ion.k0;
        }
      }
      EXPECT_GE(interferents, 1);
      EXPECT_LE(interferents, 4);
    }
  }
  EXPECT_FALSE(randomSpectrum(lib, IonMode::kNegative, SynthScene::kInsideWatch, 1).has_value());
}

}  // namespace
}  // namespace lanegate::trace
