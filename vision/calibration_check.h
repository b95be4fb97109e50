#pragma once

// Quality checks of a scanner's dark (beam off) and air (open beam, empty lane) calibration
// frames, before a raw scan is ever normalised with them. Pure functions over the planes.

#include <opencv2/core/mat.hpp>

#include <optional>
#include <string>
#include <vector>

namespace lanegate::vision {

/// Which calibration frame: beam off, or open beam through an empty lane.
enum class CalibrationKind { kDark, kAir };

/// What was measured in one energy plane of a calibration frame.
struct PlaneCheck {
  int channels = 0;                    ///< detector rows
  int saturated = 0;                   ///< channels with over 1 % of pulses at full scale
  int noisy = 0;                       ///< channels ten times noisier than the median
  double medianSd = 0.0;               ///< median per-channel standard deviation, counts
  std::optional<double> medianLevel;   ///< dark: median channel level, counts
  std::optional<double> medianSignal;  ///< air: median channel level above dark, counts
  std::optional<int> dead;             ///< air: channels under 5 % of the median signal
};

/// The outcome of checking one calibration frame (all its energies).
struct CalibrationCheck {
  std::vector<std::vector<float>> means;  ///< [energy][channel] mean counts
  std::vector<PlaneCheck> planes;         ///< [energy]
  std::string problem;                    ///< why the frame is unusable; "" = usable
};

/// Checks the planes of a dark or air frame. `dark` (may be null) holds the per-channel
/// means of the latest valid dark frame, [energy][channel], which an air frame is read
/// against. A few bad channels are normal (pre-processing repairs them); more than 2 % of
/// the array, a dark level of a quarter of full scale, or an air frame barely above dark
/// make the frame unusable.
CalibrationCheck checkCalibrationFrames(CalibrationKind kind, const std::vector<cv::Mat>& planes,
                                        const std::vector<std::vector<float>>* dark);

}  // namespace lanegate::vision
