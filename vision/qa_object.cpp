#include "vision/qa_object.h"

#include "vision/decode.h"
#include "vision/physics.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace lanegate::vision {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kSteel = 7.87;  // g/cm³
constexpr double kLead = 11.35;
constexpr double kAluminium = 2.70;
constexpr std::size_t kAl = static_cast<std::size_t>(Basis::kAluminium);
constexpr std::size_t kFe = static_cast<std::size_t>(Basis::kIron);
constexpr std::size_t kPb = static_cast<std::size_t>(Basis::kLead);

QaLayout makeLayout() {
  QaLayout l;
  l.plateWidthMm = 2750;
  l.plateHeightMm = 2150;
  l.plateAlMm = 20;
  // Penetration: 100–420 mm of steel in 20 mm steps, a 100 mm lead block behind the middle
  // third of each step.
  l.leadBlockMm = 100;
  for (int k = 0; k <= 16; ++k) {
    l.stepSteelMm.push_back(100.0 + 20.0 * k);
    l.steps.push_back({100.0 + 150.0 * k, 100, 150, 600});
    l.leadBehind.push_back({100.0 + 150.0 * k, 300, 150, 200});
  }
  // Wires: steel, an R10 series from 5 mm down to 0.5 mm, 100 mm apart on 100 mm of steel.
  l.wireBaseSteelMm = 100;
  l.wireBase = {100, 850, 1200, 650};
  l.wireDiameterMm = {5.0, 4.0, 3.2, 2.5, 2.0, 1.6, 1.25, 1.0, 0.8, 0.63, 0.5};
  for (std::size_t j = 0; j < l.wireDiameterMm.size(); ++j)
    l.wireXMm.push_back(200.0 + 100.0 * static_cast<double>(j));
  l.wireTopMm = 900;
  l.wireBottomMm = 1450;
  // Contrast: steel plates of 0.5–6 % of a 150 mm steel base.
  l.contrastBaseSteelMm = 150;
  l.contrastBase = {1450, 850, 1200, 650};
  l.contrastPercent = {6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.75, 0.5};
  for (std::size_t k = 0; k < l.contrastPercent.size(); ++k) {
    const double x = 1460.0 + 150.0 * static_cast<double>(k);
    l.contrastPatches.push_back({x, 880, 130, 260});
    l.contrastReference.push_back({x, 1210, 130, 260});
  }
  // Line pairs: 10 mm lead bars, five per group, 0.2–2 lp/cm; a solid block for the full
  // contrast.
  l.barLeadMm = 10;
  l.barReference = {100, 1650, 100, 400};
  l.barWidthMm = {25, 20, 15, 12.5, 10, 8, 6.25, 5, 4, 3.125, 2.5};
  double x = 260;
  for (const double w : l.barWidthMm) {
    l.groupXMm.push_back(x);
    x += (2 * l.barsPerGroup - 1) * w + 60;
  }
  l.barPlate = {2000, 1650, 650, 400};
  l.barTopMm = 1650;
  l.barBottomMm = 2050;
  return l;
}

// Adds `value` over [x, x+w) × [y, y+h) mm, weighting edge pixels by their covered share.
void addRect(cv::Mat& map, double pitch, double x, double y, double w, double h, double value) {
  auto cover = [pitch](int i, double a, double b) {
    const double lo = i * pitch;
    return std::max(0.0, std::min(lo + pitch, b) - std::max(lo, a)) / pitch;
  };
  const int i0 = std::max(0, static_cast<int>(std::floor(x / pitch)));
  const int i1 = std::min(map.cols - 1, static_cast<int>(std::ceil((x + w) / pitch)));
  const int j0 = std::max(0, static_cast<int>(std::floor(y / pitch)));
  const int j1 = std::min(map.rows - 1, static_cast<int>(std::ceil((y + h) / pitch)));
  for (int j = j0; j <= j1; ++j) {
    const double cy = cover(j, y, y + h);
    if (cy <= 0) continue;
    float* row = map.ptr<float>(j);
    for (int i = i0; i <= i1; ++i) row[i] += static_cast<float>(value * cy * cover(i, x, x + w));
  }
}

