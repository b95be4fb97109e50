// Verdicts on randomised spectra (trace/synth.h randomSpectrum: domain randomisation over
// drift tube, sampling, resolving power, noise, baseline, reactant ion shape and spikes).
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

}  // namespace
}  // namespace lanegate::trace
