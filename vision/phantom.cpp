#include "vision/phantom.h"

#include "vision/decode.h"
#include "vision/physics.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

namespace lanegate::vision {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kHeightMm = 4500.0;  // detector tower
constexpr double kGroundMm = 4450.0;  // road surface, measured from the top channel
constexpr double kBrickDensity = 1.15;  // packed bricks, g/cm³ (1.0–1.4 in the notes, with voids)
constexpr double kFe = 7.87;

// Areal-density maps (g/cm²) per basis material; structure and load are kept apart so a
// stash can displace the goods it replaces.
struct Scene {
  double pitch = 5.0;
  int width = 0;
  int height = 0;
  std::array<cv::Mat, kBasisCount> structure;
  std::array<cv::Mat, kBasisCount> load;
};

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : gen_(seed) {}
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(gen_); }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen_); }
  bool chance(double p) { return uniform(0.0, 1.0) < p; }
  double normal() { return std::normal_distribution<double>(0.0, 1.0)(gen_); }
  std::uint64_t next() { return gen_(); }

 private:
  std::mt19937_64 gen_;
};

// Coverage of pixel cells [i·p, (i+1)·p) by the interval [a, b), so thin parts (a 2 mm roof
// sheet at 10 mm pitch) keep their mass.
cv::Mat coverage(double a, double b, double pitch, int n, int& first, bool column) {
  first = std::max(0, static_cast<int>(std::floor(a / pitch)));
  const int last = std::min(n - 1, static_cast<int>(std::ceil(b / pitch)) - 1);
  const int count = std::max(0, last - first + 1);
  cv::Mat w = column ? cv::Mat(count, 1, CV_32F) : cv::Mat(1, count, CV_32F);
  for (int i = 0; i < count; ++i) {
    const double lo = (first + i) * pitch;
    const double hi = lo + pitch;
    w.at<float>(column ? i : 0, column ? 0 : i) =
        static_cast<float>(std::max(0.0, std::min(hi, b) - std::max(lo, a)) / pitch);
  }
  return w;
}

// Separable coverage weights: no temporaries, so a scene of a few hundred parts stays cheap.
void addRect(cv::Mat& map, const Scene& s, double x, double y, double w, double h, double value) {
  if (w <= 0 || h <= 0) return;
  int x0 = 0;
  int y0 = 0;
  const cv::Mat wx = coverage(x, x + w, s.pitch, s.width, x0, false);
  const cv::Mat wy = coverage(y, y + h, s.pitch, s.height, y0, true);
  if (wx.empty() || wy.empty()) return;
  const float* px = wx.ptr<float>(0);
  for (int j = 0; j < wy.rows; ++j) {
    const float v = static_cast<float>(value) * wy.at<float>(j, 0);
    float* row = map.ptr<float>(y0 + j) + x0;
    for (int i = 0; i < wx.cols; ++i) row[i] += v * px[i];
  }
}

void scaleRect(cv::Mat& map, const Scene& s, double x, double y, double w, double h, double factor) {
  int x0 = 0;
  int y0 = 0;
  const cv::Mat wx = coverage(x, x + w, s.pitch, s.width, x0, false);
  const cv::Mat wy = coverage(y, y + h, s.pitch, s.height, y0, true);
  if (wx.empty() || wy.empty()) return;
  // Partial coverage blends the factor in, 1 where the rect misses the pixel.
  const float* px = wx.ptr<float>(0);
  for (int j = 0; j < wy.rows; ++j) {
    const float v = static_cast<float>(factor - 1.0) * wy.at<float>(j, 0);
    float* row = map.ptr<float>(y0 + j) + x0;
    for (int i = 0; i < wx.cols; ++i) row[i] *= 1.0f + v * px[i];
  }
}

// Adds `value` over the annulus r∈[r0, r1) (mm) around (cx, cy), within angles [a0, a1).
void addAnnulus(cv::Mat& map, const Scene& s, double cx, double cy, double r0, double r1, double value,
                double a0 = -10.0, double a1 = 10.0) {
  const int sub = 3;  // supersampling for smooth edges
  const bool sector = a0 > -kPi || a1 < kPi;
  const int xa = std::max(0, static_cast<int>((cx - r1) / s.pitch));
  const int xb = std::min(s.width - 1, static_cast<int>((cx + r1) / s.pitch) + 1);
  const int ya = std::max(0, static_cast<int>((cy - r1) / s.pitch));
  const int yb = std::min(s.height - 1, static_cast<int>((cy + r1) / s.pitch) + 1);
  for (int y = ya; y <= yb; ++y) {
    float* row = map.ptr<float>(y);
    for (int x = xa; x <= xb; ++x) {
      int hits = 0;
      for (int j = 0; j < sub; ++j) {
        for (int i = 0; i < sub; ++i) {
          const double px = (x + (i + 0.5) / sub) * s.pitch - cx;
          const double py = (y + (j + 0.5) / sub) * s.pitch - cy;
          const double r = std::sqrt(px * px + py * py);
          if (r < r0 || r >= r1) continue;
          if (sector && (std::atan2(py, px) < a0 || std::atan2(py, px) >= a1)) continue;
          ++hits;
        }
      }
      row[x] += static_cast<float>(value * hits / (sub * sub));
    }
  }
}

