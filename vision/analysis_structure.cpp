// The scan's structure (object, body, roof, deck, end walls) and its organic reference.
#include "vision/analysis_context.h"

#include "vision/select.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace lanegate::vision::detail {

std::vector<float> valuesUnder(const cv::Mat& m, const cv::Mat& mask) {
  std::vector<float> out;
  for (int y = 0; y < m.rows; ++y) {
    const float* r = m.ptr<float>(y);
    const std::uint8_t* k = mask.empty() ? nullptr : mask.ptr<std::uint8_t>(y);
    for (int x = 0; x < m.cols; ++x)
      if (k == nullptr || k[x]) out.push_back(r[x]);
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  if (std::abs(v) >= 10) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  }
  return buf;
}

std::array<double, 4> Context::boxMm(const cv::Rect& cells) const {
  return {cells.x * cellX, cells.y * cellY, cells.width * cellX, cells.height * cellY};
}

std::array<int, 4> Context::boxPx(const cv::Rect& cells) const {
  const std::array<double, 4> mm = boxMm(cells);
  return {static_cast<int>(mm[0] / pxAlong), static_cast<int>(mm[1] / pxVert),
          std::max(1, static_cast<int>(std::lround(mm[2] / pxAlong))),
          std::max(1, static_cast<int>(std::lround(mm[3] / pxVert)))};
}

Finding Context::make(const std::string& kind, const std::string& detector, const cv::Rect& cells,
                      double score, Material m) const {
  Finding f;
  f.kind = kind;
  f.detector = detector;
  f.score = std::clamp(score, 0.0, 1.0);
  f.material = m;
  f.boxMm = boxMm(cells);
  f.boxPx = boxPx(cells);
  return f;
}

// Whether an excess is surely of higher Z than organics: both its own α_L/α_H and that of
// the whole path through it sit below the scan's organic reference by half the water–iron
// gap. Absolute dual-energy curves shift with the beam's spectrum by as much as that gap,
// so the reference is measured in the scan (see findOrganicReference).
bool Context::metalLike(double excessRatio, double pathRatio, double pathAlpha) const {
  // A scanner calibrated on step wedges knows its own boundary.
  if (p.curves)
    return excessRatio < p.curves->inorganicMetal && pathRatio < p.curves->inorganicMetal;
  if (organicCurve.empty()) return false;
  // The excess's own ratio is hardened by what lies behind it; the path's ratio is compared
  // with organics of the same thickness.
  const auto b = std::min(static_cast<std::size_t>(std::max(0.0, pathAlpha) / organicBin),
                          organicCurve.size() - 1);
  const double reference = organicCurve[b];
  // Below ~0.02 (a 4/2 MV pair, Compton throughout) the gap drowns in the ratio's spread
  // between organic materials.
  return ratioGap >= 0.02 && reference > 0 && pathRatio < reference - 0.75 * ratioGap;
}

// The scan's organic reference: the upper end (97th percentile) of α_L/α_H over well-measured,
// smooth cells. Every road or air conveyance carries organic matter (tyres, wooden floors,
// seats, goods), and organics have the highest ratio of the materials found in cargo below lead.
void findOrganicReference(Context& c) {
  if (!c.dual) return;
  cv::Mat lo;
  cv::Mat hi;
  const cv::Mat k3 = cv::getStructuringElement(cv::MORPH_RECT, cv::Size(3, 3));
  cv::erode(c.a, lo, k3);
  cv::dilate(c.a, hi, k3);
  // Ratios by thickness: beam hardening lowers α_L/α_H as α_H grows, for every material, so
  // matter is compared with what the scan shows at the same thickness: the median there (a
  // cargo scan is mostly organic goods, wood and rubber; where it is mostly steel the median
  // is steel and nothing is called metal).
  constexpr double kBin = 0.25;
  const int bins = std::max(1, static_cast<int>(std::ceil(0.6 * c.opaqueAlpha / kBin)));
  std::vector<std::vector<float>> byBin(static_cast<std::size_t>(bins));
  std::vector<float> all;
  for (int y = 0; y < c.a.rows; ++y)
    for (int x = 0; x < c.a.cols; ++x) {
      const double h = at(c.a, y, x);
      // Thick enough for a precise ratio, thin enough to stay clear of the opaque limit, and
      // away from edges where the high/low registration leaves residue.
      if (h < 0.5 || h > 0.6 * c.opaqueAlpha || at(hi, y, x) - at(lo, y, x) > 0.1 * h) continue;
      const auto r = static_cast<float>(at(c.al, y, x) / h);
      byBin[std::min(static_cast<std::size_t>(h / kBin), byBin.size() - 1)].push_back(r);
      all.push_back(r);
    }
  if (all.size() < 200) return;
  c.organicRatio = quantile(all, 0.97);
  c.organicCurve.assign(byBin.size(), -1.0);
  for (std::size_t b = 0; b < byBin.size(); ++b)
    if (byBin[b].size() >= 50) c.organicCurve[b] = quantile(byBin[b], 0.5);
  // Bins with too few cells take their nearest measured neighbour's value.
  for (std::size_t b = 0; b < c.organicCurve.size(); ++b) {
    if (c.organicCurve[b] >= 0) continue;
    for (std::size_t k = 1; k < c.organicCurve.size(); ++k) {
      if (b >= k && c.organicCurve[b - k] >= 0 && byBin[b - k].size() >= 50) {
        c.organicCurve[b] = c.organicCurve[b - k];
        break;
      }
      if (b + k < c.organicCurve.size() && byBin[b + k].size() >= 50) {
        c.organicCurve[b] = quantile(byBin[b + k], 0.5);
        break;
      }
    }
  }
  c.organicBin = kBin;
  const double eh = effectiveEnergy(c.energyHigh, c.p.effectiveEnergyFraction);
  const double el = effectiveEnergy(c.energyLow, c.p.effectiveEnergyFraction);
  c.ratioGap = massAttenuation(Basis::kWater, el) / massAttenuation(Basis::kWater, eh) -
               massAttenuation(Basis::kIron, el) / massAttenuation(Basis::kIron, eh);
}

