#pragma once

// Detection statistics of the analysis over scans with known ground truth: generated worlds
// (tuning and test) and sets from other generators (the foreign truth.json format), scored
// with one rule (docs/detection.md, "How a scan is scored").

#include "vision/analysis.h"
#include "vision/phantom.h"

#include <tl/expected.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace lanegate::vision {

/// One thing a scan should make the analysis report.
struct Expected {
  std::string kind;      ///< organic_mass|structural|opaque|manifest_mismatch
  std::string location;  ///< load|floor|front_wall|tyre|… (generator) or the set's own words
  std::array<int, 4> boxPx{};  ///< x, y, w, h in the bundle's pixels
  double massKg = 0.0;         ///< concealments
  double deltaAlpha = 0.0;     ///< contrast: high-energy −ln T above what is around it
  bool contrastKnown = false;
};

/// A scan's ground truth in the scorer's terms.
struct Case {
  std::string scanId;
  std::vector<Expected> items;  ///< empty: a clear scan
};

/// A case from the generator's truth (concealments; declared empty with content; opaque).
Case caseFromPhantom(const PhantomTruth& truth);

/// Reads a set in the foreign truth format (`truth.json`: {"scans": [{scan_id, scenario,
/// items: [{kind, box_px, mass_kg, location, delta_alpha_he}]}]}).
tl::expected<std::vector<Case>, std::string> loadForeignTruth(const std::string& path);

/// Counts of one cell of a table.
struct EvalCell {
  int total = 0;     ///< items (or scans)
  int detected = 0;  ///< of those, found (or alarmed)
};

/// The evaluation of one set.
struct EvalReport {
  std::string name;          ///< e.g. "tuning worlds"
  int scans = 0;             ///< scans evaluated
  int errors = 0;            ///< scans the analysis could not read
  EvalCell visible5;         ///< concealments ≥ 5 kg with contrast ≥ 0.1 (or unknown contrast)
  EvalCell allConcealments;  ///< every concealment
  std::map<std::string, std::map<std::string, EvalCell>>
      byLocationAndMass;  ///< visible concealments
  EvalCell clear;         ///< clear scans (total) and those alarming (hit or inconclusive)
  int clearHits = 0;      ///< clear scans with verdict hit
  std::map<std::string, int>
      firedOnClear;  ///< detector → clear scans it raised a hit-scoring finding on
  std::map<std::string, int>
      anomalyOnClear;  ///< anomaly-only detector → clear scans where it reached its threshold
  EvalCell manifest;        ///< manifest items found (verdict hit or a manifest_mismatch finding)
  EvalCell opaque;          ///< opaque items found (inconclusive or an opaque finding)
  double analysisMs = 0.0;  ///< summed analysis time
  /// Separation: for each visible stash ≥ 5 kg, by location, the largest statistic of a
  /// candidate locating it, as a share of its detector's threshold (0: no candidate of any
  /// score locates it; ≥ 1: a hit-scoring one does).
  std::map<std::string, std::vector<float>> stashMargin;
  /// For each clear scan, the largest share of its threshold any candidate reached.
  std::vector<float> clearMargin;
  std::vector<std::string> missed;       ///< "id (location, kg)" of missed visible ≥ 5 kg
  std::vector<std::string> falseAlarms;  ///< "id (detectors)" of alarming clear scans
};

/// Mass bin label of a stash ("1-2", "2-5", "5-10", "10-20", "20-50").
std::string massBin(double kg);

/// Adds one analysed scan to the report.
void accumulate(EvalReport& report, const Case& truth, const Findings& findings);

/// Which worlds and how many scans `evaluateWorld` generates.
struct WorldRun {
  World world = World::kTuning;
  std::uint64_t seed = 1;
  int count = 100;
  double clearShare = -1.0;  ///< −1: the world's own mix; 1: clear scans only
  int threads = 0;           ///< 0: all cores
};

/// Generates scans in memory and evaluates the analysis on them; `progress(done, total)`
/// is called now and then from the calling thread.
EvalReport evaluateWorld(const WorldRun& run, const AnalysisParams& params,
                         const std::function<void(int, int)>& progress = {});

/// Per-detector statistics on clear scans: for threshold setting (docs/detection.md).
struct ClearStatistics {
  int scans = 0;
  std::map<std::string, std::vector<double>>
      maxStatistic;  ///< detector → per scan, the largest statistic
};

/// Runs the analysis with every detector's statistic recorded on clear scans of `run`.
ClearStatistics collectClearStatistics(const WorldRun& run, const AnalysisParams& params,
                                       const std::function<void(int, int)>& progress = {});

/// One-sided 95 % upper confidence bound of a proportion k/n (Clopper–Pearson).
double upperBound95(int k, int n);

/// Markdown: the sets side by side (detection, clear-scan alarms, the tuning–test gap), then
/// detection by location and mass, then the per-detector false-alarm table of `faSet`
/// (index into `sets`, −1 for none) with 95 % upper bounds against `budget`.
std::string formatReports(const std::vector<EvalReport>& sets, int faSet, double budget);

}  // namespace lanegate::vision