cv::Mat& org(Scene& s, bool load) { return load ? s.load[0] : s.structure[0]; }
cv::Mat& alu(Scene& s, bool load) { return load ? s.load[2] : s.structure[2]; }
cv::Mat& iron(Scene& s, bool load) { return load ? s.load[3] : s.structure[3]; }
cv::Mat& lead(Scene& s, bool load) { return load ? s.load[4] : s.structure[4]; }

struct Body {
  double x0 = 0, x1 = 0, top = 0, bottom = 0;       // outer box
  double ix0 = 0, ix1 = 0, itop = 0, ifloor = 0;    // interior
  double depthCm = 235.0;                           // interior width across the beam
  double floorCavityTop = 0, floorCavityBottom = 0;  // between cross members
  double tareKg = 0;
};

void wheel(Scene& s, double cx, double cy) {
  addAnnulus(org(s, false), s, cx, cy, 300, 500, 14.0);
  addAnnulus(iron(s, false), s, cx, cy, 300, 500, 2.0);
  addAnnulus(iron(s, false), s, cx, cy, 60, 300, 31.0);
  addAnnulus(iron(s, false), s, cx, cy, 0, 60, 250.0);
}

void tractor(Scene& s, double x0, std::vector<std::array<double, 2>>& wheels) {
  const double g = kGroundMm;
  addRect(iron(s, false), s, x0, g - 3100, 2300, 2000, 1.6);               // cab shell
  addRect(org(s, false), s, x0 + 800, g - 2400, 1200, 900, 5.0);           // seats, dashboard
  addRect(iron(s, false), s, x0 + 300, g - 1700, 1000, 800, 120.0);        // engine block
  addRect(iron(s, false), s, x0 + 1500, g - 1100, 900, 600, 3.1);          // fuel tank shell
  addRect(org(s, false), s, x0 + 1500, g - 1100, 900, 600, 50.0);          // diesel
  addRect(iron(s, false), s, x0, g - 1100, 6000, 300, 12.6);               // chassis rails
  for (const double wx : {x0 + 1000, x0 + 4200, x0 + 5500}) wheels.push_back({wx, g - 500});
}

Body container(Scene& s, double x0, double lengthMm, double heightMm, std::vector<std::array<double, 2>>& wheels) {
  Body b;
  b.x0 = x0;
  b.x1 = x0 + lengthMm;
  b.bottom = kGroundMm - 1250;
  b.top = b.bottom - heightMm;
  b.tareKg = lengthMm > 8000 ? 3800 : 2200;
  addRect(iron(s, false), s, b.x0, b.top, lengthMm, heightMm, 3.3);            // corrugated side walls
  addRect(iron(s, false), s, b.x0, b.top, lengthMm, 30, 130.0);                // roof edge-on
  addRect(org(s, false), s, b.x0 + 150, b.bottom - 160, lengthMm - 300, 28, 164.5);  // plywood floor
  addRect(iron(s, false), s, b.x0, b.bottom - 160, lengthMm, 160, 14.0);       // bottom side rails
  for (double m = b.x0 + 200; m < b.x1 - 200; m += 305)
    addRect(iron(s, false), s, m, b.bottom - 132, 45, 132, 286.0);            // cross members
  addRect(iron(s, false), s, b.x0, b.top, 150, heightMm, 19.0);                // corner posts
  addRect(iron(s, false), s, b.x1 - 150, b.top, 150, heightMm, 19.0);
  addRect(iron(s, false), s, b.x0 + 5, b.top, 40, heightMm, 111.0);            // front end wall
  addRect(iron(s, false), s, b.x1 - 100, b.top, 60, heightMm, 80.0);           // doors edge-on
  addRect(iron(s, false), s, b.x1 - 130, b.top, 30, heightMm, 67.0);           // locking bars
  // Trailer chassis under the box.
  addRect(iron(s, false), s, b.x0, b.bottom, lengthMm, 300, 12.6);
  addRect(iron(s, false), s, b.x0, b.bottom, lengthMm, 12, 236.0);
  addRect(iron(s, false), s, b.x0, b.bottom + 288, lengthMm, 12, 236.0);
  const int axles = lengthMm > 8000 ? 3 : 2;
  for (int a = 0; a < axles; ++a) wheels.push_back({b.x1 - 1200 - 1310.0 * a, kGroundMm - 500});
  b.ix0 = b.x0 + 150;
  b.ix1 = b.x1 - 150;
  b.itop = b.top + 30;
  b.ifloor = b.bottom - 160;
  b.floorCavityTop = b.bottom - 132;
  b.floorCavityBottom = b.bottom;
  b.depthCm = 235.0;
  return b;
}

