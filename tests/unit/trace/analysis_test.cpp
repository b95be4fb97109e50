#include <cmath>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "trace/analysis.h"
#include "trace/synth.h"
#include "trace_test_support.h"

namespace lanegate::trace {
namespace {

class AnalysisTest : public ::testing::Test {
 protected:
  SubstanceLibrary lib_ = testing::shippedLibrary();

  SynthParams params(IonMode mode, std::uint64_t seed) const {
    SynthParams p = *synthDefaults(lib_, mode);
    p.seed = seed;
    return p;
  }
  SynthIon ion(const char* name, double snr, const SynthParams& p) const {
    return *synthIon(lib_, name, snr * p.electronicNoise);
  }
  static const Peak* peakNear(const Analysis& a, double k0, double tol) {
    for (const Peak& p : a.peaks) {
      if (p.k0 && std::abs(*p.k0 - k0) <= tol) return &p;
    }
    return nullptr;
  }
  static bool alarmed(const Analysis& a, const std::string& name) {
    for (const SubstanceHit& h : a.substances) {
      if (h.name == name) return true;
    }
    return false;
  }
};

TEST_F(AnalysisTest, CleanBlankIsClear) {
  for (const IonMode mode : {IonMode::kPositive, IonMode::kNegative}) {
    for (const double r : {30.0, 45.0, 60.0}) {
      for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        SynthParams p = params(mode, seed);
        p.resolvingPower = r;
        const Analysis a = analyze(synthesize(p), lib_);
        EXPECT_EQ(a.verdict, Verdict::kClear) << toJson(a);
        EXPECT_TRUE(a.calibrantFound);
        EXPECT_TRUE(a.substances.empty());
      }
    }
  }
}

// Acceptance 1: drift tube +/-5 K and pressure +/-20 hPa off nominal move raw drift times
// by several per cent; after calibrant correction K0 stays within 0.003 of truth.
TEST_F(AnalysisTest, K0ThroughCalibrantSurvivesTemperatureAndPressureDrift) {
  const double nominalMs = driftTimeMs(1.16, 383.15, 1013.25, 7.0, 1750.0);
  double maxShift = 0.0;
  double maxError = 0.0;
  int n = 0;
  for (const double dT : {-5.0, 0.0, 5.0}) {
    for (const double dP : {-20.0, 0.0, 20.0}) {
      for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        SynthParams p = params(IonMode::kPositive, seed * 31 + static_cast<std::uint64_t>(dT + 10));
        p.driftTempK += dT;
        p.pressureHpa += dP;
        p.ions.push_back(ion("cocaine", 30.0, p));
        const Analysis a = analyze(synthesize(p), lib_);
        const Peak* peak = peakNear(a, 1.16, 0.02);
        ASSERT_NE(peak, nullptr) << toJson(a);
        maxShift = std::max(maxShift, std::abs(peak->driftMs / nominalMs - 1.0));
        maxError = std::max(maxError, std::abs(*peak->k0 - 1.16));
        EXPECT_TRUE(alarmed(a, "cocaine")) << toJson(a);
        ++n;
      }
    }
  }
  std::printf("[ metric ] K0 drift: %d spectra, raw drift time moved up to %.1f %%, max |K0 error| %.4f\n",
              n, 100.0 * maxShift, maxError);
  EXPECT_GT(maxShift, 0.03);
  EXPECT_LE(maxError, 0.003);
}

// Acceptance 1: detection across an SNR sweep; at SNR >= 10 at least 95 % identified,
// for every library target, resolving power 30-60, random drift-tube conditions.
TEST_F(AnalysisTest, EverySubstanceDetectedAcrossSnrSweep) {
  for (const double snr : {5.0, 7.0, 10.0, 15.0, 30.0}) {
    int total = 0;
    int found = 0;
    int wrong = 0;
    for (const Substance& s : lib_.substances()) {
      if (s.role != SubstanceRole::kTarget) continue;
      for (const double r : {30.0, 40.0, 50.0, 60.0}) {
        for (std::uint64_t seed = 1; seed <= 3; ++seed) {
          SynthParams p = params(s.mode, seed * 1009 + static_cast<std::uint64_t>(r));
          p.resolvingPower = r;
          p.driftTempK += static_cast<double>(seed % 3) * 4.0 - 4.0;
          p.pressureHpa += static_cast<double>(seed % 5) * 8.0 - 16.0;
          p.ions.push_back(ion(s.name.c_str(), snr, p));
          const Analysis a = analyze(synthesize(p), lib_);
          ++total;
          if (alarmed(a, s.name)) ++found;
          wrong += static_cast<int>(a.substances.size()) - (alarmed(a, s.name) ? 1 : 0);
        }
      }
    }
    const double rate = static_cast<double>(found) / static_cast<double>(total);
    std::printf("[ metric ] SNR %4.1f: identified %d/%d (%.1f %%), wrong alarms %d\n", snr, found,
                total, 100.0 * rate, wrong);
    EXPECT_EQ(wrong, 0) << "SNR " << snr;
    if (snr >= 10.0) {
      EXPECT_GE(rate, 0.95) << "SNR " << snr;
    }
  }
}

