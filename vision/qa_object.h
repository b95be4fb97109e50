#pragma once

// The image-quality test object (in the spirit of IEC 62523 clause 7 and ANSI N42.46): steel
// penetration steps with lead blocks behind, a wire set behind steel, contrast steps over a
// steel base and lead line-pair groups, all on an aluminium carrier plate. Its drawing (the
// layout below) is shared by the generator, which renders it with the phantom physics, and
// by the QA analysis (vision/qa.h), which measures a scan of it. The generator also states
// what the figures should be given the noise and blur it used (the truth).

#include "vision/phantom.h"
#include "vision/scan.h"

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace lanegate::vision {

/// Contrast-to-noise ratio (per pixel) at which a penetration or contrast step counts as seen.
inline constexpr double kQaCnrThreshold = 3.0;
/// Modulation (MTF at the group's frequency) at which a line-pair group counts as resolved.
inline constexpr double kQaModulationThreshold = 0.1;
/// Matched-window SNR at which a wire counts as detected.
inline constexpr double kQaWireSnrThreshold = 3.0;

/// An axis-aligned rectangle in mm from the top-left corner of the carrier plate.
struct QaRect {
  double x = 0, y = 0, w = 0, h = 0;  ///< position and size, mm
};

/// The drawing of the test object. All positions in mm from the plate's top-left corner.
struct QaLayout {
  double plateWidthMm = 0;                 ///< carrier plate, along the direction of travel
  double plateHeightMm = 0;                ///< carrier plate, vertical
  double plateAlMm = 0;                    ///< carrier plate thickness (aluminium, across the beam)
  std::vector<double> stepSteelMm;         ///< penetration steps, steel thickness across the beam
  std::vector<QaRect> steps;               ///< each step's steel block
  std::vector<QaRect> leadBehind;          ///< the lead block behind each step (same columns)
  double leadBlockMm = 0;                  ///< lead block thickness
  double wireBaseSteelMm = 0;              ///< steel the wires lie on
  QaRect wireBase;                         ///< the wire set's steel plate
  std::vector<double> wireDiameterMm;      ///< steel wires, thickest first
  std::vector<double> wireXMm;             ///< wire centre lines (vertical wires)
  double wireTopMm = 0, wireBottomMm = 0;  ///< wire ends
  double contrastBaseSteelMm = 0;          ///< base of the contrast steps
  QaRect contrastBase;                     ///< the contrast base plate
  std::vector<double> contrastPercent;     ///< added steel, % of the base thickness
  std::vector<QaRect> contrastPatches;     ///< each added plate
  std::vector<QaRect> contrastReference;   ///< base-only area under each patch
  double barLeadMm = 0;                    ///< line-pair bar thickness (lead, across the beam)
  QaRect barReference;                     ///< a solid lead block as thick as the bars
  QaRect barPlate;                         ///< plate only, beside the groups (the bars' background)
  std::vector<double> barWidthMm;          ///< bar (= gap) width per group, coarsest first
  std::vector<double> groupXMm;            ///< left edge of each group's first bar
  double barTopMm = 0, barBottomMm = 0;    ///< bar ends (vertical bars: resolution along x)
  int barsPerGroup = 5;                    ///< bars in each group
};

/// The test object's drawing.
const QaLayout& qaLayout();

/// Where the generator puts the plate: this far from the scan's left and top edges.
inline constexpr double kQaMarginXMm = 500.0;
/// Air above and below the plate, mm (open-beam rows for the dose reference).
inline constexpr double kQaMarginYMm = 300.0;

/// Every measuring area keeps this far from the edges of the part it measures (blur, placement).
inline constexpr double kQaRoiMarginMm = 30.0;
/// The penetration steps' areas keep further in: next to the plate a thick step is a thousand
/// times darker, and the tail of the blur (9 mm σ at most) would otherwise reach in.
inline constexpr double kQaStepMarginMm = 50.0;

/// The pixels whose centres lie inside `r` shrunk by `marginMm`, for a plate whose top-left
/// corner is at `originMm` (x, y) in the scan; pitch in mm along x and y. Clipped to `image`.
cv::Rect qaRoiPixels(const QaRect& r, double marginMm, cv::Point2d originMm, cv::Point2d pitchMm,
                     cv::Size image);

/// The four figures of one energy plane, with the per-element values behind them.
struct QaFigures {
  double energyMev = 0;         ///< endpoint energy of the plane
  double penetrationMm = 0;     ///< thickest steel step whose lead block is seen (0: none)
  double contrastPercent = -1;  ///< smallest step (Δt/t, %) seen over the contrast base (−1: none)
  double resolutionLpCm = 0;    ///< finest resolved line-pair group (0: none)
  double wireMm = 0;            ///< finest wire detected (0: none)
  std::vector<double> stepCnr;      ///< per penetration step
  std::vector<double> contrastCnr;  ///< per contrast step
  std::vector<double>
      groupModulation;          ///< per line-pair group (−1: finer than the pixel pitch allows)
  std::vector<double> wireSnr;  ///< per wire
};

/// Line pairs per cm of a group with bars `barWidthMm` wide.
inline double lpPerCm(double barWidthMm) { return 10.0 / (2.0 * barWidthMm); }

/// The figures from per-element values: the thresholds above, each figure the end of the run
/// of passing elements that starts at the easiest one.
void summariseFigures(QaFigures& figures);

/// The expected figures, per energy, for a scan rendered with these options.
struct QaTruth {
  std::string scanId;               ///< matches the bundle
  double openBeamQuanta = 0;        ///< noise settings used
  double electronicNoise = 0;       ///< σ in quanta
  double blurMm = 0;                ///< σ of the PSF
  double pixelMm = 0;               ///< pitch
  std::uint64_t seed = 0;           ///< noise seed
  std::vector<QaFigures> energies;  ///< [high] or [high, low]
};

/// A rendered QA scan and its truth.
struct QaPhantom {
  ScanBundle bundle;  ///< Contract 1 bundle, transmission signal
  QaTruth truth;      ///< expected figures
};

/// Scales every noise σ by `factor` relative to the open beam: factor² fewer open-beam quanta
/// and the electronic σ (in quanta) divided by `factor` (`phantoms --noise`).
void scaleNoise(PhantomOptions& options, double factor);

/// Renders the test object with the phantom physics (deterministic in `seed`); ignores
/// options.raw and options.badChannelProbability.
QaPhantom generateQaPhantom(std::uint64_t seed, const PhantomOptions& options);

/// Serialises the truth as JSON (the same shape as `qa --json`, plus the settings).
std::string qaTruthToJson(const QaTruth& truth);

/// Writes `<dir>/<id>.tiff`, `<id>.json` and `<id>.qa-truth.json`; returns the scan id.
tl::expected<std::string, std::string> writeQaPhantom(const std::string& dir, std::uint64_t seed,
                                                      const PhantomOptions& options);

/// JSON of one plane's figures (shared with the analysis's output).
nlohmann::json qaFiguresJson(const QaFigures& figures);

}  // namespace lanegate::vision
