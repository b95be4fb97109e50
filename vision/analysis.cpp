#include "vision/analysis.h"

#include "vision/select.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace lanegate::vision {
namespace {

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

double at(const cv::Mat& m, int y, int x) { return static_cast<double>(m.at<float>(y, x)); }

int oddCells(double mm, double cell) { return std::max(1, static_cast<int>(std::lround(mm / cell)) | 1); }

// Numbers for reasons: whole numbers above 10, one decimal below.
std::string num(double v) {
  char buf[32];
  if (std::abs(v) >= 10) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  }
  return buf;
}

// Everything the finding detectors share: the scan on a physical grid plus its physics.
struct Context {
  const AnalysisParams& p;
  double pxAlong = 5, pxVert = 5;  // mm per original pixel
  double cellX = 20, cellY = 20;   // mm per grid cell
  cv::Mat a;                       // α_H on the grid
  cv::Mat al;                      // α_L on the grid (empty: single energy)
  bool dual = false;
  double sigmaPx = 0.01;           // open-beam σ of α per original pixel
  double pxPerCell = 1;
  double muOrganic = 0.04;         // cm²/g at the high beam's effective energy
  double opaqueAlpha = 9.0;
  MaterialCurves curves;
  double energyHigh = 6, energyLow = 4;  // endpoint energies, MeV
  bool declaredEmpty = false;      // the manifest says the body is empty
  double organicRatio = 0;         // α_L/α_H of the scan's organic matter (0: unknown)
  double ratioGap = 0;             // water − iron μ ratio at the beams' effective energies
  Structure st;                    // in grid cells during analysis
  std::vector<Finding> findings;

  explicit Context(const AnalysisParams& params) : p(params) {}

  double cellAreaCm2() const { return cellX * cellY / 100.0; }
  // Quantum noise of α for one grid cell at attenuation α (Poisson: σ ∝ 1/√T).
  double sigmaCell(double alpha) const {
    return sigmaPx * std::exp(0.5 * std::clamp(alpha, 0.0, opaqueAlpha)) / std::sqrt(pxPerCell);
  }
  double minStepAlpha() const { return p.minStepGcm2 * muOrganic; }

  Finding make(const std::string& kind, const cv::Rect& cells, double score, Material m) const {
    Finding f;
    f.kind = kind;
    f.score = std::clamp(score, 0.0, 1.0);
    f.material = m;
    f.boxMm = {cells.x * cellX, cells.y * cellY, cells.width * cellX, cells.height * cellY};
    f.boxPx = {static_cast<int>(f.boxMm[0] / pxAlong), static_cast<int>(f.boxMm[1] / pxVert),
               std::max(1, static_cast<int>(std::lround(f.boxMm[2] / pxAlong))),
               std::max(1, static_cast<int>(std::lround(f.boxMm[3] / pxVert)))};
    return f;
  }

  // Whether an excess is surely of higher Z than organics: both its own α_L/α_H and that of
  // the whole path through it sit below the scan's organic reference by half the water–iron
  // gap. Absolute dual-energy curves shift with the beam's spectrum by as much as that gap,
  // so the reference is measured in the scan (see findOrganicReference).
  bool metalLike(double excessRatio, double pathRatio) const {
    // A scanner calibrated on step wedges knows its own boundary.
    const double boundary = p.curves ? p.curves->inorganicMetal : organicRatio - 0.5 * ratioGap;
    if (!p.curves && organicRatio <= 0) return false;
    return excessRatio < boundary && pathRatio < boundary;
  }
};

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
  std::vector<float> ratios;
  for (int y = 0; y < c.a.rows; ++y)
    for (int x = 0; x < c.a.cols; ++x) {
      const double h = at(c.a, y, x);
      // Thick enough for a precise ratio, thin enough to stay clear of the opaque limit, and
      // away from edges where the high/low registration leaves residue.
      if (h < 0.5 || h > 0.6 * c.opaqueAlpha || at(hi, y, x) - at(lo, y, x) > 0.1 * h) continue;
      ratios.push_back(static_cast<float>(at(c.al, y, x) / h));
    }
  if (ratios.size() < 200) return;
  c.organicRatio = quantile(ratios, 0.97);
  const double eh = effectiveEnergy(c.energyHigh, c.p.effectiveEnergyFraction);
  const double el = effectiveEnergy(c.energyLow, c.p.effectiveEnergyFraction);
  c.ratioGap = massAttenuation(Basis::kWater, el) / massAttenuation(Basis::kWater, eh) -
               massAttenuation(Basis::kIron, el) / massAttenuation(Basis::kIron, eh);
}

// ---- structure -----------------------------------------------------------------------

// Depth of a deck and its cross members.
constexpr double kFloorCavityMm = 190.0;

// Depth of deck, cross members and chassis above a body's underside.
constexpr double kUnderStructureMm = 600.0;

// Thickest plausible end wall of a container or trailer box: corner post plus corrugated wall.
constexpr double kMaxEndWallMm = 250.0;

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
  for (int x = st.bodyX0; x <= st.bodyX1; ++x) tops.push_back(static_cast<float>(top[static_cast<std::size_t>(x)]));
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
  // Deck, cross members and chassis sit within ~500 mm above the underside; the deck is the
  // topmost of their dense rows (a chassis flange can be as dense, but lies below it).
  const int window = std::max(y0, under - static_cast<int>(std::lround(kUnderStructureMm / c.cellY)));
  double best = -1;
  // "Dense" means along nearly the whole body (its 10th percentile): goods above the deck
  // rarely fill every column, the deck always does.
  for (int y = window; y <= under; ++y) best = std::max(best, rowLow[static_cast<std::size_t>(y)]);
  // Under a deck the cross members alternate with cavities: the first row of that contrast
  // (its 95th against its 25th percentile along the body) marks the deck just above it, even
  // under a load as dense as the deck.
  std::vector<double> rowSpread(static_cast<std::size_t>(a.rows), 0.0);
  double maxSpread = 0;
  for (int y = window; y <= under; ++y) {
    std::vector<float> row(body.ptr<float>(y), body.ptr<float>(y) + body.cols);
    rowSpread[static_cast<std::size_t>(y)] = quantile(row, 0.95) - quantile(row, 0.25);
    maxSpread = std::max(maxSpread, rowSpread[static_cast<std::size_t>(y)]);
  }
  if (maxSpread > 10.0 * c.minStepAlpha())
    for (int y = window + 1; y <= under && st.floorY < 0; ++y)
      if (rowSpread[static_cast<std::size_t>(y)] >= 0.5 * maxSpread) st.floorY = y - 1;
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
  const int searchWall = std::min(len / 3, std::max(maxWall + 2, static_cast<int>(std::lround(1000.0 / c.cellX))));
  if (len < 3 * maxWall + 4) return;
  auto wallRun = [&](int from, int step) {
    double peak = 0;
    for (int k = 0; k < maxWall; ++k) peak = std::max(peak, static_cast<double>(colMed[static_cast<std::size_t>(from + step * k)]));
    // Corner posts are far lighter than the end wall seen edge-on but still structure.
    const double thr = base + 0.1 * (peak - base);
    // The body's outline may cut the first cells partly: the run starts at the first dense one.
    int k = 0;
    while (k < 2 && static_cast<double>(colMed[static_cast<std::size_t>(from + step * k)]) <= thr) ++k;
    while (k < searchWall && static_cast<double>(colMed[static_cast<std::size_t>(from + step * k)]) > thr) ++k;
    return k;
  };
  st.frontRun = wallRun(0, 1);
  st.rearRun = wallRun(len - 1, -1);
  st.interiorX0 = st.bodyX0 + std::min(st.frontRun, maxWall) + 1;
  st.interiorX1 = st.bodyX1 - std::min(st.rearRun, maxWall) - 1;
  st.interiorY0 = iy0;
  st.interiorY1 = iy1;
}

