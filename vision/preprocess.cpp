#include "vision/preprocess.h"

#include "vision/select.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>

namespace lanegate::vision {
namespace {

// How the 16-bit pixels of one detector row map to transmission: T = (v − dark) · gain.
struct RowMap {
  float dark = 0.0f;
  float gain = 1.0f / 65535.0f;
};

// The rows' mappings of one plane; rows whose calibration has no usable span are marked.
tl::expected<std::vector<RowMap>, std::string> rowMaps(const cv::Mat& plane, Signal signal,
                                                       const ChannelCalibration* cal,
                                                       std::vector<char>& deadRows) {
  std::vector<RowMap> maps(static_cast<std::size_t>(plane.rows));
  if (signal == Signal::kTransmission) return maps;
  if (cal == nullptr) return tl::unexpected(std::string("raw signal needs a dark/air calibration"));
  if (static_cast<int>(cal->dark.size()) != plane.rows ||
      static_cast<int>(cal->air.size()) != plane.rows)
    return tl::unexpected("calibration has " + std::to_string(cal->dark.size()) +
                          " channels, image has " + std::to_string(plane.rows) + " rows");
  for (std::size_t y = 0; y < maps.size(); ++y) {
    const float dark = cal->dark[y];
    const float span = cal->air[y] - dark;
    // A channel whose open beam barely rises above its dark level carries no signal.
    if (!(span > 1.0f)) {
      deadRows[y] = 1;
      continue;
    }
    maps[y] = {dark, 1.0f / span};
  }
  return maps;
}

float transmissionAt(const RowMap& m, std::uint16_t v) {
  return (static_cast<float>(v) - m.dark) * m.gain;
}

// The open-beam level of a plane: the 99th percentile of a sparse sample (exports that leave
// headroom put it below full scale).
double openBeamLevel(const cv::Mat& plane, const std::vector<RowMap>& maps) {
  std::vector<float> v;
  const int step =
      std::max(1, static_cast<int>(std::sqrt(static_cast<double>(plane.total()) / 20000.0)));
  for (int y = 0; y < plane.rows; y += step) {
    const std::uint16_t* r = plane.ptr<std::uint16_t>(y);
    for (int x = 0; x < plane.cols; x += step)
      v.push_back(transmissionAt(maps[static_cast<std::size_t>(y)], r[x]));
  }
  if (v.empty()) return 1.0;
  return std::clamp(quantile(std::move(v), 0.99), 0.05, 1.0);
}

// Pixels brighter than `airTransmission` of the open-beam level, counted per column and per
// row, straight from the 16-bit pixels (one pass, no image-sized temporary); in the same pass,
// the rows whose pixels all read the same value (a stuck channel).
struct OpenCounts {
  std::vector<int> perColumn;
  std::vector<int> perRow;
  std::vector<char> constantRow;
};

OpenCounts countOpen(const cv::Mat& plane, const std::vector<RowMap>& maps,
                     const PreprocessParams& p, bool columns) {
  OpenCounts c;
  c.perColumn.assign(static_cast<std::size_t>(columns ? plane.cols : 0), 0);
  c.perRow.assign(static_cast<std::size_t>(plane.rows), 0);
  c.constantRow.assign(static_cast<std::size_t>(plane.rows), 0);
  const double thr = static_cast<double>(p.airTransmission) * openBeamLevel(plane, maps);
  int* col = c.perColumn.data();
  for (int y = 0; y < plane.rows; ++y) {
    const RowMap& m = maps[static_cast<std::size_t>(y)];
    // T > thr  ⇔  v > dark + thr / gain, an integer threshold on the raw pixel.
    const double limit =
        std::floor(static_cast<double>(m.dark) + thr / static_cast<double>(m.gain));
    const int vt = static_cast<int>(std::clamp(limit, -1.0, 65535.0));
    const std::uint16_t* r = plane.ptr<std::uint16_t>(y);
    // The same test in 16 bits (vt = −1: every pixel is open), so that these loops vectorise.
    const auto t = static_cast<std::uint16_t>(std::max(vt, 0));
    const std::uint16_t all = vt < 0 ? std::uint16_t{1} : std::uint16_t{0};
    int n = 0;
    if (columns) {
      // `cols` is hoisted: col[] is int and might alias plane.cols, which defeats vectorising.
      const int cols = plane.cols;
      for (int x = 0; x < cols; ++x) {
        const std::uint16_t open = static_cast<std::uint16_t>(r[x] > t) | all;
        col[x] += open;
        n += open;
      }
    } else {
      for (int x = 0; x < plane.cols; ++x) n += static_cast<std::uint16_t>(r[x] > t) | all;
    }
    std::uint16_t differs = 0;
    for (int x = 0; x < plane.cols; ++x) differs |= static_cast<std::uint16_t>(r[x] ^ r[0]);
    c.perRow[static_cast<std::size_t>(y)] = n;
    c.constantRow[static_cast<std::size_t>(y)] = differs == 0 ? 1 : 0;
  }
  return c;
}

// Finds columns that are open beam across (nearly) every detector row.
std::vector<int> findAirColumns(const std::vector<int>& counts, int rows,
                                const PreprocessParams& p) {
  std::vector<int> cols;
  const int width = static_cast<int>(counts.size());
  const int need = static_cast<int>(std::ceil(p.airColumnFraction * rows));
  // Before and after the conveyance every channel but a bad one sees the open beam.
  const int strict = std::max(need, rows - std::max(2, rows / 100));
  auto clearCol = [&](int x) { return counts[static_cast<std::size_t>(x)] >= strict; };
  auto open = [&](int x) { return counts[static_cast<std::size_t>(x)] >= need; };
  // Only the open beam before the conveyance arrives and after it leaves: inside it, a thin
  // skin (an aluminium ULD, a cab's sheet metal) passes for air in most rows, and its edge-on
  // roof and floor rows would then look like bad channels.
  for (int x = 0; x < width && clearCol(x); ++x) cols.push_back(x);
  for (int x = width - 1; x >= 0 && clearCol(x) && (cols.empty() || x > cols.back()); --x)
    cols.push_back(x);
  if (cols.size() >= 8) return cols;
  cols.clear();
  for (int x = 0; x < width; ++x)
    if (open(x)) cols.push_back(x);
  return cols;
}

void markBadRows(const cv::Mat& plane, const std::vector<RowMap>& maps,
                 const std::vector<int>& airCols, const std::vector<char>& constantRow,
                 const PreprocessParams& p, std::vector<char>& bad) {
  if (airCols.size() < 8) return;
  // A channel's open-beam level and noise need no more than ~128 samples per row.
  std::vector<int> sample;
  const std::size_t stride = (airCols.size() + 127) / 128;
  for (std::size_t i = 0; i < airCols.size(); i += stride) sample.push_back(airCols[i]);
  std::vector<double> level(static_cast<std::size_t>(plane.rows));
  std::vector<double> noise(static_cast<std::size_t>(plane.rows));
  std::vector<float> vals;
  for (int y = 0; y < plane.rows; ++y) {
    const std::uint16_t* row = plane.ptr<std::uint16_t>(y);
    const RowMap& m = maps[static_cast<std::size_t>(y)];
    vals.clear();
    for (const int x : sample) vals.push_back(transmissionAt(m, row[x]));
    const double med = median(vals);
    for (float& v : vals) v = std::abs(v - static_cast<float>(med));
    level[static_cast<std::size_t>(y)] = med;
    noise[static_cast<std::size_t>(y)] = median(vals);
  }
  std::vector<float> all(noise.begin(), noise.end());
  const double typicalNoise = median(all);
  std::vector<float> levels(level.begin(), level.end());
  const double nominal = median(levels);
  for (std::size_t y = 0; y < level.size(); ++y) {
    const double r = nominal > 0 ? level[y] / nominal : 0.0;
    if (r < p.deadChannelRatio || r > p.hotChannelRatio ||
        (typicalNoise > 0 && noise[y] > p.noisyChannelFactor * typicalNoise))
      bad[y] = 1;
  }
  // A stuck channel reads a constant whatever the beam sees.
  for (std::size_t y = 0; y < constantRow.size(); ++y)
    if (constantRow[y]) bad[y] = 1;
}

// The per-column correction of the linac's pulse-to-pulse dose, as α to add (−ln of the
// factor that brings the reference rows' mean transmission to 1). The reference rows see air
// in every pulse. Returns their number (0: no normalisation, `offset` all zero).
int doseOffsets(const cv::Mat& plane, const std::vector<RowMap>& maps,
                const std::vector<int>& openPerRow, const std::vector<char>& bad,
                const PreprocessParams& p, std::vector<float>& offset) {
  offset.assign(static_cast<std::size_t>(plane.cols), 0.0f);
  const int need = static_cast<int>(std::ceil(p.referenceRowFraction * plane.cols));
  std::vector<int> refs;
  for (int y = 0; y < plane.rows; ++y)
    if (!bad[static_cast<std::size_t>(y)] && openPerRow[static_cast<std::size_t>(y)] >= need)
      refs.push_back(y);
  if (refs.size() < 3) return 0;
  std::vector<float> dose(static_cast<std::size_t>(plane.cols), 0.0f);
  for (const int y : refs) {
    const std::uint16_t* r = plane.ptr<std::uint16_t>(y);
    // A copy: a store into dose[] cannot alias it (through a reference the compiler must
    // check for overlap at run time before it vectorises the loop).
    const RowMap m = maps[static_cast<std::size_t>(y)];
    for (int x = 0; x < plane.cols; ++x)
      dose[static_cast<std::size_t>(x)] += transmissionAt(m, r[x]);
  }
  const float n = static_cast<float>(refs.size());
  for (std::size_t x = 0; x < dose.size(); ++x) {
    const float d = dose[x] / n;
    offset[x] = (d > 0.5f && d < 1.5f) ? std::log(d) : 0.0f;
  }
  return static_cast<int>(refs.size());
}

// −ln(v / 65535) for every 16-bit value (v = 0 maps far beyond any floor).
const std::vector<float>& minusLogTable() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    t[0] = 100.0f;
    for (std::size_t v = 1; v < t.size(); ++v)
      t[v] = static_cast<float>(-std::log(static_cast<double>(v) / 65535.0));
    return t;
  }();
  return table;
}

