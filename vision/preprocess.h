#pragma once

// From 16-bit pixels to attenuation α = −ln T: calibration, bad detector channels, dose
// normalisation, high/low registration, and dual-energy material classes.

#include "vision/physics.h"
#include "vision/scan.h"

#include <tl/expected.hpp>

#include <string>
#include <vector>

namespace lanegate::vision {

/// Knobs of the pre-processing; defaults suit 16-bit linac data.
struct PreprocessParams {
  float transmissionFloor = 1.0f / 65535.0f;  ///< T below this is clamped (one 16-bit count)
  float airTransmission =
      0.90f;  ///< this share of the open-beam level is air (dose jitter of 1.5 % σ stays above it)
  double airColumnFraction =
      0.9;  ///< share of rows open beam for an air column (bad channels allowed)
  double deadChannelRatio = 0.5;        ///< open-beam response below this share of nominal: dead
  double hotChannelRatio = 1.5;         ///< open-beam response above this share of nominal: hot
  double noisyChannelFactor = 6.0;      ///< open-beam noise this many times the median: bad
  double referenceRowFraction = 0.995;  ///< share of columns open beam for a dose reference row
  int maxShiftPx = 3;                   ///< search range of the high/low registration, columns
};

/// The attenuation planes and what pre-processing found on the way.
struct Attenuation {
  cv::Mat alphaHigh;           ///< CV_32F, −ln T of the high (or only) energy
  cv::Mat alphaLow;            ///< CV_32F, registered to alphaHigh; empty for single energy
  std::vector<int> badRows;    ///< detector channels found dead, hot or noisy and interpolated
  int airColumns = 0;          ///< columns seen as open beam (used for bad channels)
  int referenceRows = 0;       ///< rows used as the dose reference (0: no normalisation)
  double lowShiftPx = 0.0;     ///< estimated shift of the low plane along x, columns
  double airNoiseAlpha = 0.0;  ///< σ of α in open beam, per pixel (measured)
};

/// Converts a bundle to attenuation; `calibration` is required for raw signal.
tl::expected<Attenuation, std::string> computeAttenuation(const ScanBundle& bundle,
                                                          const Calibration* calibration,
                                                          const PreprocessParams& params = {});

/// What the analysis needs from pre-processing, computed row by row with no full-resolution
/// float plane: α averaged onto a coarser grid (area-weighted, as INTER_AREA shrinks) and an
/// 8-bit preview of the high energy at full resolution for the overlay.
struct GridAttenuation {
  cv::Mat alphaHigh;         ///< CV_32F on the grid, −ln T of the high (or only) energy
  cv::Mat alphaLow;          ///< CV_32F on the grid, registered; empty for single energy
  cv::Mat preview;           ///< CV_8U full size: 255·(0.15 + 0.85·e^(−0.3·α_H)), α_H ≥ 0
  std::vector<int> badRows;  ///< as Attenuation
  int airColumns = 0;        ///< as Attenuation
  int referenceRows = 0;     ///< as Attenuation
  double lowShiftPx = 0.0;   ///< as Attenuation
  double airNoiseAlpha = 0.0;  ///< as Attenuation (per original pixel)
};

/// computeAttenuation followed by area resampling onto `grid` (at most the image size), fused.
tl::expected<GridAttenuation, std::string> computeGridAttenuation(
    const ScanBundle& bundle, const Calibration* calibration, cv::Size grid,
    const PreprocessParams& params = {});

/// Sub-pixel shift s (columns) such that `low`(x + s) best matches `high`(x).
double estimateShift(const cv::Mat& alphaHigh, const cv::Mat& alphaLow, int maxShiftPx);

/// Ratio boundaries R = α_low/α_high between classes, R_b(α_H) = base + slope·α_H.
struct MaterialCurves {
  double organicInorganic = 1.233;  ///< above: organic
  double inorganicMetal = 1.200;    ///< above: inorganic
  double metalHighZ = 1.133;        ///< above: metal; below: high-Z / unknown
  double slope = 0.0;               ///< beam-hardening drift of every boundary per unit α_H
  double minAlpha = 0.05;           ///< α_H below which there is too little matter to classify
};

/// Boundaries midway between water/Al, Al/Fe and Fe/Pb μ ratios at the beams' effective energies.
MaterialCurves defaultMaterialCurves(double highMev, double lowMev, double effectiveFraction);

/// Class of one (α_high, α_low) pair; α_H above `opaqueAlpha` is unknown.
Material classifyMaterial(double alphaHigh, double alphaLow, const MaterialCurves& curves,
                          double opaqueAlpha);

}  // namespace lanegate::vision