// ---- findings ------------------------------------------------------------------------

void findOpaque(Context& c) {
  const Structure& st = c.st;
  cv::Rect roi = st.interiorX0 >= 0 ? cv::Rect(st.interiorX0, st.interiorY0, st.interiorX1 - st.interiorX0 + 1,
                                               st.interiorY1 - st.interiorY0 + 1)
                                    : cv::Rect(0, 0, c.a.cols, c.a.rows);
  cv::Mat mask = c.a(roi) > c.opaqueAlpha;
  if (cv::countNonZero(mask) == 0) return;
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S, cv::CCL_GRANA);
  for (int i = 1; i < n; ++i) {
    const double area = stats.at<int>(i, cv::CC_STAT_AREA) * c.cellAreaCm2();
    if (area < c.p.opaqueMinAreaCm2) continue;
    const cv::Rect r(stats.at<int>(i, cv::CC_STAT_LEFT) + roi.x, stats.at<int>(i, cv::CC_STAT_TOP) + roi.y,
                     stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT));
    Finding f = c.make("opaque", r, 1.0, Material::kUnknown);
    f.reason = "The beam did not penetrate a " + num(r.width * c.cellX / 10.0) + " x " + num(r.height * c.cellY / 10.0) +
               " cm region, so its contents cannot be cleared.";
    c.findings.push_back(f);
  }
}

struct TopHat {
  cv::Mat closed, residual;
};

// Excess attenuation over a background that keeps anything wider than a stash: closing
// bridges carton gaps, opening with a stash-sized square removes small dense blocks.
TopHat topHat(const Context& c, const cv::Rect& roi) {
  TopHat t;
  const cv::Mat gap = cv::getStructuringElement(cv::MORPH_RECT, cv::Size(oddCells(c.p.gapMm, c.cellX), oddCells(c.p.gapMm, c.cellY)));
  const cv::Mat block = cv::getStructuringElement(
      cv::MORPH_RECT, cv::Size(oddCells(c.p.maxBlockMm, c.cellX), oddCells(c.p.maxBlockMm, c.cellY)));
  cv::morphologyEx(c.a(roi), t.closed, cv::MORPH_CLOSE, gap);
  cv::Mat bg;
  cv::morphologyEx(t.closed, bg, cv::MORPH_OPEN, block);
  t.residual = t.closed - bg;
  return t;
}

// A candidate block measured against the ring of cells just outside it: a stash is a step
// in areal density over a locally uniform surround (the goods it sits in, or air), whereas a
// denser carton, a bump on the load's surface or a part among parts has a surround that
// varies as much as the step.
struct Candidate {
  cv::Rect box;          // grid cells, interior coordinates
  int area = 0;          // cells
  double ringLevel = 0;  // median α_H of the surround
  double step = 0;       // mean α_H excess over the surround
  double ratio = 0;      // α_L excess / α_H excess (0: single energy)
  double pathRatio = 0;  // α_L / α_H of the whole path through the block
  double spread = 0;     // robust σ of the surround, floored by quantum noise
  double massKg = 0;     // excess mass, water-equivalent
  double contrast = 0;   // step / spread
  double score = 0;
};

Candidate measureCandidate(const Context& c, const cv::Mat& closed, const cv::Mat& closedL, const cv::Mat& labels,
                           int label, const cv::Rect& box) {
  Candidate k;
  k.box = box;
  // Leave one cell for the blur of the block's edge, then a ring ~80 mm wide.
  const int gx = 1;
  const int gy = 1;
  const int wx = std::max(2, static_cast<int>(std::lround(80.0 / c.cellX)));
  const int wy = std::max(2, static_cast<int>(std::lround(80.0 / c.cellY)));
  const cv::Rect win = cv::Rect(box.x - gx - wx, box.y - gy - wy, box.width + 2 * (gx + wx), box.height + 2 * (gy + wy)) &
                       cv::Rect(0, 0, closed.cols, closed.rows);
  const cv::Mat inside = labels(win) == label;
  cv::Mat near;
  cv::Mat far;
  cv::dilate(inside, near, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(2 * gx + 1, 2 * gy + 1)));
  cv::dilate(inside, far, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(2 * (gx + wx) + 1, 2 * (gy + wy) + 1)));
  const cv::Mat ring = far & ~near;
  std::vector<float> rv = valuesUnder(closed(win), ring);
  if (rv.size() < 8) return k;
  k.ringLevel = median(rv);
  // The 10–90 % range, not the MAD: a surround made of a few uniform pieces at different
  // levels (neighbouring cartons, load and air at a surface) must count as varied.
  k.spread = std::max((quantile(rv, 0.9) - quantile(rv, 0.1)) / 2.563, c.sigmaCell(k.ringLevel));
  k.area = cv::countNonZero(inside);
  double sumH = 0;
  double sumL = 0;
  double pathH = 0;
  double pathL = 0;
  const double ringL = c.dual ? median(valuesUnder(closedL(win), ring)) : 0.0;
  for (int y = 0; y < win.height; ++y)
    for (int x = 0; x < win.width; ++x) {
      if (!inside.at<std::uint8_t>(y, x)) continue;
      sumH += at(closed, y + win.y, x + win.x) - k.ringLevel;
      pathH += at(closed, y + win.y, x + win.x);
      if (c.dual) {
        sumL += at(closedL, y + win.y, x + win.x) - ringL;
        pathL += at(closedL, y + win.y, x + win.x);
      }
    }
  k.step = sumH / std::max(1, k.area);
  k.pathRatio = c.dual && pathH > 0 ? pathL / pathH : 0.0;
  k.ratio = c.dual && sumH > 0 ? sumL / sumH : 0.0;
  k.massKg = sumH * c.cellAreaCm2() / c.muOrganic / 1000.0;
  k.contrast = k.step / k.spread;
  return k;
}

