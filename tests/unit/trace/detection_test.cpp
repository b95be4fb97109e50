// Peak detection and apex/FWHM accuracy against a plain reference on synthetic Gaussians
// built here directly (not with trace/synth), in the OpenCV style: parameterised over
// resolving power and sampling, compared with a straightforward reference implementation.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "trace/analysis.h"

namespace lanegate::trace {
namespace {

struct TruePeak {
  double t;    // ms
  double amp;  // counts
  double fwhm; // ms
};

// Plain reference: on a noise-free trace, every strict local maximum above a level, its apex
// by the 3-point log-parabola on the raw samples (exact for a Gaussian).
std::vector<double> referenceApexes(const std::vector<double>& y, double level, double dtMs) {
  std::vector<double> out;
  for (std::size_t i = 1; i + 1 < y.size(); ++i) {
    if (y[i] > level && y[i] > y[i - 1] && y[i] >= y[i + 1]) {
      const double l = std::log(y[i - 1]), c = std::log(y[i]), r = std::log(y[i + 1]);
      out.push_back((static_cast<double>(i) + 0.5 * (l - r) / (l - 2 * c + r)) * dtMs);
    }
  }
  return out;
}

SubstanceLibrary tinyLibrary() {
  return *SubstanceLibrary::parse(
      "substances:\n"
      "  - {name: rip, mode: positive, k0: 2.2, window: 0.15, role: reactant}\n"
      "  - {name: cal, mode: positive, k0: 1.86, window: 0.02, role: calibrant}\n",
      "tiny.yaml");
}

struct Case {
  double resolvingPower;
  double periodNs;
};

class DetectionTest : public ::testing::TestWithParam<Case> {
 protected:
  // RIP-like, calibrant-like and three later ions, well separated, at constant R.
  std::vector<TruePeak> truth() const {
    const double r = GetParam().resolvingPower;
    std::vector<TruePeak> peaks;
    for (const auto& [t, amp] : std::vector<std::pair<double, double>>{
             {9.0, 30000}, {10.7, 8000}, {13.0, 1500}, {16.5, 900}, {20.5, 600}}) {
      peaks.push_back({t, amp, t / r});
    }
    return peaks;
  }

  std::vector<double> trace(double noise, std::uint64_t seed) const {
    const double dtMs = GetParam().periodNs * 1e-6;
    const std::size_t n = static_cast<std::size_t>(25.0 / dtMs);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> gauss(0.0, 1.0);
    std::vector<double> y(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      const double t = static_cast<double>(i) * dtMs;
      for (const TruePeak& p : truth()) {
        const double d = (t - p.t) / p.fwhm;
        y[i] += p.amp * std::exp(-4.0 * std::numbers::ln2 * d * d);
      }
      if (noise > 0.0) y[i] += noise * gauss(rng);
    }
    return y;
  }

  Spectrum spectrumOf(const std::vector<double>& y) const {
    Spectrum s;
    s.periodNs = GetParam().periodNs;
    for (const double v : y) {
      s.points.push_back(static_cast<std::uint16_t>(std::clamp(std::round(500.0 + v), 0.0, 65535.0)));
    }
    return s;
  }
};

TEST_P(DetectionTest, NoiseFreeMatchesReference) {
  const std::vector<double> y = trace(0.0, 0);
  const double dtMs = GetParam().periodNs * 1e-6;
  const std::vector<double> ref = referenceApexes(y, 100.0, dtMs);
  const Analysis a = analyze(spectrumOf(y), tinyLibrary());
  const std::vector<TruePeak> truePeaks = truth();
  ASSERT_EQ(ref.size(), truePeaks.size());
  ASSERT_EQ(a.peaks.size(), ref.size()) << toJson(a);
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const TruePeak& p = truePeaks[i];
    EXPECT_NEAR(ref[i], p.t, 0.002 * p.fwhm);  // the reference itself is exact
    EXPECT_NEAR(a.peaks[i].driftMs, ref[i], 0.02 * p.fwhm) << "peak " << i;
    EXPECT_NEAR(a.peaks[i].fwhmMs, p.fwhm, 0.05 * p.fwhm) << "peak " << i;
    EXPECT_NEAR(a.peaks[i].amplitude, p.amp, 0.03 * p.amp + 1.0) << "peak " << i;
    EXPECT_FALSE(a.peaks[i].overlapped) << "peak " << i;
  }
}

TEST_P(DetectionTest, NoisyApexAndWidthWithinTolerance) {
  const double noise = 20.0;  // the weakest peak is then SNR 30
  const std::vector<TruePeak> truePeaks = truth();
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    const Analysis a = analyze(spectrumOf(trace(noise, seed)), tinyLibrary());
    ASSERT_EQ(a.peaks.size(), truePeaks.size()) << "seed " << seed << " " << toJson(a);
    EXPECT_NEAR(a.noiseSigma, noise, 0.15 * noise);
    for (std::size_t i = 0; i < truePeaks.size(); ++i) {
      const TruePeak& p = truePeaks[i];
      EXPECT_NEAR(a.peaks[i].driftMs, p.t, 0.05 * p.fwhm) << "seed " << seed << " peak " << i;
      EXPECT_NEAR(a.peaks[i].fwhmMs, p.fwhm, 0.12 * p.fwhm) << "seed " << seed << " peak " << i;
      EXPECT_NEAR(a.peaks[i].amplitude, p.amp, 0.06 * p.amp + 3.0 * noise) << "seed " << seed;
    }
  }
}

TEST_P(DetectionTest, PureNoiseHasNoPeaks) {
  const double dtMs = GetParam().periodNs * 1e-6;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> gauss(0.0, 30.0);
  std::vector<double> y(static_cast<std::size_t>(25.0 / dtMs));
  for (double& v : y) v = gauss(rng);
  const Analysis a = analyze(spectrumOf(y), tinyLibrary());
  for (const Peak& p : a.peaks) EXPECT_LT(p.snr, 5.0) << toJson(a);
  EXPECT_EQ(a.verdict, Verdict::kInconclusive);  // no RIP, no calibrant: never "clear"
}

INSTANTIATE_TEST_SUITE_P(ResolvingPowerAndSampling, DetectionTest,
                         ::testing::Values(Case{30, 12500}, Case{45, 12500}, Case{60, 12500},
                                           Case{40, 6250}, Case{60, 20000}),
                         [](const ::testing::TestParamInfo<Case>& param) {
                           return "R" + std::to_string(static_cast<int>(param.param.resolvingPower)) +
                                  "_period" + std::to_string(static_cast<int>(param.param.periodNs));
                         });

}  // namespace
}  // namespace lanegate::trace
