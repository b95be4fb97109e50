#pragma once

// Internal to the analysis: the scan on its physical grid, what the detectors share, and the
// detectors themselves (one file per job: analysis_structure.cpp, analysis_load.cpp,
// analysis_under.cpp). Every detector computes a dimensionless statistic per candidate —
// its excess over what the same scan shows around or alongside it, in units of the spread
// measured there (CFAR) — and raises a finding whose score passes 0.5 exactly where the
// statistic passes that detector's threshold (set on clear scans, docs/detection.md).

#include "vision/analysis.h"

#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace lanegate::vision::detail {

/// Values of `m` (CV_32F) under a non-zero `mask` (all when empty).
std::vector<float> valuesUnder(const cv::Mat& m, const cv::Mat& mask);

inline double at(const cv::Mat& m, int y, int x) { return static_cast<double>(m.at<float>(y, x)); }

/// An odd number of cells spanning about `mm`.
inline int oddCells(double mm, double cell) {
  return std::max(1, static_cast<int>(std::lround(mm / cell)) | 1);
}

/// At least one cell spanning about `mm`.
inline int cells(double mm, double cell) {
  return std::max(1, static_cast<int>(std::lround(mm / cell)));
}

/// Numbers for reasons: whole numbers above 10, one decimal below.
std::string num(double v);

/// Thickest plausible end wall of a container or trailer box: corner post plus corrugated wall.
inline constexpr double kMaxEndWallMm = 250.0;
/// The scale at which a region counts as not penetrated (the transmission is averaged over it).
inline constexpr double kOpaqueJudgeMm = 100.0;

/// The detectors' thresholds on their statistics (vision/thresholds.inc).
double threshold(const std::string& detector);

/// Score in [0, 1] of a statistic: 0.5 at the detector's threshold, rising towards 1 above.
double scoreOf(double statistic, const std::string& detector);

struct Context {
  const AnalysisParams& p;
  double pxAlong = 5, pxVert = 5;  // mm per original pixel
  double cellX = 20, cellY = 20;   // mm per grid cell
  cv::Mat a;                       // α_H on the grid
  cv::Mat al;                      // α_L on the grid (empty: single energy)
  bool dual = false;
  double sigmaPx = 0.01;  // open-beam σ of α per original pixel
  double pxPerCell = 1;
  double muOrganic = 0.04;  // cm²/g at the high beam's effective energy
  double opaqueAlpha = 9.0;
  MaterialCurves curves;
  double energyHigh = 6, energyLow = 4;  // endpoint energies, MeV
  bool declaredEmpty = false;            // the manifest says the body is empty
  double organicRatio = 0;               // α_L/α_H of the scan's organic matter (0: unknown)
  double ratioGap = 0;                   // water − iron μ ratio at the beams' effective energies
  std::vector<double>
      organicCurve;          // organics' α_L/α_H by α_H bin (upper envelope); empty: unknown
  double organicBin = 0.25;  // α_H width of a bin
  double occupied = 0.02;    // α above which a cell holds matter
  Structure st;              // in grid cells during analysis
  std::vector<Finding> findings;

  explicit Context(const AnalysisParams& params) : p(params) {}

  double cellAreaCm2() const { return cellX * cellY / 100.0; }
  /// Quantum noise of α for one grid cell at attenuation α (Poisson: σ ∝ 1/√T).
  double sigmaCell(double alpha) const {
    return sigmaPx * std::exp(0.5 * std::clamp(alpha, 0.0, opaqueAlpha)) / std::sqrt(pxPerCell);
  }
  double minStepAlpha() const { return p.minStepGcm2 * muOrganic; }
  /// Water-equivalent mass (kg) of an excess α summed over cells.
  double massKg(double alphaSum) const { return alphaSum * cellAreaCm2() / muOrganic / 1000.0; }

  std::vector<Candidate> candidates;  // every candidate, boxes in original pixels
  // Compartments between an end wall and a full-height line near it (findFalseWalls), in
  // cells: judged there, by their mass and material, not as an empty body's content.
  std::vector<cv::Rect> endCompartments;
  /// Records a candidate's statistic and where it is (threshold setting, separation).
  void note(const std::string& detector, double statistic, const cv::Rect& cells) {
    candidates.push_back({detector, boxPx(cells), statistic});
  }
  /// A box of grid cells in millimetres and in pixels of the original image.
  std::array<double, 4> boxMm(const cv::Rect& cells) const;
  std::array<int, 4> boxPx(const cv::Rect& cells) const;

  Finding make(const std::string& kind, const std::string& detector, const cv::Rect& cells,
               double score, Material m) const;

  /// Whether a path through an excess is surely of higher Z than organics of its thickness
  /// (see findOrganicReference); `pathAlpha` is its α_H.
  bool metalLike(double excessRatio, double pathRatio, double pathAlpha) const;
};

/// Full-height wall lines in the body (a sheet seen edge-on attenuates like a wall, whatever
/// it is made of): a column denser than both sides 60–200 mm away in its median over the
/// middle 80 % of the interior's height, and in 80 % of those rows.
class WallLines {
 public:
  explicit WallLines(const Context& c);
  /// The column's excess over its sides (median over the rows); −1e9 outside the body.
  double step(int x) const;
  /// Whether the line stands out of both sides over the whole height.
  bool fullHeight(int x) const;
  /// The smallest step that is a wall line: 30 g/cm² water-equivalent averaged over a cell.
  double minStep() const { return minStep_; }

 private:
  double side(int x, int dir) const;
  const Context& c_;
  int y0_ = 0, y1_ = -1, x0_ = 0, x1_ = -1, near0_ = 1, near1_ = 3;
  double minStep_ = 0;
  std::vector<double> col_;
};

void findOrganicReference(Context& c);
void findStructure(Context& c);
void findOpaque(Context& c);
void findBlocks(Context& c);
void findFloor(Context& c);
void findFalseWalls(Context& c);
void findWheels(Context& c);
void findManifest(Context& c, const ScanMeta& meta);
/// Findings of detectors that may not raise hits (detectorRaisesHits) become `anomaly`
/// findings scored below `hitScore`.
void demoteAnomalyOnly(std::vector<Finding>& findings, double hitScore);

}  // namespace lanegate::vision::detail