// ∫ chord of a circle of radius r over [−r, u]: the area to the left of u.
double chordIntegral(double u, double r) {
  u = std::clamp(u, -r, r);
  return u * std::sqrt(r * r - u * u) + r * r * std::asin(u / r) + 0.5 * kPi * r * r;
}

// A vertical round wire of diameter d (mm) centred on x = cx, from y0 to y1: each column
// gets the mean chord over its width, so thin wires keep their mass per length.
void addWire(cv::Mat& map, double pitch, double cx, double y0, double y1, double d, double rho) {
  const double r = 0.5 * d;
  const int i0 = std::max(0, static_cast<int>(std::floor((cx - r) / pitch)));
  const int i1 = std::min(map.cols - 1, static_cast<int>(std::floor((cx + r) / pitch)));
  for (int i = i0; i <= i1; ++i) {
    const double area =
        chordIntegral(i * pitch + pitch - cx, r) - chordIntegral(i * pitch - cx, r);  // mm²
    const double areal = rho * area / pitch / 10.0;  // mean chord (mm) → g/cm²
    cv::Mat col = map.col(i);
    cv::Mat strip = cv::Mat::zeros(map.rows, 1, CV_32F);
    addRect(strip, pitch, 0, y0, pitch, y1 - y0, areal);
    col += strip;
  }
}

ArealMaps drawObject(const QaLayout& l, double pitch, cv::Size size) {
  ArealMaps m;
  for (cv::Mat& a : m) a = cv::Mat::zeros(size, CV_32F);
  const double ox = kQaMarginXMm;
  const double oy = kQaMarginYMm;
  auto rect = [&](std::size_t basis, const QaRect& r, double value) {
    addRect(m[basis], pitch, ox + r.x, oy + r.y, r.w, r.h, value);
  };
  rect(kAl, {0, 0, l.plateWidthMm, l.plateHeightMm}, kAluminium * l.plateAlMm / 10.0);
  for (std::size_t k = 0; k < l.steps.size(); ++k) {
    rect(kFe, l.steps[k], kSteel * l.stepSteelMm[k] / 10.0);
    rect(kPb, l.leadBehind[k], kLead * l.leadBlockMm / 10.0);
  }
  rect(kFe, l.wireBase, kSteel * l.wireBaseSteelMm / 10.0);
  for (std::size_t j = 0; j < l.wireDiameterMm.size(); ++j)
    addWire(m[kFe], pitch, ox + l.wireXMm[j], oy + l.wireTopMm, oy + l.wireBottomMm,
            l.wireDiameterMm[j], kSteel);
  rect(kFe, l.contrastBase, kSteel * l.contrastBaseSteelMm / 10.0);
  for (std::size_t k = 0; k < l.contrastPatches.size(); ++k)
    rect(kFe, l.contrastPatches[k],
         kSteel * l.contrastBaseSteelMm * l.contrastPercent[k] / 100.0 / 10.0);
  const double bar = kLead * l.barLeadMm / 10.0;
  rect(kPb, l.barReference, bar);
  for (std::size_t g = 0; g < l.barWidthMm.size(); ++g) {
    const double w = l.barWidthMm[g];
    for (int b = 0; b < l.barsPerGroup; ++b)
      rect(kPb, {l.groupXMm[g] + 2 * b * w, l.barTopMm, w, l.barBottomMm - l.barTopMm}, bar);
  }
  return m;
}

double normalCdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

