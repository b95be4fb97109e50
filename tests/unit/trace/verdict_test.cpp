// The verdict policy on randomised spectra (trace/synth.h randomSpectrum: domain
// randomisation over drift tube, sampling, resolving power, noise, baseline, reactant ion
// shape and spikes): blanks and interferent-only spectra outside the watch windows clear, an
// unidentified ion inside a watch window is inconclusive.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "trace/analysis.h"
#include "trace/synth.h"
#include "trace_test_support.h"

namespace lanegate::trace {
namespace {

bool hasFlag(const Analysis& a, const std::string& flag) {
  return std::find(a.flags.begin(), a.flags.end(), flag) != a.flags.end();
}

struct Tally {
  int total = 0;
  int clear = 0;
  int unidentified = 0;                 // with at least one unidentified peak listed
  std::map<std::string, int> notClear;  // the first reason of each, counted
  std::string example;                  // the first spectrum that did not clear

  void add(const Analysis& a, std::uint64_t seed) {
    ++total;
    if (hasFlag(a, "unidentified")) ++unidentified;
    if (a.verdict == Verdict::kClear) {
      ++clear;
      return;
    }
    const std::string reason = a.reasons.empty() ? "(no reason)" : a.reasons.front();
    ++notClear[std::string(verdictName(a.verdict)) + ": " + reason.substr(0, 60)];
    if (example.empty()) example = "seed " + std::to_string(seed) + ": " + toJson(a);
  }
  double share() const { return total > 0 ? static_cast<double>(clear) / total : 0.0; }
  void print(const char* what) const {
    std::printf("[ metric ] %s: %d/%d clear (%.1f %%), %d with unidentified peaks\n", what, clear,
                total, 100.0 * share(), unidentified);
    for (const auto& [reason, count] : notClear)
      std::printf("[ metric ]   %4d x %s\n", count, reason.c_str());
  }
};

class VerdictTest : public ::testing::Test {
 protected:
  SubstanceLibrary lib_ = testing::shippedLibrary();

  // Spectra of both modes, seeds from `first`.
  Tally run(SynthScene scene, int count, std::uint64_t first) const {
    Tally t;
    for (int k = 0; k < count; ++k) {
      const std::uint64_t seed = first + static_cast<std::uint64_t>(k);
      const IonMode mode = k % 2 == 0 ? IonMode::kPositive : IonMode::kNegative;
      const auto p = randomSpectrum(lib_, mode, scene, seed);
      EXPECT_TRUE(p.has_value()) << (p ? "" : p.error());
      if (!p) continue;
      t.add(analyze(synthesize(*p), lib_), seed);
    }
    return t;
  }
};

TEST_F(VerdictTest, RandomisedBlanksClear) {
  const Tally t = run(SynthScene::kBlank, 400, 1);
  t.print("randomised blanks");
  EXPECT_GE(t.share(), 0.95) << t.example;
}

TEST_F(VerdictTest, RandomisedInterferentsOutsideTheWatchWindowsClear) {
  const Tally t = run(SynthScene::kOutsideWatch, 400, 100001);
  t.print("randomised interferent-only spectra, ions outside the watch windows");
  EXPECT_GE(t.share(), 0.95) << t.example;
}

TEST_F(VerdictTest, RandomisedInterferentInsideTheWatchWindowIsInconclusive) {
  int total = 0;
  int inconclusive = 0;
  for (std::uint64_t seed = 1; seed <= 100; ++seed) {
    const auto p = randomSpectrum(lib_, IonMode::kPositive, SynthScene::kInsideWatch, seed);
    ASSERT_TRUE(p.has_value()) << p.error();
    const Analysis a = analyze(synthesize(*p), lib_);
    ++total;
    if (a.verdict != Verdict::kInconclusive) {
      ADD_FAILURE() << "seed " << seed << ": " << toJson(a);
      continue;
    }
    ++inconclusive;
    EXPECT_TRUE(hasFlag(a, "unidentified_in_watch_window")) << toJson(a);
    EXPECT_TRUE(a.substances.empty()) << toJson(a);
  }
  std::printf("[ metric ] randomised interferent inside the watch window: %d/%d inconclusive\n",
              inconclusive, total);
}

// The same ion, placed by hand, under the three ways a library can state its windows.
class WatchWindowTest : public VerdictTest {
 protected:
  static constexpr double kK0 = 0.93;  // between the window's edge (0.90) and carfentanil (0.96)

