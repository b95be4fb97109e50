// Findings in and around the load: opaque regions, blocks, false walls, the manifest.
#include "vision/analysis_context.h"

#include "vision/select.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>

namespace lanegate::vision::detail {

void findOpaque(Context& c) {
  const Structure& st = c.st;
  cv::Rect roi = st.interiorX0 >= 0
                     ? cv::Rect(st.interiorX0, st.interiorY0, st.interiorX1 - st.interiorX0 + 1,
                                st.interiorY1 - st.interiorY0 + 1)
                     : cv::Rect(0, 0, c.a.cols, c.a.rows);
  if (cv::countNonZero(c.a(roi) > c.opaqueAlpha) == 0) return;
  // Judged on the transmission averaged over 100 mm: a thin dense line (a post or a drum's
  // wall edge-on) is one the beam misses, not a region whose contents it cannot clear. The
  // mean of T, not of alpha: a few penetrated cells beside a line carry its window.
  const int kx = std::max(1, static_cast<int>(std::lround(kOpaqueJudgeMm / c.cellX)));
  const int ky = std::max(1, static_cast<int>(std::lround(kOpaqueJudgeMm / c.cellY)));
  const cv::Rect wide = (roi + cv::Size(kx, ky) - cv::Point(kx / 2, ky / 2)) &
                        cv::Rect(0, 0, c.a.cols, c.a.rows);
  cv::Mat t;
  cv::exp(-c.a(wide), t);
  cv::blur(t, t, cv::Size(kx, ky));
  // The floor: opaqueQuanta with N0 from the open-beam noise, or, where N0 is so large that
  // a 16-bit count holds more, the count at which rounding (σ 1/√12 of a count) is as coarse
  // as that many quanta's own noise (1/√N). Tighter than the cells' opaqueAlpha, whose few
  // pixels each keep their rounding; over 100 mm it averages out.
  const double n0 = 1.0 / (c.sigmaPx * c.sigmaPx);
  const double floorT = std::max(c.p.opaqueQuanta / std::max(n0, 100.0),
                                 std::sqrt(c.p.opaqueQuanta / 12.0) / 65535.0);
  cv::Mat mask = t(roi - wide.tl()) < floorT;
  if (cv::countNonZero(mask) == 0) return;
  cv::Mat labels, stats, centroids;
  const int n =
      cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S, cv::CCL_GRANA);
  for (int i = 1; i < n; ++i) {
    const double area = stats.at<int>(i, cv::CC_STAT_AREA) * c.cellAreaCm2();
    if (area < c.p.opaqueMinAreaCm2) continue;
    const cv::Rect r(stats.at<int>(i, cv::CC_STAT_LEFT) + roi.x,
                     stats.at<int>(i, cv::CC_STAT_TOP) + roi.y, stats.at<int>(i, cv::CC_STAT_WIDTH),
                     stats.at<int>(i, cv::CC_STAT_HEIGHT));
    Finding f = c.make("opaque", "opaque", r, 1.0, Material::kUnknown);
    f.reason = "The beam did not penetrate a " + num(r.width * c.cellX / 10.0) + " x " +
               num(r.height * c.cellY / 10.0) + " cm region, so its contents cannot be cleared.";
    c.findings.push_back(f);
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
  const int x0 = std::max(0, st.bodyX0);
  const int x1 = std::min(c.a.cols - 1, st.bodyX1);
  const WallLines lines(c);
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
      const double step = lines.step(x);
      if (step > lines.minStep() && step > lineStep && lines.fullHeight(x)) {
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
    c.endCompartments.push_back(box);
    // Content of the compartment over what its own columns show over the body's height: an
    // end wall's panel, stiffeners and frame lines run the full height (a framed front end
    // is a post, a thin panel and inner flanges), bricks stacked behind a false wall do not.
    // So each column's median over the interior rows is taken off, and what is left above
    // it, beyond the noise, is content. A band across the end (a header, a sill, a stiffener)
    // does not stop at the line: what the same rows hold just beyond it, column for column,
    // is taken off too.
    auto rowExcess = [&](int xa, int xb, std::vector<double>& out) {
      out.assign(static_cast<std::size_t>(box.height), 0.0);
      std::vector<float> column;
      int n = 0;
      for (int x = std::max(0, xa); x < std::min(c.a.cols, xb); ++x, ++n) {
        column.clear();
        for (int y = box.y; y < box.br().y; ++y) column.push_back(c.a.at<float>(y, x));
        const double level = median(column);
        for (int y = box.y; y < box.br().y; ++y) {
          const double v = at(c.a, y, x);
          out[static_cast<std::size_t>(y - box.y)] +=
              std::max(0.0, v - level - 2.0 * c.sigmaCell(v));
        }
      }
      return n;
    };
    std::vector<double> inRows, beyondRows;
    const int cx0 = box.x + (!front ? 1 : 0);
    const int cx1 = box.br().x - (front ? 1 : 0);
    const int n = rowExcess(cx0, cx1, inRows);
    const int gap = 1 + cells(80.0, c.cellX);
    const int bx0 = front ? inner + gap : inner - gap - n + 1;
    const int m = bx0 >= x0 && bx0 + n - 1 <= x1 ? rowExcess(bx0, bx0 + n, beyondRows) : 0;
    double sum = 0;
    for (std::size_t y = 0; y < inRows.size(); ++y)
      sum += std::max(0.0, inRows[y] - (m > 0 ? beyondRows[y] * n / m : 0.0));
    double massKg = sum * c.cellAreaCm2() / c.muOrganic / 1000.0;
    // Material, as for blocks: a refrigeration unit's bay behind its bulkhead holds a
    // compressor, coils and fans, metal; bricks behind a false wall are organic. The
    // compartment's excess over its columns' medians, in both energies.
    bool metal = false;
    if (c.dual && !c.declaredEmpty && massKg > 0) {
      double exH = 0, exL = 0, pathH = 0, pathL = 0;
      int cellsIn = 0;
      std::vector<float> colH, colL;
      for (int x = std::max(0, cx0); x < std::min(c.a.cols, cx1); ++x) {
        colH.clear();
        colL.clear();
        for (int y = box.y; y < box.br().y; ++y) {
          colH.push_back(c.a.at<float>(y, x));
          colL.push_back(c.al.at<float>(y, x));
        }
        const double levelH = median(colH);
        const double levelL = median(colL);
        for (int y = box.y; y < box.br().y; ++y) {
          const double v = at(c.a, y, x);
          if (v - levelH - 2.0 * c.sigmaCell(v) <= 0) continue;
          exH += v - levelH;
          exL += at(c.al, y, x) - levelL;
          pathH += v;
          pathL += at(c.al, y, x);
          ++cellsIn;
        }
      }
      if (cellsIn > 0 && exH > 0 && pathH > 0)
        metal = c.metalLike(exL / exH, pathL / pathH, pathH / cellsIn);
    }
    if (metal) massKg *= 0.1;
    const double depthCm = (a1 - a0 + 1) * c.cellX / 10.0;
    c.note("false_wall", massKg, box);
    const double score = scoreOf(massKg, "false_wall");
    if (score < 0.35) continue;
    Finding f = c.make("structural", "false_wall", box, score, Material::kUnknown);
    f.massKgEst = massKg;
    f.reason = "A second wall stands " + num(depthCm) + " cm inside the " +
               std::string(front ? "front" : "rear") + " end wall, enclosing about " + num(massKg) +
               " kg: a false wall compartment.";
    c.findings.push_back(f);
  }
}

// Content of the body above what its walls alone attenuate; used against the manifest.
void findManifest(Context& c, const ScanMeta& meta) {
  const Structure& st = c.st;
  if (st.interiorX0 < 0) return;
  const cv::Rect roi(st.interiorX0, st.interiorY0, st.interiorX1 - st.interiorX0 + 1,
                     st.interiorY1 - st.interiorY0 + 1);
  cv::Mat in = c.a(roi);
  // The empty body, row by row: what the emptiest 2 % of the row shows (side walls, and the
  // rails and roof edges that run its whole length). Goods never fill a row wall to wall.
  // Then column by column, what is left in the emptiest tenth of the column's height: posts,
  // frame lines and bulkheads that run floor to roof (a curtain-sider's posts read as 100–
  // 260 kg of content row by row alone). Goods filling nine tenths of a column's height are
  // a load, whose other columns still show it.
  cv::Mat excess(in.size(), CV_32F);
  std::vector<float> line;
  for (int y = 0; y < in.rows; ++y) {
    line.assign(in.ptr<float>(y), in.ptr<float>(y) + in.cols);
    const auto wallAlpha = static_cast<float>(quantile(line, 0.02));
    for (int x = 0; x < in.cols; ++x) excess.at<float>(y, x) = in.at<float>(y, x) - wallAlpha;
  }
  for (int x = 0; x < in.cols; ++x) {
    line.resize(static_cast<std::size_t>(in.rows));
    for (int y = 0; y < in.rows; ++y) line[static_cast<std::size_t>(y)] = excess.at<float>(y, x);
    const auto postAlpha = static_cast<float>(std::max(0.0, quantile(line, 0.1)));
    for (int y = 0; y < in.rows; ++y) excess.at<float>(y, x) -= postAlpha;
  }
  // A compartment behind a line at an end (a reefer's machinery bay, a false wall's) is the
  // false-wall test's: its matter is weighed there, with its material.
  for (const cv::Rect& r : c.endCompartments)
    excess((r - roi.tl()) & cv::Rect(0, 0, in.cols, in.rows)).setTo(0);
  double massKg = 0;
  cv::Mat content = cv::Mat::zeros(in.size(), CV_8U);
  for (int y = 0; y < in.rows; ++y) {
    for (int x = 0; x < in.cols; ++x) {
      const auto d = static_cast<double>(excess.at<float>(y, x));
      if (d > std::max(c.p.stepSigma * c.sigmaCell(static_cast<double>(in.at<float>(y, x))),
                       c.minStepAlpha())) {
        massKg += d;
        content.at<std::uint8_t>(y, x) = 255;
      }
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
    if (f.kind == "opaque" || f.score < c.p.hitScore || f.massKgEst.value_or(0.0) < c.p.minMassKg)
      continue;
    locatedKg += *f.massKgEst;
    if (largest == nullptr || *f.massKgEst > *largest->massKgEst) largest = &f;
  }
  if (d.empty.value_or(false) && (massKg >= c.p.emptyContentKg || largest != nullptr)) {
    const cv::Rect r = cv::boundingRect(content) + roi.tl();
    const double shownKg = std::max(massKg, locatedKg);
    Finding f = c.make("manifest_mismatch", "empty_content", r.area() > 0 ? r : roi,
                       0.5 + 0.5 * std::min(1.0, shownKg / 200.0), Material::kUnknown);
    f.massKgEst = shownKg;
    f.reason = massKg >= locatedKg
                   ? "Declared empty, but the body holds about " + num(massKg) + " kg of content."
                   : "Declared empty, but the scan shows about " + num(shownKg) +
                         " kg of content (largest: " + largest->kind + ", about " +
                         num(*largest->massKgEst) + " kg).";
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
      Finding f = c.make("manifest_mismatch", "gross_mass", roi,
                         std::min(0.45, 0.3 * std::abs(diff) / tol), Material::kUnknown);
      f.massKgEst = massKg;
      f.reason = "The load looks like about " + num(massKg) + " kg, the manifest implies " +
                 num(declaredCargo) + " kg of cargo.";
      c.findings.push_back(f);
    }
  }
}

namespace {

// Box means over a region by integral images; cells outside the region do not count. The
// integrals of the count, the occupied cells and every plane sit side by side, one record per
// corner, so that a box reads four records rather than four cells of six images (the island
// test reads five boxes at every place it tries, and this was a quarter of the analysis).
class BoxMeans {
 public:
  static constexpr std::size_t kPlanes = 4;
  // `planes` (at most kPlanes) are CV_32F images of the region; `valid` (CV_8U) marks the
  // cells that count.
  BoxMeans(const std::vector<cv::Mat>& planes, const cv::Mat& valid, const cv::Mat& occupied)
      : w_(valid.cols), h_(valid.rows), stride_(valid.cols + 1) {
    planes_ = std::min(planes.size(), kPlanes);
    // The integrals straight into the table, row by row as cv::integral sums them (a running
    // sum along the row added to the row above): no image per integral, no temporaries.
    table_.assign(static_cast<std::size_t>(stride_) * static_cast<std::size_t>(h_ + 1), Record{});
    for (int y = 0; y < h_; ++y) {
      const std::uint8_t* v = valid.ptr<std::uint8_t>(y);
      const std::uint8_t* o = occupied.ptr<std::uint8_t>(y);
      std::array<const float*, kPlanes> p{};
      for (std::size_t k = 0; k < planes_; ++k) p[k] = planes[k].ptr<float>(y);
      Record run{};
      const Record* above = &table_[index(1, y)];
      Record* out = &table_[index(1, y + 1)];
      for (int x = 0; x < w_; ++x) {
        const double counts = v[x] ? 1.0 : 0.0;
        run[0] += counts;
        run[1] += o[x] ? 1.0 : 0.0;
        for (std::size_t k = 0; k < planes_; ++k)
          run[k + 2] += static_cast<double>(p[k][x]) * counts;
        for (std::size_t k = 0; k < planes_ + 2; ++k) out[x][k] = above[x][k] + run[k];
      }
    }
  }
  struct Box {
    std::array<double, kPlanes> mean{};  // per plane
    double valid = 0;                    // share of the box's cells that count
    double held = 0;                     // share of the box's cells holding matter
  };
  Box at(int x0, int y0, int bw, int bh) const {
    Box b;
    const int x1 = std::clamp(x0 + bw, 0, w_);
    const int y1 = std::clamp(y0 + bh, 0, h_);
    x0 = std::clamp(x0, 0, w_);
    y0 = std::clamp(y0, 0, h_);
    if (x1 <= x0 || y1 <= y0) return b;
    const Record& a11 = table_[index(x1, y1)];
    const Record& a01 = table_[index(x0, y1)];
    const Record& a10 = table_[index(x1, y0)];
    const Record& a00 = table_[index(x0, y0)];
    // The same sums, in the same order, as four lookups in separate integral images.
    auto box = [&](std::size_t k) { return a11[k] - a10[k] - a01[k] + a00[k]; };
    const double n = box(0);
    const double area = static_cast<double>(bw) * bh;
    b.valid = n / area;
    b.held = box(1) / area;
    if (n <= 0) return b;
    for (std::size_t i = 0; i < planes_; ++i) b.mean[i] = box(i + 2) / n;
    return b;
  }

