#include "vision/analysis.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace lanegate::vision {
namespace {

double median(std::vector<float> v) {
  if (v.empty()) return 0.0;
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return static_cast<double>(*mid);
}

double percentile(std::vector<float> v, double q) {
  if (v.empty()) return 0.0;
  const auto k = static_cast<std::ptrdiff_t>(std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return static_cast<double>(v[static_cast<std::size_t>(k)]);
}

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

  Material classifyExcess(double sumHigh, double sumLow) const {
    if (!dual || sumHigh <= 0) return Material::kUnknown;
    // The ratio of excess attenuations is the excess material's μ ratio.
    return classifyMaterial(1.0, sumLow / sumHigh, curves, opaqueAlpha + 1);
  }
};

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
    std::vector<int> tops;
    int e = x;
    while (e <= st.objectX1 && top[static_cast<std::size_t>(e)] >= 0) {
      tops.push_back(top[static_cast<std::size_t>(e)]);
      std::vector<float> tf(tops.begin(), tops.end());
      if (std::abs(top[static_cast<std::size_t>(e)] - static_cast<int>(median(tf))) > tol) break;
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
  // Floor: the densest row of the body's lower part, by median over the body's columns
  // (cross members only cover a fraction of the columns, so the median sees the deck).
  cv::Mat body = a(cv::Range::all(), cv::Range(st.bodyX0, st.bodyX1 + 1));
  const int y0 = st.roofY + std::max(2, static_cast<int>(std::lround(800.0 / c.cellY)));
  double best = -1;
  for (int y = y0; y < a.rows; ++y) {
    std::vector<float> row(body.ptr<float>(y), body.ptr<float>(y) + body.cols);
    const double m = median(row);
    if (m > best) {
      best = m;
      st.floorY = y;
    }
  }
  // Walls: scan inwards from each end while the columns are far denser than the body.
  const int iy0 = st.roofY + std::max(1, static_cast<int>(std::ceil(60.0 / c.cellY)));
  const int iy1 = st.floorY - 1;
  if (iy1 - iy0 < 3) return;
  std::vector<float> colMed(static_cast<std::size_t>(st.bodyX1 - st.bodyX0 + 1));
  for (int x = st.bodyX0; x <= st.bodyX1; ++x) {
    std::vector<float> v;
    for (int y = iy0; y <= iy1; ++y) v.push_back(a.at<float>(y, x));
    colMed[static_cast<std::size_t>(x - st.bodyX0)] = static_cast<float>(median(v));
  }
  const double base = median(colMed);
  const int maxWall = std::max(2, static_cast<int>(std::lround(450.0 / c.cellX)));
  auto wallEnd = [&](int from, int step) {
    double peak = 0;
    for (int k = 0; k < maxWall; ++k) peak = std::max(peak, static_cast<double>(colMed[static_cast<std::size_t>(from + step * k)]));
    const double thr = base + 0.25 * (peak - base);
    int k = 0;
    int last = 0;
    for (; k < maxWall; ++k)
      if (static_cast<double>(colMed[static_cast<std::size_t>(from + step * k)]) > thr) last = k;
    return last + 1 + std::max(1, static_cast<int>(std::lround(80.0 / c.cellX)));
  };
  const int len = st.bodyX1 - st.bodyX0 + 1;
  if (len <= 2 * maxWall + 4) return;
  st.interiorX0 = st.bodyX0 + wallEnd(0, 1);
  st.interiorX1 = st.bodyX1 - wallEnd(len - 1, -1);
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
  cv::Mat closed, residual, residualLow;
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
  if (c.dual) {
    cv::Mat closedL;
    cv::Mat bgL;
    cv::morphologyEx(c.al(roi), closedL, cv::MORPH_CLOSE, gap);
    cv::morphologyEx(closedL, bgL, cv::MORPH_OPEN, block);
    t.residualLow = closedL - bgL;
  }
  return t;
}

// True when each side of `r` that is not the interior's edge has load next to it.
bool enclosure(const cv::Mat& closed, const cv::Rect& r, const Context& c, cv::Size size) {
  const int bx = std::max(1, static_cast<int>(std::lround(100.0 / c.cellX)));
  const int by = std::max(1, static_cast<int>(std::lround(100.0 / c.cellY)));
  const double level = std::max(c.minStepAlpha(), 0.0);
  const std::array<cv::Rect, 4> sides = {cv::Rect(r.x, r.y - by, r.width, by), cv::Rect(r.x, r.br().y, r.width, by),
                                         cv::Rect(r.x - bx, r.y, bx, r.height), cv::Rect(r.br().x, r.y, bx, r.height)};
  const cv::Rect all(0, 0, size.width, size.height);
  cv::Mat inner = closed(r);
  const double core = cv::mean(inner)[0];
  for (const cv::Rect& s : sides) {
    const cv::Rect clipped = s & all;
    if (clipped.area() < s.area() / 2) continue;  // the interior's edge: walls, roof or floor
    const double around = cv::mean(closed(clipped))[0];
    if (around < std::max(level, 0.3 * core)) return false;
  }
  return true;
}

void findBlocks(Context& c) {
  const Structure& st = c.st;
  if (st.interiorX0 < 0 || st.interiorX1 - st.interiorX0 < 4) return;
  const cv::Rect roi(st.interiorX0, st.interiorY0, st.interiorX1 - st.interiorX0 + 1, st.interiorY1 - st.interiorY0 + 1);
  const TopHat th = topHat(c, roi);
  // The load's own texture at stash scale, measured where there is load.
  const double occ = std::max(0.02, 6.0 * c.sigmaCell(0));
  cv::Mat loaded = th.closed > occ;
  // Texture: how much the load varies from carton to carton, i.e. the closed image minus
  // its 1.5 m moving average, as a robust σ over the loaded cells.
  cv::Mat smooth;
  const cv::Size wide(oddCells(1500.0, c.cellX), oddCells(1500.0, c.cellY));
  cv::blur(th.closed, smooth, wide, cv::Point(-1, -1), cv::BORDER_REFLECT);
  std::vector<float> res = valuesUnder(cv::abs(th.closed - smooth), loaded);
  const double texture = 1.4826 * median(res);
  cv::Mat thr(th.closed.size(), CV_32F);
  for (int y = 0; y < thr.rows; ++y)
    for (int x = 0; x < thr.cols; ++x)
      thr.at<float>(y, x) = static_cast<float>(std::max({c.p.stepSigma * c.sigmaCell(th.closed.at<float>(y, x)),
                                                         c.p.textureSigma * texture, c.minStepAlpha()}));
  cv::Mat mask = th.residual > thr;
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S, cv::CCL_GRANA);
  std::vector<double> sumH(static_cast<std::size_t>(n), 0.0), sumL(static_cast<std::size_t>(n), 0.0),
      sumThr(static_cast<std::size_t>(n), 0.0);
  for (int y = 0; y < labels.rows; ++y)
    for (int x = 0; x < labels.cols; ++x) {
      const auto l = static_cast<std::size_t>(labels.at<int>(y, x));
      if (l == 0) continue;
      sumH[l] += at(th.residual, y, x);
      sumThr[l] += at(thr, y, x);
      if (c.dual) sumL[l] += at(th.residualLow, y, x);
    }
  const double wallZoneMm = 150.0;
  for (int i = 1; i < n; ++i) {
    const auto idx = static_cast<std::size_t>(i);
    const int area = stats.at<int>(i, cv::CC_STAT_AREA);
    const cv::Rect r(stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP),
                     stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT));
    const double massKg = sumH[idx] * c.cellAreaCm2() / c.muOrganic / 1000.0;
    if (massKg < c.p.minMassKg) continue;
    const Material m = c.classifyExcess(sumH[idx], sumL[idx]);
    // Organic and light inorganic differ by ~2 % in μ ratio and beam hardening moves the
    // boundary with thickness, so only metal and high-Z excess is ruled out.
    if (c.dual && m != Material::kOrganic && m != Material::kInorganic) continue;
    const double wMm = r.width * c.cellX;
    const double hMm = r.height * c.cellY;
    const double fill = static_cast<double>(area) / (r.width * r.height);
    const bool nearFront = r.x * c.cellX < wallZoneMm;
    const bool nearRear = (roi.width - r.x - r.width) * c.cellX < wallZoneMm;
    const double contrast = sumH[idx] / std::max(1e-9, sumThr[idx]);
    const double score = (1.0 - std::exp(-massKg / c.p.massScaleKg)) * std::min(1.0, contrast / 2.0);
    const cv::Rect box = r + roi.tl();
    if ((nearFront || nearRear) && wMm <= c.p.maxBlockMm && r.height < 0.95 * roi.height) {
      // Against an end wall a stash may be tall and thin: a false wall compartment.
      const bool front = nearFront == st.cabFirst || !nearRear;
      Finding f = c.make("structural", box, score, m);
      f.massKgEst = massKg;
      f.reason = "About " + num(massKg) + " kg of " + std::string(materialName(m)) + " material sits against the " +
                 (front ? "front" : "rear") + " wall in a " + num(wMm / 10.0) +
                 " cm deep band that the empty structure does not explain.";
      c.findings.push_back(f);
      continue;
    }
    const double aspect = std::max(wMm, hMm) / std::max(1.0, std::min(wMm, hMm));
    if (wMm > 1.2 * c.p.maxBlockMm || hMm > 1.2 * c.p.maxBlockMm || fill < 0.4 || aspect > 5.0) continue;
    // A stash inside a load has load on every side; a bump on the load's surface or an item
    // standing alone does not, and is scored down rather than dropped.
    const double enclosed = enclosure(th.closed, r, c, roi.size());
    Finding f = c.make("organic_mass", box, score * (enclosed ? 1.0 : 0.4), m);
    f.massKgEst = massKg;
    f.reason = "A compact " + num(std::max(wMm, hMm) / 10.0) + " cm block adds about " + num(massKg) + " kg of " +
               std::string(materialName(m)) + " areal density over the load around it.";
    c.findings.push_back(f);
  }
}