void findBlocks(Context& c) {
  const Structure& st = c.st;
  if (st.interiorX0 < 0 || st.interiorX1 - st.interiorX0 < 4) return;
  const cv::Rect roi(st.interiorX0, st.interiorY0, st.interiorX1 - st.interiorX0 + 1, st.interiorY1 - st.interiorY0 + 1);
  const TopHat th = topHat(c, roi);
  cv::Mat closedL;
  if (c.dual)
    cv::morphologyEx(c.al(roi), closedL, cv::MORPH_CLOSE,
                     cv::getStructuringElement(cv::MORPH_RECT, cv::Size(oddCells(c.p.gapMm, c.cellX), oddCells(c.p.gapMm, c.cellY))));
  // The smallest step worth a look: a few σ of quantum noise, and never below minStepGcm2.
  cv::Mat thr(th.closed.size(), CV_32F);
  for (int y = 0; y < thr.rows; ++y)
    for (int x = 0; x < thr.cols; ++x)
      thr.at<float>(y, x) = static_cast<float>(std::max(c.p.stepSigma * c.sigmaCell(at(th.closed, y, x)), c.minStepAlpha()));
  // A stash inside a denser carton only separates from it at a higher level, so candidates
  // come from several thresholds (levels doubling), each judged against its own surround.
  std::vector<Candidate> kept;
  const double maxCells = 1.2 * c.p.maxBlockMm;
  for (double level = 1.0; level <= 64.0; level *= 2.0) {
    const cv::Mat mask = th.residual > thr * level;
    if (cv::countNonZero(mask) == 0) break;
    cv::Mat labels, stats, centroids;
    const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S, cv::CCL_GRANA);
    for (int i = 1; i < n; ++i) {
      const cv::Rect r(stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP),
                       stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT));
      const double wMm = r.width * c.cellX;
      const double hMm = r.height * c.cellY;
      const int area = stats.at<int>(i, cv::CC_STAT_AREA);
      const double fill = static_cast<double>(area) / (r.width * r.height);
      const double aspect = std::max(wMm, hMm) / std::max(1.0, std::min(wMm, hMm));
      if (wMm > maxCells || hMm > maxCells || fill < 0.4 || aspect > 5.0) continue;
      if (area * c.cellAreaCm2() < 50.0) continue;  // smaller than a single brick's face
      Candidate k = measureCandidate(c, th.closed, closedL, labels, i, r);
      if (k.area == 0 || k.massKg < c.p.minMassKg || k.step < c.minStepAlpha()) continue;
      if (k.contrast < c.p.blockContrast) continue;
      // In a body declared empty any block is a mismatch, whatever it is made of.
      if (c.dual && !c.declaredEmpty && c.metalLike(k.ratio, k.pathRatio)) continue;
      k.score = (1.0 - std::exp(-k.massKg / c.p.massScaleKg)) *
                std::min(1.0, 0.5 + 0.5 * (k.contrast - c.p.blockContrast) / c.p.blockContrast);
      kept.push_back(k);
    }
  }
  // One finding per place: the best-scoring candidate among overlapping ones.
  std::sort(kept.begin(), kept.end(), [](const Candidate& x, const Candidate& y) { return x.score > y.score; });
  std::vector<cv::Rect> taken;
  const double wallZoneMm = 150.0;
  for (const Candidate& k : kept) {
    bool overlap = false;
    for (const cv::Rect& t : taken) overlap = overlap || (t & k.box).area() > 0;
    if (overlap) continue;
    taken.push_back(k.box);
    const cv::Rect& r = k.box;
    const double wMm = r.width * c.cellX;
    const double hMm = r.height * c.cellY;
    const Material m = c.dual ? Material::kOrganic : Material::kUnknown;
    const bool nearFront = r.x * c.cellX < wallZoneMm;
    const bool nearRear = (roi.width - r.x - r.width) * c.cellX < wallZoneMm;
    const cv::Rect box = r + roi.tl();
    if ((nearFront || nearRear) && hMm > 2.0 * wMm) {
      // Tall and thin against an end wall: a false wall compartment.
      const bool front = nearFront == st.cabFirst || !nearRear;
      Finding f = c.make("structural", box, k.score, m);
      f.massKgEst = k.massKg;
      f.reason = "About " + num(k.massKg) + " kg of " + std::string(materialName(m)) + " material sits against the " +
                 (front ? "front" : "rear") + " wall in a " + num(wMm / 10.0) +
                 " cm deep band that the empty structure does not explain.";
      c.findings.push_back(f);
      continue;
    }
    Finding f = c.make("organic_mass", box, k.score, m);
    f.massKgEst = k.massKg;
    f.reason = "A compact " + num(std::max(wMm, hMm) / 10.0) + " cm block adds about " + num(k.massKg) + " kg of " +
               std::string(materialName(m)) + " areal density, " + num(k.contrast) +
               " times the variation of the load around it.";
    c.findings.push_back(f);
  }
}