Body truckBody(Scene& s, double x0, std::vector<std::array<double, 2>>& wheels) {
  const double g = kGroundMm;
  addRect(iron(s, false), s, x0, g - 3000, 2200, 1900, 1.6);
  addRect(org(s, false), s, x0 + 700, g - 2300, 1100, 800, 5.0);
  addRect(iron(s, false), s, x0 + 200, g - 1600, 900, 700, 110.0);
  addRect(iron(s, false), s, x0, g - 1000, 9500, 280, 12.6);
  Body b;
  b.x0 = x0 + 2500;
  b.x1 = b.x0 + 7000;
  b.bottom = g - 1100;
  b.top = b.bottom - 2600;
  b.tareKg = 0;
  const double len = b.x1 - b.x0;
  addRect(alu(s, false), s, b.x0, b.top, len, 2600, 0.81);                    // Al skins
  addRect(org(s, false), s, b.x0, b.top, len, 2600, 1.08);                    // plywood liners
  addRect(alu(s, false), s, b.x0, b.top, len, 25, 2.7 * 240 * 2.0 / 25.0);    // roof edge-on
  addRect(org(s, false), s, b.x0 + 60, b.bottom - 150, len - 120, 30, 0.7 * 240);  // wooden floor
  addRect(iron(s, false), s, b.x0, b.bottom - 150, len, 150, 10.0);          // floor frame
  for (double m = b.x0 + 150; m < b.x1 - 150; m += 400)
    addRect(iron(s, false), s, m, b.bottom - 120, 40, 120, 200.0);
  addRect(alu(s, false), s, b.x0, b.top, 60, 2600, 2.7 * 240 * 3.0 / 60.0);  // front wall edge-on
  addRect(alu(s, false), s, b.x1 - 80, b.top, 80, 2600, 2.7 * 240 * 4.0 / 80.0);  // rear doors
  for (const double wx : {x0 + 900, b.x1 - 2300, b.x1 - 1000}) wheels.push_back({wx, g - 500});
  b.ix0 = b.x0 + 60;
  b.ix1 = b.x1 - 80;
  b.itop = b.top + 25;
  b.ifloor = b.bottom - 150;
  b.floorCavityTop = b.bottom - 120;
  b.floorCavityBottom = b.bottom;
  b.depthCm = 240.0;
  return b;
}

Body uld(Scene& s, double x0) {
  Body b;
  b.x0 = x0;
  b.x1 = x0 + 1562;
  b.bottom = kGroundMm - 250;  // on a roller bed
  b.top = b.bottom - 1626;
  b.tareKg = 80;
  const double len = b.x1 - b.x0;
  addRect(alu(s, false), s, b.x0, b.top, len, 1626, 1.08);
  addRect(alu(s, false), s, b.x0, b.top, len, 10, 153 * 2.7 * 2.0 / 10.0);
  addRect(alu(s, false), s, b.x0, b.bottom - 10, len, 10, 153 * 2.7 * 5.0 / 10.0);
  addRect(alu(s, false), s, b.x0, b.top, 30, 1626, 153 * 2.7 * 4.0 / 30.0);
  addRect(alu(s, false), s, b.x1 - 30, b.top, 30, 1626, 153 * 2.7 * 4.0 / 30.0);
  addRect(iron(s, false), s, b.x0 - 300, b.bottom + 100, len + 600, 100, 20.0);  // roller bed
  b.ix0 = b.x0 + 30;
  b.ix1 = b.x1 - 30;
  b.itop = b.top + 10;
  b.ifloor = b.bottom - 10;
  b.floorCavityTop = b.bottom - 10;
  b.floorCavityBottom = b.bottom;
  b.depthCm = 153.0;
  return b;
}

// A region of goods, remembered so stashes can be placed inside and displace them.
struct GoodsBlock {
  double x, y, w, h;
};

void cartonGrid(Scene& s, Rng& rng, int basis, double x, double y, double w, double h, double areal,
                double jitter, std::vector<GoodsBlock>& blocks) {
  const double cw = rng.uniform(350, 650);
  const double ch = rng.uniform(250, 500);
  for (double cy = y; cy < y + h - 1; cy += ch) {
    for (double cx = x; cx < x + w - 1; cx += cw) {
      const double ww = std::min(cw, x + w - cx);
      const double hh = std::min(ch, y + h - cy);
      const double v = areal * (1.0 + jitter * rng.normal());
      addRect(s.load[static_cast<std::size_t>(basis)], s, cx, cy, ww - 10, hh - 10, std::max(0.0, v));
      // Carton walls and the gaps between them: thin, lighter lines.
      addRect(s.load[static_cast<std::size_t>(basis)], s, cx + ww - 10, cy, 10, hh, 0.5 * areal);
      addRect(s.load[static_cast<std::size_t>(basis)], s, cx, cy + hh - 10, ww - 10, 10, 0.5 * areal);
    }
  }
  blocks.push_back({x, y, w, h});
}

double loadMassKg(const Scene& s) {
  double sum = 0;
  for (const cv::Mat& m : s.load) sum += cv::sum(m)[0];
  return sum * (s.pitch * s.pitch / 100.0) / 1000.0;  // g/cm² × cm² → g → kg
}

