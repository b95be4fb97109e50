// The acceptance evaluation of issue 5 over a fixed-seed generated set (in memory, 20 mm).
#include "vision/evaluate.h"

#include <gtest/gtest.h>

#include <iostream>

namespace lanegate::vision {
namespace {

constexpr std::uint64_t kSeed = 2026;
constexpr int kScans = 200;

PhantomOptions evalOptions() {
  PhantomOptions o;
  o.pixelMm = 20;  // coarse enough for the sanitiser build; the analysis works in mm
  return o;
}

// The evaluation: the expensive part.
const EvalReport& report() {
  static const EvalReport r = [] {
    EvalReport e = evaluateGenerated(kSeed, kScans, evalOptions(), AnalysisParams{});
    std::cout << formatReport(e);
    return e;
  }();
  return r;
}

// Issue 5's acceptance bar (docs/detection.md): stashes of 5 kg or more detected in at least
// 90 %, false alarms on at most 5 % of clear scans, every declared-empty body with content
// flagged. One test, so that ctest (a process per test) generates and analyses the set once.
TEST(Evaluation, AcceptanceOnTwoHundredScans) {
  const EvalReport& r = report();
  EXPECT_EQ(r.errors, 0);
  ASSERT_GT(r.atLeast5Kg.total, 40);
  ASSERT_GT(r.clearScans, 60);
  EXPECT_GE(r.atLeast5Kg.detected * 10, r.atLeast5Kg.total * 9);
  EXPECT_LE(r.falseAlarms * 20, r.clearScans);
  EXPECT_EQ(r.emptyFlagged, r.emptyWithContent);
  // A declared-empty scan's mismatch states at least the mass its own findings locate (a stash
  // in a floor or tyre lies outside the open body, whose excess alone can read 0 kg).
  EXPECT_TRUE(r.emptyMassUnderstated.empty()) << r.emptyMassUnderstated.size() << " understated, e.g. "
                                              << (r.emptyMassUnderstated.empty() ? "" : r.emptyMassUnderstated[0]);
}

}  // namespace
}  // namespace lanegate::vision