// Produces α = −ln max(T · dose factor, floor) of one plane row by row, straight from the
// 16-bit pixels (a table for transmission), with bad rows interpolated in T between the
// nearest good rows above and below (or copied from the one good neighbour at an edge).
class AlphaRows {
 public:
  AlphaRows(const cv::Mat& plane, Signal signal, const std::vector<RowMap>& maps,
            std::vector<float> offset, const std::vector<char>& bad, float floor,
            const std::vector<std::array<float, 2>>& rowAir)
      : plane_(plane),
        signal_(signal),
        maps_(maps),
        offset_(std::move(offset)),
        bad_(bad),
        maxAlpha_(-std::log(floor)),
        floor_(floor),
        rowAir_(rowAir) {}

  int rows() const { return plane_.rows; }
  int cols() const { return plane_.cols; }

  /// Writes α of row `y` into `out` (cols() values).
  void row(int y, float* out) {
    if (!bad_[static_cast<std::size_t>(y)]) return direct(y, out);
    int up = y - 1;
    while (up >= 0 && bad_[static_cast<std::size_t>(up)]) --up;
    int down = y + 1;
    while (down < rows() && bad_[static_cast<std::size_t>(down)]) ++down;
    if (up < 0 && down >= rows()) return direct(y, out);
    if (up < 0) return direct(down, out);
    if (down >= rows()) return direct(up, out);
    upRow_.resize(static_cast<std::size_t>(cols()));
    direct(up, upRow_.data());
    direct(down, out);
    const float w = static_cast<float>(y - up) / static_cast<float>(down - up);
    for (int x = 0; x < cols(); ++x)
      out[x] = std::min(-std::log((1.0f - w) * std::exp(-upRow_[static_cast<std::size_t>(x)]) +
                                  w * std::exp(-out[x])),
                        maxAlpha_);
  }