std::string fillLoad(Scene& s, Rng& rng, const Body& b, const std::string& kind, std::vector<GoodsBlock>& blocks,
                     bool& opaque) {
  const double len = b.ix1 - b.ix0;
  const double hgt = b.ifloor - b.itop;
  const double d = b.depthCm;
  if (kind == "pallets") {
    const bool inorganic = rng.chance(0.2);
    const double rho = inorganic ? rng.uniform(0.2, 0.6) : rng.uniform(0.08, 0.45);
    const double used = len * rng.uniform(0.5, 1.0);
    const double goodsH = std::min(hgt - 200, rng.uniform(900, 2000));
    for (double x = b.ix0 + 50; x + 1200 <= b.ix0 + used; x += 1250) {
      addRect(org(s, true), s, x, b.ifloor - 144, 1200, 144, 0.12 * d);   // pallet base
      const double pr = rho * (1.0 + 0.06 * rng.normal());
      cartonGrid(s, rng, inorganic ? 2 : 0, x, b.ifloor - 144 - goodsH, 1200, goodsH, pr * d * 0.85, 0.04, blocks);
    }
    return inorganic ? "ceramic tiles on pallets" : "palletised consumer goods";
  }
  if (kind == "cartons") {
    const double rho = rng.uniform(0.1, 0.35);
    const double fillH = hgt * rng.uniform(0.5, 0.95);
    const double used = len * rng.uniform(0.6, 1.0);
    // Several cartons in depth average out, so the projected variation is modest.
    cartonGrid(s, rng, 0, b.ix0 + 20, b.ifloor - fillH, used - 40, fillH, rho * d * 0.9, 0.07, blocks);
    return "mixed cartons";
  }
  if (kind == "bulk" || kind == "homogeneous") {
    const double rho = kind == "bulk" ? rng.uniform(0.55, 0.85) : rng.uniform(0.3, 0.6);
    const double fillH = hgt * rng.uniform(0.4, 0.9);
    const double used = len * rng.uniform(0.85, 1.0);
    const double x0 = b.ix0 + 20;
    // A bulk surface is uneven; bagged homogeneous goods are flat-topped.
    const double step = 100;
    for (double x = x0; x < x0 + used - 1; x += step) {
      const double topJitter = kind == "bulk" ? rng.uniform(-60, 60) : 0.0;
      addRect(org(s, true), s, x, b.ifloor - fillH + topJitter, std::min(step, x0 + used - x), fillH - topJitter,
              rho * d);
    }
    blocks.push_back({x0, b.ifloor - fillH + 60, used, fillH - 60});
    return kind == "bulk" ? "bulk grain" : "bagged sugar";
  }
  if (kind == "machinery") {
    const int n = rng.integer(2, 5);
    double x = b.ix0 + 100;
    for (int i = 0; i < n && x < b.ix1 - 600; ++i) {
      const double w = rng.uniform(500, 1600);
      const double h = rng.uniform(400, std::min(1500.0, hgt - 300));
      const double ww = std::min(w, b.ix1 - x - 50);
      addRect(org(s, true), s, x, b.ifloor - 120, ww, 120, 0.3 * 120);  // skid
      addRect(iron(s, true), s, x, b.ifloor - 120 - h, ww, h, rng.uniform(8, 50));
      // Internal parts: shafts and housings.
      for (int k = 0; k < 3; ++k)
        addRect(iron(s, true), s, x + rng.uniform(0, ww * 0.6), b.ifloor - 120 - h * rng.uniform(0.3, 1.0),
                ww * 0.3, h * 0.25, rng.uniform(10, 60));
      x += w + rng.uniform(200, 800);
    }
    if (rng.chance(0.1)) {
      addRect(lead(s, true), s, b.ix1 - 900, b.ifloor - 700, 500, 500, 250.0);  // shielded source pot
      opaque = true;
    }
    return "industrial machinery";
  }
  return "";
}

struct Stash {
  TruthItem item;
};

double brickVolume(double kg) { return kg * 1000.0 / kBrickDensity; }  // cm³

void toPx(TruthItem& t, double pitch) {
  t.boxPx = {static_cast<int>(std::floor(t.boxMm[0] / pitch)), static_cast<int>(std::floor(t.boxMm[1] / pitch)),
             std::max(1, static_cast<int>(std::ceil(t.boxMm[2] / pitch))),
             std::max(1, static_cast<int>(std::ceil(t.boxMm[3] / pitch)))};
}

bool stashInLoad(Scene& s, Rng& rng, const Body& b, const std::vector<GoodsBlock>& blocks, double kg, TruthItem& t) {
  const double v = brickVolume(kg);
  double d = std::cbrt(v) * rng.uniform(0.8, 1.8);
  d = std::clamp(d, 4.5, b.depthCm * 0.8);
  const double area = v / d;  // cm²
  const double aspect = rng.uniform(0.6, 1.7);
  const double w = std::sqrt(area * aspect) * 10.0;  // mm
  const double h = area * 100.0 / w;
  double x = 0;
  double y = 0;
  if (blocks.empty()) {
    // Declared-empty bodies: the stash sits on the floor.
    if (b.ix1 - b.ix0 < w + 700) return false;
    x = rng.uniform(b.ix0 + 300, b.ix1 - 300 - w);
    y = b.ifloor - h;
  } else {
    const GoodsBlock& g = blocks[static_cast<std::size_t>(rng.integer(0, static_cast<int>(blocks.size()) - 1))];
    if (g.w < w + 100 || g.h < h + 100) return false;
    x = rng.uniform(g.x + 50, g.x + g.w - w - 50);
    y = rng.uniform(g.y + 50, g.y + g.h - h - 50);
  }
  // The bricks displace the goods they replace.
  for (auto& m : s.load) scaleRect(m, s, x, y, w, h, 1.0 - d / b.depthCm);
  addRect(org(s, true), s, x, y, w, h, kBrickDensity * d);
  t.kind = "load";
  t.boxMm = {x, y, w, h};
  return true;
}