TEST_F(AnalysisTest, InterferentOutsideEveryWindowIsUnidentifiedNotHit) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    SynthParams p = params(IonMode::kPositive, seed);
    p.ions.push_back({1.23, 600.0, {}});  // between cocaine 1.16 and ketamine 1.30
    const Analysis a = analyze(synthesize(p), lib_);
    // Outside every watch window too: listed, and the sample clears (issue 11).
    EXPECT_EQ(a.verdict, Verdict::kClear) << toJson(a);
    EXPECT_NE(std::find(a.flags.begin(), a.flags.end(), "unidentified_outside_watch_windows"),
              a.flags.end());
    EXPECT_TRUE(a.substances.empty());
    const Peak* peak = peakNear(a, 1.23, 0.005);
    ASSERT_NE(peak, nullptr) << toJson(a);
    EXPECT_FALSE(peak->substance);
    EXPECT_TRUE(peak->unidentified);
    EXPECT_NE(std::find(a.flags.begin(), a.flags.end(), "unidentified"), a.flags.end());
    const auto json = nlohmann::json::parse(toJson(a));
    bool nullSubstance = false;
    for (const auto& pk : json["peaks"]) {
      if (pk["unidentified"].get<bool>()) nullSubstance = pk["substance"].is_null();
    }
    EXPECT_TRUE(nullSubstance);
  }
}

TEST_F(AnalysisTest, HitWithAnUnidentifiedPeakStaysAHitAndSaysSo) {
  SynthParams p = params(IonMode::kPositive, 5);
  p.ions.push_back(ion("fentanyl", 40.0, p));
  p.ions.push_back({1.23, 800.0, {}});
  const Analysis a = analyze(synthesize(p), lib_);
  EXPECT_EQ(a.verdict, Verdict::kHit) << toJson(a);
  EXPECT_TRUE(alarmed(a, "fentanyl"));
  EXPECT_NE(std::find(a.flags.begin(), a.flags.end(), "unidentified"), a.flags.end());
}

TEST_F(AnalysisTest, BelowThresholdPeakIsNamedButDoesNotAlarm) {
  auto lib = SubstanceLibrary::parse(
      "substances:\n"
      "  - {name: hydronium, mode: positive, k0: 2.2, window: 0.15, role: reactant}\n"
      "  - {name: nicotinamide, mode: positive, k0: 1.86, window: 0.02, role: calibrant}\n"
      "  - {name: cocaine, mode: positive, k0: 1.16, min_amplitude: 2000}\n",
      "t.yaml");
  ASSERT_TRUE(lib.has_value()) << lib.error();
  SynthParams p = params(IonMode::kPositive, 3);
  p.ions.push_back({1.16, 800.0, {}});
  const Analysis a = analyze(synthesize(p), *lib);
  EXPECT_EQ(a.verdict, Verdict::kClear) << toJson(a);
  const Peak* peak = peakNear(a, 1.16, 0.005);
  ASSERT_NE(peak, nullptr);
  EXPECT_EQ(peak->substance, "cocaine");
  EXPECT_FALSE(peak->alarm);
}

TEST_F(AnalysisTest, SaturatedSpectrumIsInconclusive) {
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    SynthParams p = params(IonMode::kPositive, seed);
    p.reactantAmplitude = 100000.0;  // clipped at 65535
    p.ions.push_back(ion("cocaine", 30.0, p));
    const Analysis a = analyze(synthesize(p), lib_);
    EXPECT_EQ(a.verdict, Verdict::kInconclusive) << toJson(a);
    EXPECT_TRUE(a.saturated);
  }
}