 private:
  void direct(int y, float* o) const {
    directRaw(y, o);
    if (rowAir_.empty()) return;
    // The row's own open-beam level, as measured before and after the conveyance (linear in x).
    const float a = rowAir_[static_cast<std::size_t>(y)][0];
    const float b = rowAir_[static_cast<std::size_t>(y)][1];
    if (a == 0.0f && b == 0.0f) return;
    const int w = cols();
    const float maxAlpha = maxAlpha_;
    for (int x = 0; x < w; ++x) o[x] = std::min(o[x] - (a + b * static_cast<float>(x)), maxAlpha);
  }

  void directRaw(int y, float* o) const {
    const std::uint16_t* r = plane_.ptr<std::uint16_t>(y);
    const float* off = offset_.data();
    const int w = cols();
    // Members in locals: a store through `o` might otherwise alias them, and every
    // iteration would reload them (and the loop would not vectorise).
    const float maxAlpha = maxAlpha_;
    const float floor = floor_;
    if (signal_ == Signal::kTransmission) {
      // The table look-up on its own (it cannot vectorise), then the dose and the limit in a
      // loop that does.
      const float* lut = minusLogTable().data();
      for (int x = 0; x < w; ++x) o[x] = lut[r[x]];
      for (int x = 0; x < w; ++x) o[x] = std::min(o[x] + off[x], maxAlpha);
      return;
    }
    const RowMap m = maps_[static_cast<std::size_t>(y)];
    // T · e^(−offset), floored, then a vectorised log of the whole row.
    for (int x = 0; x < w; ++x) o[x] = std::max(transmissionAt(m, r[x]) * std::exp(-off[x]), floor);
    cv::Mat row(1, w, CV_32F, o);
    cv::log(row, row);
    for (int x = 0; x < w; ++x) o[x] = -o[x];
  }

  const cv::Mat& plane_;
  Signal signal_;
  const std::vector<RowMap>& maps_;
  std::vector<float> offset_;
  const std::vector<char>& bad_;
  float maxAlpha_;
  float floor_;
  const std::vector<std::array<float, 2>>& rowAir_;
  std::vector<float> upRow_;
};

// Area-weighted resampling along one axis from n source cells onto m ≤ n target cells (what
// INTER_AREA does when shrinking): source cell i adds weight `first[i]` to target `index[i]`
// and `second[i]` to the next one.
struct AreaAxis {
  std::vector<int> index;
  std::vector<float> first, second;