  Analysis analyseWith(const SubstanceLibrary& lib, std::uint64_t seed, bool withFentanyl) const {
    SynthParams p = *synthDefaults(lib, IonMode::kPositive);
    p.seed = seed;
    p.ions.push_back({kK0, 600.0, {}});
    if (withFentanyl) p.ions.push_back(*synthIon(lib, "fentanyl", 800.0));
    return analyze(synthesize(p), lib);
  }
  static SubstanceLibrary withWatch(const std::string& watch) {
    auto lib = SubstanceLibrary::parse(
        watch +
            "substances:\n"
            "  - {name: hydronium, mode: positive, k0: 2.2, window: 0.15, role: reactant}\n"
            "  - {name: nicotinamide, mode: positive, k0: 1.86, window: 0.02, role: calibrant}\n"
            "  - {name: fentanyl, mode: positive, k0: 1.0}\n",
        "watch.yaml");
    EXPECT_TRUE(lib.has_value()) << (lib ? "" : lib.error());
    return lib ? *lib : SubstanceLibrary();
  }
  static const Peak* unidentifiedNear(const Analysis& a) {
    for (const Peak& pk : a.peaks) {
      if (pk.unidentified && pk.k0 && std::abs(*pk.k0 - kK0) < 0.005) return &pk;
    }
    return nullptr;
  }
};

TEST_F(WatchWindowTest, ShippedWindowMakesItInconclusiveAndNamesTheWindow) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    const Analysis a = analyseWith(lib_, seed, false);
    EXPECT_EQ(a.verdict, Verdict::kInconclusive) << toJson(a);
    const Peak* peak = unidentifiedNear(a);
    ASSERT_NE(peak, nullptr) << toJson(a);
    EXPECT_FALSE(peak->substance);
    ASSERT_TRUE(peak->watchWindow) << toJson(a);
    EXPECT_NE(peak->watchWindow->find("fentanyl family"), std::string::npos);
    EXPECT_TRUE(hasFlag(a, "unidentified_in_watch_window"));
    EXPECT_FALSE(hasFlag(a, "unidentified_outside_watch_windows"));
    ASSERT_FALSE(a.reasons.empty());
    EXPECT_NE(a.reasons.front().find("inside watch window 'fentanyl family'"), std::string::npos)
        << a.reasons.front();
    const auto json = nlohmann::json::parse(toJson(a));
    EXPECT_EQ(json["verdict"], "inconclusive");
    bool named = false;
    for (const auto& pk : json["peaks"]) {
      if (pk["unidentified"].get<bool>())
        named = pk["watch_window"].is_string() && pk["substance"].is_null();
    }
    EXPECT_TRUE(named) << toJson(a);
  }
}

TEST_F(WatchWindowTest, DefaultWindowWithoutAWatchKeyEmptyListClears) {
  const SubstanceLibrary byDefault = withWatch("");
  const SubstanceLibrary none = withWatch("watch: []\n");
  const SubstanceLibrary elsewhere =
      withWatch("watch:\n  - {mode: positive, k0_min: 1.4, k0_max: 1.5}\n");
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    const Analysis a = analyseWith(byDefault, seed, false);
    EXPECT_EQ(a.verdict, Verdict::kInconclusive) << toJson(a);
    for (const SubstanceLibrary* lib : {&none, &elsewhere}) {
      const Analysis b = analyseWith(*lib, seed, false);
      EXPECT_EQ(b.verdict, Verdict::kClear) << toJson(b);
      const Peak* peak = unidentifiedNear(b);
      ASSERT_NE(peak, nullptr) << toJson(b);
      EXPECT_FALSE(peak->watchWindow);
      EXPECT_TRUE(hasFlag(b, "unidentified"));
      EXPECT_TRUE(hasFlag(b, "unidentified_outside_watch_windows"));
      ASSERT_FALSE(b.reasons.empty());
      EXPECT_NE(b.reasons.back().find("unidentified peak(s) outside watch windows"),
                std::string::npos)
          << b.reasons.back();
    }
  }
}

TEST_F(WatchWindowTest, AHitStaysAHit) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    const Analysis a = analyseWith(lib_, seed, true);
    EXPECT_EQ(a.verdict, Verdict::kHit) << toJson(a);
    ASSERT_EQ(a.substances.size(), 1u) << toJson(a);
    EXPECT_EQ(a.substances.front().name, "fentanyl");
  }
}

}  // namespace
}  // namespace lanegate::trace