 private:
  using Record = std::array<double, kPlanes + 2>;  // count, occupied, planes
  std::size_t index(int x, int y) const {
    return static_cast<std::size_t>(y) * static_cast<std::size_t>(stride_) +
           static_cast<std::size_t>(x);
  }
  int w_, h_, stride_;
  std::size_t planes_ = 0;
  std::vector<Record> table_;
};

// Planes of BoxMeans in findBlocks.
constexpr std::size_t kResidual = 0;  // α_H minus its sibling column
constexpr std::size_t kResidualL = 1;
constexpr std::size_t kAlpha = 2;  // α_H itself
constexpr std::size_t kAlphaL = 3;

// Takes off each column's (or row's) median over its valid cells, where it has four or more.
void subtractMedians(cv::Mat& m, const cv::Mat& valid, bool columns) {
  const int lines = columns ? m.cols : m.rows;
  const int along = columns ? m.rows : m.cols;
  auto cell = [&](int line, int k) -> float& {
    return columns ? m.at<float>(k, line) : m.at<float>(line, k);
  };
  auto ok = [&](int line, int k) {
    return (columns ? valid.at<std::uint8_t>(k, line) : valid.at<std::uint8_t>(line, k)) != 0;
  };
  std::vector<float> v;
  for (int line = 0; line < lines; ++line) {
    v.clear();
    for (int k = 0; k < along; ++k)
      if (ok(line, k)) v.push_back(cell(line, k));
    if (v.size() < 4) continue;
    const auto med = static_cast<float>(median(v));
    for (int k = 0; k < along; ++k) cell(line, k) -= med;
  }
}

// Each column of the load minus the column elsewhere along it (at least `guard` away) that it
// matches best: a unit's column minus the same column of another unit of the same kind. What
// repeats along the load (cartons, pallets, drums and their rims, the motor of every washing
// machine, the layers of every bag stack) cancels; what one unit holds and its siblings do not
// remains. Near-opaque cells are left out of the match and of the residual.
void siblingResidual(const cv::Mat& a, const cv::Mat& al, const cv::Mat& valid, int guard,
                     cv::Mat& r, cv::Mat& rl) {
  const int w = a.cols;
  const int h = a.rows;
  // Every other row is enough to tell columns apart. Each column's sampled rows are laid out
  // contiguously, with a 0/1 weight for the cells that count, padded to a multiple of eight:
  // the distance then runs in eight independent sums the compiler vectorises (a padding cell
  // adds the same 1 to every distance, which moves no minimum).
  const int step = h > 60 ? 2 : 1;
  const int m = (h + step - 1) / step;
  const int mp = (m + 7) / 8 * 8;
  std::vector<float> av(static_cast<std::size_t>(w) * static_cast<std::size_t>(mp), 0.0f);
  std::vector<float> mv(av.size(), 0.0f);
  for (int x = 0; x < w; ++x)
    for (int j = 0; j < m; ++j) {
      const auto i =
          static_cast<std::size_t>(x) * static_cast<std::size_t>(mp) + static_cast<std::size_t>(j);
      if (valid.at<std::uint8_t>(j * step, x) == 0) continue;
      av[i] = a.at<float>(j * step, x);
      mv[i] = 1.0f;
    }
  // L1 distance between every two columns at least `guard` apart (a cell that does not count
  // in either column adds 1).
  cv::Mat dist(w, w, CV_32F, cv::Scalar(0));
  for (int x = 0; x < w; ++x) {
    const float* ax = av.data() + static_cast<std::size_t>(x) * static_cast<std::size_t>(mp);
    const float* mx = mv.data() + static_cast<std::size_t>(x) * static_cast<std::size_t>(mp);
    for (int k = x + std::max(1, guard); k < w; ++k) {
      const float* ak = av.data() + static_cast<std::size_t>(k) * static_cast<std::size_t>(mp);
      const float* mk = mv.data() + static_cast<std::size_t>(k) * static_cast<std::size_t>(mp);
      std::array<float, 8> acc{};
      for (int j = 0; j < mp; j += 8)
        for (int l = 0; l < 8; ++l) {
          const float both = mx[j + l] * mk[j + l];
          acc[static_cast<std::size_t>(l)] +=
              both * std::abs(ax[j + l] - ak[j + l]) + (1.0f - both);
        }
      float l1 = 0;
      for (const float v : acc) l1 += v;
      dist.at<float>(x, k) = l1;
      dist.at<float>(k, x) = l1;
    }
  }
  std::vector<int> best(static_cast<std::size_t>(w), -1);
  for (int x = 0; x < w; ++x) {
    float bestL1 = 0;
    for (int k = 0; k < w; ++k) {
      if (std::abs(k - x) < guard) continue;
      const float l1 = dist.at<float>(x, k);
      if (best[static_cast<std::size_t>(x)] < 0 || l1 < bestL1) {
        bestL1 = l1;
        best[static_cast<std::size_t>(x)] = k;
      }
    }
  }
  r = cv::Mat::zeros(a.size(), CV_32F);
  rl = cv::Mat::zeros(a.size(), CV_32F);
  for (int x = 0; x < w; ++x) {
    const int k = best[static_cast<std::size_t>(x)];
    if (k < 0) continue;
    for (int y = 0; y < h; ++y) {
      if (!valid.at<std::uint8_t>(y, x) || !valid.at<std::uint8_t>(y, k)) continue;
      r.at<float>(y, x) = a.at<float>(y, x) - a.at<float>(y, k);
      if (!al.empty()) rl.at<float>(y, x) = al.at<float>(y, x) - al.at<float>(y, k);
    }
  }
}

// One island: a box of cells denser than the boxes beside it on at least three sides.
struct Island {
  int x = 0, y = 0;    // centre cell (ROI coordinates)
  int bw = 1, bh = 1;  // inner box, cells
  double step = 0;     // inner mean − the densest held side (in the sibling residual)
  double stepL = 0;    // the same in α_L
  double level = 0;    // that side's residual
  double levelL = 0;
  double path = 0;  // α_H of the path through the inner box
  double pathL = 0;
  double z = 0;     // step over the load's own spread of such steps
  double tau = 0;   // that spread
  double stat = 0;  // z after the material test
};

}  // namespace

// Blocks in the load. First, each column of the load is compared with its best-matching
// sibling column elsewhere along it (siblingResidual): repeated units cancel. Then the
// "island" test of CFAR radar runs on that residual at several box sizes and shapes: the
// mean of an inner box against four boxes of the same size beside it (a guard band between).
// A stash inside a unit stands above the unit all around it, while a unit's layers, a denser
// unit or a step in the load's top leave at least one side as high. The step is measured in
// units of the load's own spread of such steps within a metre and a half (its 90th
// percentile as a σ), and, where the load is full of islands of its own (machinery), against
// the second strongest other island nearby (ordered-statistic CFAR). A place counts only
// when at least three of its sides are nearly all matter (a lone carton on the floor is
// cargo, not a stash inside cargo). Metal-like paths are not stashes (dual energy).
void findBlocks(Context& c) {
  const Structure& st = c.st;
  if (st.interiorX0 < 0 || st.interiorX1 - st.interiorX0 < 8 || st.interiorY1 - st.interiorY0 < 4)
    return;
  const cv::Rect roi(st.interiorX0, st.interiorY0, st.interiorX1 - st.interiorX0 + 1,
                     st.interiorY1 - st.interiorY0 + 1);
  const cv::Mat a = c.a(roi);
  const cv::Mat al = c.dual ? c.al(roi) : cv::Mat(a.size(), CV_32F, cv::Scalar(0));
  // Near-opaque cells are for the opaque finding: too few quanta, too much scatter.
  const cv::Mat valid = a < 0.6 * c.opaqueAlpha;
  const cv::Mat occupied = a > c.occupied;
  // Projections add: a structure that spans a whole column (a curtain post, a wall seen
  // edge-on, a unit as tall as the load) or a whole row (a roof rail, the deck's edge) adds a
  // constant along it. Taking off each column's and then each row's median (median polish)
  // leaves what is local, so that overlaps of such structures with the units' own parts do
  // not look like unique islands.
  cv::Mat polished = a.clone();
  cv::Mat polishedL = al.clone();
  for (cv::Mat* m : {&polished, &polishedL}) {
    subtractMedians(*m, valid, true);
    subtractMedians(*m, valid, false);
  }
  cv::Mat r;
  cv::Mat rl;
  // Siblings are at least 800 mm away: no stash is that long.
  siblingResidual(polished, c.dual ? polishedL : cv::Mat(), valid, cells(800.0, c.cellX), r, rl);
  const BoxMeans means({r, rl, a, al}, valid, occupied);
  std::vector<Island> peaks;
  cv::Mat zmap = cv::Mat::zeros(roi.size(), CV_32F);
  // Candidates from z = 2 on, whatever the threshold: the calibration reads their statistics.
  const double low = 2.0;
  for (const double sizeMm : {100.0, 160.0, 250.0, 400.0, 630.0}) {
    for (const double aspect : {1.0, 2.5, 0.4}) {
      const int bw = cells(sizeMm * std::sqrt(aspect), c.cellX);
      const int bh = cells(sizeMm / std::sqrt(aspect), c.cellY);
      if (bw > roi.width / 3 || bh > roi.height / 2) continue;
      const int gx = std::max(1, bw / 4);
      const int gy = std::max(1, bh / 4);
      // A third of the box, to the nearest cell (100 mm boxes on 20 mm cells: every other).
      const int stride = std::max(1, static_cast<int>(std::lround(std::min(bw, bh) / 3.0)));
      std::vector<Island> found;
      // Positive steps of every place with three held sides, by metre of load length: the
      // load's own texture at this box size where the candidate is.
      const int block = cells(1000.0, c.cellX);
      std::vector<std::vector<float>> byBlock(static_cast<std::size_t>(roi.width / block + 1));
      for (int y = 0; y + bh <= roi.height; y += stride)
        for (int x = 0; x + bw <= roi.width; x += stride) {
          const BoxMeans::Box in = means.at(x, y, bw, bh);
          if (in.valid < 0.8 || in.held < 0.8) continue;
          const BoxMeans::Box side[4] = {
              means.at(x - gx - bw, y, bw, bh), means.at(x + bw + gx, y, bw, bh),
              means.at(x, y - gy - bh, bw, bh), means.at(x, y + bh + gy, bw, bh)};
          int held = 0;
          double level = -1e9;
          double levelL = 0;
          for (const auto& sd : side) {
            // A side holds when nearly all of it is matter: a gap between units, or air
            // beside a lone unit, breaks it (a whole unit denser than its neighbours is cargo).
            if (sd.valid < 0.5 || sd.held < 0.9) continue;
            ++held;
            if (sd.mean[kResidual] > level) {
              level = sd.mean[kResidual];
              levelL = sd.mean[kResidualL];
            }
          }
          if (held < 3) continue;
          Island is;
          is.x = x + bw / 2;
          is.y = y + bh / 2;
          is.bw = bw;
          is.bh = bh;
          is.step = in.mean[kResidual] - level;
          is.stepL = in.mean[kResidualL] - levelL;
          is.level = level;
          is.levelL = levelL;
          is.path = in.mean[kAlpha];
          is.pathL = in.mean[kAlphaL];
          if (is.step <= 0) continue;
          byBlock[static_cast<std::size_t>(is.x / block)].push_back(static_cast<float>(is.step));
          found.push_back(is);
        }
      // The 90th percentile of those steps over the metre around and one either side, as a σ
      // (the upper tail is what false alarms come from).
      std::vector<double> spreadOf(byBlock.size(), -1.0);
      for (std::size_t b = 0; b < byBlock.size(); ++b) {
        std::vector<float> v;
        for (std::size_t k = b == 0 ? 0 : b - 1; k <= std::min(byBlock.size() - 1, b + 1); ++k)
          v.insert(v.end(), byBlock[k].begin(), byBlock[k].end());
        if (v.size() >= 20) spreadOf[b] = quantile(v, 0.9) / 1.645;
      }
      for (Island& is : found) {
        const double spread = spreadOf[static_cast<std::size_t>(is.x / block)];
        if (spread < 0) continue;
        const double noise = c.sigmaCell(is.path) * std::sqrt(4.0 / (is.bw * is.bh));
        is.tau = std::max({spread, 3.0 * noise, 0.25 * c.minStepAlpha()});
        is.z = is.step / is.tau;
        if (is.z < low) continue;
        // Keep it if no stronger island already covers its inner box.
        const cv::Rect box(is.x - is.bw / 2, is.y - is.bh / 2, is.bw, is.bh);
        double stronger = 0;
        cv::minMaxLoc(zmap(box), nullptr, &stronger);
        if (stronger > is.z) continue;
        peaks.push_back(is);
        zmap(box).setTo(static_cast<double>(static_cast<float>(is.z)));
      }
    }
  }
  // Ordered-statistic CFAR: where the load is full of islands of its own, a candidate must
  // also stand out of the second strongest other island within 1.5 m, by a factor of four.
  {
    const int reach = cells(1500.0, c.cellX);
    std::vector<double> os(peaks.size(), 0.0);
    for (std::size_t i = 0; i < peaks.size(); ++i) {
      const cv::Rect bi(peaks[i].x - peaks[i].bw / 2, peaks[i].y - peaks[i].bh / 2, peaks[i].bw,
                        peaks[i].bh);
      std::vector<double> others;
      for (std::size_t j = 0; j < peaks.size(); ++j) {
        if (j == i || std::abs(peaks[j].x - peaks[i].x) > reach) continue;
        const cv::Rect bj(peaks[j].x - peaks[j].bw / 2, peaks[j].y - peaks[j].bh / 2, peaks[j].bw,
                          peaks[j].bh);
        if ((bi & bj).area() > 0) continue;
        others.push_back(peaks[j].step);
      }
      if (others.size() >= 2) {
        std::nth_element(others.begin(), others.begin() + 1, others.end(), std::greater<>());
        os[i] = others[1];
      }
    }
    for (std::size_t i = 0; i < peaks.size(); ++i)
      peaks[i].z = peaks[i].step / std::max(peaks[i].tau, 0.25 * os[i]);
  }
  // One candidate per place: the strongest island whose box no stronger one overlaps.
  std::sort(peaks.begin(), peaks.end(),
            [](const Island& l, const Island& r2) { return l.z > r2.z; });
  std::vector<cv::Rect> taken;
  for (Island is : peaks) {
    const cv::Rect inner(is.x - is.bw / 2, is.y - is.bh / 2, is.bw, is.bh);
    bool overlap = false;
    for (const cv::Rect& t : taken) overlap = overlap || (t & inner).area() > 0;
    if (overlap) continue;
    taken.push_back(inner);
    // The block itself: cells around the inner box whose residual carries half the step.
    const cv::Rect around =
        cv::Rect(inner.x - is.bw / 2, inner.y - is.bh / 2, 2 * is.bw, 2 * is.bh) &
        cv::Rect(0, 0, roi.width, roi.height);
    const cv::Mat part = r(around) > is.level + 0.5 * is.step;
    cv::Mat labels;
    cv::connectedComponents(part, labels, 8, CV_32S);
    const int centreLabel = labels.at<int>(is.y - around.y, is.x - around.x);
    cv::Rect region = inner;
    double excess = is.step * is.bw * is.bh;
    double excessL = is.stepL * is.bw * is.bh;
    if (centreLabel > 0) {
      const cv::Mat mask = labels == centreLabel;
      region = cv::boundingRect(mask) + around.tl();
      excess = 0;
      excessL = 0;
      for (int yy = 0; yy < mask.rows; ++yy)
        for (int xx = 0; xx < mask.cols; ++xx)
          if (mask.at<std::uint8_t>(yy, xx)) {
            excess += at(r, yy + around.y, xx + around.x) - is.level;
            excessL += at(rl, yy + around.y, xx + around.x) - is.levelL;
          }
    }
    is.stat = is.z;
    const double massKg = c.massKg(excess);
    // Material: a path of higher Z than organics of its thickness is machinery, not a stash.
    bool metal = false;
    if (c.dual && !c.declaredEmpty && excess > 0 && is.path > 0)
      metal = c.metalLike(excessL / excess, is.pathL / is.path, is.path);
    if (metal) is.stat *= 0.1;
    if (massKg < c.p.minMassKg) is.stat *= massKg / c.p.minMassKg;
    const cv::Rect box = region + roi.tl();
    c.note("load_block", is.stat, box);
    const double score = scoreOf(is.stat, "load_block");
    if (score < 0.35) continue;
    const Material m =
        c.dual ? (metal ? Material::kMetal : Material::kOrganic) : Material::kUnknown;
    Finding f = c.make("organic_mass", "load_block", box, score, m);
    f.massKgEst = massKg;
    f.reason =
        "A " + num(region.width * c.cellX / 10.0) + " x " + num(region.height * c.cellY / 10.0) +
        " cm block adds about " + num(massKg) + " kg of " + std::string(materialName(m)) +
        " areal density that the same place in the other units of this load does not show, " +
        num(is.z) + " times the load's own spread of such differences.";
    c.findings.push_back(f);
  }
}

}  // namespace lanegate::vision::detail