// Mass in the floor beyond the empty deck. The deck's structure (cross members) repeats
// along the body, so each column of the floor band is compared with the same phase of the
// neighbouring periods; what remains is mass the empty structure does not explain.
void findFloor(Context& c) {
  const Structure& st = c.st;
  if (st.floorY < 0 || st.interiorX0 < 0) return;
  // The cavities between the cross members under the deck (wheels start lower); the deck's
  // own row is left out, since the load's bottom edge blurs into it.
  const int y0 = st.floorY + 1;
  const int y1 = std::min({c.a.rows - 1, std::max(st.floorY, st.underY),
                           st.floorY + static_cast<int>(std::lround(kFloorCavityMm / c.cellY))});
  const cv::Rect roi(st.interiorX0, y0, st.interiorX1 - st.interiorX0 + 1, y1 - y0 + 1);
  if (roi.width < 20) return;
  cv::Mat prof;
  cv::reduce(c.a(roi), prof, 0, cv::REDUCE_SUM, CV_64F);
  const int n = prof.cols;
  const double* p = prof.ptr<double>(0);
  // The period: the autocorrelation peak between 150 mm and 1.2 m.
  double mean = 0;
  for (int x = 0; x < n; ++x) mean += p[x];
  mean /= n;
  const int lag0 = std::max(2, static_cast<int>(std::lround(150.0 / c.cellX)));
  const int lag1 = std::min(n / 3, static_cast<int>(std::lround(1200.0 / c.cellX)));
  std::vector<double> ac(static_cast<std::size_t>(std::max(0, lag1 + 2)), 0.0);
  double var = 0;
  for (int x = 0; x < n; ++x) var += (p[x] - mean) * (p[x] - mean);
  double period = 0;
  double bestAc = 0.3;  // a weaker peak is no periodic structure
  for (int lag = lag0; lag <= lag1; ++lag) {
    double sum = 0;
    for (int x = 0; x + lag < n; ++x) sum += (p[x] - mean) * (p[x + lag] - mean);
    ac[static_cast<std::size_t>(lag)] = var > 0 ? sum / var * n / (n - lag) : 0.0;
  }
  for (int lag = lag0 + 1; lag < lag1; ++lag) {
    const double v = ac[static_cast<std::size_t>(lag)];
    if (v > bestAc && v >= ac[static_cast<std::size_t>(lag - 1)] && v >= ac[static_cast<std::size_t>(lag + 1)]) {
      const double l = ac[static_cast<std::size_t>(lag - 1)];
      const double r = ac[static_cast<std::size_t>(lag + 1)];
      const double den = l - 2 * v + r;
      period = lag + (std::abs(den) > 1e-12 ? 0.5 * (l - r) / den : 0.0);
      break;  // the first strong peak is the fundamental
    }
  }
  auto sample = [&](const double* q, double x) {
    const int i = static_cast<int>(std::floor(x));
    const double f = x - i;
    return q[i] * (1 - f) + q[std::min(i + 1, n - 1)] * f;
  };
  // Template: the lower quartile of the same phase in up to ten periods either side (a long
  // stash covers several of them); without a period, the lower quartile of the whole deck.
  std::vector<double> tmpl(static_cast<std::size_t>(n));
  std::vector<double> member(static_cast<std::size_t>(n));
  std::vector<float> all(p, p + n);
  const double flat = quantile(all, 0.25);
  for (int x = 0; x < n; ++x) {
    std::vector<float> v;
    for (int k = -10; period > 0 && k <= 10; ++k) {
      const double xs = x + k * period;
      if (k == 0 || xs < 0 || xs > n - 1) continue;
      v.push_back(static_cast<float>(sample(p, xs)));
    }
    const bool periodic = v.size() >= 4;
    tmpl[static_cast<std::size_t>(x)] = periodic ? quantile(v, 0.25) : flat;
    member[static_cast<std::size_t>(x)] = periodic ? median(v) : flat;
  }
  std::vector<float> dev(static_cast<std::size_t>(n));
  for (int x = 0; x < n; ++x) dev[static_cast<std::size_t>(x)] = static_cast<float>(p[x] - tmpl[static_cast<std::size_t>(x)]);
  std::vector<float> absDev = dev;
  for (float& v : absDev) v = std::abs(v);
  const double spread = 1.4826 * median(absDev);
  const double thr = std::max({6.0 * spread, c.minStepAlpha() * 2.0,
                               c.p.stepSigma * c.sigmaCell(mean / roi.height) * std::sqrt(roi.height)});
  // Cross members are steel seen end-on, near the opaque limit; their steep edges leave a
  // residue wherever the phase is not exact, so their columns (and one either side) are not
  // judged. A stash longer than a member still shows between them.
  std::vector<bool> skip(static_cast<std::size_t>(n), false);
  for (int x = 0; x < n; ++x)
    if (member[static_cast<std::size_t>(x)] - flat > 3.0 * thr)
      for (int k = std::max(0, x - 1); k <= std::min(n - 1, x + 1); ++k) skip[static_cast<std::size_t>(k)] = true;
  // The deck's ends rest on the end sills and corner castings, which no period explains.
  const int sill = static_cast<int>(std::lround(150.0 / c.cellX));
  for (int x = 0; x < n; ++x)
    if (skip[static_cast<std::size_t>(x)] || x < sill || x >= n - sill) dev[static_cast<std::size_t>(x)] = 0.0f;
  for (int x = 0; x < n;) {
    if (static_cast<double>(dev[static_cast<std::size_t>(x)]) <= thr) {
      ++x;
      continue;
    }
    int e = x;
    double sumH = 0;
    while (e < n && static_cast<double>(dev[static_cast<std::size_t>(e)]) > 0.5 * thr) {
      sumH += static_cast<double>(dev[static_cast<std::size_t>(e)]);
      ++e;
    }
    const double massKg = sumH * c.cellAreaCm2() / c.muOrganic / 1000.0;
    // No material test here: behind the deck's plywood and steel the excess ratio is set by
    // beam hardening more than by the excess itself, and a floor cavity holds nothing legitimate.
    if (massKg >= c.p.minMassKg) {
      const double contrast = sumH / (e - x) / thr;
      const double score = (1.0 - std::exp(-massKg / c.p.massScaleKg)) * std::min(1.0, contrast);
      Finding f = c.make("structural", cv::Rect(roi.x + x, roi.y, e - x, roi.height), score, Material::kUnknown);
      f.massKgEst = massKg;
      f.reason = "The floor carries about " + num(massKg) + " kg more over " + num((e - x) * c.cellX / 10.0) +
                 " cm than the same place between the other cross members, as a filled floor cavity would.";
      c.findings.push_back(f);
    }
    x = e;
  }
}

// A false front wall: a second full-height wall line a little inside the end wall (a sheet
// seen edge-on attenuates like a wall, whatever it is made of).
void findFalseWalls(Context& c) {
  const Structure& st = c.st;
  if (st.interiorX0 < 0 || st.floorY < 0) return;
  const int y0 = st.interiorY0 + (st.interiorY1 - st.interiorY0) / 10;
  const int y1 = st.interiorY1 - (st.interiorY1 - st.interiorY0) / 10;
  if (y1 - y0 < 5) return;
  const int maxWall = std::max(2, static_cast<int>(std::lround(kMaxEndWallMm / c.cellX)));
  const int search = static_cast<int>(std::lround(800.0 / c.cellX));
  const int near0 = std::max(1, static_cast<int>(std::lround(60.0 / c.cellX)));
  const int near1 = std::max(near0 + 2, static_cast<int>(std::lround(200.0 / c.cellX)));
  // Column medians over the middle 80 % of the interior height: a wall line spans it all.
  const int x0 = std::max(0, st.bodyX0);
  const int x1 = std::min(c.a.cols - 1, st.bodyX1);
  std::vector<double> col(static_cast<std::size_t>(c.a.cols), 0.0);
  for (int x = x0; x <= x1; ++x) {
    std::vector<float> v;
    for (int y = y0; y <= y1; ++y) v.push_back(c.a.at<float>(y, x));
    col[static_cast<std::size_t>(x)] = median(v);
  }
  auto sideLevel = [&](int x, int dir) {
    std::vector<float> v;
    for (int k = near0; k <= near1; ++k) {
      const int xs = x + dir * k;
      if (xs < x0 || xs > x1) continue;
      v.push_back(static_cast<float>(col[static_cast<std::size_t>(xs)]));
    }
    return v.empty() ? 1e9 : median(v);
  };
  // A wall stands over the whole height: the line must stand out of both sides in 80 % of
  // the rows (a load's uneven surface only makes the column medians look like a line).
  auto fullHeight = [&](int x) {
    int rows = 0;
    for (int y = y0; y <= y1; ++y) {
      double side = 0;
      for (const int dir : {-1, 1}) {
        std::vector<float> v;
        for (int k = near0; k <= near1; ++k) {
          const int xs = x + dir * k;
          if (xs >= x0 && xs <= x1) v.push_back(c.a.at<float>(y, xs));
        }
        side = std::max(side, v.empty() ? 1e9 : median(v));
      }
      if (at(c.a, y, x) - side > 0.5 * 10.0 * c.minStepAlpha()) ++rows;
    }
    return rows >= 0.8 * (y1 - y0 + 1);
  };
  // The smallest wall line worth reporting: 30 g/cm² water-equivalent averaged over a cell,
  // a tenth of what a 1.5 mm steel sheet or 18 mm plywood seen edge-on across 2.3 m gives.
  const double ridgeMin = 10.0 * c.minStepAlpha();
  for (const bool front : {true, false}) {
    if (st.cabFirst && !front) continue;  // with a cab, the front is the end behind it
    const int run = front ? st.frontRun : st.rearRun;
    const int dir = front ? 1 : -1;
    const int end = front ? st.bodyX0 : st.bodyX1;
    int lineAt = -1;
    double lineStep = 0;
    for (int k = std::min(run, maxWall) + 1; k <= std::min(run, maxWall) + search; ++k) {
      const int x = end + dir * k;
      if (x <= x0 || x >= x1) break;
      const double step = col[static_cast<std::size_t>(x)] - std::max(sideLevel(x, -1), sideLevel(x, 1));
      if (step > ridgeMin && step > lineStep && fullHeight(x)) {
        lineStep = step;
        lineAt = x;
      }
    }
    if (lineAt < 0) continue;
    // The compartment: from the end wall band to the line.
    const int inner = lineAt;
    const int a0 = std::min(end + dir * (std::min(run, maxWall) + 1), inner);
    const int a1 = std::max(end + dir * (std::min(run, maxWall) + 1), inner);
    const cv::Rect box(a0, st.interiorY0, a1 - a0 + 1, st.interiorY1 - st.interiorY0 + 1);
    // Content of the compartment over the side walls' level (the emptiest cells inside).
    std::vector<float> inside = valuesUnder(c.a(cv::Rect(st.interiorX0, st.interiorY0, st.interiorX1 - st.interiorX0 + 1,
                                                         st.interiorY1 - st.interiorY0 + 1)),
                                            cv::Mat());
    const double wallAlpha = quantile(inside, 0.05);
    double sum = 0;
    for (int y = box.y; y < box.br().y; ++y)
      for (int x = box.x + (!front ? 1 : 0); x < box.br().x - (front ? 1 : 0); ++x)
        sum += std::max(0.0, at(c.a, y, x) - wallAlpha);
    const double massKg = sum * c.cellAreaCm2() / c.muOrganic / 1000.0;
    const double depthCm = (a1 - a0 + 1) * c.cellX / 10.0;
    Finding f = c.make("structural", box, 0.6 + 0.4 * (1.0 - std::exp(-massKg / c.p.massScaleKg)), Material::kUnknown);
    f.massKgEst = massKg;
    f.reason = "A second wall stands " + num(depthCm) + " cm inside the " + std::string(front ? "front" : "rear") +
               " end wall, enclosing about " + num(massKg) + " kg: a false wall compartment.";
    c.findings.push_back(f);
  }
}