  AreaAxis(int n, int m) {
    const double scale = static_cast<double>(n) / m;
    for (int i = 0; i < n; ++i) {
      const int k = std::min(m - 1, static_cast<int>(std::floor(i / scale)));
      const double boundary = (k + 1) * scale;
      const double a = std::min(1.0, boundary - i);
      index.push_back(k);
      first.push_back(static_cast<float>(a / scale));
      second.push_back(k + 1 < m ? static_cast<float>((1.0 - a) / scale) : 0.0f);
    }
  }
};

// The σ of α in open beam from differences of neighbouring air pixels (every other row), or
// failing those, vertical differences where there is little matter; fed row by row.
class AirNoise {
 public:
  AirNoise(const std::vector<int>& airCols, int rows) : airCols_(airCols) {
    std::size_t pairs = 0;
    for (std::size_t i = 1; airCols.size() >= 8 && i < airCols.size(); ++i)
      pairs += airCols[i] == airCols[i - 1] + 1;
    vertical_ = pairs * static_cast<std::size_t>((rows + 1) / 2) < 50;
    // Every other row, and fewer when the open beam is wide: ~32,000 differences are plenty.
    while (pairs * static_cast<std::size_t>(rows) / static_cast<std::size_t>(stride_) > 32768)
      stride_ += 2;
  }
  void feed(int y, const float* row, const float* prev, int cols) {
    if (y % stride_ == 0 && airCols_.size() >= 8) {
      for (std::size_t i = 1; i < airCols_.size(); ++i)
        if (airCols_[i] == airCols_[i - 1] + 1)
          diffs_.push_back(std::abs(row[airCols_[i]] - row[airCols_[i - 1]]));
    }
    if (vertical_ && y % 2 == 1)
      for (int x = 0; x < cols; x += 3)
        if (row[x] < 0.3f && prev[x] < 0.3f) diffs_.push_back(std::abs(row[x] - prev[x]));
  }
  double sigma() const {
    if (diffs_.empty()) return 0.01;
    return 1.4826 * median(diffs_) / std::sqrt(2.0);
  }

 private:
  const std::vector<int>& airCols_;
  int stride_ = 2;
  bool vertical_ = false;
  std::vector<float> diffs_;
};

// The registration estimate over rows supplied one at a time: horizontal gradients of the
// planes averaged over groups of four rows (area-weighted), correlated at integer shifts, and
// the peak refined by a parabola. Edges carry the registration information.
class ShiftEstimator {
 public:
  ShiftEstimator(int width, int height, int maxShiftPx)
      : w_(width),
        max_(maxShiftPx),
        axis_(height, std::max(1, height / 4)),
        score_(static_cast<std::size_t>(2 * maxShiftPx + 1), 0.0) {
    for (auto* b : {&h_, &l_})
      for (auto& r : *b) r.assign(static_cast<std::size_t>(w_), 0.0f);
    gh_.assign(static_cast<std::size_t>(w_), 0.0f);
    gl_.assign(static_cast<std::size_t>(w_), 0.0f);
  }

  bool usable() const { return w_ >= 4 * max_ + 8; }

  void feed(int y, const float* high, const float* low) {
    const int k = axis_.index[static_cast<std::size_t>(y)];
    while (k > base_) finishRow();
    const float a = axis_.first[static_cast<std::size_t>(y)];
    const float b = axis_.second[static_cast<std::size_t>(y)];
    for (int x = 0; x < w_; ++x) {
      h_[0][static_cast<std::size_t>(x)] += a * high[x];
      l_[0][static_cast<std::size_t>(x)] += a * low[x];
    }
    if (b > 0)
      for (int x = 0; x < w_; ++x) {
        h_[1][static_cast<std::size_t>(x)] += b * high[x];
        l_[1][static_cast<std::size_t>(x)] += b * low[x];
      }
  }

  double shift() {
    while (base_ < static_cast<int>(axis_.index.empty() ? 0 : axis_.index.back() + 1)) finishRow();
    const auto best =
        static_cast<int>(std::max_element(score_.begin(), score_.end()) - score_.begin());
    double shift = best - max_;
    if (best > 0 && best + 1 < static_cast<int>(score_.size())) {
      const double a = score_[static_cast<std::size_t>(best - 1)];
      const double b = score_[static_cast<std::size_t>(best)];
      const double c = score_[static_cast<std::size_t>(best + 1)];
      const double den = a - 2 * b + c;
      if (den < 0) shift += 0.5 * (a - c) / den;
    }
    return shift;
  }

 private:
  static void gradient(const std::vector<float>& v, std::vector<float>& g) {
    const std::size_t n = v.size();
    for (std::size_t x = 1; x + 1 < n; ++x) g[x] = 0.5f * (v[x + 1] - v[x - 1]);
  }