// Mean and variance of α for a pixel of noise-free transmission `t`: c is the 16-bit count
// the generator writes (Gaussian quanta with Poisson variance plus electronic noise, scaled
// so that open beam is kRenderedOpenBeamCounts, rounded, clipped at 0); pre-processing
// normalises by the open beam and floors T at one count of 65,535.
std::pair<double, double> alphaMoments(double t, double n0, double electronic) {
  constexpr double kOpen = kRenderedOpenBeamCounts;
  const double scale = kOpen / n0;
  const double mu = t * kOpen;
  const double sigma = std::sqrt(std::max(n0 * t, 0.0) + electronic * electronic) * scale;
  if (mu > 400.0 && mu > 8.0 * sigma) {
    // Many counts: the delta method, with the rounding's 1/12 count².
    const double var = (sigma * sigma + 1.0 / 12.0) / (mu * mu);
    return {-std::log(mu / kOpen) + 0.5 * var, var};
  }
  const int hi = static_cast<int>(std::ceil(mu + 10.0 * sigma + 2.0));
  const int lo = std::max(0, static_cast<int>(std::floor(mu - 10.0 * sigma - 2.0)));
  double m1 = 0;
  double m2 = 0;
  for (int c = lo; c <= hi; ++c) {
    const double upper = normalCdf((c + 0.5 - mu) / sigma);
    const double lower = c == 0 ? 0.0 : normalCdf((c - 0.5 - mu) / sigma);
    const double p = upper - lower;
    const double a = -std::log(std::max(c / kOpen, 1.0 / 65535.0));
    m1 += p * a;
    m2 += p * a * a;
  }
  return {m1, std::max(0.0, m2 - m1 * m1)};
}

double meanOf(const cv::Mat& m, const cv::Rect& r) {
  return r.area() > 0 ? cv::mean(m(r))[0] : 0.0;
}

// Gain of linear interpolation by a fraction `frac` of a pixel at frequency f (cycles/mm).
double interpolationGain(double f, double pitch, double frac) {
  frac = std::abs(frac - std::floor(frac));
  const double c = std::cos(2 * kPi * f * pitch);
  return std::sqrt(
      std::max(0.0, (1 - frac) * (1 - frac) + frac * frac + 2 * frac * (1 - frac) * c));
}

// MTF at f (cycles/mm) of the generator's chain: pixel coverage (a box of one pitch), the
// interlacing shift (low energy) and the registration that undoes it, and cv::GaussianBlur's
// sampled kernel.
double chainMtf(double f, const PhantomOptions& o, bool low) {
  const double p = o.pixelMm;
  const double u = kPi * f * p;
  double mtf = u > 0 ? std::abs(std::sin(u) / u) : 1.0;
  const double sigmaPx = o.blurMm / p;
  if (sigmaPx > 0.3) {
    const int ksize = (static_cast<int>(std::lround(sigmaPx * 4 * 2 + 1)) | 1);
    const cv::Mat k = cv::getGaussianKernel(ksize, sigmaPx, CV_64F);
    double h = 0;
    for (int n = 0; n < ksize; ++n)
      h += k.at<double>(n) * std::cos(2 * kPi * f * p * (n - ksize / 2));
    mtf *= std::abs(h);
  }
  if (low && o.lowShiftPx != 0.0)
    mtf *= interpolationGain(f, p, o.lowShiftPx) * interpolationGain(f, p, -o.lowShiftPx);
  return mtf;
}