// Mass in the floor beyond the empty deck: along the floor band, remove narrow dense
// cross members with a 1-D opening, then compare with the deck's typical level.
void findFloor(Context& c) {
  const Structure& st = c.st;
  if (st.floorY < 0 || st.interiorX0 < 0) return;
  const int zone = std::max(2, static_cast<int>(std::lround(180.0 / c.cellY)));
  const int y0 = st.floorY;
  const int y1 = std::min(c.a.rows - 1, st.floorY + zone);
  const cv::Rect roi(st.interiorX0, y0, st.interiorX1 - st.interiorX0 + 1, y1 - y0 + 1);
  cv::Mat prof;
  cv::Mat profL;
  cv::reduce(c.a(roi), prof, 0, cv::REDUCE_SUM, CV_32F);
  if (c.dual) cv::reduce(c.al(roi), profL, 0, cv::REDUCE_SUM, CV_32F);
  const cv::Mat k = cv::getStructuringElement(cv::MORPH_RECT, cv::Size(oddCells(100.0, c.cellX), 1));
  cv::Mat env;
  cv::Mat envL;
  cv::morphologyEx(prof, env, cv::MORPH_OPEN, k);
  if (c.dual) cv::morphologyEx(profL, envL, cv::MORPH_OPEN, k);
  std::vector<float> v(env.ptr<float>(0), env.ptr<float>(0) + env.cols);
  const double base = median(v);
  for (float& x : v) x = std::abs(x - static_cast<float>(base));
  const double spread = 1.4826 * median(v);
  const double baseL = c.dual ? median(std::vector<float>(envL.ptr<float>(0), envL.ptr<float>(0) + envL.cols)) : 0.0;
  const double thr = std::max({5.0 * spread, c.minStepAlpha() * roi.height * 2.0,
                               c.p.stepSigma * c.sigmaCell(base / roi.height) * std::sqrt(roi.height)});
  for (int x = 0; x < env.cols;) {
    if (at(env, 0, x) - base <= thr) {
      ++x;
      continue;
    }
    int e = x;
    double sumH = 0;
    double sumL = 0;
    while (e < env.cols && at(env, 0, e) - base > thr) {
      sumH += at(env, 0, e) - base;
      if (c.dual) sumL += at(envL, 0, e) - baseL;
      ++e;
    }
    const double massKg = sumH * c.cellAreaCm2() / c.muOrganic / 1000.0;
    const Material m = c.classifyExcess(sumH, sumL);
    if (massKg >= c.p.minMassKg && (!c.dual || m == Material::kOrganic || m == Material::kInorganic)) {
      const double score = (1.0 - std::exp(-massKg / c.p.massScaleKg)) * std::min(1.0, (sumH / (e - x)) / (2 * thr));
      Finding f = c.make("structural", cv::Rect(roi.x + x, roi.y, e - x, roi.height), score, m);
      f.massKgEst = massKg;
      f.reason = "The floor carries about " + num(massKg) + " kg more over " + num((e - x) * c.cellX / 10.0) +
                 " cm than the rest of the deck, as a filled floor cavity would.";
      c.findings.push_back(f);
    }
    x = e;
  }
}