  void finishRow() {
    gradient(h_[0], gh_);
    gradient(l_[0], gl_);
    const int m = max_ + 1;
    for (int s = -max_; s <= max_; ++s) {
      // Four partial sums: independent chains the compiler can pipeline.
      std::array<double, 4> acc{};
      const float* gh = gh_.data();
      const float* gl = gl_.data() + s;
      int x = m;
      for (; x + 4 <= w_ - m; x += 4)
        for (int j = 0; j < 4; ++j)
          acc[static_cast<std::size_t>(j)] += static_cast<double>(gh[x + j] * gl[x + j]);
      for (; x < w_ - m; ++x) acc[0] += static_cast<double>(gh[x] * gl[x]);
      score_[static_cast<std::size_t>(s + max_)] += acc[0] + acc[1] + acc[2] + acc[3];
    }
    std::swap(h_[0], h_[1]);
    std::swap(l_[0], l_[1]);
    std::fill(h_[1].begin(), h_[1].end(), 0.0f);
    std::fill(l_[1].begin(), l_[1].end(), 0.0f);
    ++base_;
  }

  int w_;
  int max_;
  AreaAxis axis_;
  std::vector<double> score_;
  std::array<std::vector<float>, 2> h_, l_;  // the group row being summed, and the next
  std::vector<float> gh_, gl_;
  int base_ = 0;
};

// Resamples a row at x + shift (linear, edges replicated), in place.
void shiftRow(float* r, int w, double shift) {
  const int i0 = static_cast<int>(std::floor(shift));
  const float f = static_cast<float>(shift - i0);
  auto at = [r, w](int x) { return r[std::clamp(x, 0, w - 1)]; };
  // Reading ahead of the write position (or behind it, going backwards) keeps it in place.
  if (i0 >= 0) {
    const int inner = std::max(0, w - i0 - 1);
    for (int x = 0; x < inner; ++x) r[x] = (1.0f - f) * r[x + i0] + f * r[x + i0 + 1];
    for (int x = inner; x < w; ++x) r[x] = (1.0f - f) * at(x + i0) + f * at(x + i0 + 1);
  } else {
    const int inner = std::min(w, -i0);
    for (int x = w - 1; x >= inner; --x) r[x] = (1.0f - f) * r[x + i0] + f * at(x + i0 + 1);
    for (int x = inner - 1; x >= 0; --x) r[x] = (1.0f - f) * at(x + i0) + f * at(x + i0 + 1);
  }
}

// Everything measured on the 16-bit pixels before α: bad channels, air columns, dose.
struct Prepared {
  std::vector<std::vector<RowMap>> maps;
  std::vector<char> bad;
  std::vector<int> airCols;
  std::vector<std::vector<float>> offsets;
  std::vector<std::vector<std::array<float, 2>>> rowAir;  // per plane, per row: α offset a + b·x
  int referenceRows = 0;
};

// Each row's residual α in open beam before and after the conveyance (after the dose
// correction), as a line a + b·x between the two: a scanner's normalisation leaves per-channel
// offsets (a level below full scale, module banding, gain drifting during the scan) that the
// open beam at both ends measures. A constant when only one end has open beam; empty when
// neither has.
std::vector<std::array<float, 2>> rowAirLevels(const cv::Mat& plane, Signal signal,
                                               const std::vector<RowMap>& maps,
                                               const std::vector<float>& offset,
                                               const std::vector<int>& airCols,
                                               const std::vector<char>& bad) {
  // The open beam before the conveyance (a run from the first column) and after it (a run
  // to the last); columns found open inside the conveyance do not count.
  std::vector<int> sorted = airCols;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> lead;
  std::vector<int> tail;
  for (std::size_t i = 0; i < sorted.size() && sorted[i] == static_cast<int>(i); ++i)
    lead.push_back(sorted[i]);
  for (std::size_t k = 0;
       k < sorted.size() && sorted[sorted.size() - 1 - k] == plane.cols - 1 - static_cast<int>(k);
       ++k)
    if (lead.empty() || sorted[sorted.size() - 1 - k] > lead.back())
      tail.push_back(sorted[sorted.size() - 1 - k]);
  const std::size_t minCols = 4;
  if (lead.size() < minCols && tail.size() < minCols) return {};
  const float* lut = minusLogTable().data();
  auto alphaAt = [&](int y, int x) {
    const std::uint16_t v = plane.ptr<std::uint16_t>(y)[x];
    const float base =
        signal == Signal::kTransmission
            ? lut[v]
            : -std::log(std::max(transmissionAt(maps[static_cast<std::size_t>(y)], v), 1e-6f));
    return base + offset[static_cast<std::size_t>(x)];
  };
  auto level = [&](int y, const std::vector<int>& xs, double& centre) {
    std::vector<float> v;
    const std::size_t stride = (xs.size() + 63) / 64;
    double sum = 0;
    for (std::size_t i = 0; i < xs.size(); i += stride) {
      v.push_back(alphaAt(y, xs[i]));
      sum += xs[i];
    }
    centre = sum / static_cast<double>(v.size());
    return median(v);
  };
  std::vector<std::array<float, 2>> out(static_cast<std::size_t>(plane.rows), {0.0f, 0.0f});
  for (int y = 0; y < plane.rows; ++y) {
    if (bad[static_cast<std::size_t>(y)]) continue;
    double c0 = 0;
    double c1 = 0;
    const bool haveLead = lead.size() >= minCols;
    const bool haveTail = tail.size() >= minCols;
    const double l0 = haveLead ? level(y, lead, c0) : 0.0;
    const double l1 = haveTail ? level(y, tail, c1) : 0.0;
    if (haveLead && haveTail && c1 > c0) {
      const double b = (l1 - l0) / (c1 - c0);
      out[static_cast<std::size_t>(y)] = {static_cast<float>(l0 - b * c0), static_cast<float>(b)};
    } else {
      out[static_cast<std::size_t>(y)] = {static_cast<float>(haveLead ? l0 : l1), 0.0f};
    }
  }
  return out;
}