void stashInFloor(Scene& s, Rng& rng, const Body& b, double kg, TruthItem& t) {
  const double cavity = (b.floorCavityBottom - b.floorCavityTop) / 10.0;  // cm
  const double v = brickVolume(kg);
  const double footprint = v / cavity;  // cm², along x × across the beam
  const double d = std::min(b.depthCm * 0.9, std::max(20.0, std::sqrt(footprint) * rng.uniform(1.0, 3.0)));
  const double len = std::min(footprint / d * 10.0, b.ix1 - b.ix0 - 700);  // mm
  const double x = rng.uniform(b.ix0 + 300, b.ix1 - 300 - len);
  addRect(org(s, true), s, x, b.floorCavityTop, len, b.floorCavityBottom - b.floorCavityTop, kBrickDensity * d);
  t.kind = "floor";
  t.boxMm = {x, b.floorCavityTop, len, b.floorCavityBottom - b.floorCavityTop};
}

void stashFrontWall(Scene& s, Rng& rng, const Body& b, double kg, TruthItem& t) {
  const double gap = rng.uniform(120, 300);  // mm between the real and the false wall
  const double d = rng.uniform(60, b.depthCm * 0.9);
  const double v = brickVolume(kg);
  const double h = std::min(b.ifloor - b.itop, v / (gap / 10.0 * d) * 10.0);
  addRect(org(s, true), s, b.ix0, b.ifloor - h, gap, h, kBrickDensity * d);
  // The false wall: a plywood-faced steel sheet, edge-on.
  addRect(iron(s, false), s, b.ix0 + gap, b.itop, 15, b.ifloor - b.itop, 0.15 * b.depthCm * kFe / 1.5);
  t.kind = "front_wall";
  t.boxMm = {b.ix0, b.ifloor - h, gap, h};
}

void stashInTyre(Scene& s, Rng& rng, const std::vector<std::array<double, 2>>& wheels, double kg, TruthItem& t) {
  const auto& w = wheels[static_cast<std::size_t>(rng.integer(0, static_cast<int>(wheels.size()) - 1))];
  const double tyres = std::min(4.0, std::ceil(kg / 10.0));
  const double d = 20.0 * tyres;  // cm across the beam: one tyre's cavity per 10 kg
  const double area = brickVolume(kg) / d * 100.0;  // mm²
  const double r0 = 320;
  const double r1 = 480;
  const double span = std::min(2 * kPi, area / (0.5 * (r1 * r1 - r0 * r0)));
  const double a0 = rng.uniform(-kPi, kPi - span);
  addAnnulus(org(s, true), s, w[0], w[1], r0, r1, kBrickDensity * d, a0, a0 + span);
  t.kind = "tyre";
  t.boxMm = {w[0] - r1, w[1] - r1, 2 * r1, 2 * r1};
}

cv::Mat render(const Scene& s, double endpointMev, bool lowShift, double shiftPx) {
  // Three spectral bins stand in for the bremsstrahlung spectrum; the hardening they cause
  // is what a real dual-energy calibration has to absorb.
  constexpr std::size_t kBins = 3;
  const std::array<double, kBins> fractions = {0.22, 0.38, 0.6};
  const std::array<float, kBins> weights = {0.4f, 0.4f, 0.2f};
  std::array<std::array<float, kBasisCount>, kBins> mu{};
  for (std::size_t k = 0; k < kBins; ++k)
    for (int b = 0; b < kBasisCount; ++b)
      mu[k][static_cast<std::size_t>(b)] =
          static_cast<float>(massAttenuation(static_cast<Basis>(b), std::max(1.0, endpointMev * fractions[k])));
  cv::Mat t(s.height, s.width, CV_32F);
  std::array<const float*, 2 * kBasisCount> src{};
  for (int y = 0; y < s.height; ++y) {
    for (std::size_t b = 0; b < static_cast<std::size_t>(kBasisCount); ++b) {
      src[2 * b] = s.structure[b].ptr<float>(y);
      src[2 * b + 1] = s.load[b].ptr<float>(y);
    }
    float* out = t.ptr<float>(y);
    for (int x = 0; x < s.width; ++x) {
      std::array<float, kBasisCount> rho{};
      for (std::size_t b = 0; b < rho.size(); ++b) rho[b] = src[2 * b][x] + src[2 * b + 1][x];
      float sum = 0;
      for (std::size_t k = 0; k < kBins; ++k) {
        float a = 0;
        for (std::size_t b = 0; b < rho.size(); ++b) a += mu[k][b] * rho[b];
        sum += weights[k] * std::exp(-a);
      }
      out[x] = sum;
    }
  }
  if (lowShift) {
    const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, shiftPx, 0, 1, 0);
    cv::warpAffine(t, t, m, t.size(), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP, cv::BORDER_REPLICATE);
  }
  return t;
}

