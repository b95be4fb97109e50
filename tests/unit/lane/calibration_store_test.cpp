// A scanner's calibration store: usable dark and air frames make a calibration that is
// kept on disk and used again after a restart; an unusable frame is refused and the good
// calibration stays; age decides when one is due (time passed in).
#include "lane/calibration_store.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "lane_test_support.h"
#include "tests/support/harness.h"

namespace lanegate::lane::test {
namespace {

using std::chrono::hours;

const auto kT0 = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));

vision::Calibration detector() {
  vision::PhantomOptions o;
  o.pixelMm = 20;
  o.raw = true;
  return vision::generatePhantom(31, 0, o).calibration;
}

CalibrationFrames frames(vision::CalibrationKind kind, const vision::Calibration& cal,
                         const CalibrationFrames* dark = nullptr, bool beamOff = false) {
  const std::string name(calibrationKindName(kind));
  CalibrationFrames f{kind, "cal-" + name, {}};
  f.check = vision::checkCalibrationFrames(kind, calibrationPlanes(name, cal, beamOff),
                                           dark ? &dark->check.means : nullptr);
  return f;
}

TEST(CalibrationStore, DarkThenAirMakeACalibrationThatOutlivesARestart) {
  lanegate::test::TempDir dir;
  const auto cal = detector();
  CalibrationStore store(dir.path());
  std::string why;
  EXPECT_FALSE(store.due(kT0, 24, why)) << "no raw scan yet: nothing is missing";
  store.noteRawScan();
  EXPECT_TRUE(store.due(kT0, 24, why));
  EXPECT_NE(why.find("lanegatectl calibrate xray dark, then air"), std::string::npos) << why;

  const auto dark = frames(vision::CalibrationKind::kDark, cal);
  const CalibrationStored d = store.record(dark, kT0);
  EXPECT_TRUE(d.usable) << d.error;
  EXPECT_TRUE(d.made.empty()) << "a dark alone makes no calibration";
  EXPECT_TRUE(std::filesystem::exists(dir.file("dark-" + d.version + ".json")));
  ASSERT_TRUE(store.dark());

  const CalibrationStored a =
      store.record(frames(vision::CalibrationKind::kAir, cal, store.dark().get()), kT0 + hours(1));
  EXPECT_TRUE(a.usable) << a.error;
  ASSERT_FALSE(a.made.empty());
  EXPECT_TRUE(std::filesystem::exists(a.made));
  ASSERT_TRUE(store.calibration());
  EXPECT_EQ(store.calibration()->energies.size(), cal.energies.size());
  EXPECT_FALSE(store.due(kT0 + hours(2), 24, why)) << why;
  EXPECT_TRUE(store.due(kT0 + hours(26), 24, why));
  EXPECT_NE(why.find("25 h old (limit 24 h)"), std::string::npos) << why;
  EXPECT_EQ(store.status(kT0 + hours(3)).file, a.made);
  EXPECT_NEAR(*store.status(kT0 + hours(3)).ageH, 2.0, 1e-6);

  CalibrationStore again(dir.path());
  EXPECT_EQ(again.loadLatest(), "");
  EXPECT_EQ(again.status(kT0).file, a.made);
  ASSERT_TRUE(again.calibration());
  EXPECT_EQ(again.calibration()->energies[0].air, store.calibration()->energies[0].air);
}

TEST(CalibrationStore, AnUnusableFrameIsRefusedAndTheGoodCalibrationStays) {
  lanegate::test::TempDir dir;
  const auto cal = detector();
  CalibrationStore store(dir.path());
  store.record(frames(vision::CalibrationKind::kDark, cal), kT0);
  const std::string good =
      store.record(frames(vision::CalibrationKind::kAir, cal, store.dark().get()), kT0).made;
  ASSERT_FALSE(good.empty());
  const CalibrationStored off = store.record(
      frames(vision::CalibrationKind::kAir, cal, store.dark().get(), true), kT0 + hours(1));
  EXPECT_FALSE(off.usable);
  EXPECT_NE(off.error.find("was the beam off?"), std::string::npos) << off.error;
  EXPECT_EQ(store.status(kT0).file, good);
  EXPECT_EQ(store.status(kT0).problem, off.error);
}

TEST(CalibrationStore, TheBundleSaysWhetherItIsACalibration) {
  EXPECT_EQ(*calibrationKindOf(R"({"scan_id": "s"})", "s.json"), std::nullopt);
  EXPECT_EQ(*calibrationKindOf(R"({"calibration": "air"})", "s.json"),
            vision::CalibrationKind::kAir);
  EXPECT_EQ(calibrationKindOf(R"({"calibration": 3})", "s.json").error(),
            "s.json: \"calibration\" must be \"dark\" or \"air\"");
  EXPECT_EQ(calibrationKindOf("[", "s.json").error(), "s.json: not a JSON object");
}

}  // namespace
}  // namespace lanegate::lane::test