tl::expected<Prepared, std::string> prepare(const ScanBundle& bundle,
                                            const Calibration* calibration,
                                            const PreprocessParams& params) {
  if (bundle.planes.empty() || bundle.planes.size() > 2)
    return tl::unexpected(std::string("expected 1 or 2 planes"));
  const cv::Mat& first = bundle.planes.front();
  if (first.empty() || first.type() != CV_16UC1)
    return tl::unexpected(std::string("planes must be CV_16UC1"));
  for (const cv::Mat& p : bundle.planes)
    if (p.size() != first.size() || p.type() != CV_16UC1)
      return tl::unexpected(std::string("planes differ in size or type"));
  if (bundle.meta.signal == Signal::kRaw &&
      (calibration == nullptr || calibration->energies.size() < bundle.planes.size()))
    return tl::unexpected(std::string("raw signal needs a dark/air calibration for every energy"));
  Prepared pr;
  const std::size_t planes = bundle.planes.size();
  pr.bad.assign(static_cast<std::size_t>(first.rows), 0);
  for (std::size_t i = 0; i < planes; ++i) {
    const ChannelCalibration* cal =
        bundle.meta.signal == Signal::kRaw ? &calibration->energies[i] : nullptr;
    auto m = rowMaps(bundle.planes[i], bundle.meta.signal, cal, pr.bad);
    if (!m) return tl::unexpected(m.error());
    pr.maps.push_back(std::move(*m));
  }
  std::vector<OpenCounts> open;
  // Air columns come from the first plane; every plane needs its rows' counts for the dose.
  for (std::size_t i = 0; i < planes; ++i)
    open.push_back(countOpen(bundle.planes[i], pr.maps[i], params, i == 0));
  pr.airCols = findAirColumns(open.front().perColumn, first.rows, params);
  for (std::size_t i = 0; i < planes; ++i)
    markBadRows(bundle.planes[i], pr.maps[i], pr.airCols, open[i].constantRow, params, pr.bad);
  for (std::size_t i = 0; i < planes; ++i) {
    pr.offsets.emplace_back();
    pr.referenceRows = doseOffsets(bundle.planes[i], pr.maps[i], open[i].perRow, pr.bad, params,
                                   pr.offsets.back());
    pr.rowAir.push_back(rowAirLevels(bundle.planes[i], bundle.meta.signal, pr.maps[i],
                                     pr.offsets.back(), pr.airCols, pr.bad));
  }
  return pr;
}

std::vector<int> badRowList(const std::vector<char>& bad) {
  std::vector<int> out;
  for (std::size_t y = 0; y < bad.size(); ++y)
    if (bad[y]) out.push_back(static_cast<int>(y));
  return out;
}

}  // namespace

double estimateShift(const cv::Mat& alphaHigh, const cv::Mat& alphaLow, int maxShiftPx) {
  ShiftEstimator est(alphaHigh.cols, alphaHigh.rows, maxShiftPx);
  if (!est.usable()) return 0.0;
  for (int y = 0; y < alphaHigh.rows; ++y)
    est.feed(y, alphaHigh.ptr<float>(y), alphaLow.ptr<float>(y));
  return est.shift();
}