struct Detector {
  std::vector<double> dark;
  std::vector<double> gain;
};

Detector detectorFor(std::uint64_t seed, int rows, int energies) {
  Rng rng(seed ^ std::uint64_t{0x5eedca1b});
  Detector d;
  for (int i = 0; i < rows * energies; ++i) {
    d.dark.push_back(800 + 40 * rng.normal());
    d.gain.push_back(1.0 + 0.08 * rng.normal());
  }
  return d;
}

}  // namespace

Phantom generatePhantom(std::uint64_t seed, int index, const PhantomOptions& o) {
  Rng rng(seed * std::uint64_t{0x9e3779b97f4a7c15} + static_cast<std::uint64_t>(index) * std::uint64_t{0xbf58476d1ce4e5b9} + 1);
  Phantom ph;
  PhantomTruth& truth = ph.truth;
  Scene s;
  s.pitch = o.pixelMm;
  s.height = static_cast<int>(std::round(kHeightMm / o.pixelMm));
  // Vehicle choice decides the length of the scan.
  const double pick = rng.uniform(0, 1);
  truth.vehicle = pick < 0.3 ? "container40" : pick < 0.6 ? "container20" : pick < 0.85 ? "truck" : "uld";
  const double lead = rng.uniform(900, 1500);
  const double objectLen = truth.vehicle == "container40" ? 2800 + 12192 :
                           truth.vehicle == "container20" ? 2800 + 6058 + 1500 :
                           truth.vehicle == "truck" ? 9600 : 2200;
  const double lengthMm = lead + objectLen + rng.uniform(500, 1000);
  s.width = static_cast<int>(std::round(lengthMm / o.pixelMm));
  for (auto& m : s.structure) m = cv::Mat::zeros(s.height, s.width, CV_32F);
  for (auto& m : s.load) m = cv::Mat::zeros(s.height, s.width, CV_32F);

  std::vector<std::array<double, 2>> wheels;
  Body body;
  if (truth.vehicle == "container40" || truth.vehicle == "container20") {
    tractor(s, lead, wheels);
    const bool highCube = rng.chance(0.2);
    body = container(s, lead + 2800, truth.vehicle == "container40" ? 12192 : 6058, highCube ? 2896 : 2591, wheels);
  } else if (truth.vehicle == "truck") {
    body = truckBody(s, lead, wheels);
  } else {
    body = uld(s, lead + 300);
  }

  // Scenario: clear load, load with a stash, declared empty (really empty, or not).
  const double scenario = rng.uniform(0, 1);
  const bool declaredEmpty = scenario >= 0.88;
  const bool emptyWithContent = declaredEmpty && rng.chance(0.5);
  const bool withStash = (scenario >= 0.45 && scenario < 0.88) || (emptyWithContent && rng.chance(0.5));
  truth.declaredEmpty = declaredEmpty;
  static const char* kLoads[] = {"pallets", "cartons", "bulk", "machinery", "homogeneous"};
  truth.load = declaredEmpty ? (emptyWithContent && !withStash ? "pallets" : "empty")
                             : kLoads[rng.integer(0, 4)];
  if (!declaredEmpty && rng.chance(0.08)) truth.load = "empty";
  std::vector<GoodsBlock> blocks;
  std::string description = fillLoad(s, rng, body, truth.load, blocks, truth.opaqueExpected);

  if (withStash) {
    const double kg = std::exp(rng.uniform(std::log(1.0), std::log(50.0)));
    TruthItem t;
    t.massKg = kg;
    std::vector<std::string> kinds;
    if (!blocks.empty() || declaredEmpty) kinds.push_back("load");
    if (truth.vehicle != "uld") {
      kinds.push_back("floor");
      kinds.push_back("front_wall");
    }
    if (!wheels.empty()) kinds.push_back("tyre");
    if (kinds.empty()) kinds.push_back("load");
    const std::string& kind = kinds[static_cast<std::size_t>(rng.integer(0, static_cast<int>(kinds.size()) - 1))];
    bool placed = true;
    if (kind == "load") {
      placed = stashInLoad(s, rng, body, blocks, kg, t);
    } else if (kind == "floor") {
      stashInFloor(s, rng, body, kg, t);
    } else if (kind == "front_wall") {
      stashFrontWall(s, rng, body, kg, t);
    } else {
      stashInTyre(s, rng, wheels, kg, t);
    }
    if (placed) {
      toPx(t, s.pitch);
      truth.concealments.push_back(t);
    }
  }
  for (const auto& w : wheels) wheel(s, w[0], w[1]);
  truth.cargoKg = loadMassKg(s);
  truth.hasContent = truth.cargoKg > 0.5;

  // Render, then detect: quanta, dose jitter, noise, bad channels, 16-bit output.
  const bool dual = o.dualEnergy;
  const bool highPair = rng.chance(0.3);
  const double eh = highPair ? 9.0 : 6.0;
  const double el = highPair ? 6.0 : 4.0;
  std::vector<double> energies = dual ? std::vector<double>{eh, el} : std::vector<double>{eh};
  const Detector det = detectorFor(seed, s.height, 2);
  cv::RNG cvRng(rng.next());
  std::vector<double> dose(static_cast<std::size_t>(s.width));
  for (double& d : dose) d = 1.0 + o.doseJitter * rng.normal();
  int badRow = -1;
  int badKind = 0;
  if (rng.chance(o.badChannelProbability)) {
    badRow = rng.integer(5, s.height - 5);
    badKind = rng.integer(1, 2);  // 1 dead, 2 hot
  }
  for (std::size_t e = 0; e < energies.size(); ++e) {
    cv::Mat t = render(s, energies[e], e == 1, o.lowShiftPx);
    const double sigmaPx = o.blurMm / o.pixelMm;
    if (sigmaPx > 0.3) cv::GaussianBlur(t, t, cv::Size(0, 0), sigmaPx);
    // Quanta per pixel: the low channel sees fewer photons.
    const double n0 = o.openBeamQuanta * (e == 0 ? 1.0 : 0.6);
    cv::Mat n = t * n0;
    for (int x = 0; x < s.width; ++x) n.col(x) *= dose[static_cast<std::size_t>(x)];
    cv::Mat noise(n.size(), CV_32F);
    cvRng.fill(noise, cv::RNG::NORMAL, 0.0, 1.0);
    cv::Mat sigma;
    cv::sqrt(cv::max(n, 0.0) + o.electronicNoise * o.electronicNoise, sigma);
    n += noise.mul(sigma);
    cv::Mat out(n.size(), CV_16UC1);
    ChannelCalibration cal;
    for (int y = 0; y < s.height; ++y) {
      const std::size_t k = e * static_cast<std::size_t>(s.height) + static_cast<std::size_t>(y);
      double gain = det.gain[k];
      const double dark = o.raw ? det.dark[k] : 0.0;
      if (y == badRow) gain *= badKind == 1 ? 0.0 : 1.8;
      // Raw: counts scaled so that open beam sits near 52,000 of 65,535.
      const double scale = o.raw ? 52000.0 / n0 * gain : 65535.0 / n0 * (y == badRow ? gain : 1.0);
      n.row(y).convertTo(out.row(y), CV_16U, scale, dark);
      cal.dark.push_back(static_cast<float>(det.dark[k]));
      cal.air.push_back(static_cast<float>(det.dark[k] + 52000.0 * det.gain[k]));
    }
    ph.bundle.planes.push_back(out);
    if (o.raw) ph.calibration.energies.push_back(std::move(cal));
  }

  char id[32];
  std::snprintf(id, sizeof id, "ph%llu-%04d", static_cast<unsigned long long>(seed % 1000000), index);
  truth.scanId = id;
  ScanMeta& m = ph.bundle.meta;
  m.scanId = id;
  m.time = "2026-11-27T12:00:00Z";
  m.scanner = "phantom";
  m.signal = o.raw ? Signal::kRaw : Signal::kTransmission;
  m.energiesMev = energies;
  m.pixelAlongMm = o.pixelMm;
  m.pixelVerticalMm = o.pixelMm;
  m.conveyance.kind = truth.vehicle == "uld" ? "uld" : truth.vehicle == "truck" ? "truck" : "container";
  if (m.conveyance.kind == "container") {
    // A well-formed ISO 6346 number: owner code, category U, six-digit serial, check digit
    // (letters valued 10..38 skipping multiples of 11, weights 2^i, sum mod 11 mod 10).
    const std::string number = "MSCU" + std::to_string(100000 + index % 900000);
    long sum = 0;
    for (std::size_t i = 0; i < number.size(); ++i) {
      long v = number[i] - '0';
      if (number[i] >= 'A' && number[i] <= 'Z') {
        v = 10 + (number[i] - 'A');
        v += (v >= 11) + (v >= 21) + (v >= 31);  // skip 11, 22, 33
      }
      sum += v << i;
    }
    m.conveyance.ids = {number + std::to_string(sum % 11 % 10)};
  }
  m.conveyance.declared.empty = declaredEmpty;
  m.conveyance.declared.description = declaredEmpty ? "empty" : description;
  if (!declaredEmpty && body.tareKg > 0) {
    // The legitimate load only: the stash is not on the manifest.
    double stashKg = 0;
    for (const TruthItem& c : truth.concealments) stashKg += c.massKg;
    m.conveyance.declared.grossKg = std::round(body.tareKg + std::max(0.0, truth.cargoKg - stashKg) * rng.uniform(0.95, 1.05));
  }
  return ph;
}