TEST_F(AnalysisTest, FlatTopBelowFullScaleIsSaturation) {
  // An amplifier that flattens at 40000 counts, not at the ADC limit.
  SynthParams p = params(IonMode::kPositive, 9);
  p.reactantAmplitude = 60000.0;
  Spectrum s = synthesize(p);
  for (auto& v : s.points) v = std::min<std::uint16_t>(v, 40000);
  const Analysis a = analyze(s, lib_);
  EXPECT_EQ(a.verdict, Verdict::kInconclusive) << toJson(a);
  EXPECT_TRUE(a.saturated);
}

TEST_F(AnalysisTest, DepletedReactantIonPeakIsInconclusive) {
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    SynthParams p = params(IonMode::kPositive, seed);
    p.ripDepletion = 0.9;
    p.ions.push_back({1.16, 20000.0, {}});
    const Analysis a = analyze(synthesize(p), lib_);
    EXPECT_EQ(a.verdict, Verdict::kInconclusive) << toJson(a);
    EXPECT_TRUE(a.reactantDepleted) << toJson(a);
  }
}

TEST_F(AnalysisTest, MissingCalibrantIsInconclusive) {
  for (const IonMode mode : {IonMode::kPositive, IonMode::kNegative}) {
    SynthParams p = params(mode, 4);
    p.calibrantK0.reset();
    p.ions.push_back(ion(mode == IonMode::kPositive ? "cocaine" : "TNT", 30.0, p));
    const Analysis a = analyze(synthesize(p), lib_);
    EXPECT_EQ(a.verdict, Verdict::kInconclusive) << toJson(a);
    EXPECT_FALSE(a.calibrantFound);
    const auto json = nlohmann::json::parse(toJson(a));
    EXPECT_FALSE(json["calibrant"]["found"].get<bool>());
  }
}

TEST_F(AnalysisTest, CalibrantK0FromTheSpectrumOverridesTheLibrary) {
  SynthParams p = params(IonMode::kPositive, 6);
  p.calibrantK0 = 1.90;
  p.ions.push_back(ion("cocaine", 30.0, p));
  Spectrum s = synthesize(p);
  s.calibrantK0 = 1.90;
  const Analysis a = analyze(s, lib_);
  EXPECT_EQ(a.verdict, Verdict::kHit) << toJson(a);
  EXPECT_TRUE(alarmed(a, "cocaine"));
}

// Acceptance 1: two peaks closer than one FWHM are resolved or flagged, never silently
// merged into a wrong match.
TEST_F(AnalysisTest, OverlappingPeaksAreResolvedOrFlagged) {
  int resolved = 0;
  int cases = 0;
  for (const double r : {30.0, 45.0, 60.0}) {
    for (const double separationFwhm : {0.5, 0.75, 0.95}) {
      for (std::uint64_t seed = 1; seed <= 2; ++seed) {
        SynthParams p = params(IonMode::kPositive, seed);
        p.resolvingPower = r;
        // cocaine and an ion slower by the given fraction of a FWHM (t/R).
        const double k0b = 1.16 / (1.0 + separationFwhm / r);
        p.ions.push_back(ion("cocaine", 40.0, p));
        p.ions.push_back({k0b, 40.0 * p.electronicNoise, {}});
        const Analysis a = analyze(synthesize(p), lib_);
        ++cases;
        const Peak* coc = peakNear(a, 1.16, 0.003);
        const Peak* other = peakNear(a, k0b, 0.003);
        const bool bothResolved = coc != nullptr && other != nullptr && coc != other &&
                                  coc->substance == "cocaine" && !other->substance;
        if (bothResolved) ++resolved;
        // Every peak in the region that is not a clean resolution must carry the flag.
        for (const Peak& pk : a.peaks) {
          if (!pk.k0 || *pk.k0 > 1.17 || *pk.k0 < k0b - 0.01) continue;
          if (!bothResolved) {
            EXPECT_TRUE(pk.overlapped) << "R " << r << " sep " << separationFwhm << toJson(a);
          }
        }
        EXPECT_NE(a.verdict, Verdict::kClear) << toJson(a);
        if (!bothResolved) {
          EXPECT_NE(std::find(a.flags.begin(), a.flags.end(), "overlapped"), a.flags.end());
        }
      }
    }
  }
  std::printf("[ metric ] overlapping pairs (0.5-0.95 FWHM apart): %d/%d resolved, rest flagged\n",
              resolved, cases);
}

