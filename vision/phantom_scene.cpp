// The phantom generator's scene: areal-density maps on the scan's pixel grid and the
// drawing primitives (coverage-weighted, so a 2 mm sheet at 15 mm pitch keeps its mass).
#include "vision/phantom_scene.h"

#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>

namespace lanegate::vision::phantom {
namespace {

// Coverage of pixel cells [i·p, (i+1)·p) by the interval [a, b).
std::vector<float> coverage(double a, double b, double pitch, int n, int& first) {
  first = std::max(0, static_cast<int>(std::floor(a / pitch)));
  const int last = std::min(n - 1, static_cast<int>(std::ceil(b / pitch)) - 1);
  std::vector<float> w;
  for (int i = first; i <= last; ++i) {
    const double lo = i * pitch;
    w.push_back(
        static_cast<float>(std::max(0.0, std::min(lo + pitch, b) - std::max(lo, a)) / pitch));
  }
  return w;
}

}  // namespace

double Rng::logUniform(double lo, double hi) {
  return std::exp(uniform(std::log(lo), std::log(hi)));
}

Scene::Scene(double px, double py, double widthMm, double heightMm)
    : pitchX(px),
      pitchY(py),
      width(std::max(1, static_cast<int>(std::lround(widthMm / px)))),
      height(std::max(1, static_cast<int>(std::lround(heightMm / py)))) {
  for (cv::Mat& m : maps) m = cv::Mat::zeros(height, width, CV_32F);
}

void Scene::rect(Basis b, double x, double y, double w, double h, double value) {
  if (w <= 0 || h <= 0 || value == 0) return;
  int x0 = 0;
  int y0 = 0;
  const std::vector<float> wx = coverage(x, x + w, pitchX, width, x0);
  const std::vector<float> wy = coverage(y, y + h, pitchY, height, y0);
  cv::Mat& m = of(b);
  for (std::size_t j = 0; j < wy.size(); ++j) {
    const float v = static_cast<float>(value) * wy[j];
    float* row = m.ptr<float>(y0 + static_cast<int>(j)) + x0;
    for (std::size_t i = 0; i < wx.size(); ++i) row[i] += v * wx[i];
  }
}

void Scene::scale(double x, double y, double w, double h, double factor) {
  if (w <= 0 || h <= 0) return;
  int x0 = 0;
  int y0 = 0;
  const std::vector<float> wx = coverage(x, x + w, pitchX, width, x0);
  const std::vector<float> wy = coverage(y, y + h, pitchY, height, y0);
  for (cv::Mat& m : maps)
    for (std::size_t j = 0; j < wy.size(); ++j) {
      const float v = static_cast<float>(factor - 1.0) * wy[j];
      float* row = m.ptr<float>(y0 + static_cast<int>(j)) + x0;
      for (std::size_t i = 0; i < wx.size(); ++i) row[i] *= 1.0f + v * wx[i];
    }
}

void Scene::profile(Basis b, double x, double y, double w, double h,
                    const std::function<double(double)>& f) {
  if (w <= 0 || h <= 0) return;
  int x0 = 0;
  int y0 = 0;
  const std::vector<float> wx = coverage(x, x + w, pitchX, width, x0);
  const std::vector<float> wy = coverage(y, y + h, pitchY, height, y0);
  // The profile averaged over each column's covered part (4 samples).
  std::vector<float> col(wx.size());
  for (std::size_t i = 0; i < wx.size(); ++i) {
    const double lo = std::max(x, (x0 + static_cast<double>(i)) * pitchX);
    const double hi = std::min(x + w, (x0 + static_cast<double>(i) + 1) * pitchX);
    double sum = 0;
    for (int k = 0; k < 4; ++k)
      sum += f(std::clamp((lo + (hi - lo) * (k + 0.5) / 4 - x) / w, 0.0, 1.0));
    col[i] = static_cast<float>(sum / 4) * wx[i];
  }
  cv::Mat& m = of(b);
  for (std::size_t j = 0; j < wy.size(); ++j) {
    float* row = m.ptr<float>(y0 + static_cast<int>(j)) + x0;
    for (std::size_t i = 0; i < wx.size(); ++i) row[i] += wy[j] * col[i];
  }
}

void Scene::annulus(Basis b, double cx, double cy, double r0, double r1, double value, double a0,
                    double a1) {
  if (r1 <= r0 || value == 0) return;
  const int sub = 3;  // supersampling for smooth edges
  const bool sector = a0 > -kPi || a1 < kPi;
  const int xa = std::max(0, static_cast<int>((cx - r1) / pitchX));
  const int xb = std::min(width - 1, static_cast<int>((cx + r1) / pitchX) + 1);
  const int ya = std::max(0, static_cast<int>((cy - r1) / pitchY));
  const int yb = std::min(height - 1, static_cast<int>((cy + r1) / pitchY) + 1);
  cv::Mat& m = of(b);
  for (int y = ya; y <= yb; ++y) {
    float* row = m.ptr<float>(y);
    for (int x = xa; x <= xb; ++x) {
      int hits = 0;
      for (int j = 0; j < sub; ++j)
        for (int i = 0; i < sub; ++i) {
          const double px = (x + (i + 0.5) / sub) * pitchX - cx;
          const double py = (y + (j + 0.5) / sub) * pitchY - cy;
          const double r2 = px * px + py * py;
          if (r2 < r0 * r0 || r2 >= r1 * r1) continue;
          if (sector) {
            const double a = std::atan2(py, px);
            // Sectors may wrap past ±π.
            const bool in = (a >= a0 && a < a1) || (a + 2 * kPi >= a0 && a + 2 * kPi < a1);
            if (!in) continue;
          }
          ++hits;
        }
      row[x] += static_cast<float>(value * hits / (sub * sub));
    }
  }
}

void Scene::cylinderSide(double x, double y, double h, double r, double wallMm, Basis wall,
                         double wallRho, Basis content, double contentRho, double fillTop) {
  const double ri = std::max(0.0, r - wallMm);
  // Chord through a disk of radius q at offset d from its centre, in cm.
  auto chord = [](double q, double d) { return d < q ? 0.2 * std::sqrt(q * q - d * d) : 0.0; };
  profile(wall, x, y, 2 * r, h, [&](double u) {
    const double d = std::abs(u * 2 * r - r);
    return wallRho * (chord(r, d) - chord(ri, d));
  });
  if (contentRho > 0 && fillTop < y + h)
    profile(content, x + wallMm, std::max(y, fillTop), 2 * ri, y + h - std::max(y, fillTop),
            [&](double u) { return contentRho * chord(ri, std::abs(u * 2 * ri - ri)); });
  // Top and bottom lids seen edge-on.
  rect(wall, x, y, 2 * r, wallMm, wallRho * 0.2 * r * kPi / 2);
  rect(wall, x, y + h - wallMm, 2 * r, wallMm, wallRho * 0.2 * r * kPi / 2);
}

double Scene::massKg(double x, double y, double w, double h) const {
  const int x0 = std::clamp(static_cast<int>(std::floor(x / pitchX)), 0, width);
  const int x1 = std::clamp(static_cast<int>(std::ceil((x + w) / pitchX)), 0, width);
  const int y0 = std::clamp(static_cast<int>(std::floor(y / pitchY)), 0, height);
  const int y1 = std::clamp(static_cast<int>(std::ceil((y + h) / pitchY)), 0, height);
  if (x1 <= x0 || y1 <= y0) return 0.0;
  double sum = 0;
  for (const cv::Mat& m : maps) sum += cv::sum(m(cv::Range(y0, y1), cv::Range(x0, x1)))[0];
  return sum * (pitchX * pitchY / 100.0) / 1000.0;  // g/cm² × cm² → g → kg
}

}  // namespace lanegate::vision::phantom
