#pragma once

// Contract 2: from a decoded bundle to findings. Pure function over the image planes;
// every threshold is in physical units (mm, g/cm², kg) or measured noise, never in pixels.

#include "vision/physics.h"
#include "vision/preprocess.h"
#include "vision/scan.h"

#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lanegate::vision {

/// Knobs of the analysis (docs/detection.md); detectors' thresholds are measured (vision/thresholds.inc).
struct AnalysisParams {
  PreprocessParams preprocess;               ///< calibration and registration knobs
  const Calibration* calibration = nullptr;  ///< required for raw-signal bundles (borrowed)
  double cellMm = 20.0;  ///< analysis grid pitch (coarser pixels are kept as they are)
  double effectiveEnergyFraction = 0.4;  ///< mean photon energy / endpoint of the beams
  std::optional<MaterialCurves>
      curves;                  ///< calibrated μ-ratio class boundaries (else in-scan reference)
  double opaqueQuanta = 25.0;  ///< fewer detected quanta than this: not penetrated
  double opaqueMinAreaCm2 = 400.0;  ///< smallest not-penetrated patch worth reporting
  double minStepGcm2 = 3.0;         ///< smallest areal-density step considered (water-equivalent)
  double stepSigma = 4.0;           ///< step threshold in quantum-noise σ
  double minMassKg = 1.0;           ///< smallest estimated excess mass reported
  double hitScore = 0.5;            ///< findings at or above this make the verdict "hit"
  double emptyContentKg = 20.0;     ///< content in a declared-empty body that is a mismatch
  double grossToleranceFraction = 0.35;  ///< allowed |estimated − declared| cargo mass, fraction
  double grossToleranceKg = 1500.0;      ///< and absolute
};

/// One Contract 2 finding.
struct Finding {
  std::string kind;               ///< organic_mass|structural|opaque|manifest_mismatch|anomaly
  std::string detector;           ///< which detector raised it (finer than kind; not in Contract 2)
  std::array<int, 4> boxPx{};     ///< x, y, w, h in pixels of the original image
  std::array<double, 4> boxMm{};  ///< x, y, w, h in mm from the top-left pixel
  double score = 0.0;             ///< 0–1
  Material material = Material::kUnknown;  ///< material class of the excess
  std::optional<double> massKgEst;         ///< estimated excess mass where meaningful
  std::string reason;                      ///< one sentence for a targeting officer
};

/// What the structure step found, in pixels of the original image (−1: not found).
struct Structure {
  int objectX0 = -1, objectX1 = -1;  ///< columns with anything in the beam
  int bodyX0 = -1, bodyX1 = -1;      ///< the cargo body (container, trailer box, ULD)
  int roofY = -1, floorY = -1;       ///< roof and floor rows of the body
  int interiorX0 = -1, interiorX1 = -1, interiorY0 = -1, interiorY1 = -1;  ///< inside the walls
  bool cabFirst = false;          ///< a cab precedes the body (front wall at bodyX0)
  int wheels = 0;                 ///< wheels found below the body
  int underY = -1;                ///< lowest row of the body and its chassis
  int frontRun = 0, rearRun = 0;  ///< dense end-wall columns at the front and the rear (pixels)
  std::vector<std::array<int, 2>> gaps;  ///< empty column runs inside the object
};

/// A detector's candidate, kept whatever its score: its statistic and where it is (threshold
/// setting, and the separation report of `lanegatectl eval`).
struct Candidate {
  std::string detector;
  std::array<int, 4> boxPx{};  ///< x, y, w, h in pixels of the original image
  double statistic = 0.0;
};

/// The result of analysing one scan.
struct Findings {
  std::string scanId;             ///< from the metadata
  std::string verdict = "clear";  ///< clear|hit|inconclusive
  std::vector<Finding> findings;  ///< in descending score
  Structure structure;            ///< for overlays and debugging
  std::vector<int> badRows;       ///< detector channels repaired
  double lowShiftPx = 0.0;        ///< measured high/low registration shift
  double totalMs = 0.0;           ///< wall time of the analysis
  std::string error;    ///< set when the scan could not be analysed (verdict inconclusive)
  cv::Mat materialMap;  ///< CV_8U Material per analysis cell (for the overlay)
  cv::Mat preview;      ///< CV_8U high-energy preview, full resolution (for the overlay)
  std::map<std::string, double>
      maxStatistic;  ///< detector → its largest statistic in this scan (threshold setting)
  std::vector<Candidate> candidates;  ///< every candidate of every detector
};

/// Analyses one bundle. Never throws; problems come back in Findings::error.
Findings analyzeScan(const ScanBundle& bundle, const AnalysisParams& params);

/// A detector's threshold on its statistic (vision/thresholds.inc); 1e9 when it has none.
double detectorThreshold(const std::string& detector);

/// False for a detector that does not hold its false-alarm budget on unseen worlds: its
/// findings are kind `anomaly`, scored below the hit score, and never decide the verdict.
bool detectorRaisesHits(const std::string& detector);

/// Contract 2 JSON of the findings.
std::string toJson(const Findings& findings);

}  // namespace lanegate::vision
