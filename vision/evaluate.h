#pragma once

// Detection statistics of the analysis over scans with known ground truth.

#include "vision/analysis.h"
#include "vision/phantom.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lanegate::vision {

/// Counts of one concealment kind in one mass bin.
struct EvalCell {
  int total = 0;     ///< stashes placed
  int detected = 0;  ///< stashes a hit-scoring finding overlapped
};

/// The evaluation of a set.
struct EvalReport {
  std::map<std::string, std::map<std::string, EvalCell>> byKindAndMass;  ///< kind → mass bin → counts
  EvalCell atLeast5Kg;         ///< all stashes of 5 kg or more
  int scans = 0;               ///< scans evaluated
  int clearScans = 0;          ///< no stash, and not declared empty with content
  int falseAlarms = 0;         ///< clear scans with verdict hit
  int inconclusive = 0;        ///< clear scans with verdict inconclusive
  int emptyWithContent = 0;    ///< declared empty but holding something
  int emptyFlagged = 0;        ///< of those, verdict hit
  int errors = 0;              ///< scans the analysis could not read
  std::vector<std::string> missed;       ///< ids of scans with a missed stash of 5 kg or more
  std::vector<std::string> falseAlarmIds;  ///< ids of false alarms
  std::vector<std::string> emptyMissed;    ///< ids of declared-empty scans with content not flagged
  std::vector<std::string> emptyMassUnderstated;  ///< ids whose manifest_mismatch weighs less than a finding it contains
};

/// Mass bin label of a stash ("1-2", "2-5", "5-10", "10-20", "20-50").
std::string massBin(double kg);

/// Adds one analysed scan to the report.
void accumulate(EvalReport& report, const PhantomTruth& truth, const Findings& findings, double hitScore);

/// Generates `count` scans in memory from `seed` and evaluates the analysis on them.
EvalReport evaluateGenerated(std::uint64_t seed, int count, const PhantomOptions& phantom,
                             const AnalysisParams& params);

/// Human-readable report: a Markdown table by kind and mass, then the rates.
std::string formatReport(const EvalReport& report);

}  // namespace lanegate::vision