TEST_F(AnalysisTest, CloseLibrarySubstancesBothReportedOrFlagged) {
  // heroin (1.050) and acetylfentanyl (1.038): about half a FWHM apart at R = 40.
  SynthParams p = params(IonMode::kPositive, 12);
  p.ions.push_back(ion("heroin", 40.0, p));
  p.ions.push_back(ion("acetylfentanyl", 40.0, p));
  const Analysis a = analyze(synthesize(p), lib_);
  EXPECT_NE(a.verdict, Verdict::kClear) << toJson(a);
  const bool both = alarmed(a, "heroin") && alarmed(a, "acetylfentanyl");
  if (!both) {
    for (const SubstanceHit& h : a.substances) EXPECT_TRUE(h.overlapped) << toJson(a);
    EXPECT_NE(std::find(a.flags.begin(), a.flags.end(), "overlapped"), a.flags.end()) << toJson(a);
  }
}

// A library for overlap tests: substances A and B at a chosen separation, and a decoy at
// their midpoint, where a merged apex of A and B would fall (a wrong match if it alarmed).
struct PairLibrary {
  SubstanceLibrary lib;
  double k0a = 1.16;
  double k0b = 0.0;
};

PairLibrary pairLibrary(double separationFwhm, double resolvingPower) {
  PairLibrary out;
  out.k0b = out.k0a / (1.0 + separationFwhm / resolvingPower);
  const double mid = 0.5 * (out.k0a + out.k0b);
  // Windows that never overlap: A and B +/-0.004; the decoy fills the gap between them.
  const double decoyWindow = std::max(0.0005, 0.5 * (out.k0a - out.k0b) - 0.0045);
  char yaml[1024];
  std::snprintf(yaml, sizeof yaml,
                "substances:\n"
                "  - {name: hydronium, mode: positive, k0: 2.2, window: 0.15, role: reactant}\n"
                "  - {name: nicotinamide, mode: positive, k0: 1.86, window: 0.02, role: calibrant}\n"
                "  - {name: A, mode: positive, k0: %.6f, window: 0.004}\n"
                "  - {name: B, mode: positive, k0: %.6f, window: 0.004}\n"
                "  - {name: decoy, mode: positive, k0: %.6f, window: %.6f}\n",
                out.k0a, out.k0b, mid, decoyWindow);
  auto lib = SubstanceLibrary::parse(yaml, "pair.yaml");
  EXPECT_TRUE(lib.has_value()) << (lib ? "" : lib.error());
  if (lib) out.lib = *lib;
  return out;
}

struct PairOutcome {
  bool bothIdentified = false;  // A and B both alarmed
  bool flagged = false;         // the overlap is flagged on the analysis
  int silentWrong = 0;          // alarms for an absent substance without the overlap mark
  int wrong = 0;                // alarms for an absent substance (decoy), flagged or not
  int resolvedWrong = 0;        // fitted components named as an absent substance
  int resolvedComponents = 0;   // peaks separated by the fit
};

PairOutcome runPair(const PairLibrary& pl, double separationFwhm, double r, double snrA,
                    double ratio, std::uint64_t seed) {
  (void)separationFwhm;
  SynthParams p = *synthDefaults(pl.lib, IonMode::kPositive);
  p.seed = seed;
  p.resolvingPower = r;
  p.ions.push_back({pl.k0a, snrA * p.electronicNoise, {}});
  if (ratio > 0.0) p.ions.push_back({pl.k0b, ratio * snrA * p.electronicNoise, {}});
  const Analysis a = analyze(synthesize(p), pl.lib);
  PairOutcome o;
  bool haveA = false;
  bool haveB = false;
  for (const SubstanceHit& h : a.substances) {
    const bool present = h.name == "A" || (h.name == "B" && ratio > 0.0);
    haveA = haveA || h.name == "A";
    haveB = haveB || h.name == "B";
    if (!present) {
      ++o.wrong;
      if (!h.overlapped) ++o.silentWrong;
    }
  }
  for (const Peak& pk : a.peaks) {
    if (!pk.resolved) continue;
    ++o.resolvedComponents;
    if (pk.substance && *pk.substance != "A" && !(*pk.substance == "B" && ratio > 0.0)) ++o.resolvedWrong;
  }
  o.bothIdentified = haveA && haveB;
  o.flagged = std::find(a.flags.begin(), a.flags.end(), "overlapped") != a.flags.end();
  EXPECT_NE(a.verdict, Verdict::kClear) << toJson(a);
  return o;
}

