// Issue 5, acceptance 4: the vision module's pre-processing steps against plain reference
// implementations written here with simple loops, over image sizes (tiny, odd, wide like a
// 3600 × 900 scan at a smaller scale) and single or dual energy. No test reads the clock.
#include "vision/decode.h"
#include "vision/physics.h"
#include "vision/preprocess.h"

#include "test_support.h"

#include <opencv2/core.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace lanegate::vision {
namespace {

struct Size {
  int width;
  int height;
  int energies;
};

std::string caseName(const ::testing::TestParamInfo<Size>& info) {
  return std::to_string(info.param.width) + "x" + std::to_string(info.param.height) + "_" +
         (info.param.energies == 2 ? "dual" : "single");
}

class Reference : public ::testing::TestWithParam<Size> {};

constexpr double kFloor = 1.0 / 65535.0;

double refAlpha(double t) { return -std::log(std::max(t, kFloor)); }

// Columns [0, w/4) and [w − w/4, w) are open beam; the rest holds an object in every row, so
// no row is a dose reference and the steps below are the only ones that change a pixel.
bool isAir(int x, int w) { return x < w / 4 || x >= w - w / 4; }

ScanBundle emptyBundle(const Size& s) {
  ScanBundle b;
  b.meta.scanId = "ref-" + std::to_string(s.width) + "x" + std::to_string(s.height);
  b.meta.time = "2026-11-27T12:00:00Z";
  b.meta.scanner = "reference";
  b.meta.energiesMev = s.energies == 2 ? std::vector<double>{6, 4} : std::vector<double>{6};
  return b;
}

// Raw counts → T = (v − dark)/(air − dark) per channel → α = −ln max(T, floor).
TEST_P(Reference, RawCountsToAttenuation) {
  const Size s = GetParam();
  cv::RNG rng(static_cast<std::uint64_t>(s.width * 131 + s.height));
  ScanBundle b = emptyBundle(s);
  b.meta.signal = Signal::kRaw;
  Calibration cal;
  // One transmission pattern shared by the energies (so registration finds no shift).
  std::vector<double> pattern(static_cast<std::size_t>(s.width * s.height));
  for (double& t : pattern) t = rng.uniform(-0.002, 1.0);
  for (int e = 0; e < s.energies; ++e) {
    ChannelCalibration c;
    cv::Mat plane(s.height, s.width, CV_16UC1);
    for (int y = 0; y < s.height; ++y) {
      const double dark = std::round(rng.uniform(700.0, 900.0));
      const double air = dark + std::round(rng.uniform(40000.0, 55000.0));
      c.dark.push_back(static_cast<float>(dark));
      c.air.push_back(static_cast<float>(air));
      for (int x = 0; x < s.width; ++x) {
        const double t =
            isAir(x, s.width) ? 1.0 : pattern[static_cast<std::size_t>(y * s.width + x)];
        plane.at<std::uint16_t>(y, x) =
            static_cast<std::uint16_t>(std::lround(dark + t * (air - dark)));
      }
    }
    b.planes.push_back(plane);
    cal.energies.push_back(c);
  }
  auto a = computeAttenuation(b, &cal);
  ASSERT_TRUE(a.has_value()) << a.error();
  EXPECT_TRUE(a->badRows.empty());
  EXPECT_EQ(a->referenceRows, 0);
  EXPECT_EQ(a->alphaLow.empty(), s.energies == 1);
  if (s.energies == 2) {
    EXPECT_NEAR(a->lowShiftPx, 0.0, 0.05);
  }
  int mismatches = 0;
  for (int e = 0; e < s.energies; ++e) {
    const cv::Mat& alpha = e == 0 ? a->alphaHigh : a->alphaLow;
    const ChannelCalibration& c = cal.energies[static_cast<std::size_t>(e)];
    for (int y = 0; y < s.height; ++y) {
      const double dark = static_cast<double>(c.dark[static_cast<std::size_t>(y)]);
      const double span = static_cast<double>(c.air[static_cast<std::size_t>(y)]) - dark;
      for (int x = 0; x < s.width; ++x) {
        const double ref =
            refAlpha((b.planes[static_cast<std::size_t>(e)].at<std::uint16_t>(y, x) - dark) / span);
        // float arithmetic: relative 1e-6 of T, i.e. 1e-6/T in α (T ≥ one count in 50,000).
        if (std::abs(static_cast<double>(alpha.at<float>(y, x)) - ref) > 2e-3) ++mismatches;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// Transmission signal: T = v / 65535, and a zero pixel is floored to one count.
TEST_P(Reference, TransmissionToAttenuationWithFloor) {
  const Size s = GetParam();
  cv::RNG rng(static_cast<std::uint64_t>(s.width * 7 + s.height));
  ScanBundle b = emptyBundle(s);
  cv::Mat plane(s.height, s.width, CV_16UC1);
  for (int y = 0; y < s.height; ++y)
    for (int x = 0; x < s.width; ++x)
      plane.at<std::uint16_t>(y, x) = isAir(x, s.width)
                                          ? std::uint16_t{65535}
                                          : static_cast<std::uint16_t>(rng.uniform(0, 62000));
  plane.at<std::uint16_t>(s.height / 2, s.width / 2) = 0;
  for (int e = 0; e < s.energies; ++e) b.planes.push_back(plane.clone());
  auto a = computeAttenuation(b, nullptr);
  ASSERT_TRUE(a.has_value()) << a.error();
  EXPECT_TRUE(a->badRows.empty());
  int mismatches = 0;
  for (int e = 0; e < s.energies; ++e) {
    const cv::Mat& alpha = e == 0 ? a->alphaHigh : a->alphaLow;
    for (int y = 0; y < s.height; ++y)
      for (int x = 0; x < s.width; ++x)
        if (std::abs(static_cast<double>(alpha.at<float>(y, x)) -
                     refAlpha(plane.at<std::uint16_t>(y, x) / 65535.0)) > 2e-3)
          ++mismatches;
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_NEAR(a->alphaHigh.at<float>(s.height / 2, s.width / 2), std::log(65535.0), 1e-3);
}

// Dead and dim channels are found, and their rows become the linear interpolation (in T) of
// the nearest good rows above and below (or a copy of the one good neighbour at an edge).
TEST_P(Reference, DeadChannelsAreInterpolated) {
  const Size s = GetParam();
  cv::RNG rng(static_cast<std::uint64_t>(s.width * 3 + s.height));
  ScanBundle b = emptyBundle(s);
  // Air columns must stay open in 90 % of the rows, so a short detector gets one dead channel.
  const bool tall = s.height >= 40;
  const std::set<int> dead = tall ? std::set<int>{s.height / 3, s.height / 3 + 1, s.height - 1}
                                  : std::set<int>{s.height / 3};
  const int dim = tall ? s.height / 2 + 1 : -1;
  std::vector<double> t(static_cast<std::size_t>(s.width * s.height));
  for (int y = 0; y < s.height; ++y)
    for (int x = 0; x < s.width; ++x)
      t[static_cast<std::size_t>(y * s.width + x)] =
          isAir(x, s.width) ? 60000.0 / 65535.0 : rng.uniform(0.01, 0.9);
  cv::Mat plane(s.height, s.width, CV_16UC1);
  for (int y = 0; y < s.height; ++y)
    for (int x = 0; x < s.width; ++x) {
      double v = t[static_cast<std::size_t>(y * s.width + x)] * 65535.0;
      if (dead.count(y) > 0) v = 0;
      if (y == dim) v *= 0.3;
      plane.at<std::uint16_t>(y, x) = static_cast<std::uint16_t>(std::lround(v));
    }
  for (int e = 0; e < s.energies; ++e) b.planes.push_back(plane.clone());
  auto a = computeAttenuation(b, nullptr);
  ASSERT_TRUE(a.has_value()) << a.error();
  std::set<int> bad = dead;
  if (dim >= 0) bad.insert(dim);
  EXPECT_EQ(std::set<int>(a->badRows.begin(), a->badRows.end()), bad);
  // The plain reference: per bad row, the nearest good rows in T (from the written pixels).
  auto tAt = [&](int y, int x) { return plane.at<std::uint16_t>(y, x) / 65535.0; };
  int mismatches = 0;
  for (int y = 0; y < s.height; ++y) {
    int up = y;
    int down = y;
    if (bad.count(y) > 0) {
      up = y - 1;
      while (up >= 0 && bad.count(up) > 0) --up;
      down = y + 1;
      while (down < s.height && bad.count(down) > 0) ++down;
    }
    for (int x = 0; x < s.width; ++x) {
      double ref = 0;
      if (bad.count(y) == 0) {
        ref = tAt(y, x);
      } else if (up < 0) {
        ref = tAt(down, x);
      } else if (down >= s.height) {
        ref = tAt(up, x);
      } else {
        const double w = static_cast<double>(y - up) / (down - up);
        ref = (1 - w) * tAt(up, x) + w * tAt(down, x);
      }
      for (int e = 0; e < s.energies; ++e) {
        const cv::Mat& alpha = e == 0 ? a->alphaHigh : a->alphaLow;
        // Each row relative to its own open beam (60,000 of 65,535 in the air columns).
        if (std::abs(static_cast<double>(alpha.at<float>(y, x)) -
                     refAlpha(ref / (60000.0 / 65535.0))) > 2e-3)
          ++mismatches;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// The registration estimate against a dense search written plainly: the shift s (0.01 steps,
// linear interpolation) that maximises the normalised correlation of ∂high(x) and ∂low(x + s)
// over the core columns.
TEST_P(Reference, RegistrationShiftMatchesADenseSearch) {
  const Size s = GetParam();
  constexpr int kMax = 3;
  cv::RNG rng(static_cast<std::uint64_t>(s.width + 5 * s.height));
  // A profile of smooth bumps every ~8 columns, evaluated exactly at any x.
  std::vector<std::pair<double, double>> bumps;
  for (double c = 2; c < s.width - 2; c += rng.uniform(5.0, 11.0))
    bumps.emplace_back(c, rng.uniform(0.3, 2.0));
  auto g = [&](double x) {
    double v = 0;
    for (const auto& [c, a] : bumps) v += a * std::exp(-0.5 * (x - c) * (x - c) / 2.25);
    return v;
  };
  // Single energy has nothing to register: a plane against itself must give 0.
  const std::vector<double> shifts =
      s.energies == 2 ? std::vector<double>{-1.3, 0.0, 0.45, 2.2} : std::vector<double>{0.0};
  for (const double trueShift : shifts) {
    std::vector<double> gh(static_cast<std::size_t>(s.width));
    std::vector<double> gs(static_cast<std::size_t>(s.width));
    for (int x = 0; x < s.width; ++x) {
      gh[static_cast<std::size_t>(x)] = g(x);
      gs[static_cast<std::size_t>(x)] = g(x + trueShift);  // low(x) = high(x + s₀)
    }
    cv::Mat high(s.height, s.width, CV_32F);
    cv::Mat low(s.height, s.width, CV_32F);
    for (int y = 0; y < s.height; ++y) {
      const double amp = 1.0 + 0.5 * std::sin(y * 0.3);
      for (int x = 0; x < s.width; ++x) {
        high.at<float>(y, x) = static_cast<float>(amp * gh[static_cast<std::size_t>(x)]);
        low.at<float>(y, x) = static_cast<float>(1.2 * amp * gs[static_cast<std::size_t>(x)]);
      }
    }
    // Reference: a plain search over one row (every row is the same profile, scaled), in
    // 0.1 steps and then 0.01 steps around the best.
    std::vector<double> h(static_cast<std::size_t>(s.width));
    std::vector<double> l(static_cast<std::size_t>(s.width));
    for (int x = 0; x < s.width; ++x) {
      h[static_cast<std::size_t>(x)] = static_cast<double>(high.at<float>(0, x));
      l[static_cast<std::size_t>(x)] = static_cast<double>(low.at<float>(0, x));
    }
    auto at = [&](const std::vector<double>& v, double u) {
      const int i = std::clamp(static_cast<int>(std::floor(u)), 0, s.width - 2);
      const double f = u - i;
      return (1 - f) * v[static_cast<std::size_t>(i)] + f * v[static_cast<std::size_t>(i + 1)];
    };
    // Normalised: interpolating between samples smooths the shifted gradient, which would
    // otherwise pull the peak to whole columns.
    auto score = [&](double sh) {
      double sum = 0;
      double norm = 0;
      for (int x = kMax + 2; x < s.width - kMax - 2; ++x) {
        const double gl = 0.5 * (at(l, x + sh + 1) - at(l, x + sh - 1));
        sum += 0.5 * (at(h, x + 1) - at(h, x - 1)) * gl;
        norm += gl * gl;
      }
      return norm > 0 ? sum / std::sqrt(norm) : 0.0;
    };
    double best = 0;
    for (int pass = 0; pass < 2; ++pass) {
      const double step = pass == 0 ? 0.1 : 0.01;
      const double from = pass == 0 ? -kMax : best - 0.1;
      const double to = pass == 0 ? kMax : best + 0.1;
      double bestScore = -1e300;
      for (double sh = from; sh <= to + 1e-9; sh += step) {
        const double v = score(sh);
        if (v > bestScore) {
          bestScore = v;
          best = sh;
        }
      }
    }
    const double estimate = estimateShift(high, low, kMax);
    // low(x + s) ≈ high(x) for s = −s₀.
    EXPECT_NEAR(best, -trueShift, 0.05) << "reference, shift " << trueShift;
    EXPECT_NEAR(estimate, best, 0.15) << "shift " << trueShift;
  }
}

// Material classes: the ratio R = α_L/α_H against three boundaries that drift with α_H.
TEST_P(Reference, MaterialClassesMatchThePlainRule) {
  const Size s = GetParam();
  cv::RNG rng(static_cast<std::uint64_t>(s.width * 11 + s.height + s.energies));
  // The default curves: midpoints of the μ ratios low/high at the effective energies.
  const MaterialCurves def = defaultMaterialCurves(6, 4, 0.4);
  auto ratio = [](Basis basis) {
    return massAttenuation(basis, 1.6) / massAttenuation(basis, 2.4);
  };
  const double water = 0.5 * (ratio(Basis::kWater) + ratio(Basis::kPolyethylene));
  EXPECT_NEAR(def.organicInorganic, 0.5 * (water + ratio(Basis::kAluminium)), 1e-9);
  EXPECT_NEAR(def.inorganicMetal, 0.5 * (ratio(Basis::kAluminium) + ratio(Basis::kIron)), 1e-9);
  EXPECT_NEAR(def.metalHighZ, 0.5 * (ratio(Basis::kIron) + ratio(Basis::kLead)), 1e-9);
  MaterialCurves c = def;
  c.slope = s.energies == 2 ? -0.004 : 0.0;
  const double opaque = 9.0;
  int mismatches = 0;
  for (int y = 0; y < s.height; ++y) {
    for (int x = 0; x < s.width; ++x) {
      const double ah = rng.uniform(0.0, 10.0);
      const double al = ah * rng.uniform(0.9, 1.35);
      Material ref = Material::kUnknown;
      const double r = al / ah;
      const double drift = c.slope * ah;
      if (ah < c.minAlpha)
        ref = Material::kNone;
      else if (ah >= opaque)
        ref = Material::kUnknown;
      else if (r >= c.organicInorganic + drift)
        ref = Material::kOrganic;
      else if (r >= c.inorganicMetal + drift)
        ref = Material::kInorganic;
      else if (r >= c.metalHighZ + drift)
        ref = Material::kMetal;
      if (classifyMaterial(ah, al, c, opaque) != ref) ++mismatches;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// Contract 1 bundles written and read back are the same pixels and the same metadata.
TEST_P(Reference, BundleRoundTrip) {
  const Size s = GetParam();
  test::ScratchDir dir;
  cv::RNG rng(static_cast<std::uint64_t>(s.width * 17 + s.height));
  ScanBundle b = emptyBundle(s);
  b.meta.pixelAlongMm = 4.5;
  b.meta.pixelVerticalMm = 5.25;
  b.meta.conveyance.kind = "truck";
  b.meta.conveyance.plate = "AB-123-CD";
  b.meta.conveyance.declared.empty = false;
  b.meta.conveyance.declared.grossKg = 18250;
  for (int e = 0; e < s.energies; ++e) {
    cv::Mat p(s.height, s.width, CV_16UC1);
    for (int y = 0; y < s.height; ++y)
      for (int x = 0; x < s.width; ++x)
        p.at<std::uint16_t>(y, x) = static_cast<std::uint16_t>(rng.uniform(0, 65536));
    p.at<std::uint16_t>(0, 0) = 0;
    p.at<std::uint16_t>(s.height - 1, s.width - 1) = 65535;
    b.planes.push_back(p);
  }
  ASSERT_TRUE(writeBundle(b, dir.file("")).has_value());
  auto r = loadBundle(dir.file(b.meta.scanId + ".json"));
  ASSERT_TRUE(r.has_value()) << r.error();
  ASSERT_EQ(r->planes.size(), b.planes.size());
  for (std::size_t e = 0; e < b.planes.size(); ++e) {
    ASSERT_EQ(r->planes[e].type(), CV_16UC1);
    ASSERT_EQ(r->planes[e].size(), b.planes[e].size());
    int mismatches = 0;
    for (int y = 0; y < s.height; ++y)
      for (int x = 0; x < s.width; ++x)
        if (r->planes[e].at<std::uint16_t>(y, x) != b.planes[e].at<std::uint16_t>(y, x))
          ++mismatches;
    EXPECT_EQ(mismatches, 0) << "plane " << e;
  }
  EXPECT_EQ(r->meta.scanId, b.meta.scanId);
  EXPECT_EQ(r->meta.energiesMev, b.meta.energiesMev);
  EXPECT_DOUBLE_EQ(r->meta.pixelAlongMm, 4.5);
  EXPECT_DOUBLE_EQ(r->meta.pixelVerticalMm, 5.25);
  EXPECT_EQ(r->meta.signal, Signal::kTransmission);
  EXPECT_EQ(r->meta.conveyance.kind, "truck");
  EXPECT_EQ(r->meta.conveyance.plate, "AB-123-CD");
  EXPECT_EQ(r->meta.conveyance.declared.empty, std::optional<bool>(false));
  EXPECT_EQ(r->meta.conveyance.declared.grossKg, std::optional<double>(18250));
  // The TIFF path names the same bundle.
  auto viaTiff = loadBundle(dir.file(b.meta.scanId + ".tiff"));
  ASSERT_TRUE(viaTiff.has_value()) << viaTiff.error();
  EXPECT_EQ(cv::norm(viaTiff->planes.back(), b.planes.back(), cv::NORM_INF), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Vision, Reference,
                         ::testing::Values(Size{24, 12, 1}, Size{24, 12, 2}, Size{301, 97, 1},
                                           Size{301, 97, 2}, Size{900, 225, 1}, Size{900, 225, 2},
                                           Size{1800, 450, 2}),
                         caseName);

}  // namespace
}  // namespace lanegate::vision