std::string truthToJson(const PhantomTruth& t) {
  nlohmann::json doc;
  doc["scan_id"] = t.scanId;
  doc["vehicle"] = t.vehicle;
  doc["load"] = t.load;
  doc["declared_empty"] = t.declaredEmpty;
  doc["has_content"] = t.hasContent;
  doc["opaque_expected"] = t.opaqueExpected;
  doc["cargo_kg"] = t.cargoKg;
  doc["concealments"] = nlohmann::json::array();
  for (const TruthItem& c : t.concealments)
    doc["concealments"].push_back({{"kind", c.kind}, {"mass_kg", c.massKg}, {"box_mm", c.boxMm}, {"box_px", c.boxPx}});
  return doc.dump(2) + "\n";
}

tl::expected<PhantomTruth, std::string> parseTruth(const std::string& text, const std::string& name) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return tl::unexpected(name + ": not a ground-truth JSON object");
  PhantomTruth t;
  try {
    t.scanId = doc.at("scan_id").get<std::string>();
    t.vehicle = doc.value("vehicle", "");
    t.load = doc.value("load", "");
    t.declaredEmpty = doc.value("declared_empty", false);
    t.hasContent = doc.value("has_content", false);
    t.opaqueExpected = doc.value("opaque_expected", false);
    t.cargoKg = doc.value("cargo_kg", 0.0);
    for (const auto& c : doc.at("concealments")) {
      TruthItem item;
      item.kind = c.at("kind").get<std::string>();
      item.massKg = c.at("mass_kg").get<double>();
      item.boxMm = c.at("box_mm").get<std::array<double, 4>>();
      item.boxPx = c.at("box_px").get<std::array<int, 4>>();
      t.concealments.push_back(item);
    }
  } catch (const nlohmann::json::exception& e) {
    return tl::unexpected(name + ": " + e.what());
  }
  return t;
}