// Acceptance 1, (a): two substances 0.6-0.9 FWHM apart with comparable amplitudes are both
// identified (resolved by the two-ion fit) or flagged as overlapped; the merged envelope never
// becomes a confident match for the substance at its midpoint.
TEST_F(AnalysisTest, TwoSubstancesWithinOneFwhmAreBothIdentifiedOrFlagged) {
  int cases = 0;
  int both = 0;
  int flaggedOnly = 0;
  for (const double r : {30.0, 40.0, 50.0, 60.0}) {
    for (const double sep : {0.6, 0.75, 0.9}) {
      const PairLibrary pl = pairLibrary(sep, r);
      for (const double ratio : {0.7, 1.0, 1.4}) {
        for (std::uint64_t seed = 1; seed <= 2; ++seed) {
          const PairOutcome o = runPair(pl, sep, r, 40.0, ratio, seed * 101 + static_cast<std::uint64_t>(r + 10 * sep));
          ++cases;
          if (o.bothIdentified) {
            ++both;
          } else {
            ++flaggedOnly;
            EXPECT_TRUE(o.flagged) << "R " << r << " sep " << sep << " ratio " << ratio;
          }
          EXPECT_EQ(o.silentWrong, 0) << "R " << r << " sep " << sep << " ratio " << ratio;
          EXPECT_EQ(o.resolvedWrong, 0) << "R " << r << " sep " << sep << " ratio " << ratio;
        }
      }
    }
  }
  std::printf("[ metric ] pairs 0.6-0.9 FWHM apart, amplitude ratio 0.7-1.4: %d/%d both identified, "
              "%d flagged\n", both, cases, flaggedOnly);
  // The fit must actually resolve most of them (it is not enough to flag everything).
  EXPECT_GE(both, cases * 3 / 4);
}

// Acceptance 1, (b): over separation and amplitude-ratio sweeps no absent substance is
// reported without the overlap mark, and no fitted component is named as an absent one.
TEST_F(AnalysisTest, OverlapSweepNeverGivesASilentWrongMatch) {
  int cases = 0;
  int resolved = 0;
  int flaggedWrong = 0;
  for (const double r : {30.0, 45.0, 60.0}) {
    for (const double sep : {0.3, 0.45, 0.6, 0.75, 0.9, 1.05, 1.2}) {
      const PairLibrary pl = pairLibrary(sep, r);
      for (const double ratio : {0.2, 0.5, 1.0, 2.0, 5.0}) {
        for (std::uint64_t seed = 1; seed <= 2; ++seed) {
          const PairOutcome o = runPair(pl, sep, r, 30.0, ratio, seed * 7 + static_cast<std::uint64_t>(100 * sep + 10 * ratio + r));
          ++cases;
          if (o.bothIdentified && o.resolvedComponents > 0) ++resolved;
          flaggedWrong += o.wrong;
          EXPECT_EQ(o.silentWrong, 0) << "R " << r << " sep " << sep << " ratio " << ratio << " seed " << seed;
          EXPECT_EQ(o.resolvedWrong, 0) << "R " << r << " sep " << sep << " ratio " << ratio << " seed " << seed;
        }
      }
    }
  }
  std::printf("[ metric ] overlap sweep (sep 0.3-1.2 FWHM, ratio 0.2-5, R 30-60): %d cases, %d resolved "
              "by the fit, %d flagged alarms for the midpoint decoy, 0 silent wrong matches\n",
              cases, resolved, flaggedWrong);
}

// Acceptance 1, (c): a single ion is never split into two, at any SNR: no fitted components,
// no second substance, no alarm but the true one.
TEST_F(AnalysisTest, SingleIonIsNotSplitAcrossSnrSweep) {
  int cases = 0;
  int broadened = 0;
  for (const double snr : {5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0}) {
    for (const Substance& s : lib_.substances()) {
      if (s.role != SubstanceRole::kTarget) continue;
      for (const double r : {30.0, 45.0, 60.0}) {
        SynthParams p = params(s.mode, static_cast<std::uint64_t>(snr * 13 + r + s.k0 * 1000));
        p.resolvingPower = r;
        p.ions.push_back({s.k0, snr * p.electronicNoise, {}});
        const Analysis a = analyze(synthesize(p), lib_);
        ++cases;
        for (const Peak& pk : a.peaks) {
          EXPECT_FALSE(pk.resolved) << s.name << " SNR " << snr << " R " << r << toJson(a);
          if (pk.broadened) ++broadened;
          if (pk.role == PeakRole::kAnalyte && pk.k0 && std::abs(*pk.k0 - s.k0) > 0.003) {
            EXPECT_LT(pk.snr, 5.0) << s.name << " SNR " << snr << " R " << r << toJson(a);
          }
        }
        for (const SubstanceHit& h : a.substances) EXPECT_EQ(h.name, s.name) << toJson(a);
      }
    }
  }
  std::printf("[ metric ] single ions, SNR 5-1000: %d spectra, 0 split (%d judged broadened, so "
              "fitted, and kept whole)\n", cases, broadened);
}