// Smallest excess inside a tyre that counts, g/cm² water-equivalent.
constexpr double kTyreStepGcm2 = 10.0;

// Tyres are rotationally symmetric about their hub: what breaks the symmetry of a tyre,
// and does not continue outside it, is something inside the tyre.
void findTyres(Context& c) {
  Structure& st = c.st;
  if (st.floorY < 0 || st.objectX0 < 0) return;
  const int y0 = std::min(c.a.rows - 1, st.floorY + std::max(2, static_cast<int>(std::lround(250.0 / c.cellY))));
  const cv::Rect band(st.objectX0, y0, st.objectX1 - st.objectX0 + 1, c.a.rows - y0);
  if (band.height < 10 || band.width < 10) return;
  // Hubs (and the axle behind them, seen end-on) are the densest compact spots below the body.
  const cv::Mat dense = c.a(band) > 0.5 * c.opaqueAlpha;
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(dense, labels, stats, centroids, 8, CV_32S, cv::CCL_GRANA);
  std::vector<std::array<double, 3>> found;  // peak α, cx, cy in cells of the full grid
  for (int i = 1; i < n; ++i) {
    const double w = stats.at<int>(i, cv::CC_STAT_WIDTH) * c.cellX;
    const double h = stats.at<int>(i, cv::CC_STAT_HEIGHT) * c.cellY;
    if (w > 300 || h > 300) continue;
    double peak = 0;
    const cv::Rect r(stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP), stats.at<int>(i, cv::CC_STAT_WIDTH),
                     stats.at<int>(i, cv::CC_STAT_HEIGHT));
    cv::minMaxLoc(c.a(r + band.tl()), nullptr, &peak);
    found.push_back({peak, band.x + centroids.at<double>(i, 0) + 0.5, band.y + centroids.at<double>(i, 1) + 0.5});
  }
  // One hub per wheel: the densest spot wins over anything dense within a tyre's radius of it
  // (a well-filled tyre can be dense too).
  std::sort(found.begin(), found.end(), [](const auto& x, const auto& y) { return x[0] > y[0]; });
  std::vector<std::array<double, 2>> hubs;
  for (const auto& f : found) {
    bool near = false;
    for (const auto& hb : hubs) {
      const double dx = (f[1] - hb[0]) * c.cellX;
      const double dy = (f[2] - hb[1]) * c.cellY;
      near = near || dx * dx + dy * dy < 600.0 * 600.0;
    }
    if (!near) hubs.push_back({f[1], f[2]});
  }
  const double occ = std::max(0.02, 6.0 * c.sigmaCell(0));
  const double bin = std::min(c.cellX, c.cellY);
  const int bins = static_cast<int>(800.0 / bin) + 1;
  int wheels = 0;
  for (std::size_t h = 0; h < hubs.size(); ++h) {
    const auto& w = hubs[h];
    auto radius = [&](int x, int y) {
      const double dx = (x + 0.5 - w[0]) * c.cellX;
      const double dy = (y + 0.5 - w[1]) * c.cellY;
      return std::sqrt(dx * dx + dy * dy);
    };
    // Cells nearer another hub belong to that wheel.
    auto own = [&](int x, int y) {
      const double r = radius(x, y);
      for (std::size_t o = 0; o < hubs.size(); ++o) {
        if (o == h) continue;
        const double dx = (x + 0.5 - hubs[o][0]) * c.cellX;
        const double dy = (y + 0.5 - hubs[o][1]) * c.cellY;
        if (dx * dx + dy * dy < r * r) return false;
      }
      return true;
    };
    const int rx = static_cast<int>(std::ceil(800.0 / c.cellX));
    const int ry = static_cast<int>(std::ceil(800.0 / c.cellY));
    const cv::Rect box = cv::Rect(static_cast<int>(w[0]) - rx, static_cast<int>(w[1]) - ry, 2 * rx + 1, 2 * ry + 1) &
                         cv::Rect(0, 0, c.a.cols, c.a.rows);
    // A chassis beam crossing the wheel shows on both sides of it; projections add, so its
    // level at that row is taken off before the wheel's symmetry is judged. The level is the
    // lower envelope of the row 700 and 900 mm out on either side: anything else there (an
    // engine block, a fuel tank, the next wheel) only adds to the beam, so the least of the
    // four is at most the beam. Where the beam ends on one side nothing is taken off, and the
    // tyre cells it crosses are judged by what continues from outside (below).
    // Asked for every cell around the wheel, so kept per row (−1: not yet; a level is ≥ 0).
    std::vector<double> beamOfRow(static_cast<std::size_t>(c.a.rows), -1.0);
    auto beamAcross = [&](int y) {
      double& cached = beamOfRow[static_cast<std::size_t>(y)];
      if (cached >= 0.0) return cached;
      double level = 1e9;
      for (const double mm : {-900.0, -700.0, 700.0, 900.0}) {
        const int xs = static_cast<int>(w[0]) + static_cast<int>(std::lround(mm / c.cellX));
        level = std::min(level, xs < 0 || xs >= c.a.cols ? 0.0 : at(c.a, y, xs));
      }
      cached = level > 2.0 * c.minStepAlpha() ? level : 0.0;
      return cached;
    };
    auto alpha = [&](int x, int y) { return at(c.a, y, x) - beamAcross(y); };
    std::vector<std::vector<float>> rings(static_cast<std::size_t>(bins));
    for (int y = box.y; y < box.br().y; ++y)
      for (int x = box.x; x < box.br().x; ++x) {
        const double r = radius(x, y);
        if (r < 800.0 && own(x, y)) rings[static_cast<std::size_t>(r / bin)].push_back(static_cast<float>(alpha(x, y)));
      }
    std::vector<double> medH(static_cast<std::size_t>(bins)), spread(static_cast<std::size_t>(bins));
    for (std::size_t b = 0; b < rings.size(); ++b) {
      medH[b] = median(rings[b]);
      std::vector<float> dev = rings[b];
      for (float& d : dev) d = std::abs(d - static_cast<float>(medH[b]));
      spread[b] = 1.4826 * median(dev);
    }
    // The tyre's outer radius: where the radial median falls to air.
    int outer = 0;
    for (int b = static_cast<int>(150.0 / bin); b < bins && medH[static_cast<std::size_t>(b)] > occ; ++b) outer = b;
    const double rOut = (outer + 1) * bin;
    if (rOut < 250.0 || rOut > 700.0) continue;
    ++wheels;
    // The level just outside the tyre along the ray through (x, y): a chassis beam or a
    // neighbouring wheel continues there, a tyre's contents do not, so such rays are skipped.
    auto outsideAlong = [&](int x, int y, double r) {
      const double dx = (x + 0.5 - w[0]) * c.cellX;
      const double dy = (y + 0.5 - w[1]) * c.cellY;
      double sum = 0;
      int count = 0;
      for (const double extra : {60.0, 120.0}) {
        const int ox = static_cast<int>(std::floor(w[0] + dx * (rOut + extra) / r / c.cellX));
        const int oy = static_cast<int>(std::floor(w[1] + dy * (rOut + extra) / r / c.cellY));
        if (ox < 0 || oy < 0 || ox >= c.a.cols || oy >= c.a.rows) continue;
        sum += alpha(ox, oy);
        ++count;
      }
      return count > 0 ? sum / count : 0.0;
    };
    // The excess over the tread's radial median where the ray through (x, y) crosses the
    // tyre's outer edge (half a cell inside it).
    auto rimExcess = [&](int x, int y, double r) {
      const double dx = (x + 0.5 - w[0]) * c.cellX;
      const double dy = (y + 0.5 - w[1]) * c.cellY;
      const double rr = rOut - 0.5 * bin;
      const int ox = static_cast<int>(std::floor(w[0] + dx * rr / r / c.cellX));
      const int oy = static_cast<int>(std::floor(w[1] + dy * rr / r / c.cellY));
      if (ox < 0 || oy < 0 || ox >= c.a.cols || oy >= c.a.rows) return 1e9;
      return alpha(ox, oy) - medH[std::min(medH.size() - 1, static_cast<std::size_t>(rr / bin))];
    };
    // Whatever touches the tyre from outside (an engine, a fuel tank) is not in it: tyre cells
    // within ~60 mm of non-air outside the tyre are not judged.
    cv::Mat external = cv::Mat::zeros(box.size(), CV_8U);
    for (int y = box.y; y < box.br().y; ++y)
      for (int x = box.x; x < box.br().x; ++x)
        if (radius(x, y) > rOut + 0.5 * bin && own(x, y) && alpha(x, y) > 2.0 * c.minStepAlpha())
          external.at<std::uint8_t>(y - box.y, x - box.x) = 255;
    const cv::Mat outsideParts = external.clone();
    cv::dilate(external, external,
               cv::getStructuringElement(cv::MORPH_RECT, cv::Size(2 * std::max(1, static_cast<int>(std::lround(60.0 / c.cellX))) + 1,
                                                                  2 * std::max(1, static_cast<int>(std::lround(60.0 / c.cellY))) + 1)));
    cv::Mat excess = cv::Mat::zeros(box.size(), CV_32F);
    cv::Mat hot = cv::Mat::zeros(box.size(), CV_8U);
    for (int y = box.y; y < box.br().y; ++y)
      for (int x = box.x; x < box.br().x; ++x) {
        const double r = radius(x, y);
        // The tyre itself: skip the rim, and one cell at the outer edge for centring errors.
        if (r >= rOut - bin || r < 0.5 * rOut || !own(x, y)) continue;
        if (external.at<std::uint8_t>(y - box.y, x - box.x)) continue;
        const auto b = static_cast<std::size_t>(r / bin);
        const double d = alpha(x, y) - medH[b];
        // Contents worth hiding fill a tyre's cavity over at least ~10 cm of its width:
        // ≥ 10 g/cm² water-equivalent, far above what edge residue leaves.
        const double t = std::max({4.0 * spread[b], c.p.stepSigma * c.sigmaCell(medH[b]), kTyreStepGcm2 * c.muOrganic});
        // Structure outside the tyre along this ray explains the excess only if it enters the
        // tyre: then the tread cell where the ray crosses the tyre's edge carries it too. A fuel
        // tank or a neighbouring part that merely touches the tyre leaves the tread clear.
        if (d > t && outsideAlong(x, y, r) > 2.0 * c.minStepAlpha() && rimExcess(x, y, r) > 0.5 * d) continue;
        if (d > t) {
          excess.at<float>(y - box.y, x - box.x) = static_cast<float>(d);
          hot.at<std::uint8_t>(y - box.y, x - box.x) = 255;
        }
      }
    cv::Mat l2, s2, c2;
    const int m2 = cv::connectedComponentsWithStats(hot, l2, s2, c2, 8, CV_32S, cv::CCL_GRANA);
    for (int i = 1; i < m2; ++i) {
      double sumH = 0;
      for (int y = 0; y < l2.rows; ++y)
        for (int x = 0; x < l2.cols; ++x)
          if (l2.at<int>(y, x) == i) sumH += static_cast<double>(excess.at<float>(y, x));
      const double massKg = sumH * c.cellAreaCm2() / c.muOrganic / 1000.0;
      if (massKg < c.p.minMassKg) continue;
      // A part that overlaps the tyre (an engine block's corner) adds its own areal density
      // inside the tyre's outline as outside it: an excess about as dense as the structure
      // touching it from outside (within two cells of the skipped edge band) is that structure.
      // "About": from half (the blurred edge of a small corner) to one and a half times.
      {
        const cv::Mat comp = l2 == i;
        cv::Mat nearComp;
        const int reach = 2 + std::max(1, static_cast<int>(std::lround(60.0 / std::min(c.cellX, c.cellY))));
        cv::dilate(comp, nearComp, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(2 * reach + 1, 2 * reach + 1)));
        std::vector<float> touching;
        for (int y = 0; y < nearComp.rows; ++y)
          for (int x = 0; x < nearComp.cols; ++x)
            if (nearComp.at<std::uint8_t>(y, x) && outsideParts.at<std::uint8_t>(y, x))
              touching.push_back(static_cast<float>(alpha(x + box.x, y + box.y)));
        const double meanExcess = sumH / std::max(1, s2.at<int>(i, cv::CC_STAT_AREA));
        const double outsideLevel = touching.size() >= 2 ? median(touching) : 0.0;
        if (outsideLevel > 0 && meanExcess >= 0.5 * outsideLevel && meanExcess <= 1.5 * outsideLevel) continue;
      }
      const double score = 1.0 - std::exp(-massKg / c.p.massScaleKg);
      const cv::Rect r(s2.at<int>(i, cv::CC_STAT_LEFT) + box.x, s2.at<int>(i, cv::CC_STAT_TOP) + box.y,
                       s2.at<int>(i, cv::CC_STAT_WIDTH), s2.at<int>(i, cv::CC_STAT_HEIGHT));
      Finding f = c.make("structural", r, score, Material::kUnknown);
      f.massKgEst = massKg;
      f.reason = "A wheel's tyre holds about " + num(massKg) + " kg of dense material that breaks its rotational symmetry.";
      c.findings.push_back(f);
    }
  }
  st.wheels = wheels;
}