WallLines::WallLines(const Context& c) : c_(c) {
  const Structure& st = c.st;
  if (st.interiorX0 < 0) return;
  y0_ = st.interiorY0 + (st.interiorY1 - st.interiorY0) / 10;
  y1_ = st.interiorY1 - (st.interiorY1 - st.interiorY0) / 10;
  x0_ = std::max(0, st.bodyX0);
  x1_ = std::min(c.a.cols - 1, st.bodyX1);
  near0_ = std::max(1, cells(60.0, c.cellX));
  near1_ = std::max(near0_ + 2, cells(200.0, c.cellX));
  minStep_ = 10.0 * c.minStepAlpha();
  col_.assign(static_cast<std::size_t>(c.a.cols), 0.0);
  if (y1_ - y0_ < 5) return;
  std::vector<float> v;
  for (int x = x0_; x <= x1_; ++x) {
    v.clear();
    for (int y = y0_; y <= y1_; ++y) v.push_back(c.a.at<float>(y, x));
    col_[static_cast<std::size_t>(x)] = median(v);
  }
}

double WallLines::side(int x, int dir) const {
  std::vector<float> v;
  for (int k = near0_; k <= near1_; ++k) {
    const int xs = x + dir * k;
    if (xs >= x0_ && xs <= x1_) v.push_back(static_cast<float>(col_[static_cast<std::size_t>(xs)]));
  }
  return v.empty() ? 1e9 : median(v);
}

double WallLines::step(int x) const {
  if (y1_ - y0_ < 5 || x <= x0_ || x >= x1_) return -1e9;
  return col_[static_cast<std::size_t>(x)] - std::max(side(x, -1), side(x, 1));
}

bool WallLines::fullHeight(int x) const {
  if (y1_ - y0_ < 5) return false;
  // A wall stands over the whole height: the line must stand out of both sides in 80 % of
  // the rows (a load's uneven surface only makes the column medians look like a line).
  int rows = 0;
  std::vector<float> v;
  for (int y = y0_; y <= y1_; ++y) {
    double sideLevel = 0;
    for (const int dir : {-1, 1}) {
      v.clear();
      for (int k = near0_; k <= near1_; ++k) {
        const int xs = x + dir * k;
        if (xs >= x0_ && xs <= x1_) v.push_back(c_.a.at<float>(y, xs));
      }
      sideLevel = std::max(sideLevel, v.empty() ? 1e9 : median(v));
    }
    if (at(c_.a, y, x) - sideLevel > 0.5 * minStep_) ++rows;
  }
  return rows >= 0.8 * (y1_ - y0_ + 1);
}

// ---- structure -----------------------------------------------------------------------