TEST_F(AnalysisTest, WellSeparatedPeaksAreNotFlagged) {
  SynthParams p = params(IonMode::kPositive, 2);
  p.ions.push_back(ion("cocaine", 30.0, p));
  p.ions.push_back(ion("fentanyl", 30.0, p));
  const Analysis a = analyze(synthesize(p), lib_);
  EXPECT_EQ(a.verdict, Verdict::kHit) << toJson(a);
  EXPECT_TRUE(alarmed(a, "cocaine"));
  EXPECT_TRUE(alarmed(a, "fentanyl"));
  for (const Peak& pk : a.peaks) EXPECT_FALSE(pk.overlapped) << toJson(a);
}

TEST_F(AnalysisTest, TooShortIsInconclusive) {
  Spectrum s;
  s.periodNs = 12500;
  s.points.assign(10, 100);
  const Analysis a = analyze(s, lib_);
  EXPECT_EQ(a.verdict, Verdict::kInconclusive);
}

TEST_F(AnalysisTest, JsonFollowsContract6) {
  SynthParams p = params(IonMode::kPositive, 8);
  p.ions.push_back(ion("methamphetamine", 30.0, p));
  const Analysis a = analyze(synthesize(p), lib_);
  const auto j = nlohmann::json::parse(toJson(a));
  EXPECT_EQ(j["verdict"], "hit");
  EXPECT_TRUE(j["calibrant"]["found"].is_boolean());
  EXPECT_TRUE(j["calibrant"]["drift_ms"].is_number());
  ASSERT_TRUE(j["peaks"].is_array());
  for (const auto& pk : j["peaks"]) {
    for (const char* key : {"drift_ms", "k0", "amplitude", "snr", "fwhm_ms"}) {
      EXPECT_TRUE(pk[key].is_number()) << key;
    }
    EXPECT_TRUE(pk["substance"].is_null() || pk["substance"].is_string());
  }
  ASSERT_EQ(j["substances"].size(), 1u);
  const auto& hit = j["substances"][0];
  EXPECT_EQ(hit["name"], "methamphetamine");
  for (const char* key : {"k0", "amplitude", "snr"}) EXPECT_TRUE(hit[key].is_number()) << key;
  EXPECT_EQ(toJson(a), toJson(analyze(synthesize(p), lib_)));  // deterministic
}

}  // namespace
}  // namespace lanegate::trace

namespace lanegate::trace {
namespace {

// Degenerate input must give a verdict (never clear), not a crash or UB (ASan/UBSan build).
TEST(AnalysisRobustness, DegenerateSpectraAreInconclusive) {
  const SubstanceLibrary lib = testing::shippedLibrary();
  std::vector<std::vector<std::uint16_t>> cases = {
      std::vector<std::uint16_t>(32, 0), std::vector<std::uint16_t>(4000, 65535),
      std::vector<std::uint16_t>(2000, 1234), std::vector<std::uint16_t>(1, 7)};
  std::vector<std::uint16_t> spikes(2000, 100);
  for (std::size_t i = 0; i < spikes.size(); i += 97) spikes[i] = 60000;
  cases.push_back(spikes);
  std::vector<std::uint16_t> ramp(3000);
  for (std::size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<std::uint16_t>(i * 20);
  cases.push_back(ramp);
  for (const auto& points : cases) {
    Spectrum s;
    s.periodNs = 12500;
    s.points = points;
    const Analysis a = analyze(s, lib);
    EXPECT_EQ(a.verdict, Verdict::kInconclusive) << toJson(a);
    EXPECT_FALSE(toJson(a).empty());
  }
}

}  // namespace
}  // namespace lanegate::trace