// Content of the body above what its walls alone attenuate; used against the manifest.
void findManifest(Context& c, const ScanMeta& meta) {
  const Structure& st = c.st;
  if (st.interiorX0 < 0) return;
  const cv::Rect roi(st.interiorX0, st.interiorY0, st.interiorX1 - st.interiorX0 + 1, st.interiorY1 - st.interiorY0 + 1);
  cv::Mat in = c.a(roi);
  std::vector<float> all = valuesUnder(in, cv::Mat());
  // Side walls: what the emptiest part of the body shows, but never more than a heavy
  // steel wall pair (8 g/cm² Fe) could explain.
  const double wallAlpha = std::min(quantile(all, 0.05), 8.0 * massAttenuation(Basis::kIron, 3.0));
  double massKg = 0;
  cv::Mat content = cv::Mat::zeros(in.size(), CV_8U);
  for (int y = 0; y < in.rows; ++y)
    for (int x = 0; x < in.cols; ++x) {
      const double d = at(in, y, x) - wallAlpha;
      if (d > std::max(c.p.stepSigma * c.sigmaCell(in.at<float>(y, x)), c.minStepAlpha())) {
        massKg += d;
        content.at<std::uint8_t>(y, x) = 255;
      }
    }
  massKg *= c.cellAreaCm2() / c.muOrganic / 1000.0;
  const Declared& d = meta.conveyance.declared;
  // Declared empty: any located excess of a kilogram or more (a block, a filled floor cavity,
  // a false wall, a tyre) contradicts the manifest, whatever its own score.
  // The located findings' own masses count too: a stash in a floor cavity or a tyre lies
  // outside the open body measured above, which can then read about 0 kg.
  const Finding* largest = nullptr;
  double locatedKg = 0;
  for (const Finding& f : c.findings) {
    if (f.kind == "opaque" || f.massKgEst.value_or(0.0) < c.p.minMassKg) continue;
    locatedKg += *f.massKgEst;
    if (largest == nullptr || *f.massKgEst > *largest->massKgEst) largest = &f;
  }
  if (d.empty.value_or(false) && (massKg >= c.p.emptyContentKg || largest != nullptr)) {
    const cv::Rect r = cv::boundingRect(content) + roi.tl();
    const double shownKg = std::max(massKg, locatedKg);
    Finding f = c.make("manifest_mismatch", r.area() > 0 ? r : roi, 0.5 + 0.5 * std::min(1.0, shownKg / 200.0),
                       Material::kUnknown);
    f.massKgEst = shownKg;
    f.reason = massKg >= locatedKg
                   ? "Declared empty, but the body holds about " + num(massKg) + " kg of content."
                   : "Declared empty, but the scan shows about " + num(shownKg) + " kg of content (largest: " +
                         largest->kind + ", about " + num(*largest->massKgEst) + " kg).";
    c.findings.push_back(f);
    return;
  }
  if (d.grossKg && !d.empty.value_or(false) && meta.conveyance.kind == "container") {
    const double lengthMm = (st.bodyX1 - st.bodyX0 + 1) * c.cellX;
    const double tare = lengthMm > 9000 ? 3800 : 2200;
    const double declaredCargo = std::max(0.0, *d.grossKg - tare);
    const double diff = massKg - declaredCargo;
    const double tol = std::max(c.p.grossToleranceKg, c.p.grossToleranceFraction * declaredCargo);
    if (std::abs(diff) > tol) {
      // Advisory only: the areal-density mass estimate is not calibrated against weighed
      // loads (beam hardening biases it low), so it never makes a hit on its own.
      Finding f = c.make("manifest_mismatch", roi, std::min(0.45, 0.3 * std::abs(diff) / tol), Material::kUnknown);
      f.massKgEst = massKg;
      f.reason = "The load looks like about " + num(massKg) + " kg, the manifest implies " + num(declaredCargo) +
                 " kg of cargo.";
      c.findings.push_back(f);
    }
  }
}

