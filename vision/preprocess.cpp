#include "vision/preprocess.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace lanegate::vision {
namespace {

double medianOf(std::vector<float> v) {
  if (v.empty()) return 0.0;
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return static_cast<double>(*mid);
}

// Transmission of one plane, CV_32F; rows whose calibration has no usable span are marked.
tl::expected<cv::Mat, std::string> toTransmission(const cv::Mat& plane, Signal signal,
                                                  const ChannelCalibration* cal,
                                                  std::vector<char>& deadRows) {
  cv::Mat t;
  if (signal == Signal::kTransmission) {
    plane.convertTo(t, CV_32F, 1.0 / 65535.0);
    return t;
  }
  if (cal == nullptr) return tl::unexpected(std::string("raw signal needs a dark/air calibration"));
  if (static_cast<int>(cal->dark.size()) != plane.rows || static_cast<int>(cal->air.size()) != plane.rows)
    return tl::unexpected("calibration has " + std::to_string(cal->dark.size()) + " channels, image has " +
                          std::to_string(plane.rows) + " rows");
  plane.convertTo(t, CV_32F);
  for (int y = 0; y < t.rows; ++y) {
    const float dark = cal->dark[static_cast<std::size_t>(y)];
    const float span = cal->air[static_cast<std::size_t>(y)] - dark;
    // A channel whose open beam barely rises above its dark level carries no signal.
    if (!(span > 1.0f)) {
      deadRows[static_cast<std::size_t>(y)] = 1;
      continue;
    }
    float* row = t.ptr<float>(y);
    for (int x = 0; x < t.cols; ++x) row[x] = (row[x] - dark) / span;
  }
  return t;
}

// The open-beam level of a plane: the 99th percentile of a sparse sample (exports that leave
// headroom put it below full scale).
double openBeamLevel(const cv::Mat& t) {
  std::vector<float> v;
  const int step = std::max(1, static_cast<int>(std::sqrt(static_cast<double>(t.total()) / 20000.0)));
  for (int y = 0; y < t.rows; y += step) {
    const float* r = t.ptr<float>(y);
    for (int x = 0; x < t.cols; x += step) v.push_back(r[x]);
  }
  if (v.empty()) return 1.0;
  const auto k = static_cast<std::ptrdiff_t>(0.99 * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return std::clamp(static_cast<double>(v[static_cast<std::size_t>(k)]), 0.05, 1.0);
}

// Finds columns that are open beam across (nearly) every detector row.
std::vector<int> findAirColumns(const cv::Mat& t, const PreprocessParams& p) {
  cv::Mat mask = t > static_cast<double>(p.airTransmission) * openBeamLevel(t);
  cv::Mat counts;
  cv::reduce(mask / 255, counts, 0, cv::REDUCE_SUM, CV_32S);
  std::vector<int> cols;
  const int need = static_cast<int>(std::ceil(p.airColumnFraction * t.rows));
  // Before and after the conveyance every channel but a bad one sees the open beam.
  const int strict = std::max(need, t.rows - std::max(2, t.rows / 100));
  auto clearCol = [&](int x) { return counts.at<int>(0, x) >= strict; };
  auto open = [&](int x) { return counts.at<int>(0, x) >= need; };
  // Only the open beam before the conveyance arrives and after it leaves: inside it, a thin
  // skin (an aluminium ULD, a cab's sheet metal) passes for air in most rows, and its edge-on
  // roof and floor rows would then look like bad channels.
  for (int x = 0; x < t.cols && clearCol(x); ++x) cols.push_back(x);
  for (int x = t.cols - 1; x >= 0 && clearCol(x) && (cols.empty() || x > cols.back()); --x) cols.push_back(x);
  if (cols.size() >= 8) return cols;
  cols.clear();
  for (int x = 0; x < t.cols; ++x)
    if (open(x)) cols.push_back(x);
  return cols;
}

void markBadRows(const cv::Mat& t, const std::vector<int>& airCols, const PreprocessParams& p,
                 std::vector<char>& bad) {
  if (airCols.size() < 8) return;
  std::vector<double> level(static_cast<std::size_t>(t.rows));
  std::vector<double> noise(static_cast<std::size_t>(t.rows));
  std::vector<float> vals;
  for (int y = 0; y < t.rows; ++y) {
    const float* row = t.ptr<float>(y);
    vals.clear();
    for (const int x : airCols) vals.push_back(row[x]);
    const double med = medianOf(vals);
    for (float& v : vals) v = std::abs(v - static_cast<float>(med));
    level[static_cast<std::size_t>(y)] = med;
    noise[static_cast<std::size_t>(y)] = medianOf(vals);
  }
  std::vector<float> all(noise.begin(), noise.end());
  const double typicalNoise = medianOf(all);
  std::vector<float> levels(level.begin(), level.end());
  const double nominal = medianOf(levels);
  for (std::size_t y = 0; y < level.size(); ++y) {
    const double r = nominal > 0 ? level[y] / nominal : 0.0;
    if (r < p.deadChannelRatio || r > p.hotChannelRatio ||
        (typicalNoise > 0 && noise[y] > p.noisyChannelFactor * typicalNoise))
      bad[y] = 1;
  }
  // A stuck channel reads a constant whatever the beam sees.
  for (int y = 0; y < t.rows; ++y) {
    double lo = 0;
    double hi = 0;
    cv::minMaxLoc(t.row(y), &lo, &hi);
    if (hi - lo < 1e-7) bad[static_cast<std::size_t>(y)] = 1;
  }
}

void interpolateRows(cv::Mat& t, const std::vector<char>& bad) {
  const int rows = t.rows;
  for (int y = 0; y < rows; ++y) {
    if (!bad[static_cast<std::size_t>(y)]) continue;
    int up = y - 1;
    while (up >= 0 && bad[static_cast<std::size_t>(up)]) --up;
    int down = y + 1;
    while (down < rows && bad[static_cast<std::size_t>(down)]) ++down;
    if (up < 0 && down >= rows) return;
    if (up < 0) {
      t.row(down).copyTo(t.row(y));
    } else if (down >= rows) {
      t.row(up).copyTo(t.row(y));
    } else {
      const double w = static_cast<double>(y - up) / (down - up);
      cv::addWeighted(t.row(up), 1.0 - w, t.row(down), w, 0.0, t.row(y));
    }
  }
}

// Divides each column by the open-beam level of rows that see air in every pulse; this
// cancels the linac's pulse-to-pulse dose jitter. Returns the number of reference rows.
int normaliseDose(cv::Mat& t, const std::vector<char>& bad, const PreprocessParams& p) {
  cv::Mat mask = t > static_cast<double>(p.airTransmission) * openBeamLevel(t);
  cv::Mat counts;
  cv::reduce(mask / 255, counts, 1, cv::REDUCE_SUM, CV_32S);
  const int need = static_cast<int>(std::ceil(p.referenceRowFraction * t.cols));
  std::vector<int> refs;
  for (int y = 0; y < t.rows; ++y)
    if (!bad[static_cast<std::size_t>(y)] && counts.at<int>(y, 0) >= need) refs.push_back(y);
  if (refs.size() < 3) return 0;
  cv::Mat dose = cv::Mat::zeros(1, t.cols, CV_32F);
  for (const int y : refs) dose += t.row(y);
  dose /= static_cast<double>(refs.size());
  float* d = dose.ptr<float>(0);
  for (int x = 0; x < t.cols; ++x) d[x] = (d[x] > 0.5f && d[x] < 1.5f) ? 1.0f / d[x] : 1.0f;
  for (int y = 0; y < t.rows; ++y) cv::multiply(t.row(y), dose, t.row(y));
  return static_cast<int>(refs.size());
}

cv::Mat toAlpha(const cv::Mat& t, float floor) {
  cv::Mat a;
  cv::max(t, floor, a);
  cv::log(a, a);
  a *= -1.0;
  // Open beam brighter than nominal (noise) gives small negative α; keep it, it is honest noise.
  return a;
}

double airNoise(const cv::Mat& alpha, const std::vector<int>& airCols) {
  std::vector<float> diffs;
  if (airCols.size() >= 8) {
    for (int y = 0; y < alpha.rows; y += 2) {
      const float* row = alpha.ptr<float>(y);
      for (std::size_t i = 1; i < airCols.size(); ++i)
        if (airCols[i] == airCols[i - 1] + 1) diffs.push_back(std::abs(row[airCols[i]] - row[airCols[i - 1]]));
    }
  }
  if (diffs.size() < 50) {
    // No open-beam columns: use vertical differences where there is little matter.
    for (int y = 1; y < alpha.rows; y += 2) {
      const float* row = alpha.ptr<float>(y);
      const float* prev = alpha.ptr<float>(y - 1);
      for (int x = 0; x < alpha.cols; x += 3)
        if (row[x] < 0.3f && prev[x] < 0.3f) diffs.push_back(std::abs(row[x] - prev[x]));
    }
  }
  if (diffs.empty()) return 0.01;
  return 1.4826 * medianOf(diffs) / std::sqrt(2.0);
}

}  // namespace

double estimateShift(const cv::Mat& alphaHigh, const cv::Mat& alphaLow, int maxShiftPx) {
  const int w = alphaHigh.cols;
  if (w < 4 * maxShiftPx + 8) return 0.0;
  // Horizontal gradients on every fourth row: edges carry the registration information.
  cv::Mat h;
  cv::Mat l;
  cv::Mat rowsH;
  cv::Mat rowsL;
  cv::resize(alphaHigh, rowsH, cv::Size(w, std::max(1, alphaHigh.rows / 4)), 0, 0, cv::INTER_AREA);
  cv::resize(alphaLow, rowsL, cv::Size(w, std::max(1, alphaLow.rows / 4)), 0, 0, cv::INTER_AREA);
  cv::Mat k = (cv::Mat_<float>(1, 3) << -0.5f, 0.0f, 0.5f);
  cv::filter2D(rowsH, h, CV_32F, k);
  cv::filter2D(rowsL, l, CV_32F, k);
  const int m = maxShiftPx + 1;
  const cv::Rect core(m, 0, w - 2 * m, h.rows);
  std::vector<double> score;
  for (int s = -maxShiftPx; s <= maxShiftPx; ++s)
    score.push_back(h(core).dot(l(core + cv::Point(s, 0))));
  const auto best = static_cast<int>(std::max_element(score.begin(), score.end()) - score.begin());
  double shift = best - maxShiftPx;
  if (best > 0 && best + 1 < static_cast<int>(score.size())) {
    const double a = score[static_cast<std::size_t>(best - 1)];
    const double b = score[static_cast<std::size_t>(best)];
    const double c = score[static_cast<std::size_t>(best + 1)];
    const double den = a - 2 * b + c;
    if (den < 0) shift += 0.5 * (a - c) / den;
  }
  return shift;
}

tl::expected<Attenuation, std::string> computeAttenuation(const ScanBundle& bundle,
                                                          const Calibration* calibration,
                                                          const PreprocessParams& params) {
  if (bundle.planes.empty() || bundle.planes.size() > 2) return tl::unexpected(std::string("expected 1 or 2 planes"));
  const cv::Mat& first = bundle.planes.front();
  if (first.empty() || first.type() != CV_16UC1) return tl::unexpected(std::string("planes must be CV_16UC1"));
  for (const cv::Mat& p : bundle.planes)
    if (p.size() != first.size() || p.type() != CV_16UC1)
      return tl::unexpected(std::string("planes differ in size or type"));
  if (bundle.meta.signal == Signal::kRaw &&
      (calibration == nullptr || calibration->energies.size() < bundle.planes.size()))
    return tl::unexpected(std::string("raw signal needs a dark/air calibration for every energy"));
  Attenuation out;
  std::vector<char> bad(static_cast<std::size_t>(first.rows), 0);
  std::vector<cv::Mat> trans;
  for (std::size_t i = 0; i < bundle.planes.size(); ++i) {
    const ChannelCalibration* cal =
        bundle.meta.signal == Signal::kRaw ? &calibration->energies[i] : nullptr;
    auto t = toTransmission(bundle.planes[i], bundle.meta.signal, cal, bad);
    if (!t) return tl::unexpected(t.error());
    trans.push_back(std::move(*t));
  }
  const std::vector<int> airCols = findAirColumns(trans.front(), params);
  out.airColumns = static_cast<int>(airCols.size());
  for (const cv::Mat& t : trans) markBadRows(t, airCols, params, bad);
  for (cv::Mat& t : trans) {
    interpolateRows(t, bad);
    out.referenceRows = normaliseDose(t, bad, params);
  }
  for (std::size_t y = 0; y < bad.size(); ++y)
    if (bad[y]) out.badRows.push_back(static_cast<int>(y));
  out.alphaHigh = toAlpha(trans[0], params.transmissionFloor);
  out.airNoiseAlpha = airNoise(out.alphaHigh, airCols);
  if (trans.size() == 2) {
    cv::Mat low = toAlpha(trans[1], params.transmissionFloor);
    out.lowShiftPx = estimateShift(out.alphaHigh, low, params.maxShiftPx);
    if (std::abs(out.lowShiftPx) > 0.05) {
      const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, out.lowShiftPx, 0, 1, 0);
      cv::warpAffine(low, out.alphaLow, m, low.size(), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP,
                     cv::BORDER_REPLICATE);
    } else {
      out.alphaLow = low;
    }
  }
  return out;
}