cv::Mat idealTransmission(const ArealMaps& areal, double endpointMev, double shiftPx, const PhantomOptions& o) {
  Scene s;
  s.pitch = o.pixelMm;
  s.height = areal[0].rows;
  s.width = areal[0].cols;
  s.structure = areal;
  for (auto& m : s.load) m = cv::Mat::zeros(s.height, s.width, CV_32F);
  cv::Mat t = render(s, endpointMev, shiftPx != 0.0, shiftPx);
  const double sigmaPx = o.blurMm / o.pixelMm;
  if (sigmaPx > 0.3) cv::GaussianBlur(t, t, cv::Size(0, 0), sigmaPx);
  return t;
}

std::vector<cv::Mat> renderArealPlanes(const ArealMaps& areal, const std::vector<double>& energiesMev,
                                       const PhantomOptions& o, std::uint64_t seed) {
  // The same detection chain as generatePhantom, without the bad channels.
  Rng rng(seed * std::uint64_t{0x9e3779b97f4a7c15} + 0x51a);
  const int width = areal[0].cols;
  std::vector<double> dose(static_cast<std::size_t>(width));
  for (double& d : dose) d = 1.0 + o.doseJitter * rng.normal();
  cv::RNG cvRng(rng.next());
  std::vector<cv::Mat> planes;
  for (std::size_t e = 0; e < energiesMev.size(); ++e) {
    const cv::Mat t = idealTransmission(areal, energiesMev[e], e == 1 ? o.lowShiftPx : 0.0, o);
    const double n0 = o.openBeamQuanta * (e == 0 ? 1.0 : 0.6);
    cv::Mat n = t * n0;
    for (int x = 0; x < width; ++x) n.col(x) *= dose[static_cast<std::size_t>(x)];
    cv::Mat noise(n.size(), CV_32F);
    cvRng.fill(noise, cv::RNG::NORMAL, 0.0, 1.0);
    cv::Mat sigma;
    cv::sqrt(cv::max(n, 0.0) + o.electronicNoise * o.electronicNoise, sigma);
    n += noise.mul(sigma);
    // Open beam at kRenderedOpenBeamCounts, not full scale: the dose jitter stays visible in
    // the open-beam rows (clipped at 65,535 it would not), so pre-processing can cancel it.
    cv::Mat out;
    n.convertTo(out, CV_16U, kRenderedOpenBeamCounts / n0);
    planes.push_back(out);
  }
  return planes;
}

tl::expected<int, std::string> writePhantomSet(const std::string& dir, int count, std::uint64_t seed,
                                               const PhantomOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return tl::unexpected(dir + ": cannot create (" + ec.message() + ")");
  for (int i = 0; i < count; ++i) {
    const Phantom p = generatePhantom(seed, i, options);
    const std::string base = (std::filesystem::path(dir) / p.truth.scanId).string();
    if (auto r = writeFileAtomic(base + ".truth.json", truthToJson(p.truth)); !r) return tl::unexpected(r.error());
    if (options.raw && i == 0) {
      if (auto r = writeFileAtomic((std::filesystem::path(dir) / "calibration.json").string(),
                                   calibrationToJson(p.calibration));
          !r)
        return tl::unexpected(r.error());
    }
    if (auto r = writeBundle(p.bundle, dir); !r) return tl::unexpected(r.error());
  }
  return count;
}

}  // namespace lanegate::vision