QaFigures truthFor(const QaLayout& l, const cv::Mat& t, double n0, const PhantomOptions& o,
                   bool low) {
  QaFigures f;
  // Registration shifts the low plane back by interpolating between neighbours, which
  // averages their (independent) noise.
  const double frac = low ? std::abs(o.lowShiftPx - std::round(o.lowShiftPx)) : 0.0;
  const double varFactor = (1 - frac) * (1 - frac) + frac * frac;
  const cv::Point2d origin(kQaMarginXMm, kQaMarginYMm);
  const cv::Point2d pitch(o.pixelMm, o.pixelMm);
  auto roi = [&](const QaRect& r) {
    return qaRoiPixels(r, kQaRoiMarginMm, origin, pitch, t.size());
  };
  auto moments = [&](const QaRect& r) {
    auto m = alphaMoments(meanOf(t, roi(r)), n0, o.electronicNoise);
    m.second *= varFactor;
    return m;
  };
  auto stepMoments = [&](const QaRect& r) {
    auto m = alphaMoments(meanOf(t, qaRoiPixels(r, kQaStepMarginMm, origin, pitch, t.size())), n0,
                          o.electronicNoise);
    m.second *= varFactor;
    return m;
  };
  for (std::size_t k = 0; k < l.steps.size(); ++k) {
    const QaRect& s = l.steps[k];
    const auto steel = stepMoments({s.x, s.y, s.w, l.leadBehind[k].y - s.y});
    const auto lead = stepMoments(l.leadBehind[k]);
    f.stepCnr.push_back(steel.second > 0 ? (lead.first - steel.first) / std::sqrt(steel.second)
                                         : 0.0);
  }
  for (std::size_t k = 0; k < l.contrastPatches.size(); ++k) {
    const auto patch = moments(l.contrastPatches[k]);
    const auto base = moments(l.contrastReference[k]);
    f.contrastCnr.push_back(base.second > 0 ? (patch.first - base.first) / std::sqrt(base.second)
                                            : 0.0);
  }
  for (const double w : l.barWidthMm) {
    const double fmm = 1.0 / (2.0 * w);
    f.groupModulation.push_back(w > o.pixelMm ? chainMtf(fmm, o, low) : -1.0);
  }
  // Wires: the excess of the noise-free profile in the ±10 mm window over the 25–45 mm flanks,
  // against the noise of that sum for white per-pixel noise at the base's transmission.
  const double p = o.pixelMm;
  const int y0 =
      static_cast<int>(std::ceil((kQaMarginYMm + l.wireTopMm + kQaRoiMarginMm) / p - 0.5));
  const int y1 =
      static_cast<int>(std::floor((kQaMarginYMm + l.wireBottomMm - kQaRoiMarginMm) / p - 0.5));
  const int rows = y1 - y0 + 1;
  cv::Mat profile;
  cv::Mat alpha;
  cv::log(cv::max(t(cv::Range(y0, y1 + 1), cv::Range::all()), 1e-9), alpha);
  cv::reduce(-alpha, profile, 0, cv::REDUCE_AVG, CV_64F);
  for (std::size_t j = 0; j < l.wireXMm.size(); ++j) {
    const double cx = kQaMarginXMm + l.wireXMm[j];
    double win = 0;
    int nw = 0;
    double bg = 0;
    int nb = 0;
    double tBase = 0;
    for (int i = 0; i < profile.cols; ++i) {
      const double d = std::abs((i + 0.5) * p - cx);
      if (d <= 10.0) {
        win += profile.at<double>(i);
        ++nw;
      } else if (d >= 25.0 && d <= 45.0) {
        bg += profile.at<double>(i);
        tBase += cv::mean(t(cv::Range(y0, y1 + 1), cv::Range(i, i + 1)))[0];
        ++nb;
      }
    }
    if (nw == 0 || nb == 0) {
      f.wireSnr.push_back(0.0);
      continue;
    }
    const double signal = win - nw * bg / nb;
    const double var = alphaMoments(tBase / nb, n0, o.electronicNoise).second * varFactor;
    const double noise = std::sqrt(var * nw * (1.0 + static_cast<double>(nw) / nb) / rows);
    f.wireSnr.push_back(noise > 0 ? signal / noise : 0.0);
  }
  summariseFigures(f);
  return f;
}

}  // namespace

const QaLayout& qaLayout() {
  static const QaLayout layout = makeLayout();
  return layout;
}

