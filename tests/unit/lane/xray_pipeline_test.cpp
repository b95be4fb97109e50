// The X-ray pipeline in memory: bundle bytes in, a typed scan (findings, overlay, hashes,
// conveyance) or a checked calibration frame or a rejection out. No io_context, no file,
// no broker: the bundles are generated and encoded here.
#include "lane/xray_pipeline.h"

#include <gtest/gtest.h>

#include "lane/sha256.h"
#include "lane_test_support.h"

namespace lanegate::lane::test {
namespace {

// A dark or air calibration bundle of `cal`'s detector, as bytes.
BundleBytes calibrationBundle(const std::string& kind, const vision::Calibration& cal,
                              vision::ScanMeta meta) {
  vision::ScanBundle b;
  meta.scanId = "cal-" + kind + "-1";
  meta.signal = vision::Signal::kRaw;
  b.meta = meta;
  b.planes = calibrationPlanes(kind, cal);
  BundleBytes bytes = bundleBytes(b);
  bytes.jsonText.insert(1, "\"calibration\": \"" + kind + "\",");
  return bytes;
}

TEST(XrayPipeline, AScanWithFindingsGetsItsOverlayHashesAndConveyance) {
  auto p = phantomWith(true, "scan-1");
  p.bundle.meta.conveyance.ids = {"CSQU3054383", "CSQU3054384"};
  const BundleBytes in = bundleBytes(p.bundle);
  const XrayOutcome out = processBundle(in, {nullptr, nullptr, {{"queue", 1.5}, {"read", 2.5}}});
  ASSERT_EQ(out.error, "");
  ASSERT_TRUE(out.scan);
  EXPECT_FALSE(out.calibration);
  EXPECT_FALSE(out.raw);
  const XrayScan& s = *out.scan;
  EXPECT_EQ(s.scanId, "scan-1");
  EXPECT_TRUE(s.alert());
  EXPECT_FALSE(s.verdict.empty())
      << "clear, hit or inconclusive: findings below the hit score leave it clear";
  EXPECT_EQ(s.image.substr(0, 2), "\xFF\xD8") << "a JPEG";
  EXPECT_EQ(s.imageSha256, sha256Hex(s.image));
  EXPECT_EQ(s.tiffSha256, sha256Hex(in.tiffBytes));
  EXPECT_EQ(s.jsonSha256, sha256Hex(in.jsonText));
  EXPECT_EQ(s.conveyance.scanId, "scan-1");
  EXPECT_EQ(s.conveyance.conveyance.kind, p.bundle.meta.conveyance.kind);
  ASSERT_EQ(s.conveyance.idChecks.size(), 2u);
  EXPECT_TRUE(s.conveyance.idChecks[0].valid);
  EXPECT_FALSE(s.conveyance.idChecks[1].valid) << "a wrong check digit is flagged, not dropped";
  for (const char* stage : {"queue", "read", "hash", "decode", "total", "overlay"})
    EXPECT_EQ(s.timingsMs.count(stage), 1u) << stage;
  EXPECT_EQ(s.timingsMs.at("queue"), 1.5);
}

TEST(XrayPipeline, AClearScanHasNoOverlay) {
  const XrayOutcome out = processBundle(bundleBytes(phantomWith(false, "clear-1").bundle), {});
  ASSERT_EQ(out.error, "");
  ASSERT_TRUE(out.scan);
  EXPECT_FALSE(out.scan->alert());
  EXPECT_EQ(out.scan->verdict, "clear");
  EXPECT_TRUE(out.scan->image.empty());
  EXPECT_EQ(out.scan->timingsMs.count("overlay"), 0u);
  EXPECT_EQ(out.scan->tiffSha256.size(), 64u);
}

TEST(XrayPipeline, UnreadableBundlesAreRejectedWithTheReason) {
  BundleBytes garbage = bundleBytes(phantomWith(true, "bad-1").bundle);
  garbage.tiffBytes = "this is not a TIFF";
  XrayOutcome out = processBundle(garbage, {});
  EXPECT_NE(out.error.find("bad-1.tiff"), std::string::npos) << out.error;
  EXPECT_FALSE(out.scan);

  BundleBytes renamed = bundleBytes(phantomWith(true, "real-id").bundle);
  renamed.scanId = "other-id";
  out = processBundle(renamed, {});
  EXPECT_NE(out.error.find("does not match the file name"), std::string::npos) << out.error;

  BundleBytes notJson = renamed;
  notJson.jsonText = "[1, 2]";
  EXPECT_NE(processBundle(notJson, {}).error.find("not a JSON object"), std::string::npos);
}

TEST(XrayPipeline, RawScansNeedACalibration) {
  const auto p = phantomWith(true, "raw-1", true);
  ASSERT_EQ(p.bundle.meta.signal, vision::Signal::kRaw);
  const BundleBytes in = bundleBytes(p.bundle);
  XrayOutcome out = processBundle(in, {});
  EXPECT_TRUE(out.raw);
  EXPECT_NE(out.error.find("no valid dark/air calibration"), std::string::npos) << out.error;

  out = processBundle(in, {std::make_shared<vision::Calibration>(p.calibration), nullptr, {}});
  ASSERT_EQ(out.error, "");
  EXPECT_TRUE(out.raw);
  ASSERT_TRUE(out.scan);
  EXPECT_TRUE(out.scan->alert()) << "the same findings as its transmission twin";
}

TEST(XrayPipeline, CalibrationBundlesAreCheckedNotAnalysed) {
  const auto p = phantomWith(true, "raw-2", true);
  const XrayOutcome dark =
      processBundle(calibrationBundle("dark", p.calibration, p.bundle.meta), {});
  ASSERT_EQ(dark.error, "");
  ASSERT_TRUE(dark.calibration);
  EXPECT_FALSE(dark.scan);
  EXPECT_EQ(dark.calibration->kind, vision::CalibrationKind::kDark);
  EXPECT_EQ(dark.calibration->scanId, "cal-dark-1");
  EXPECT_EQ(dark.calibration->check.problem, "");
  ASSERT_EQ(dark.calibration->check.means.size(), p.calibration.energies.size());

  // An air frame is read against the dark one.
  auto darkFrames = std::make_shared<CalibrationFrames>(*dark.calibration);
  const XrayOutcome air = processBundle(calibrationBundle("air", p.calibration, p.bundle.meta),
                                        {nullptr, darkFrames, {}});
  ASSERT_TRUE(air.calibration) << air.error;
  EXPECT_EQ(air.calibration->check.problem, "");
  ASSERT_TRUE(air.calibration->check.planes.front().medianSignal);
  EXPECT_GT(*air.calibration->check.planes.front().medianSignal, 1000.0);

  BundleBytes bright = calibrationBundle("dark", p.calibration, p.bundle.meta);
  bright.jsonText.replace(bright.jsonText.find("\"dark\""), 6, "\"bright\"");
  EXPECT_NE(processBundle(bright, {}).error.find("\"calibration\" must be \"dark\" or \"air\""),
            std::string::npos);
}

}  // namespace
}  // namespace lanegate::lane::test