// Tyres are rotationally symmetric: what breaks the symmetry of a wheel's annulus is
// something inside the tyre.
void findTyres(Context& c) {
  Structure& st = c.st;
  if (st.floorY < 0 || st.objectX0 < 0) return;
  const int y0 = std::min(c.a.rows - 1, st.floorY + std::max(2, static_cast<int>(std::lround(250.0 / c.cellY))));
  const cv::Rect band(st.objectX0, y0, st.objectX1 - st.objectX0 + 1, c.a.rows - y0);
  if (band.height < 10) return;
  cv::Mat mask = c.a(band) > 0.2;
  // Chassis beams run the whole length; wheels never fill half a row, so such rows go.
  for (int y = 0; y < mask.rows; ++y)
    if (cv::countNonZero(mask.row(y)) > mask.cols / 2) mask.row(y).setTo(0);
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S, cv::CCL_GRANA);
  std::vector<std::array<double, 3>> wheels;  // cx, cy, r in cells of the full grid
  for (int i = 1; i < n; ++i) {
    const double w = stats.at<int>(i, cv::CC_STAT_WIDTH) * c.cellX;
    const double h = stats.at<int>(i, cv::CC_STAT_HEIGHT) * c.cellY;
    if (h < 600 || h > 1400) continue;
    const int count = std::max(1, static_cast<int>(std::lround(w / h)));
    if (w / h > count * 1.35 || w / h < count * 0.7 || count > 3) continue;
    for (int k = 0; k < count; ++k) {
      const double cx = band.x + stats.at<int>(i, cv::CC_STAT_LEFT) + (k + 0.5) * stats.at<int>(i, cv::CC_STAT_WIDTH) / count;
      const double cy = band.y + stats.at<int>(i, cv::CC_STAT_TOP) + 0.5 * stats.at<int>(i, cv::CC_STAT_HEIGHT);
      wheels.push_back({cx, cy, 0.5 * h});
    }
  }
  st.wheels = static_cast<int>(wheels.size());
  for (const auto& w : wheels) {
    const double rMm = w[2];
    const int rx = static_cast<int>(std::ceil(rMm / c.cellX));
    const int ry = static_cast<int>(std::ceil(rMm / c.cellY));
    const cv::Rect box = cv::Rect(static_cast<int>(w[0]) - rx, static_cast<int>(w[1]) - ry, 2 * rx + 1, 2 * ry + 1) &
                         cv::Rect(0, 0, c.a.cols, c.a.rows);
    // Radial bins of one cell; the per-radius median is the symmetric wheel.
    const double bin = std::min(c.cellX, c.cellY);
    const int bins = static_cast<int>(rMm / bin) + 1;
    std::vector<std::vector<float>> rings(static_cast<std::size_t>(bins));
    std::vector<std::vector<float>> ringsL(static_cast<std::size_t>(bins));
    auto radius = [&](int x, int y) {
      const double dx = (x + 0.5 - w[0]) * c.cellX;
      const double dy = (y + 0.5 - w[1]) * c.cellY;
      return std::sqrt(dx * dx + dy * dy);
    };
    for (int y = box.y; y < box.br().y; ++y)
      for (int x = box.x; x < box.br().x; ++x) {
        const double r = radius(x, y);
        if (r >= rMm) continue;
        rings[static_cast<std::size_t>(r / bin)].push_back(c.a.at<float>(y, x));
        if (c.dual) ringsL[static_cast<std::size_t>(r / bin)].push_back(c.al.at<float>(y, x));
      }
    std::vector<double> medH(static_cast<std::size_t>(bins)), medL(static_cast<std::size_t>(bins));
    std::vector<double> spread(static_cast<std::size_t>(bins));
    for (std::size_t b = 0; b < rings.size(); ++b) {
      medH[b] = median(rings[b]);
      if (c.dual) medL[b] = median(ringsL[b]);
      std::vector<float> dev = rings[b];
      for (float& d : dev) d = std::abs(d - static_cast<float>(medH[b]));
      spread[b] = 1.4826 * median(dev);
    }
    cv::Mat excess = cv::Mat::zeros(box.size(), CV_32F);
    cv::Mat excessL = cv::Mat::zeros(box.size(), CV_32F);
    cv::Mat hot = cv::Mat::zeros(box.size(), CV_8U);
    for (int y = box.y; y < box.br().y; ++y)
      for (int x = box.x; x < box.br().x; ++x) {
        const double r = radius(x, y);
        // Skip the hub and the outer edge, where centring errors dominate.
        if (r >= 0.9 * rMm || r < 0.45 * rMm) continue;
        const auto b = static_cast<std::size_t>(r / bin);
        const double d = at(c.a, y, x) - medH[b];
        const double t = std::max({4.0 * spread[b], c.p.stepSigma * c.sigmaCell(medH[b]), 2.0 * c.minStepAlpha()});
        if (d > t) {
          excess.at<float>(y - box.y, x - box.x) = static_cast<float>(d);
          if (c.dual) excessL.at<float>(y - box.y, x - box.x) = static_cast<float>(at(c.al, y, x) - medL[b]);
          hot.at<std::uint8_t>(y - box.y, x - box.x) = 255;
        }
      }
    cv::Mat l2, s2, c2;
    const int m2 = cv::connectedComponentsWithStats(hot, l2, s2, c2, 8, CV_32S, cv::CCL_GRANA);
    for (int i = 1; i < m2; ++i) {
      const cv::Mat sel = l2 == i;
      cv::Mat picked = cv::Mat::zeros(excess.size(), CV_32F);
      excess.copyTo(picked, sel);
      const double sumH = cv::sum(picked)[0];
      picked.setTo(0);
      excessL.copyTo(picked, sel);
      const double sumL = c.dual ? cv::sum(picked)[0] : 0.0;
      const double massKg = sumH * c.cellAreaCm2() / c.muOrganic / 1000.0;
      if (massKg < c.p.minMassKg) continue;
      const Material m = c.classifyExcess(sumH, sumL);
      if (c.dual && m != Material::kOrganic) continue;
      const double score = 1.0 - std::exp(-massKg / c.p.massScaleKg);
      const cv::Rect r(s2.at<int>(i, cv::CC_STAT_LEFT) + box.x, s2.at<int>(i, cv::CC_STAT_TOP) + box.y,
                       s2.at<int>(i, cv::CC_STAT_WIDTH), s2.at<int>(i, cv::CC_STAT_HEIGHT));
      Finding f = c.make("structural", r, score, m);
      f.massKgEst = massKg;
      f.reason = "A wheel's tyre holds about " + num(massKg) + " kg of dense material that breaks its rotational symmetry.";
      c.findings.push_back(f);
    }
  }
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
  const double wallAlpha = std::min(percentile(all, 0.05), 8.0 * massAttenuation(Basis::kIron, 3.0));
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
  bool blockFound = false;
  for (const Finding& f : c.findings) blockFound = blockFound || (f.kind != "opaque" && f.score >= c.p.hitScore);
  if (d.empty.value_or(false) && (massKg >= c.p.emptyContentKg || blockFound)) {
    const cv::Rect r = cv::boundingRect(content) + roi.tl();
    Finding f = c.make("manifest_mismatch", r.area() > 0 ? r : roi, 0.5 + 0.5 * std::min(1.0, massKg / 200.0),
                       Material::kUnknown);
    f.massKgEst = massKg;
    f.reason = "Declared empty, but the body holds about " + num(massKg) + " kg of content.";
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
  const double level = percentile(all, 0.75);
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
    cv::Mat sel = labels == i;
    const double meanDev = cv::mean(closed, sel)[0] - med;
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
    auto att = computeAttenuation(bundle, params.calibration, params.preprocess);
    if (!att) {
      out.verdict = "inconclusive";
      out.error = bundle.meta.scanId + ": " + att.error();
      return finish();
    }
    Context c(params);
    c.pxAlong = bundle.meta.pixelAlongMm;
    c.pxVert = bundle.meta.pixelVerticalMm;
    const cv::Size full = att->alphaHigh.size();
    const int gw = std::max(1, static_cast<int>(std::lround(full.width * c.pxAlong / std::max(params.cellMm, c.pxAlong))));
    const int gh = std::max(1, static_cast<int>(std::lround(full.height * c.pxVert / std::max(params.cellMm, c.pxVert))));
    c.cellX = full.width * c.pxAlong / gw;
    c.cellY = full.height * c.pxVert / gh;
    c.pxPerCell = (c.cellX / c.pxAlong) * (c.cellY / c.pxVert);
    cv::resize(att->alphaHigh, c.a, cv::Size(gw, gh), 0, 0, cv::INTER_AREA);
    c.dual = !att->alphaLow.empty();
    if (c.dual) cv::resize(att->alphaLow, c.al, cv::Size(gw, gh), 0, 0, cv::INTER_AREA);
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
    findStructure(c);
    findOpaque(c);
    findBlocks(c);
    findFloor(c);
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
    st.interiorX0 = px(c.st.interiorX0, sx);
    st.interiorX1 = c.st.interiorX1 < 0 ? -1 : px(c.st.interiorX1 + 1, sx) - 1;
    st.interiorY0 = px(c.st.interiorY0, sy);
    st.interiorY1 = c.st.interiorY1 < 0 ? -1 : px(c.st.interiorY1 + 1, sy) - 1;
    for (auto& g : st.gaps) g = {px(g[0], sx), px(g[1] + 1, sx) - 1};
    out.materialMap = materialMap(c);
    out.alphaHigh = att->alphaHigh;
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