cv::Rect qaRoiPixels(const QaRect& r, double marginMm, cv::Point2d originMm, cv::Point2d pitchMm,
                     cv::Size image) {
  // Pixel i's centre is at (i + 0.5) · pitch.
  const double x0 = originMm.x + r.x + marginMm;
  const double x1 = originMm.x + r.x + r.w - marginMm;
  const double y0 = originMm.y + r.y + marginMm;
  const double y1 = originMm.y + r.y + r.h - marginMm;
  const int i0 = std::max(0, static_cast<int>(std::ceil(x0 / pitchMm.x - 0.5)));
  const int i1 = std::min(image.width - 1, static_cast<int>(std::floor(x1 / pitchMm.x - 0.5)));
  const int j0 = std::max(0, static_cast<int>(std::ceil(y0 / pitchMm.y - 0.5)));
  const int j1 = std::min(image.height - 1, static_cast<int>(std::floor(y1 / pitchMm.y - 0.5)));
  if (i1 < i0 || j1 < j0) return {};
  return {i0, j0, i1 - i0 + 1, j1 - j0 + 1};
}

void summariseFigures(QaFigures& f) {
  const QaLayout& l = qaLayout();
  f.penetrationMm = 0;
  for (std::size_t k = 0; k < f.stepCnr.size() && f.stepCnr[k] >= kQaCnrThreshold; ++k)
    f.penetrationMm = l.stepSteelMm[k];
  // The contrast steps are listed largest first: the run goes down to the faintest seen.
  f.contrastPercent = -1;
  for (std::size_t k = 0; k < f.contrastCnr.size() && f.contrastCnr[k] >= kQaCnrThreshold; ++k)
    f.contrastPercent = l.contrastPercent[k];
  f.resolutionLpCm = 0;
  for (std::size_t g = 0;
       g < f.groupModulation.size() && f.groupModulation[g] >= kQaModulationThreshold; ++g)
    f.resolutionLpCm = lpPerCm(l.barWidthMm[g]);
  f.wireMm = 0;
  for (std::size_t j = 0; j < f.wireSnr.size() && f.wireSnr[j] >= kQaWireSnrThreshold; ++j)
    f.wireMm = l.wireDiameterMm[j];
}

void scaleNoise(PhantomOptions& o, double factor) {
  o.openBeamQuanta /= factor * factor;
  o.electronicNoise /= factor;
}

QaPhantom generateQaPhantom(std::uint64_t seed, const PhantomOptions& o) {
  const QaLayout& l = qaLayout();
  const cv::Size size(
      static_cast<int>(std::round((l.plateWidthMm + 2 * kQaMarginXMm) / o.pixelMm)),
      static_cast<int>(std::round((l.plateHeightMm + 2 * kQaMarginYMm) / o.pixelMm)));
  const ArealMaps areal = drawObject(l, o.pixelMm, size);
  QaPhantom q;
  const std::vector<double> energies =
      o.dualEnergy ? std::vector<double>{6.0, 4.0} : std::vector<double>{6.0};
  q.bundle.planes = renderArealPlanes(areal, energies, o, seed);
  char id[48];
  std::snprintf(id, sizeof id, "qa-%llu", static_cast<unsigned long long>(seed % 1000000000));
  ScanMeta& m = q.bundle.meta;
  m.scanId = id;
  m.time = "2026-11-27T12:00:00Z";
  m.scanner = "phantom";
  m.signal = Signal::kTransmission;
  m.energiesMev = energies;
  m.pixelAlongMm = o.pixelMm;
  m.pixelVerticalMm = o.pixelMm;
  m.conveyance.kind = "vehicle";
  m.conveyance.declared.description = "image-quality test object";
  QaTruth& t = q.truth;
  t.scanId = id;
  t.openBeamQuanta = o.openBeamQuanta;
  t.electronicNoise = o.electronicNoise;
  t.blurMm = o.blurMm;
  t.pixelMm = o.pixelMm;
  t.seed = seed;
  for (std::size_t e = 0; e < energies.size(); ++e) {
    const cv::Mat ideal = idealTransmission(areal, energies[e], e == 1 ? o.lowShiftPx : 0.0, o);
    QaFigures f = truthFor(l, ideal, o.openBeamQuanta * (e == 0 ? 1.0 : 0.6), o, e == 1);
    f.energyMev = energies[e];
    t.energies.push_back(std::move(f));
  }
  return q;
}

