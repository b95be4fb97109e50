#include "vision/calibration_check.h"

#include <algorithm>

#include <opencv2/core.hpp>

namespace lanegate::vision {

namespace {

constexpr double kFullScale = 65535.0;

double medianOf(std::vector<float> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return static_cast<double>(v[v.size() / 2]);
}

}  // namespace

CalibrationCheck checkCalibrationFrames(CalibrationKind kind, const std::vector<cv::Mat>& planes,
                                        const std::vector<std::vector<float>>* dark) {
  CalibrationCheck out;
  std::string& problem = out.problem;
  for (std::size_t e = 0; e < planes.size(); ++e) {
    const cv::Mat& p = planes[e];
    std::vector<float> mean(static_cast<std::size_t>(p.rows)), sd(mean.size());
    PlaneCheck c;
    c.channels = p.rows;
    for (int y = 0; y < p.rows; ++y) {
      cv::Scalar m, s;
      cv::meanStdDev(p.row(y), m, s);
      mean[static_cast<std::size_t>(y)] = static_cast<float>(m[0]);
      sd[static_cast<std::size_t>(y)] = static_cast<float>(s[0]);
      // Saturated: more than 1 % of the channel's pulses at the top of the 16-bit range.
      if (cv::countNonZero(p.row(y) == kFullScale) * 100 > p.cols) ++c.saturated;
    }
    const std::string plane =
        planes.size() > 1 ? (e == 0 ? " (high energy)" : " (low energy)") : "";
    const int tolerated = std::max(1, p.rows / 50);  // 2 % of the channels
    c.medianSd = medianOf(sd);
    for (float v : sd) c.noisy += static_cast<double>(v) > 10.0 * std::max(c.medianSd, 1.0) ? 1 : 0;
    // A few bad (saturated, noisy, dead) channels are normal: pre-processing finds and
    // interpolates them. More than 2 % of the array means the calibration is unusable.
    if (c.saturated > tolerated && problem.empty())
      problem = std::to_string(c.saturated) + " channels saturated" + plane;
    if (c.noisy > tolerated && problem.empty())
      problem = std::to_string(c.noisy) + " channels far noisier than the rest" + plane;
    if (kind == CalibrationKind::kDark) {
      const double level = medianOf(mean);
      c.medianLevel = level;
      if (level > 0.25 * kFullScale && problem.empty())
        problem = "dark level " + std::to_string(static_cast<int>(level)) +
                  " counts is a quarter of full scale or more" + plane + ": was the beam on?";
    } else {
      std::vector<float> signal(mean.size());
      for (std::size_t y = 0; y < mean.size(); ++y) {
        const float d =
            dark && e < dark->size() && (*dark)[e].size() == mean.size() ? (*dark)[e][y] : 0.0F;
        signal[y] = mean[y] - d;
      }
      const double open = medianOf(signal);
      int dead = 0;
      for (float v : signal) dead += static_cast<double>(v) < 0.05 * open ? 1 : 0;
      c.medianSignal = open;
      c.dead = dead;
      if (open < 1000 && problem.empty())
        problem = "open beam only " + std::to_string(static_cast<int>(open)) +
                  " counts above dark" + plane + ": was the beam off?";
      if (dead > tolerated && problem.empty())
        problem = std::to_string(dead) + " dead channels" + plane;
      if (open > 0 && c.medianSd / open > 0.2 && problem.empty())
        problem = "open beam too noisy" + plane;
    }
    out.planes.push_back(c);
    out.means.push_back(std::move(mean));
  }
  return out;
}

}  // namespace lanegate::vision