MaterialCurves defaultMaterialCurves(double highMev, double lowMev, double effectiveFraction) {
  const double eh = effectiveEnergy(highMev, effectiveFraction);
  const double el = effectiveEnergy(lowMev, effectiveFraction);
  auto ratio = [&](Basis b) { return massAttenuation(b, el) / massAttenuation(b, eh); };
  const double water = 0.5 * (ratio(Basis::kWater) + ratio(Basis::kPolyethylene));
  const double al = ratio(Basis::kAluminium);
  const double fe = ratio(Basis::kIron);
  const double pb = ratio(Basis::kLead);
  MaterialCurves c;
  c.organicInorganic = 0.5 * (water + al);
  c.inorganicMetal = 0.5 * (al + fe);
  c.metalHighZ = 0.5 * (fe + pb);
  return c;
}

Material classifyMaterial(double alphaHigh, double alphaLow, const MaterialCurves& c, double opaqueAlpha) {
  if (alphaHigh < c.minAlpha) return Material::kNone;
  if (alphaHigh >= opaqueAlpha) return Material::kUnknown;
  const double r = alphaLow / alphaHigh;
  const double drift = c.slope * alphaHigh;
  if (r >= c.organicInorganic + drift) return Material::kOrganic;
  if (r >= c.inorganicMetal + drift) return Material::kInorganic;
  if (r >= c.metalHighZ + drift) return Material::kMetal;
  return Material::kUnknown;
}

}  // namespace lanegate::vision
