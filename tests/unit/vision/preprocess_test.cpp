// Pre-processing against plain reference implementations, over sizes and energies.
#include "vision/preprocess.h"

#include "vision/phantom.h"

#include <opencv2/core.hpp>

#include <gtest/gtest.h>

#include <cmath>

namespace lanegate::vision {
namespace {

ScanBundle flatBundle(int w, int h, int energies, std::uint16_t value) {
  ScanBundle b;
  b.meta.scanId = "flat";
  b.meta.energiesMev = energies == 2 ? std::vector<double>{6, 4} : std::vector<double>{6};
  for (int e = 0; e < energies; ++e) b.planes.emplace_back(h, w, CV_16UC1, cv::Scalar(value));
  return b;
}

struct SizeCase {
  int width;
  int height;
  int energies;
};

class AttenuationSizes : public ::testing::TestWithParam<SizeCase> {};

TEST_P(AttenuationSizes, MatchesMinusLogOfTransmission) {
  const SizeCase s = GetParam();
  ScanBundle b = flatBundle(s.width, s.height, s.energies, 65535);
  cv::RNG rng(7);
  // An object in the middle columns; the rest stays open beam for the air reference.
  for (cv::Mat& p : b.planes) {
    cv::Mat mid = p(cv::Rect(s.width / 3, 0, s.width / 3, s.height));
    rng.fill(mid, cv::RNG::UNIFORM, 100, 60000);
  }
  auto a = computeAttenuation(b, nullptr);
  ASSERT_TRUE(a.has_value()) << a.error();
  ASSERT_EQ(a->alphaHigh.size(), b.planes[0].size());
  EXPECT_EQ(a->alphaLow.empty(), s.energies == 1);
  for (int k = 0; k < 50; ++k) {
    const int x = rng.uniform(0, s.width);
    const int y = rng.uniform(0, s.height);
    const double reference = -std::log(b.planes[0].at<std::uint16_t>(y, x) / 65535.0);
    EXPECT_NEAR(a->alphaHigh.at<float>(y, x), reference, 1e-4) << x << "," << y;
  }
  EXPECT_TRUE(a->badRows.empty());
}

INSTANTIATE_TEST_SUITE_P(Preprocess, AttenuationSizes,
                         ::testing::Values(SizeCase{64, 32, 1}, SizeCase{64, 32, 2},
                                           SizeCase{301, 97, 1}, SizeCase{301, 97, 2},
                                           SizeCase{1200, 300, 2}));

TEST(Preprocess, DeadAndDimChannelsAreFoundAndInterpolated) {
  ScanBundle b = flatBundle(200, 60, 1, 60000);
  b.planes[0].row(20).setTo(0);
  b.planes[0].row(40).setTo(15000);                   // a dim channel
  b.planes[0](cv::Rect(80, 0, 40, 60)).setTo(20000);  // an object
  b.planes[0](cv::Rect(80, 20, 40, 1)).setTo(0);
  auto a = computeAttenuation(b, nullptr);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->badRows, (std::vector<int>{20, 40}));
  // No dose reference rows here (the object spans them all): T is relative to each row's
  // open beam before and after the object (60,000 counts), not to full scale.
  EXPECT_NEAR(a->alphaHigh.at<float>(20, 100), -std::log(20000.0 / 60000.0), 0.02);
}

// A stuck channel reads one value whatever the beam sees; at the open-beam level its level
// test passes and its noise is zero, so only its constancy gives it away, in either plane.
TEST(Preprocess, StuckChannelsAreFoundInEitherPlane) {
  for (int stuckPlane = 0; stuckPlane < 2; ++stuckPlane) {
    ScanBundle b = flatBundle(300, 60, 2, 60000);
    cv::RNG rng(11);
    for (cv::Mat& p : b.planes) {
      rng.fill(p, cv::RNG::NORMAL, 60000, 250);
      rng.fill(p(cv::Rect(120, 0, 60, 60)), cv::RNG::UNIFORM, 5000, 30000);  // an object
    }
    b.planes[static_cast<std::size_t>(stuckPlane)].row(33).setTo(59800);
    auto a = computeAttenuation(b, nullptr);
    ASSERT_TRUE(a.has_value()) << a.error();
    EXPECT_EQ(a->badRows, (std::vector<int>{33})) << "stuck in plane " << stuckPlane;
  }
}

// A thin skin (an aluminium ULD, a cab's sheet metal: T ≈ 0.94) passes for open beam in most
// rows; its edge-on roof and floor rows must not be taken for bad channels and erased.
TEST(Preprocess, ThinSkinRowsAreNotBadChannels) {
  cv::RNG rng(7);
  ScanBundle b = flatBundle(300, 100, 1, 0);
  cv::Mat noise(100, 300, CV_32F);
  rng.fill(noise, cv::RNG::NORMAL, 0.0, 0.005);
  cv::Mat t = 1.0 + noise;
  t(cv::Rect(60, 30, 180, 50)) *= 0.94;  // the skin, 180 columns, half the rows
  t(cv::Rect(60, 30, 180, 2)) *= 0.3;    // its roof seen edge-on
  t(cv::Rect(60, 78, 180, 2)) *= 0.25;   // and its floor
  t.convertTo(b.planes[0], CV_16U, 60000.0);
  auto a = computeAttenuation(b, nullptr);
  ASSERT_TRUE(a.has_value()) << a.error();
  EXPECT_TRUE(a->badRows.empty()) << a->badRows.size() << " rows, first " << a->badRows.front();
  // The roof keeps its attenuation (−ln 0.282 ≈ 1.27), relative to the 60000-count open beam.
  EXPECT_NEAR(a->alphaHigh.at<float>(30, 150), -std::log(0.94 * 0.3), 0.05);
}

TEST(Preprocess, RawNeedsACalibration) {
  ScanBundle b = flatBundle(50, 20, 1, 1000);
  b.meta.signal = Signal::kRaw;
  auto a = computeAttenuation(b, nullptr);
  ASSERT_FALSE(a.has_value());
  EXPECT_NE(a.error().find("calibration"), std::string::npos);
}

TEST(Preprocess, RawAndTransmissionPhantomsAgree) {
  PhantomOptions o;
  o.pixelMm = 20;
  o.badChannelProbability = 0;
  const Phantom t = generatePhantom(3, 1, o);
  o.raw = true;
  const Phantom r = generatePhantom(3, 1, o);
  auto at = computeAttenuation(t.bundle, nullptr);
  auto ar = computeAttenuation(r.bundle, &r.calibration);
  ASSERT_TRUE(at && ar);
  // Same scene, independent noise: the mean attenuation agrees closely.
  EXPECT_NEAR(cv::mean(at->alphaHigh)[0], cv::mean(ar->alphaHigh)[0], 0.02);
}

TEST(Preprocess, RegistrationRecoversTheInterlacingShift) {
  for (const double shift : {0.0, 0.5, -0.8}) {
    PhantomOptions o;
    o.pixelMm = 10;
    o.lowShiftPx = shift;
    const Phantom p = generatePhantom(5, 2, o);
    auto a = computeAttenuation(p.bundle, nullptr);
    ASSERT_TRUE(a.has_value());
    // The generator samples low at x + shift; the estimate is the correction, low(x + s) ≈ high(x).
    EXPECT_NEAR(a->lowShiftPx, -shift, 0.2) << shift;
  }
}

TEST(Preprocess, MaterialClassesFollowTheMuRatios) {
  const MaterialCurves c = defaultMaterialCurves(6, 4, 0.4);
  const double eh = effectiveEnergy(6, 0.4);
  const double el = effectiveEnergy(4, 0.4);
  auto pair = [&](Basis b, double gcm2) {
    return std::make_pair(massAttenuation(b, eh) * gcm2, massAttenuation(b, el) * gcm2);
  };
  auto cls = [&](Basis b) {
    const auto [h, l] = pair(b, 40);
    return classifyMaterial(h, l, c, 20);
  };
  EXPECT_EQ(cls(Basis::kWater), Material::kOrganic);
  EXPECT_EQ(cls(Basis::kAluminium), Material::kInorganic);
  EXPECT_EQ(cls(Basis::kIron), Material::kMetal);
  EXPECT_EQ(cls(Basis::kLead), Material::kUnknown);
  EXPECT_EQ(classifyMaterial(0.01, 0.012, c, 20), Material::kNone);
}

TEST(Physics, TableValuesAndInterpolation) {
  EXPECT_DOUBLE_EQ(massAttenuation(Basis::kIron, 4.0), 0.03312);
  const double mid = massAttenuation(Basis::kWater, 5.0);
  EXPECT_LT(mid, 0.03403);
  EXPECT_GT(mid, 0.02770);
}

}  // namespace
}  // namespace lanegate::vision