tl::expected<Attenuation, std::string> computeAttenuation(const ScanBundle& bundle,
                                                          const Calibration* calibration,
                                                          const PreprocessParams& params) {
  auto pr = prepare(bundle, calibration, params);
  if (!pr) return tl::unexpected(pr.error());
  Attenuation out;
  out.airColumns = static_cast<int>(pr->airCols.size());
  out.referenceRows = pr->referenceRows;
  out.badRows = badRowList(pr->bad);
  std::vector<cv::Mat> alpha;
  for (std::size_t i = 0; i < bundle.planes.size(); ++i) {
    AlphaRows rows(bundle.planes[i], bundle.meta.signal, pr->maps[i], pr->offsets[i], pr->bad,
                   params.transmissionFloor, pr->rowAir[i]);
    cv::Mat a(bundle.planes[i].size(), CV_32F);
    for (int y = 0; y < a.rows; ++y) rows.row(y, a.ptr<float>(y));
    alpha.push_back(a);
  }
  out.alphaHigh = alpha[0];
  AirNoise noise(pr->airCols, out.alphaHigh.rows);
  for (int y = 0; y < out.alphaHigh.rows; ++y)
    noise.feed(y, out.alphaHigh.ptr<float>(y), out.alphaHigh.ptr<float>(std::max(0, y - 1)),
               out.alphaHigh.cols);
  out.airNoiseAlpha = noise.sigma();
  if (alpha.size() == 2) {
    out.alphaLow = alpha[1];
    out.lowShiftPx = estimateShift(out.alphaHigh, out.alphaLow, params.maxShiftPx);
    if (std::abs(out.lowShiftPx) > 0.05)
      for (int y = 0; y < out.alphaLow.rows; ++y)
        shiftRow(out.alphaLow.ptr<float>(y), out.alphaLow.cols, out.lowShiftPx);
  }
  return out;
}

