#include "vision/qa.h"

#include "vision/preprocess.h"
#include "vision/select.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>
#include <complex>
#include <sstream>

namespace lanegate::vision {
namespace {

constexpr double kPi = 3.14159265358979323846;
// The carrier plate (20 mm Al) attenuates α ≈ 0.16–0.2 from 4 to 9 MV; half of that marks it.
constexpr double kPlateAlpha = 0.08;

struct Frame {
  cv::Point2d origin;  // plate top-left, mm in the scan
  cv::Point2d pitch;   // mm per pixel along x and y
};

// The longest run of indices where `ok` holds, allowing gaps of up to `gap` indices.
std::pair<int, int> longestRun(int n, int gap, const auto& ok) {
  int best0 = -1;
  int best1 = -2;
  int start = -1;
  int last = -1;
  for (int i = 0; i < n; ++i) {
    if (!ok(i)) continue;
    if (start < 0 || i - last > gap + 1) start = i;
    last = i;
    if (last - start > best1 - best0) {
      best0 = start;
      best1 = last;
    }
  }
  return {best0, best1};
}

// Sub-pixel position (mm) where `profile` (pixel centres at (i + 0.5)·pitch) first rises
// through half of `level`, searching from `from` to `to`.
double risingEdge(const std::vector<double>& profile, int from, int to, double level,
                  double pitch) {
  from = std::max(1, from);
  to = std::min(static_cast<int>(profile.size()) - 1, to);
  for (int i = from; i <= to; ++i) {
    const double a = profile[static_cast<std::size_t>(i - 1)];
    const double b = profile[static_cast<std::size_t>(i)];
    if (b >= 0.5 * level && a < 0.5 * level) return (i - 0.5 + (0.5 * level - a) / (b - a)) * pitch;
  }
  return (from + 0.0) * pitch;
}

tl::expected<Frame, std::string> locate(const cv::Mat& alpha, cv::Point2d pitch,
                                        const std::string& id) {
  const QaLayout& l = qaLayout();
  // The open beam's own level: without dose reference rows (a noisy scan) α of air is not 0.
  std::vector<float> air;
  const int edge = std::max(1, alpha.cols / 20);
  for (int y = 0; y < alpha.rows; y += 2)
    for (int x = 0; x < edge; ++x) {
      air.push_back(alpha.at<float>(y, x));
      air.push_back(alpha.at<float>(y, alpha.cols - 1 - x));
    }
  const double airAlpha = median(std::move(air));
  const cv::Mat mask = alpha > airAlpha + kPlateAlpha;
  cv::Mat colCount;
  cv::reduce(mask / 255, colCount, 0, cv::REDUCE_SUM, CV_32S);
  const double plateRows = l.plateHeightMm / pitch.y;
  const auto [x0, x1] =
      longestRun(alpha.cols, 2, [&](int x) { return colCount.at<int>(0, x) >= 0.5 * plateRows; });
  std::ostringstream expect;
  expect << "the test object's carrier plate is " << l.plateWidthMm << " x " << l.plateHeightMm
         << " mm";
  if (x0 < 0)
    return tl::unexpected(id + ": no QA test object found: nothing in the beam is as tall as " +
                          expect.str().substr(4));
  cv::Mat rowCount;
  cv::reduce(mask(cv::Range::all(), cv::Range(x0, x1 + 1)) / 255, rowCount, 1, cv::REDUCE_SUM,
             CV_32S);
  // The width goes in by value: clang 14 cannot capture structured bindings.
  const auto [y0, y1] = longestRun(alpha.rows, 2, [&rowCount, plateCols = x1 - x0 + 1](int y) {
    return rowCount.at<int>(y, 0) >= 0.5 * plateCols;
  });
  const double wMm = (x1 - x0 + 1) * pitch.x;
  const double hMm = (y1 - y0 + 1) * pitch.y;
  if (y0 < 0 || std::abs(wMm - l.plateWidthMm) > std::max(3 * pitch.x, 0.03 * l.plateWidthMm) ||
      std::abs(hMm - l.plateHeightMm) > std::max(3 * pitch.y, 0.03 * l.plateHeightMm)) {
    std::ostringstream m;
    m << id << ": no QA test object found: the object in the beam is " << std::lround(wMm) << " x "
      << std::lround(std::max(0.0, hMm)) << " mm, " << expect.str();
    return tl::unexpected(m.str());
  }
  // Refine the top-left corner: the first 100 mm inside the plate hold nothing else.
  const int band0 = y0 + static_cast<int>(0.1 * (y1 - y0));
  const int band1 = y1 - static_cast<int>(0.1 * (y1 - y0));
  std::vector<double> colProfile(static_cast<std::size_t>(alpha.cols));
  for (int x = 0; x < alpha.cols; ++x)
    colProfile[static_cast<std::size_t>(x)] =
        cv::mean(alpha(cv::Range(band0, band1 + 1), cv::Range(x, x + 1)))[0];
  const int in0 = x0 + static_cast<int>(std::ceil(30.0 / pitch.x));
  const int in1 = std::max(in0, x0 + static_cast<int>(std::floor(80.0 / pitch.x)));
  std::vector<double> inside(colProfile.begin() + in0, colProfile.begin() + in1 + 1);
  std::nth_element(inside.begin(), inside.begin() + static_cast<std::ptrdiff_t>(inside.size() / 2),
                   inside.end());
  for (double& v : colProfile) v -= airAlpha;
  const double xLevel = inside[inside.size() / 2] - airAlpha;
  const int cband0 = x0 + static_cast<int>(0.1 * (x1 - x0));
  const int cband1 = x1 - static_cast<int>(0.1 * (x1 - x0));
  std::vector<double> rowProfile(static_cast<std::size_t>(alpha.rows));
  for (int y = 0; y < alpha.rows; ++y)
    rowProfile[static_cast<std::size_t>(y)] =
        cv::mean(alpha(cv::Range(y, y + 1), cv::Range(cband0, cband1 + 1)))[0];
  const int r0 = y0 + static_cast<int>(std::ceil(30.0 / pitch.y));
  const int r1 = std::max(r0, y0 + static_cast<int>(std::floor(80.0 / pitch.y)));
  std::vector<double> insideRows(rowProfile.begin() + r0, rowProfile.begin() + r1 + 1);
  std::nth_element(insideRows.begin(),
                   insideRows.begin() + static_cast<std::ptrdiff_t>(insideRows.size() / 2),
                   insideRows.end());
  for (double& v : rowProfile) v -= airAlpha;
  const double yLevel = insideRows[insideRows.size() / 2] - airAlpha;
  Frame f;
  f.pitch = pitch;
  f.origin.x = risingEdge(colProfile, x0 - 3, x0 + 3, xLevel, pitch.x);
  f.origin.y = risingEdge(rowProfile, y0 - 3, y0 + 3, yLevel, pitch.y);
  return f;
}

struct Stats {
  double sum = 0, sumSq = 0;
  long n = 0;
  void add(const cv::Mat& m, const cv::Rect& r) {
    if (r.area() <= 0) return;
    for (int y = r.y; y < r.y + r.height; ++y) {
      const float* row = m.ptr<float>(y);
      for (int x = r.x; x < r.x + r.width; ++x) {
        const double v = static_cast<double>(row[x]);
        sum += v;
        sumSq += v * v;
        ++n;
      }
    }
  }
  double mean() const { return n > 0 ? sum / static_cast<double>(n) : 0.0; }
  double sd() const {
    if (n < 2) return 0.0;
    const double m = mean();
    return std::sqrt(
        std::max(0.0, (sumSq - static_cast<double>(n) * m * m) / static_cast<double>(n - 1)));
  }
};

// α with each column's open-beam level (the rows of air above and below the plate)
// subtracted: this cancels the linac's pulse-to-pulse dose even where pre-processing found no
// dose reference rows (a noisy scan, or a detector that sees the object in every channel).
cv::Mat columnNormalised(const cv::Mat& alpha, const Frame& fr) {
  const QaLayout& l = qaLayout();
  const double top = fr.origin.y - kQaRoiMarginMm;
  const double bottom = fr.origin.y + l.plateHeightMm + kQaRoiMarginMm;
  std::vector<int> rows;
  for (int y = 1; y + 1 < alpha.rows; ++y) {
    const double c = (y + 0.5) * fr.pitch.y;
    if (c < top || c > bottom) rows.push_back(y);
  }
  cv::Mat out = alpha.clone();
  if (rows.size() < 5) return out;
  std::vector<double> level(static_cast<std::size_t>(alpha.cols), 0.0);
  for (const int y : rows) {
    const float* r = alpha.ptr<float>(y);
    for (int x = 0; x < alpha.cols; ++x)
      level[static_cast<std::size_t>(x)] += static_cast<double>(r[x]);
  }
  for (int y = 0; y < out.rows; ++y) {
    float* r = out.ptr<float>(y);
    for (int x = 0; x < out.cols; ++x)
      r[x] -=
          static_cast<float>(level[static_cast<std::size_t>(x)] / static_cast<double>(rows.size()));
  }
  return out;
}

QaFigures measure(const cv::Mat& rawAlpha, const Frame& fr) {
  const QaLayout& l = qaLayout();
  const cv::Mat alpha = columnNormalised(rawAlpha, fr);
  QaFigures f;
  auto roi = [&](const QaRect& r) {
    return qaRoiPixels(r, kQaRoiMarginMm, fr.origin, fr.pitch, alpha.size());
  };
  auto stats = [&](std::initializer_list<QaRect> rects, double margin = kQaRoiMarginMm) {
    Stats s;
    for (const QaRect& r : rects)
      s.add(alpha, qaRoiPixels(r, margin, fr.origin, fr.pitch, alpha.size()));
    return s;
  };
  // Penetration: the lead block against the steel above and below it, per pixel.
  for (std::size_t k = 0; k < l.steps.size(); ++k) {
    const QaRect& s = l.steps[k];
    const QaRect& pb = l.leadBehind[k];
    const Stats steel =
        stats({{s.x, s.y, s.w, pb.y - s.y}, {s.x, pb.y + pb.h, s.w, s.y + s.h - pb.y - pb.h}},
              kQaStepMarginMm);
    const Stats lead = stats({pb}, kQaStepMarginMm);
    f.stepCnr.push_back(steel.sd() > 0 ? (lead.mean() - steel.mean()) / steel.sd() : 0.0);
  }
  // Contrast: each added plate against the base below it, in the same columns.
  for (std::size_t k = 0; k < l.contrastPatches.size(); ++k) {
    const Stats patch = stats({l.contrastPatches[k]});
    const Stats base = stats({l.contrastReference[k]});
    f.contrastCnr.push_back(base.sd() > 0 ? (patch.mean() - base.mean()) / base.sd() : 0.0);
  }
  // Resolution: in transmission (the blur acts on it linearly), the fundamental of four bar
  // periods against the full contrast of the solid block: the MTF at the group's frequency.
  {
    const cv::Rect rows = roi({0, l.barTopMm, l.plateWidthMm, l.barBottomMm - l.barTopMm});
    cv::Mat t;
    cv::exp(-alpha(cv::Range(rows.y, rows.y + rows.height), cv::Range::all()), t);
    cv::Mat q;
    cv::reduce(t, q, 0, cv::REDUCE_AVG, CV_64F);
    Stats plate;
    Stats block;
    cv::Mat tf;
    cv::exp(-alpha, tf);
    plate.add(tf, roi(l.barPlate));
    block.add(tf, roi(l.barReference));
    const double full = plate.mean() - block.mean();
    for (const double w : l.barWidthMm) {
      if (w <= fr.pitch.x || full <= 0) {
        f.groupModulation.push_back(w <= fr.pitch.x ? -1.0 : 0.0);
        continue;
      }
      const double gx = l.groupXMm[f.groupModulation.size()];
      std::vector<std::pair<double, double>> samples;
      for (int i = 0; i < q.cols; ++i) {
        const double u = (i + 0.5) * fr.pitch.x - fr.origin.x;
        if (u >= gx && u < gx + 8 * w) samples.emplace_back(u, q.at<double>(0, i));
      }
      double mean = 0;
      for (const auto& s : samples) mean += s.second;
      const double count = static_cast<double>(std::max<std::size_t>(1, samples.size()));
      mean /= count;
      std::complex<double> c = 0;
      for (const auto& [u, v] : samples) c += (v - mean) * std::polar(1.0, -2 * kPi * u / (2 * w));
      const double amplitude = 2 * std::abs(c) / count;
      f.groupModulation.push_back(amplitude / (2.0 / kPi * full));
    }
  }
  // Wires: the excess in a ±10 mm window over the 25–45 mm flanks, averaged along the wire,
  // against the noise of that sum from the flanks' per-pixel σ.
  {
    const cv::Rect rows = roi({0, l.wireTopMm, l.plateWidthMm, l.wireBottomMm - l.wireTopMm});
    const cv::Mat band = alpha(cv::Range(rows.y, rows.y + rows.height), cv::Range::all());
    cv::Mat profile;
    cv::reduce(band, profile, 0, cv::REDUCE_AVG, CV_64F);
    for (const double wx : l.wireXMm) {
      double win = 0;
      double bg = 0;
      int nw = 0;
      int nb = 0;
      Stats flank;
      for (int i = 0; i < profile.cols; ++i) {
        const double d = std::abs((i + 0.5) * fr.pitch.x - fr.origin.x - wx);
        if (d <= 10.0) {
          win += profile.at<double>(0, i);
          ++nw;
        } else if (d >= 25.0 && d <= 45.0) {
          bg += profile.at<double>(0, i);
          ++nb;
          flank.add(band, cv::Rect(i, 0, 1, band.rows));
        }
      }
      const double noise =
          nw > 0 && nb > 0
              ? flank.sd() * std::sqrt(nw * (1.0 + static_cast<double>(nw) / nb) / band.rows)
              : 0.0;
      f.wireSnr.push_back(noise > 0 ? (win - nw * bg / nb) / noise : 0.0);
    }
  }
  summariseFigures(f);
  return f;
}

}  // namespace

tl::expected<QaReport, std::string> analyzeQa(const ScanBundle& bundle,
                                              const Calibration* calibration) {
  const std::string id = bundle.meta.scanId.empty() ? std::string("scan") : bundle.meta.scanId;
  auto att = computeAttenuation(bundle, calibration);
  if (!att) return tl::unexpected(id + ": " + att.error());
  const cv::Point2d pitch(bundle.meta.pixelAlongMm, bundle.meta.pixelVerticalMm);
  if (!(pitch.x > 0) || !(pitch.y > 0)) return tl::unexpected(id + ": pixel_mm must be positive");
  auto frame = locate(att->alphaHigh, pitch, id);
  if (!frame) return tl::unexpected(frame.error());
  QaReport r;
  r.scanId = bundle.meta.scanId;
  r.objectXMm = frame->origin.x;
  r.objectYMm = frame->origin.y;
  r.energies.push_back(measure(att->alphaHigh, *frame));
  if (!att->alphaLow.empty()) r.energies.push_back(measure(att->alphaLow, *frame));
  for (std::size_t e = 0; e < r.energies.size() && e < bundle.meta.energiesMev.size(); ++e)
    r.energies[e].energyMev = bundle.meta.energiesMev[e];
  // The drawing must fit what was found: thin steel below thick, lead darker than steel.
  const QaFigures& h = r.energies.front();
  if (h.stepCnr.empty() || h.stepCnr.front() < kQaCnrThreshold)
    return tl::unexpected(
        id +
        ": no QA test object found: an object of the plate's size is in the beam, but no lead "
        "block shows behind its thinnest penetration step");
  return r;
}

std::string qaReportToJson(const QaReport& r) {
  nlohmann::json j;
  j["scan_id"] = r.scanId;
  j["object_mm"] = {r.objectXMm, r.objectYMm};
  j["criteria"] = {{"cnr", kQaCnrThreshold},
                   {"modulation", kQaModulationThreshold},
                   {"wire_snr", kQaWireSnrThreshold}};
  j["energies"] = nlohmann::json::array();
  for (const QaFigures& f : r.energies) j["energies"].push_back(qaFiguresJson(f));
  return j.dump(2);
}

std::string qaReportToText(const QaReport& r) {
  // Three significant digits: 0.625 lp/cm, 0.75 %, 1.25 mm.
  auto g = [](double v) {
    std::ostringstream s;
    s.precision(3);
    s << v;
    return s.str();
  };
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(0);
  o << r.scanId << ": QA test object at x=" << r.objectXMm << " mm, y=" << r.objectYMm << " mm\n";
  for (const QaFigures& f : r.energies) {
    o << "  " << g(f.energyMev) << " MeV: penetration " << f.penetrationMm
      << " mm steel, contrast sensitivity "
      << (f.contrastPercent > 0 ? g(f.contrastPercent) + " %" : std::string("none seen"))
      << ", resolution "
      << (f.resolutionLpCm > 0
              ? g(f.resolutionLpCm) + " lp/cm (" + g(10.0 / (2.0 * f.resolutionLpCm)) + " mm bars)"
              : std::string("no group resolved"))
      << ", finest wire " << (f.wireMm > 0 ? g(f.wireMm) + " mm" : std::string("none seen"))
      << "\n";
  }
  o << "  criteria: steps and contrast plates seen at CNR >= " << g(kQaCnrThreshold)
    << " per pixel; a line-pair group is resolved at modulation (MTF) >= "
    << g(kQaModulationThreshold) << "; a wire is seen at SNR >= " << g(kQaWireSnrThreshold) << "\n";
  return o.str();
}

}  // namespace lanegate::vision