void findStructure(Context& c) {
  const cv::Mat& a = c.a;
  Structure& st = c.st;
  const double occ = std::max(0.02, 6.0 * c.sigmaCell(0));
  cv::Mat occupied = a > occ;
  cv::Mat colCount;
  cv::reduce(occupied / 255, colCount, 0, cv::REDUCE_SUM, CV_32S);
  const int minRows = std::max(2, static_cast<int>(std::lround(60.0 / c.cellY)));
  std::vector<int> top(static_cast<std::size_t>(a.cols), -1);
  for (int x = 0; x < a.cols; ++x) {
    if (colCount.at<int>(0, x) < minRows) continue;
    if (st.objectX0 < 0) st.objectX0 = x;
    st.objectX1 = x;
    for (int y = 0; y + 1 < a.rows; ++y)
      if (occupied.at<std::uint8_t>(y, x) && occupied.at<std::uint8_t>(y + 1, x)) {
        top[static_cast<std::size_t>(x)] = y;
        break;
      }
  }
  if (st.objectX0 < 0) return;
  // Gaps: runs of empty columns inside the object (e.g. between cab and trailer).
  int run = -1;
  for (int x = st.objectX0; x <= st.objectX1; ++x) {
    const bool empty = colCount.at<int>(0, x) < minRows;
    if (empty && run < 0) run = x;
    if (!empty && run >= 0) {
      st.gaps.push_back({run, x - 1});
      run = -1;
    }
  }
  // The body: the longest run of columns whose top edge stays level (a box has a flat roof).
  const int tol = std::max(1, static_cast<int>(std::lround(60.0 / c.cellY)));
  int bestStart = -1;
  int bestLen = 0;
  for (int x = st.objectX0; x <= st.objectX1;) {
    if (top[static_cast<std::size_t>(x)] < 0) {
      ++x;
      continue;
    }
    // The running median of the tops so far (element n/2 of them sorted), from a histogram.
    std::vector<int> hist(static_cast<std::size_t>(a.rows), 0);
    int count = 0;
    auto runningMedian = [&]() {
      int seen = 0;
      for (int v = 0; v < a.rows; ++v) {
        seen += hist[static_cast<std::size_t>(v)];
        if (seen > count / 2) return v;
      }
      return a.rows - 1;
    };
    int e = x;
    while (e <= st.objectX1 && top[static_cast<std::size_t>(e)] >= 0) {
      ++hist[static_cast<std::size_t>(top[static_cast<std::size_t>(e)])];
      ++count;
      if (std::abs(top[static_cast<std::size_t>(e)] - runningMedian()) > tol) break;
      ++e;
    }
    if (e - x > bestLen) {
      bestLen = e - x;
      bestStart = x;
    }
    x = std::max(e, x + 1);
  }
  if (bestLen * c.cellX < 1000.0) return;
  st.bodyX0 = bestStart;
  st.bodyX1 = bestStart + bestLen - 1;
  std::vector<float> tops;
  for (int x = st.bodyX0; x <= st.bodyX1; ++x)
    tops.push_back(static_cast<float>(top[static_cast<std::size_t>(x)]));
  st.roofY = static_cast<int>(median(tops));
  st.cabFirst = (st.bodyX0 - st.objectX0) * c.cellX > 1000.0;
  // Floor: the densest row just above the body's underside. The underside is the lowest row
  // that nearly all of the body's columns still attenuate (below it only wheels remain); a loaded
  // body can be denser than its deck, so the search stays within 600 mm of the underside.
  cv::Mat body = a(cv::Range::all(), cv::Range(st.bodyX0, st.bodyX1 + 1));
  const int y0 = st.roofY + std::max(2, static_cast<int>(std::lround(800.0 / c.cellY)));
  // Each row's 10th percentile along the body: "dense along nearly the whole body".
  std::vector<double> rowLow(static_cast<std::size_t>(a.rows), 0.0);
  int under = -1;
  for (int y = y0; y < a.rows; ++y) {
    std::vector<float> row(body.ptr<float>(y), body.ptr<float>(y) + body.cols);
    rowLow[static_cast<std::size_t>(y)] = quantile(std::move(row), 0.1);
    // Wheels fill many columns but leave gaps; the body and its chassis fill nine in ten.
    if (rowLow[static_cast<std::size_t>(y)] > occ) under = y;
  }
  if (under < 0) return;
  st.underY = under;
  // The deck: a thin dense line along the whole body, the topmost such line within 700 mm
  // above the body's underside (chassis rails and their flanges are lines too, lower down).
  // A line is denser than the rows 80 mm above and below it, in nine columns of ten.
  const int window = std::max(y0, under - cells(700.0, c.cellY));
  const int d = std::max(2, cells(80.0, c.cellY));
  std::vector<double> line(static_cast<std::size_t>(a.rows), -1e9);
  double bestLine = 0;
  std::vector<float> diff(static_cast<std::size_t>(body.cols));
  for (int y = window; y <= under; ++y) {
    const float* r = body.ptr<float>(y);
    const float* up = body.ptr<float>(std::max(0, y - d));
    const float* dn = body.ptr<float>(std::min(a.rows - 1, y + d));
    for (int x = 0; x < body.cols; ++x)
      diff[static_cast<std::size_t>(x)] = r[x] - std::max(up[x], dn[x]);
    line[static_cast<std::size_t>(y)] = quantile(diff, 0.1);
    bestLine = std::max(bestLine, line[static_cast<std::size_t>(y)]);
  }
  if (bestLine > 2.0 * c.minStepAlpha())
    for (int y = window; y <= under && st.floorY < 0; ++y)
      if (line[static_cast<std::size_t>(y)] >= 0.4 * bestLine) {
        // The line's densest row.
        int peak = y;
        while (peak + 1 <= under &&
               line[static_cast<std::size_t>(peak + 1)] > line[static_cast<std::size_t>(peak)])
          ++peak;
        st.floorY = peak;
      }
  // Without such a line (a load as dense as the deck on it): the topmost row dense along the body.
  double best = -1;
  for (int y = window; y <= under; ++y) best = std::max(best, rowLow[static_cast<std::size_t>(y)]);
  for (int y = window; y <= under && st.floorY < 0; ++y)
    if (rowLow[static_cast<std::size_t>(y)] >= 0.6 * best) st.floorY = y;
  // Walls: scan inwards from each end while the columns are far denser than the body.
  const int iy0 = st.roofY + std::max(1, static_cast<int>(std::ceil(60.0 / c.cellY)));
  const int iy1 = st.floorY - 2;  // one cell for the blurred top edge of the deck
  if (iy1 - iy0 < 3) return;
  std::vector<float> colMed(static_cast<std::size_t>(st.bodyX1 - st.bodyX0 + 1));
  for (int x = st.bodyX0; x <= st.bodyX1; ++x) {
    std::vector<float> v;
    for (int y = iy0; y <= iy1; ++y) v.push_back(a.at<float>(y, x));
    colMed[static_cast<std::size_t>(x - st.bodyX0)] = static_cast<float>(median(v));
  }
  const double base = median(colMed);
  // End walls (corner posts, end wall, doors) are at most ~250 mm thick: the wall band is
  // the run of dense columns from each end, and the interior starts one cell after it even
  // when the run goes on into dense goods stowed against the wall.
  const int maxWall = std::max(2, static_cast<int>(std::lround(kMaxEndWallMm / c.cellX)));
  const int len = st.bodyX1 - st.bodyX0 + 1;
  const int searchWall =
      std::min(len / 3, std::max(maxWall + 2, static_cast<int>(std::lround(1000.0 / c.cellX))));
  if (len < 3 * maxWall + 4) return;
  auto wallRun = [&](int from, int step) {
    double peak = 0;
    for (int k = 0; k < maxWall; ++k)
      peak = std::max(peak, static_cast<double>(colMed[static_cast<std::size_t>(from + step * k)]));
    // Corner posts are far lighter than the end wall seen edge-on but still structure.
    const double thr = base + 0.1 * (peak - base);
    // The body's outline may cut the first cells partly: the run starts at the first dense one.
    int k = 0;
    while (k < 2 && static_cast<double>(colMed[static_cast<std::size_t>(from + step * k)]) <= thr)
      ++k;
    while (
        k<searchWall&& static_cast<double>(colMed[static_cast<std::size_t>(from + step * k)])> thr)
      ++k;
    return k;
  };
  st.frontRun = wallRun(0, 1);
  st.rearRun = wallRun(len - 1, -1);
  st.interiorX0 = st.bodyX0 + std::min(st.frontRun, maxWall) + 1;
  st.interiorX1 = st.bodyX1 - std::min(st.rearRun, maxWall) - 1;
  st.interiorY0 = iy0;
  st.interiorY1 = iy1;
  // A cab inside the body's outline (a van): a full-height bulkhead between one metre and
  // 45 % of the way along from the front; the cargo space starts behind it.
  const WallLines lines(c);
  const int from = st.interiorX0 + cells(1000.0, c.cellX);
  const int to = st.interiorX0 + static_cast<int>(0.45 * (st.interiorX1 - st.interiorX0));
  int bulkhead = -1;
  double strongest = 0;
  for (int x = from; x <= to; ++x) {
    const double s = lines.step(x);
    if (s > lines.minStep() && s > strongest && lines.fullHeight(x)) {
      strongest = s;
      bulkhead = x;
    }
  }
  if (bulkhead > 0) {
    st.interiorX0 = bulkhead + std::max(1, cells(60.0, c.cellX));
    st.cabFirst = true;
  }
}

}  // namespace lanegate::vision::detail