tl::expected<GridAttenuation, std::string> computeGridAttenuation(const ScanBundle& bundle,
                                                                  const Calibration* calibration,
                                                                  cv::Size grid,
                                                                  const PreprocessParams& params) {
  auto pr = prepare(bundle, calibration, params);
  if (!pr) return tl::unexpected(pr.error());
  const cv::Size full = bundle.planes.front().size();
  grid = cv::Size(std::clamp(grid.width, 1, full.width), std::clamp(grid.height, 1, full.height));
  GridAttenuation out;
  out.airColumns = static_cast<int>(pr->airCols.size());
  out.referenceRows = pr->referenceRows;
  out.badRows = badRowList(pr->bad);
  const bool dual = bundle.planes.size() == 2;
  std::vector<AlphaRows> rows;
  for (std::size_t i = 0; i < bundle.planes.size(); ++i)
    rows.emplace_back(bundle.planes[i], bundle.meta.signal, pr->maps[i], pr->offsets[i], pr->bad,
                      params.transmissionFloor, pr->rowAir[i]);
  const auto w = static_cast<std::size_t>(full.width);
  std::vector<float> high(w), low(w), prev(w), diff(w);
  std::vector<std::int32_t> shadeIndex(w);
  constexpr int kSteps = 64;
  constexpr int kEntries = 16 * kSteps;
  std::array<std::uint8_t, kEntries> shade{};
  for (int i = 0; i < kEntries; ++i)
    shade[static_cast<std::size_t>(i)] = cv::saturate_cast<std::uint8_t>(
        255.0f * (0.15f + 0.85f * std::exp(-0.3f * (static_cast<float>(i) + 0.5f) / kSteps)));
  out.preview.create(full, CV_8U);
  out.alphaHigh = cv::Mat::zeros(grid, CV_32F);
  // Low energy: the grid averages of α_L and of its forward differences; the registered
  // plane, linear interpolation at x + s with |s| < 1, is α_L + s·Δ⁺ (s ≥ 0) or α_L + s·Δ⁻
  // (s < 0), and both are linear, so the shift applies to the averages exactly.
  cv::Mat lowA, lowFwd, lowBwd;
  if (dual) {
    lowA = cv::Mat::zeros(grid, CV_32F);
    lowFwd = cv::Mat::zeros(grid, CV_32F);
    lowBwd = cv::Mat::zeros(grid, CV_32F);
  }
  const AreaAxis ax(full.width, grid.width);
  const AreaAxis ay(full.height, grid.height);
  const int span = full.width / grid.width;
  const bool evenCells = span * grid.width == full.width;
  std::vector<float> cells(static_cast<std::size_t>(grid.width) + 1);
  std::vector<float> fwdCells(cells.size()), bwdCells(cells.size());
  // The area average of `row` along x, cell by cell.
  auto reduce = [&](const float* row, std::vector<float>& dst) {
    if (evenCells) {
      const float inv = 1.0f / static_cast<float>(span);
      const int cellsX = grid.width;
      float* d = dst.data();
      if (span == 4) {  // the common case (5 mm pixels, 20 mm cells): the same sums, vectorised
        for (int k = 0; k < cellsX; ++k) {
          const float* p = row + static_cast<std::ptrdiff_t>(k) * 4;
          d[k] = ((((0.0f + p[0]) + p[1]) + p[2]) + p[3]) * inv;
        }
        return;
      }
      for (int k = 0; k < cellsX; ++k) {
        const float* p = row + static_cast<std::ptrdiff_t>(k) * span;
        float sum = 0.0f;
        for (int j = 0; j < span; ++j) sum += p[j];
        d[k] = sum * inv;
      }
      return;
    }
    std::fill(dst.begin(), dst.end(), 0.0f);
    for (std::size_t x = 0; x < w; ++x) {
      const auto k = static_cast<std::size_t>(ax.index[x]);
      dst[k] += ax.first[x] * row[x];
      dst[k + 1] += ax.second[x] * row[x];
    }
  };
  // Adds cell values, weighted by row y's share, into grid `g`.
  auto addCells = [&](const std::vector<float>& c, cv::Mat& g, int y) {
    const int k = ay.index[static_cast<std::size_t>(y)];
    const float a = ay.first[static_cast<std::size_t>(y)];
    const float b = ay.second[static_cast<std::size_t>(y)];
    float* r0 = g.ptr<float>(k);
    for (int x = 0; x < g.cols; ++x) r0[x] += a * c[static_cast<std::size_t>(x)];
    if (b > 0) {
      float* r1 = g.ptr<float>(k + 1);
      for (int x = 0; x < g.cols; ++x) r1[x] += b * c[static_cast<std::size_t>(x)];
    }
  };
  auto accumulate = [&](const float* row, cv::Mat& g, int y) {
    reduce(row, cells);
    addCells(cells, g, y);
  };
  ShiftEstimator est(full.width, full.height, params.maxShiftPx);
  AirNoise noise(pr->airCols, full.height);
  for (int y = 0; y < full.height; ++y) {
    rows[0].row(y, high.data());
    noise.feed(y, high.data(), prev.data(), full.width);
    // Clamped in float first (α can be huge or negative; NaN goes to 0), then an integer
    // index: this loop vectorises, the table look-up after it cannot.
    for (std::size_t x = 0; x < w; ++x) {
      float v = high[x] * static_cast<float>(kSteps);
      v = v > 0.0f ? v : 0.0f;
      v = v < kEntries - 1.0f ? v : kEntries - 1.0f;
      shadeIndex[x] = static_cast<std::int32_t>(v);
    }
    // Plain pointers: a byte store may alias anything, so the vector's and the table's
    // addresses would otherwise be reloaded after every pixel.
    std::uint8_t* pv = out.preview.ptr<std::uint8_t>(y);
    const std::int32_t* index = shadeIndex.data();
    const std::uint8_t* shades = shade.data();
    for (std::size_t x = 0; x < w; ++x) pv[x] = shades[index[x]];
    accumulate(high.data(), out.alphaHigh, y);
    if (dual) {
      rows[1].row(y, low.data());
      if (est.usable()) est.feed(y, high.data(), low.data());
      accumulate(low.data(), lowA, y);
      if (evenCells) {
        // Differences telescope: a cell's mean Δ⁺ is (α(end) − α(start)) / span, edges replicated.
        const float inv = 1.0f / static_cast<float>(span);
        const int last = full.width - 1;
        for (int k = 0; k < grid.width; ++k) {
          const int x0 = k * span;
          const int x1 = x0 + span;
          fwdCells[static_cast<std::size_t>(k)] =
              (low[static_cast<std::size_t>(std::min(x1, last))] -
               low[static_cast<std::size_t>(x0)]) *
              inv;
          bwdCells[static_cast<std::size_t>(k)] =
              (low[static_cast<std::size_t>(x1 - 1)] -
               low[static_cast<std::size_t>(std::max(x0 - 1, 0))]) *
              inv;
        }
      } else {
        for (std::size_t x = 0; x + 1 < w; ++x) diff[x] = low[x + 1] - low[x];
        diff[w - 1] = 0.0f;
        reduce(diff.data(), fwdCells);
        // Δ⁻(x) = Δ⁺(x − 1), zero at the first column.
        for (std::size_t x = w - 1; x > 0; --x) diff[x] = diff[x - 1];
        diff[0] = 0.0f;
        reduce(diff.data(), bwdCells);
      }
      addCells(fwdCells, lowFwd, y);
      addCells(bwdCells, lowBwd, y);
    }
    std::swap(high, prev);
  }
  out.airNoiseAlpha = noise.sigma();
  if (!dual) return out;
  out.lowShiftPx = est.usable() ? est.shift() : 0.0;
  const double s = out.lowShiftPx;
  if (std::abs(s) <= 0.05) {
    out.alphaLow = lowA;
  } else if (std::abs(s) < 1.0) {
    out.alphaLow = lowA + s * (s >= 0 ? lowFwd : lowBwd);
  } else {
    // A shift of a column or more: a second pass over the low plane, shifting each row.
    out.alphaLow = cv::Mat::zeros(grid, CV_32F);
    for (int y = 0; y < full.height; ++y) {
      rows[1].row(y, low.data());
      shiftRow(low.data(), full.width, s);
      accumulate(low.data(), out.alphaLow, y);
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

Material classifyMaterial(double alphaHigh, double alphaLow, const MaterialCurves& c,
                          double opaqueAlpha) {
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