nlohmann::json qaFiguresJson(const QaFigures& f) {
  const QaLayout& l = qaLayout();
  nlohmann::json j;
  j["energy_mev"] = f.energyMev;
  j["penetration_mm"] = f.penetrationMm;
  j["contrast_percent"] =
      f.contrastPercent < 0 ? nlohmann::json(nullptr) : nlohmann::json(f.contrastPercent);
  j["resolution_lp_cm"] = f.resolutionLpCm;
  j["resolution_bar_mm"] = f.resolutionLpCm > 0 ? nlohmann::json(10.0 / (2.0 * f.resolutionLpCm))
                                                : nlohmann::json(nullptr);
  j["wire_mm"] = f.wireMm > 0 ? nlohmann::json(f.wireMm) : nlohmann::json(nullptr);
  j["steps"] = nlohmann::json::array();
  for (std::size_t k = 0; k < f.stepCnr.size(); ++k)
    j["steps"].push_back({{"steel_mm", l.stepSteelMm[k]}, {"cnr", f.stepCnr[k]}});
  j["contrast_steps"] = nlohmann::json::array();
  for (std::size_t k = 0; k < f.contrastCnr.size(); ++k)
    j["contrast_steps"].push_back({{"percent", l.contrastPercent[k]}, {"cnr", f.contrastCnr[k]}});
  j["line_pairs"] = nlohmann::json::array();
  for (std::size_t g = 0; g < f.groupModulation.size(); ++g)
    j["line_pairs"].push_back(
        {{"lp_cm", lpPerCm(l.barWidthMm[g])},
         {"modulation", f.groupModulation[g] < 0 ? nlohmann::json(nullptr)
                                                 : nlohmann::json(f.groupModulation[g])}});
  j["wires"] = nlohmann::json::array();
  for (std::size_t w = 0; w < f.wireSnr.size(); ++w)
    j["wires"].push_back({{"diameter_mm", l.wireDiameterMm[w]}, {"snr", f.wireSnr[w]}});
  return j;
}

std::string qaTruthToJson(const QaTruth& t) {
  nlohmann::json j;
  j["scan_id"] = t.scanId;
  j["settings"] = {{"open_beam_quanta", t.openBeamQuanta},
                   {"electronic_noise", t.electronicNoise},
                   {"blur_mm", t.blurMm},
                   {"pixel_mm", t.pixelMm},
                   {"seed", t.seed}};
  j["criteria"] = {{"cnr", kQaCnrThreshold},
                   {"modulation", kQaModulationThreshold},
                   {"wire_snr", kQaWireSnrThreshold}};
  j["energies"] = nlohmann::json::array();
  for (const QaFigures& f : t.energies) j["energies"].push_back(qaFiguresJson(f));
  return j.dump(2) + "\n";
}

tl::expected<std::string, std::string> writeQaPhantom(const std::string& dir, std::uint64_t seed,
                                                      const PhantomOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return tl::unexpected(dir + ": cannot create (" + ec.message() + ")");
  const QaPhantom q = generateQaPhantom(seed, options);
  const std::string base = (std::filesystem::path(dir) / q.truth.scanId).string();
  if (auto r = writeFileAtomic(base + ".qa-truth.json", qaTruthToJson(q.truth)); !r)
    return tl::unexpected(r.error());
  if (auto r = writeBundle(q.bundle, dir); !r) return tl::unexpected(r.error());
  return q.truth.scanId;
}

}  // namespace lanegate::vision