// Inside a load that is homogeneous at large scale, any sizeable departure from its level.
void findAnomaly(Context& c) {
  const Structure& st = c.st;
  if (st.interiorX0 < 0) return;
  const cv::Rect roi(st.interiorX0, st.interiorY0, st.interiorX1 - st.interiorX0 + 1, st.interiorY1 - st.interiorY0 + 1);
  cv::Mat closed;
  cv::morphologyEx(c.a(roi), closed, cv::MORPH_CLOSE,
                   cv::getStructuringElement(cv::MORPH_RECT, cv::Size(oddCells(c.p.gapMm, c.cellX), oddCells(c.p.gapMm, c.cellY))));
  std::vector<float> all = valuesUnder(closed, cv::Mat());
  const double level = quantile(all, 0.75);
  if (level < 10 * c.minStepAlpha()) return;
  // The load body: cells near the load level, eroded so its outline does not count.
  cv::Mat load = closed > 0.5 * level;
  if (cv::countNonZero(load) < 0.4 * static_cast<double>(load.total())) return;
  cv::erode(load, load, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(oddCells(200, c.cellX), oddCells(200, c.cellY))));
  std::vector<float> in = valuesUnder(closed, load);
  if (in.size() < 50) return;
  const double med = median(in);
  std::vector<float> dev = in;
  for (float& v : dev) v = std::abs(v - static_cast<float>(med));
  const double spread = 1.4826 * median(dev);
  if (spread > 0.05 * med) return;  // not homogeneous
  cv::Mat mask = (cv::abs(closed - med) > std::max({6.0 * spread, 0.1 * med, 2.0 * c.minStepAlpha()})) & load;
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S, cv::CCL_GRANA);
  for (int i = 1; i < n; ++i) {
    const double area = stats.at<int>(i, cv::CC_STAT_AREA) * c.cellAreaCm2();
    if (area < 300) continue;
    const cv::Rect r(stats.at<int>(i, cv::CC_STAT_LEFT) + roi.x, stats.at<int>(i, cv::CC_STAT_TOP) + roi.y,
                     stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT));
    bool covered = false;
    for (const Finding& f : c.findings) {
      const cv::Rect fr(static_cast<int>(f.boxMm[0] / c.cellX), static_cast<int>(f.boxMm[1] / c.cellY),
                        static_cast<int>(f.boxMm[2] / c.cellX), static_cast<int>(f.boxMm[3] / c.cellY));
      covered = covered || (fr & r).area() > 0;
    }
    if (covered) continue;
    // Only denser and compact: a stash adds mass; a thinner column at the load's edge is
    // geometry.
    if (std::max(r.width * c.cellX, r.height * c.cellY) > 5.0 * std::min(r.width * c.cellX, r.height * c.cellY)) continue;
    cv::Mat sel = labels == i;
    const double meanDev = cv::mean(closed, sel)[0] - med;
    if (meanDev <= 0) continue;
    Finding f = c.make("anomaly", r, std::min(0.9, 0.3 + std::abs(meanDev) / med), Material::kUnknown);
    if (meanDev > 0) f.massKgEst = meanDev * area / c.muOrganic / 1000.0;
    f.reason = "Inside a homogeneous load, a " + num(area) + " cm² region is " + num(100.0 * meanDev / med) +
               " % off the load's areal density.";
    c.findings.push_back(f);
  }
}

