// Findings under the load: the floor band and the wheels.
#include "vision/analysis_context.h"

#include "vision/select.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>

namespace lanegate::vision::detail {

// Smallest excess inside a tyre that counts, g/cm² water-equivalent.
constexpr double kTyreStepGcm2 = 10.0;

// Shortest stretch of floor judged: about a brick's width.
constexpr double kFloorMinRunMm = 60.0;

// Tyres are rotationally symmetric about their hub: what breaks the symmetry of a tyre,
// and does not continue outside it, is something inside the tyre.
void findWheels(Context& c) {
  Structure& st = c.st;
  if (st.floorY < 0 || st.objectX0 < 0) return;
  const int y0 = std::min(c.a.rows - 1,
                          st.floorY + std::max(2, static_cast<int>(std::lround(250.0 / c.cellY))));
  const cv::Rect band(st.objectX0, y0, st.objectX1 - st.objectX0 + 1, c.a.rows - y0);
  if (band.height < 10 || band.width < 10) return;
  // Hubs (and the axle behind them, seen end-on) are the densest compact spots below the body.
  const cv::Mat dense = c.a(band) > 0.5 * c.opaqueAlpha;
  cv::Mat labels, stats, centroids;
  const int n =
      cv::connectedComponentsWithStats(dense, labels, stats, centroids, 8, CV_32S, cv::CCL_GRANA);
  std::vector<std::array<double, 3>> found;  // peak α, cx, cy in cells of the full grid
  for (int i = 1; i < n; ++i) {
    const double w = stats.at<int>(i, cv::CC_STAT_WIDTH) * c.cellX;
    const double h = stats.at<int>(i, cv::CC_STAT_HEIGHT) * c.cellY;
    if (w > 300 || h > 300) continue;
    double peak = 0;
    const cv::Rect r(stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP),
                     stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT));
    cv::minMaxLoc(c.a(r + band.tl()), nullptr, &peak);
    found.push_back({peak, band.x + centroids.at<double>(i, 0) + 0.5,
                     band.y + centroids.at<double>(i, 1) + 0.5});
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
    const cv::Rect box =
        cv::Rect(static_cast<int>(w[0]) - rx, static_cast<int>(w[1]) - ry, 2 * rx + 1, 2 * ry + 1) &
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
        if (r < 800.0 && own(x, y))
          rings[static_cast<std::size_t>(r / bin)].push_back(static_cast<float>(alpha(x, y)));
      }
    std::vector<double> medH(static_cast<std::size_t>(bins)),
        spread(static_cast<std::size_t>(bins));
    for (std::size_t b = 0; b < rings.size(); ++b) {
      medH[b] = median(rings[b]);
      std::vector<float> dev = rings[b];
      for (float& d : dev) d = std::abs(d - static_cast<float>(medH[b]));
      spread[b] = 1.4826 * median(dev);
    }
    // The tyre's outer radius: where the radial median falls to air.
    int outer = 0;
    for (int b = static_cast<int>(150.0 / bin); b < bins && medH[static_cast<std::size_t>(b)] > occ;
         ++b)
      outer = b;
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
               cv::getStructuringElement(
                   cv::MORPH_RECT,
                   cv::Size(2 * std::max(1, static_cast<int>(std::lround(60.0 / c.cellX))) + 1,
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
        const double t = std::max(
            {4.0 * spread[b], c.p.stepSigma * c.sigmaCell(medH[b]), kTyreStepGcm2 * c.muOrganic});
        // Structure outside the tyre along this ray explains the excess only if it enters the
        // tyre: then the tread cell where the ray crosses the tyre's edge carries it too. A fuel
        // tank or a neighbouring part that merely touches the tyre leaves the tread clear.
        if (d > t && outsideAlong(x, y, r) > 2.0 * c.minStepAlpha() && rimExcess(x, y, r) > 0.5 * d)
          continue;
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
        const int reach =
            2 + std::max(1, static_cast<int>(std::lround(60.0 / std::min(c.cellX, c.cellY))));
        cv::dilate(
            comp, nearComp,
            cv::getStructuringElement(cv::MORPH_RECT, cv::Size(2 * reach + 1, 2 * reach + 1)));
        std::vector<float> touching;
        for (int y = 0; y < nearComp.rows; ++y)
          for (int x = 0; x < nearComp.cols; ++x)
            if (nearComp.at<std::uint8_t>(y, x) && outsideParts.at<std::uint8_t>(y, x))
              touching.push_back(static_cast<float>(alpha(x + box.x, y + box.y)));
        const double meanExcess = sumH / std::max(1, s2.at<int>(i, cv::CC_STAT_AREA));
        const double outsideLevel = touching.size() >= 2 ? median(touching) : 0.0;
        if (outsideLevel > 0 && meanExcess >= 0.5 * outsideLevel &&
            meanExcess <= 1.5 * outsideLevel)
          continue;
      }
      const cv::Rect r(s2.at<int>(i, cv::CC_STAT_LEFT) + box.x,
                       s2.at<int>(i, cv::CC_STAT_TOP) + box.y, s2.at<int>(i, cv::CC_STAT_WIDTH),
                       s2.at<int>(i, cv::CC_STAT_HEIGHT));
      c.note("wheel", massKg, r);
      const double score = scoreOf(massKg, "wheel");
      if (score < 0.35) continue;
      Finding f = c.make("structural", "wheel", r, score, Material::kUnknown);
      f.massKgEst = massKg;
      f.reason = "A wheel's tyre holds about " + num(massKg) +
                 " kg of dense material that breaks its rotational symmetry.";
      c.findings.push_back(f);
    }
  }
  st.wheels = wheels;
}

