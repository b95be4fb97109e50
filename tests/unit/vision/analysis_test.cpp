// Analysis behaviour on generated scans, the Contract 2 JSON, the overlay and the CLI.
#include "vision/analysis.h"

#include "vision/cli.h"
#include "vision/overlay.h"
#include "vision/phantom.h"

#include "test_support.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <gtest/gtest.h>

#include <sstream>

namespace lanegate::vision {
namespace {

// The first scan of a seed whose truth satisfies `want` (deterministic).
template <typename Want>
Phantom findPhantom(std::uint64_t seed, const PhantomOptions& o, Want want) {
  for (int i = 0; i < 200; ++i) {
    Phantom p = generatePhantom(seed, i, o);
    if (want(p.truth)) return p;
  }
  ADD_FAILURE() << "no such phantom";
  return generatePhantom(seed, 0, o);
}

PhantomOptions coarse() {
  PhantomOptions o;
  o.pixelMm = 20;
  return o;
}

TEST(Analysis, GeneratorIsDeterministic) {
  const Phantom a = generatePhantom(9, 4, coarse());
  const Phantom b = generatePhantom(9, 4, coarse());
  ASSERT_EQ(a.bundle.planes.size(), b.bundle.planes.size());
  EXPECT_EQ(cv::norm(a.bundle.planes[0], b.bundle.planes[0], cv::NORM_INF), 0.0);
  EXPECT_EQ(truthToJson(a.truth), truthToJson(b.truth));
}

TEST(Analysis, EmptyDeclaredEmptyContainerIsClear) {
  const Phantom p = findPhantom(21, coarse(), [](const PhantomTruth& t) {
    return t.declaredEmpty && !t.hasContent && t.vehicle == "container40";
  });
  const Findings f = analyzeScan(p.bundle, {});
  EXPECT_TRUE(f.error.empty()) << f.error;
  EXPECT_EQ(f.verdict, "clear") << toJson(f);
  EXPECT_GE(f.structure.bodyX0, 0);
  EXPECT_GE(f.structure.interiorX0, f.structure.bodyX0);
  EXPECT_GE(f.structure.wheels, 2);
}

TEST(Analysis, LeadPotIsInconclusive) {
  const Phantom p = findPhantom(21, coarse(), [](const PhantomTruth& t) { return t.opaqueExpected && t.concealments.empty(); });
  const Findings f = analyzeScan(p.bundle, {});
  bool opaque = false;
  for (const Finding& x : f.findings) opaque = opaque || x.kind == "opaque";
  EXPECT_TRUE(opaque) << toJson(f);
  EXPECT_NE(f.verdict, "clear");
}

TEST(Analysis, JsonFollowsContract2) {
  const Phantom p = generatePhantom(21, 3, coarse());
  const Findings f = analyzeScan(p.bundle, {});
  const auto doc = nlohmann::json::parse(toJson(f));
  EXPECT_EQ(doc.at("scan_id"), p.bundle.meta.scanId);
  EXPECT_TRUE(doc.at("verdict") == "clear" || doc.at("verdict") == "hit" || doc.at("verdict") == "inconclusive");
  EXPECT_TRUE(doc.at("timings_ms").contains("total"));
  for (const auto& x : doc.at("findings")) {
    EXPECT_EQ(x.at("box_px").size(), 4u);
    EXPECT_EQ(x.at("box_mm").size(), 4u);
    EXPECT_TRUE(x.contains("score") && x.contains("material") && x.contains("reason"));
  }
}

TEST(Analysis, RawWithoutCalibrationIsAnErrorNotACrash) {
  PhantomOptions o = coarse();
  o.raw = true;
  const Phantom p = generatePhantom(21, 1, o);
  const Findings f = analyzeScan(p.bundle, {});
  EXPECT_EQ(f.verdict, "inconclusive");
  EXPECT_NE(f.error.find("calibration"), std::string::npos);
  AnalysisParams params;
  params.calibration = &p.calibration;
  EXPECT_TRUE(analyzeScan(p.bundle, params).error.empty());
}

TEST(Overlay, FullSizeScanStaysUnder300KB) {
  PhantomOptions o;
  o.pixelMm = 5;
  const Phantom p = findPhantom(21, o, [](const PhantomTruth& t) { return t.vehicle == "container40"; });
  ASSERT_GE(p.bundle.planes[0].cols, 3000);
  const Findings f = analyzeScan(p.bundle, {});
  const auto jpeg = renderOverlay(f);
  ASSERT_FALSE(jpeg.empty());
  EXPECT_LE(jpeg.size(), 300u * 1024u);
  const cv::Mat img = cv::imdecode(jpeg, cv::IMREAD_COLOR);
  EXPECT_FALSE(img.empty());
}

TEST(Cli, UsageAndBadInputExitCodes) {
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(visionCommand({}, out, err), 2);
  EXPECT_EQ(visionCommand({"frobnicate"}, out, err), 2);
  EXPECT_EQ(visionCommand({"analyze"}, out, err), 2);
  EXPECT_EQ(visionCommand({"phantoms", "--out", "x"}, out, err), 2);
  EXPECT_EQ(visionCommand({"analyze", "/nonexistent/scan.json"}, out, err), 1);
  EXPECT_NE(err.str().find("/nonexistent/scan.json"), std::string::npos);
}

TEST(Cli, PhantomsThenAnalyzeThenEval) {
  test::ScratchDir dir;
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(visionCommand({"phantoms", "--out", dir.file("set"), "--count", "3", "--seed", "4", "--pixel-mm", "20"}, out, err), 0)
      << err.str();
  out.str("");
  ASSERT_EQ(visionCommand({"analyze", dir.file("set/ph4-0000.json"), "--json", "--overlay", dir.file("o.jpg")}, out, err), 0)
      << err.str();
  EXPECT_EQ(nlohmann::json::parse(out.str()).at("scan_id"), "ph4-0000");
  out.str("");
  ASSERT_EQ(visionCommand({"eval", dir.file("set")}, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("false alarms on clear scans"), std::string::npos);
}

}  // namespace
}  // namespace lanegate::vision