cv::Mat materialMap(const Context& c) {
  cv::Mat m(c.a.size(), CV_8U);
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x) {
      const double h = at(c.a, y, x);
      const double l = c.dual ? at(c.al, y, x) : h;
      Material cls = c.dual ? classifyMaterial(h, l, c.curves, c.opaqueAlpha)
                            : (h < c.curves.minAlpha ? Material::kNone : Material::kUnknown);
      // Below ~0.3 the ratio drowns in noise; call such thin matter by its faint class anyway.
      m.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(cls);
    }
  return m;
}

}  // namespace

Findings analyzeScan(const ScanBundle& bundle, const AnalysisParams& params) {
  const auto start = std::chrono::steady_clock::now();
  Findings out;
  out.scanId = bundle.meta.scanId;
  auto finish = [&]() {
    out.totalMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return out;
  };
  try {
    Context c(params);
    c.pxAlong = bundle.meta.pixelAlongMm;
    c.pxVert = bundle.meta.pixelVerticalMm;
    if (!(c.pxAlong > 0) || !(c.pxVert > 0) || bundle.meta.energiesMev.empty()) {
      out.verdict = "inconclusive";
      out.error = bundle.meta.scanId + ": no energies or no pixel size";
      return finish();
    }
    const cv::Size full = bundle.planes.empty() ? cv::Size() : bundle.planes.front().size();
    const int gw = std::max(1, static_cast<int>(std::lround(full.width * c.pxAlong / std::max(params.cellMm, c.pxAlong))));
    const int gh = std::max(1, static_cast<int>(std::lround(full.height * c.pxVert / std::max(params.cellMm, c.pxVert))));
    // Pre-processing and resampling onto the grid in one pass over the pixels.
    auto att = computeGridAttenuation(bundle, params.calibration, cv::Size(gw, gh), params.preprocess);
    if (!att) {
      out.verdict = "inconclusive";
      out.error = bundle.meta.scanId + ": " + att.error();
      return finish();
    }
    c.cellX = full.width * c.pxAlong / gw;
    c.cellY = full.height * c.pxVert / gh;
    c.pxPerCell = (c.cellX / c.pxAlong) * (c.cellY / c.pxVert);
    c.a = att->alphaHigh;
    c.dual = !att->alphaLow.empty();
    if (c.dual) c.al = att->alphaLow;
    c.sigmaPx = std::max(1e-4, att->airNoiseAlpha);
    const double eh = effectiveEnergy(bundle.meta.energiesMev.front(), params.effectiveEnergyFraction);
    c.muOrganic = massAttenuation(Basis::kWater, eh);
    // Not penetrated: fewer quanta than opaqueQuanta, with N0 from the open-beam noise,
    // and never beyond what 16-bit transmission can represent.
    const double n0 = 1.0 / (c.sigmaPx * c.sigmaPx);
    c.opaqueAlpha = std::min(std::log(std::max(n0, 100.0) / params.opaqueQuanta), -std::log(4.0 / 65535.0));
    c.curves = params.curves ? *params.curves
                             : defaultMaterialCurves(bundle.meta.energiesMev.front(), bundle.meta.energiesMev.back(),
                                                     params.effectiveEnergyFraction);
    c.energyHigh = bundle.meta.energiesMev.front();
    c.declaredEmpty = bundle.meta.conveyance.declared.empty.value_or(false);
    c.energyLow = bundle.meta.energiesMev.back();
    findOrganicReference(c);
    findStructure(c);
    findOpaque(c);
    findBlocks(c);
    findFloor(c);
    findFalseWalls(c);
    findTyres(c);
    findManifest(c, bundle.meta);
    findAnomaly(c);
    std::sort(c.findings.begin(), c.findings.end(), [](const Finding& x, const Finding& y) { return x.score > y.score; });
    bool hit = false;
    bool opaque = false;
    for (const Finding& f : c.findings) {
      if (f.kind == "opaque") opaque = true;
      else if (f.score >= params.hitScore) hit = true;
    }
    out.verdict = hit ? "hit" : opaque ? "inconclusive" : "clear";
    out.findings = std::move(c.findings);
    // Structure back to original pixels.
    const double sx = c.cellX / c.pxAlong;
    const double sy = c.cellY / c.pxVert;
    auto px = [](int v, double s) { return v < 0 ? -1 : static_cast<int>(std::lround(v * s)); };
    Structure& st = out.structure;
    st = c.st;
    st.objectX0 = px(c.st.objectX0, sx);
    st.objectX1 = px(c.st.objectX1 + 1, sx) - 1;
    st.bodyX0 = px(c.st.bodyX0, sx);
    st.bodyX1 = c.st.bodyX1 < 0 ? -1 : px(c.st.bodyX1 + 1, sx) - 1;
    st.roofY = px(c.st.roofY, sy);
    st.floorY = px(c.st.floorY, sy);
    st.underY = px(c.st.underY, sy);
    st.frontRun = px(c.st.frontRun, sx);
    st.rearRun = px(c.st.rearRun, sx);
    st.interiorX0 = px(c.st.interiorX0, sx);
    st.interiorX1 = c.st.interiorX1 < 0 ? -1 : px(c.st.interiorX1 + 1, sx) - 1;
    st.interiorY0 = px(c.st.interiorY0, sy);
    st.interiorY1 = c.st.interiorY1 < 0 ? -1 : px(c.st.interiorY1 + 1, sy) - 1;
    for (auto& g : st.gaps) g = {px(g[0], sx), px(g[1] + 1, sx) - 1};
    out.materialMap = materialMap(c);
    out.preview = att->preview;
    out.badRows = att->badRows;
    out.lowShiftPx = att->lowShiftPx;
  } catch (const cv::Exception& e) {
    out.verdict = "inconclusive";
    out.error = bundle.meta.scanId + ": image processing failed: " + e.what();
  }
  return finish();
}

std::string toJson(const Findings& f) {
  nlohmann::json doc;
  doc["scan_id"] = f.scanId;
  doc["verdict"] = f.verdict;
  doc["findings"] = nlohmann::json::array();
  for (const Finding& x : f.findings) {
    nlohmann::json j;
    j["kind"] = x.kind;
    j["box_px"] = x.boxPx;
    j["box_mm"] = {std::round(x.boxMm[0]), std::round(x.boxMm[1]), std::round(x.boxMm[2]), std::round(x.boxMm[3])};
    j["score"] = std::round(x.score * 1000.0) / 1000.0;
    j["material"] = materialName(x.material);
    if (x.massKgEst) j["mass_kg_est"] = std::round(*x.massKgEst * 10.0) / 10.0;
    j["reason"] = x.reason;
    doc["findings"].push_back(j);
  }
  if (!f.error.empty()) doc["error"] = f.error;
  doc["timings_ms"] = {{"total", std::round(f.totalMs * 100.0) / 100.0}};
  return doc.dump();
}

}  // namespace lanegate::vision