// Mass in the floor: the band from a little above the deck (a false floor) to the bottom of
// its cross members, over the columns where the deck runs (not a cab, not the gap before a
// rear bogie). Each column of the band is compared with the column elsewhere along the deck
// that matches it best (a cross member with a cross member, a gap with a gap, however the
// members are spaced); what no other column explains is excess. Near-opaque cells (steel
// seen end-on) say nothing about contents and are left out. The statistic is a contrast, not
// a mass (CFAR): over a run of columns with excess, the largest mean residual over
// kFloorMinRunMm, in units of the robust spread (MAD) of all the deck's columns' residuals in
// the same scan. A dense small stash stands out of its own floor whatever it weighs; a fifth
// wheel or a tractor's parts weigh more but differ less from the deck around them.
void findFloor(Context& c) {
  const Structure& st = c.st;
  if (st.floorY < 0 || st.interiorX0 < 0) return;
  const int y0 = std::max(0, st.floorY - cells(120.0, c.cellY));
  const int y1 = std::min(
      {c.a.rows - 1, std::max(st.floorY + 1, st.underY), st.floorY + cells(250.0, c.cellY)});
  const int bx0 = std::max(0, st.bodyX0);
  const int bx1 = std::min(c.a.cols - 1, st.bodyX1);
  const int w = bx1 - bx0 + 1;
  const int h = y1 - y0 + 1;
  if (w < 30 || h < 2) return;
  // Where the deck runs: its row denser than 80 mm above in most columns of a metre around.
  const int d = std::max(2, cells(80.0, c.cellY));
  std::vector<int> deck(static_cast<std::size_t>(w), 0);
  for (int x = 0; x < w; ++x) {
    double line = 0;
    for (int k = -1; k <= 1; ++k) {
      const int y = std::clamp(st.floorY + k, 0, c.a.rows - 1);
      line = std::max(line, at(c.a, y, bx0 + x) - at(c.a, std::max(0, y - d), bx0 + x));
    }
    deck[static_cast<std::size_t>(x)] = line > 2.0 * c.minStepAlpha() ? 1 : 0;
  }
  const int half = cells(500.0, c.cellX);
  const int sill = cells(150.0, c.cellX);
  std::vector<char> member(static_cast<std::size_t>(w), 0);
  {
    std::vector<int> prefix(static_cast<std::size_t>(w) + 1, 0);
    for (int x = 0; x < w; ++x)
      prefix[static_cast<std::size_t>(x) + 1] =
          prefix[static_cast<std::size_t>(x)] + deck[static_cast<std::size_t>(x)];
    for (int x = sill; x < w - sill; ++x) {
      const int lo = std::max(0, x - half);
      const int hi = std::min(w, x + half + 1);
      member[static_cast<std::size_t>(x)] =
          2 * (prefix[static_cast<std::size_t>(hi)] - prefix[static_cast<std::size_t>(lo)]) >=
          hi - lo;
    }
  }
  const cv::Mat band = c.a(cv::Rect(bx0, y0, w, h));
  cv::Mat cols;
  cv::transpose(band, cols);  // a row per column of the band
  const float structure = static_cast<float>(0.7 * c.opaqueAlpha);
  const int guard = cells(300.0, c.cellX);
  std::vector<double> excess(static_cast<std::size_t>(w), 0.0);
  std::vector<double> residual(static_cast<std::size_t>(w), 0.0);
  std::vector<float> matched, levels;
  // Each column of the band clamped at the structure level, laid out contiguously and padded
  // to a multiple of eight (with equal values, so padding adds nothing): the distances run in
  // eight independent sums the compiler vectorises.
  const int hp = (h + 7) / 8 * 8;
  std::vector<float> clamped(static_cast<std::size_t>(w) * static_cast<std::size_t>(hp), 0.0f);
  for (int x = 0; x < w; ++x) {
    const float* px = cols.ptr<float>(x);
    float* cx = clamped.data() + static_cast<std::size_t>(x) * static_cast<std::size_t>(hp);
    for (int y = 0; y < h; ++y) cx[y] = std::min(px[y], structure);
  }
  for (int x = 0; x < w; ++x) {
    if (!member[static_cast<std::size_t>(x)]) continue;
    const float* px = cols.ptr<float>(x);
    const float* cx = clamped.data() + static_cast<std::size_t>(x) * static_cast<std::size_t>(hp);
    double bestL1 = 1e300;
    int best = -1;
    for (int k = 0; k < w; ++k) {
      if (!member[static_cast<std::size_t>(k)] || std::abs(k - x) < guard) continue;
      const float* ck = clamped.data() + static_cast<std::size_t>(k) * static_cast<std::size_t>(hp);
      std::array<float, 8> acc{};
      for (int y = 0; y < hp; y += 8)
        for (int l = 0; l < 8; ++l)
          acc[static_cast<std::size_t>(l)] += std::abs(cx[y + l] - ck[y + l]);
      double l1 = 0;
      for (const float v : acc) l1 += static_cast<double>(v);
      if (l1 < bestL1) {
        bestL1 = l1;
        best = k;
      }
    }
    if (best < 0) continue;
    const float* pb = cols.ptr<float>(best);
    double e = 0;
    double r = 0;
    for (int y = 0; y < h; ++y)
      if (px[y] < structure) {
        const double diff = static_cast<double>(px[y] - pb[y]);
        r += diff;
        e += std::max(0.0, diff - 2.0 * c.sigmaCell(static_cast<double>(px[y])));
      }
    excess[static_cast<std::size_t>(x)] = e;
    residual[static_cast<std::size_t>(x)] = r;
    matched.push_back(static_cast<float>(r));
    levels.push_back(px[h / 2]);
  }
  if (matched.size() < 10) return;
  // The scan's own spread of such residuals along its deck (CFAR): the median and the MAD of
  // every matched column's residual, never below the quantum noise of a column's sum or the
  // smallest step that means anything.
  const double mid = median(matched);
  std::vector<float> dev = matched;
  for (float& v : dev) v = static_cast<float>(std::abs(static_cast<double>(v) - mid));
  const double noise = std::sqrt(2.0 * h) * c.sigmaCell(median(levels));
  const double spread = std::max({1.4826 * median(dev), noise, c.minStepAlpha()});
  const int minRun = std::max(2, cells(kFloorMinRunMm, c.cellX));
  // Runs of columns with excess (a one-column break allowed), each judged by its strongest
  // stretch of the minimum length: the mean residual there over the scan's own spread.
  for (int x = 0; x < w;) {
    if (excess[static_cast<std::size_t>(x)] <= 0) {
      ++x;
      continue;
    }
    int e = x;
    double sum = 0;
    while (e < w && (excess[static_cast<std::size_t>(e)] > 0 ||
                     (e + 1 < w && excess[static_cast<std::size_t>(e + 1)] > 0))) {
      sum += excess[static_cast<std::size_t>(e)];
      ++e;
    }
    if (e - x < minRun) {
      x = e;
      continue;
    }
    double z = -1e9;
    for (int k = x; k + minRun <= e; ++k) {
      double m = 0;
      for (int j = k; j < k + minRun; ++j) m += residual[static_cast<std::size_t>(j)];
      z = std::max(z, (m / minRun - mid) / spread);
    }
    const double massKg = c.massKg(sum);
    c.note("floor", z, cv::Rect(bx0 + x, y0, e - x, h));
    const double score = massKg >= c.p.minMassKg ? scoreOf(z, "floor") : 0.0;
    if (score >= 0.35) {
      Finding f =
          c.make("structural", "floor", cv::Rect(bx0 + x, y0, e - x, h), score, Material::kUnknown);
      f.massKgEst = massKg;
      f.reason = "The floor carries about " + num(massKg) + " kg over " +
                 num((e - x) * c.cellX / 10.0) + " cm, " + num(z) +
                 " times the spread of what the deck shows elsewhere in this scan, as a filled "
                 "floor cavity or a false floor would.";
      c.findings.push_back(f);
    }
    x = e;
  }
}

}  // namespace lanegate::vision::detail
