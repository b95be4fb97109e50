// The phantom generator: a world's draw (vehicle family, pitches, energies, detector), the
// scene (vehicle, load, stashes), its rendering through a randomised spectrum and detector,
// and the ground truth (with each stash's contrast, measured on the noise-free rendering).
#include "vision/phantom.h"

#include "vision/decode.h"
#include "vision/phantom_scene.h"
#include "vision/physics.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

namespace lanegate::vision {
namespace {

using phantom::Compartment;
using phantom::Rng;
using phantom::Scene;

// Families each world draws from: the test world adds two that tuning never sees.
const std::vector<std::string> kTuningFamilies = {
    "semi_box", "container20", "container40", "reefer40", "rigid_truck", "van", "uld"};
const std::vector<std::string> kHeldOutFamilies = {"curtain_sider", "flatbed"};

// Three spectral bins stand in for the bremsstrahlung spectrum (mean photon energy as a
// fraction of the endpoint, and weight); the hardening they cause is what a real dual-energy
// calibration has to absorb. Worlds perturb them.
struct Spectrum {
  std::array<double, 3> fractions = {0.22, 0.38, 0.6};
  std::array<float, 3> weights = {0.4f, 0.4f, 0.2f};
};

// Everything drawn for one scan beyond the scene.
struct Beam {
  double pitchX = 5, pitchY = 5;
  std::vector<double> energies;
  Spectrum spectrum;
  double n0 = 2e6;
  double electronic = 3;
  double doseJitter = 0.01;
  double blurX = 3, blurY = 3;
  double lowShift = 0.5;
  double openLevel = 65535;  // counts of open beam in transmission output
  double scatter = 0, scatterMm = 250;
  double afterglow = 0;
  double banding = 0;
  int bandModule = 32;
  double drift = 0;
  int streaks = 0;
  std::vector<std::array<int, 2>> badRows;  // row, 1 dead / 2 hot
  std::vector<std::string> names;           // artefacts drawn
};

Beam drawBeam(Rng& rng, const PhantomOptions& o, int rows) {
  Beam b;
  const bool test = o.world == World::kTest;
  if (o.worldPitch) {
    if (!test) {
      do {
        b.pitchX = rng.uniform(4.0, 8.0);
        b.pitchY = rng.uniform(4.0, 8.0);
      } while (std::max(b.pitchX, b.pitchY) / std::min(b.pitchX, b.pitchY) > 2.0);
    } else if (rng.chance(0.6)) {
      b.pitchX = rng.uniform(8.0, 20.0);
      b.pitchY = rng.uniform(8.0, 20.0);
    } else {
      const double fine = rng.uniform(2.5, 7.0);
      const double coarse = std::min(20.0, fine * rng.uniform(2.2, 4.0));
      const bool alongFine = rng.chance(0.5);
      b.pitchX = alongFine ? fine : coarse;
      b.pitchY = alongFine ? coarse : fine;
    }
  } else {
    b.pitchX = o.pixelMm;
    b.pitchY = o.pixelVerticalMm > 0 ? o.pixelVerticalMm : o.pixelMm;
  }
  std::array<double, 2> pair =
      rng.chance(0.5) ? std::array<double, 2>{6, 4} : std::array<double, 2>{4, 2};
  if (test && rng.chance(0.4)) pair = {9, 6};
  if (!o.worldPitch && !o.artefacts && pair[0] == 4)
    pair = {6, 4};  // the classic generator: 6/4 and 9/6
  if (!o.worldPitch && !o.artefacts && rng.chance(0.3)) pair = {9, 6};
  b.energies = o.dualEnergy ? std::vector<double>{pair[0], pair[1]} : std::vector<double>{pair[0]};
  b.n0 = o.openBeamQuanta;
  b.electronic = o.electronicNoise;
  b.doseJitter = o.doseJitter;
  b.blurX = b.blurY = o.blurMm;
  b.lowShift = o.lowShiftPx;
  b.openLevel = 65535;
  if (rng.chance(o.badChannelProbability))
    b.badRows.push_back({rng.integer(5, rows - 5), rng.integer(1, 2)});
  if (!o.artefacts) return b;
  for (std::size_t k = 0; k < 3; ++k) {
    b.spectrum.fractions[k] *= rng.uniform(0.85, 1.15);
    b.spectrum.weights[k] *= static_cast<float>(rng.uniform(0.7, 1.3));
  }
  b.n0 = rng.logUniform(3e5, 4e6);
  b.electronic = rng.uniform(1, 8);
  b.doseJitter = rng.uniform(0.002, 0.015);
  b.blurX = rng.uniform(1.5, 5.0);
  b.blurY = rng.uniform(1.5, 5.0);
  b.lowShift = rng.uniform(-1.0, 1.0);
  b.openLevel = rng.chance(0.5) ? 65535 : rng.uniform(50000, 62000);
  b.badRows.clear();
  if (rng.chance(0.5))
    for (int k = rng.integer(1, 3); k > 0; --k)
      b.badRows.push_back({rng.integer(3, rows - 3), rng.integer(1, 2)});
  if (!b.badRows.empty()) b.names.emplace_back("bad_channels");
  if (rng.chance(0.5)) {
    b.banding = rng.uniform(0.001, 0.006);
    b.bandModule = rng.pick(std::vector<int>{16, 32, 64});
    b.names.emplace_back("banding");
  }
  if (rng.chance(0.4)) {
    b.drift = rng.uniform(0.002, 0.01);
    b.names.emplace_back("gain_drift");
  }
  if (rng.chance(0.6)) {
    b.scatter = rng.uniform(0.005, 0.03);
    b.scatterMm = rng.uniform(150, 400);
    b.names.emplace_back("scatter");
  }
  if (rng.chance(0.3)) {
    b.afterglow = rng.uniform(0.02, 0.1);
    b.names.emplace_back("afterglow");
  }
  if (rng.chance(0.3)) {
    b.streaks = rng.integer(1, 5);
    b.names.emplace_back("streaks");
  }
  return b;
}

// Noise-free transmission of the maps through one beam (optionally a sub-rectangle).
cv::Mat transmit(const ArealMaps& maps, double endpointMev, const Spectrum& sp,
                 const cv::Rect& roi) {
  std::array<std::array<float, kBasisCount>, 3> mu{};
  for (std::size_t k = 0; k < 3; ++k)
    for (int b = 0; b < kBasisCount; ++b)
      mu[k][static_cast<std::size_t>(b)] = static_cast<float>(
          massAttenuation(static_cast<Basis>(b), std::max(0.3, endpointMev * sp.fractions[k])));
  const float wsum = sp.weights[0] + sp.weights[1] + sp.weights[2];
  cv::Mat t(roi.size(), CV_32F);
  for (int y = 0; y < roi.height; ++y) {
    std::array<const float*, kBasisCount> src{};
    for (std::size_t b = 0; b < src.size(); ++b) src[b] = maps[b].ptr<float>(y + roi.y) + roi.x;
    float* out = t.ptr<float>(y);
    for (int x = 0; x < roi.width; ++x) {
      std::array<float, kBasisCount> rho{};
      float any = 0;
      for (std::size_t b = 0; b < rho.size(); ++b) {
        rho[b] = std::max(0.0f, src[b][x]);
        any += rho[b];
      }
      if (any == 0) {
        out[x] = 1.0f;
        continue;
      }
      float sum = 0;
      for (std::size_t k = 0; k < 3; ++k) {
        float a = 0;
        for (std::size_t b = 0; b < rho.size(); ++b) a += mu[k][b] * rho[b];
        sum += sp.weights[k] * std::exp(-a);
      }
      out[x] = sum / wsum;
    }
  }
  return t;
}

void shiftColumns(cv::Mat& t, double shiftPx) {
  if (shiftPx == 0) return;
  const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, shiftPx, 0, 1, 0);
  cv::warpAffine(t, t, m, t.size(), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP, cv::BORDER_REPLICATE);
}

// The detector: scatter, blur, dose, afterglow, noise, gain errors; counts per pixel (open beam =
// n0).
cv::Mat detect(cv::Mat t, const Beam& b, double n0, const std::vector<double>& dose,
               cv::RNG& noiseRng, std::uint64_t gainSeed) {
  if (b.scatter > 0) {
    cv::Mat halo;
    cv::GaussianBlur(t, halo, cv::Size(0, 0), b.scatterMm / b.pitchX, b.scatterMm / b.pitchY);
    t = t * (1.0 - b.scatter) + halo * b.scatter;
  }
  const double sx = b.blurX / b.pitchX;
  const double sy = b.blurY / b.pitchY;
  if (sx > 0.3 || sy > 0.3)
    cv::GaussianBlur(t, t, cv::Size(0, 0), std::max(sx, 0.01), std::max(sy, 0.01));
  cv::Mat n = t * n0;
  for (int x = 0; x < n.cols; ++x) n.col(x) *= dose[static_cast<std::size_t>(x)];
  if (b.afterglow > 0)
    for (int y = 0; y < n.rows; ++y) {
      float* r = n.ptr<float>(y);
      for (int x = 1; x < n.cols; ++x) r[x] += static_cast<float>(b.afterglow) * (r[x - 1] - r[x]);
    }
  cv::Mat noise(n.size(), CV_32F);
  noiseRng.fill(noise, cv::RNG::NORMAL, 0.0, 1.0);
  cv::Mat sigma;
  cv::sqrt(cv::max(n, 0.0) + b.electronic * b.electronic, sigma);
  n += noise.mul(sigma);
  // Residual gain errors after the scanner's own normalisation: module banding, gain drift
  // along the scan, and short module glitches (streaks).
  Rng g(gainSeed);
  if (b.banding > 0)
    for (int y0 = 0; y0 < n.rows; y0 += b.bandModule) {
      const double f = 1.0 + b.banding * g.normal();
      n.rowRange(y0, std::min(n.rows, y0 + b.bandModule)) *= f;
    }
  if (b.drift > 0)
    for (int y = 0; y < n.rows; ++y) {
      const double d = b.drift * g.normal();
      float* r = n.ptr<float>(y);
      for (int x = 0; x < n.cols; ++x) r[x] *= static_cast<float>(1.0 + d * x / n.cols);
    }
  for (int k = 0; k < b.streaks; ++k) {
    const int x = g.integer(0, n.cols - 1);
    const int y0 = g.integer(0, std::max(0, n.rows - 32));
    n(cv::Rect(x, y0, 1, std::min(n.rows - y0, g.integer(16, 64)))) *= 1.0 + g.uniform(-0.15, 0.15);
  }
  return n;
}

// Mean high-energy α a stash adds over where it lies (its core: half its largest change).
double stashContrast(const ArealMaps& before, const ArealMaps& after, const cv::Rect& roi,
                     double energy, const Spectrum& sp) {
  const cv::Mat t0 = transmit(before, energy, sp, cv::Rect(0, 0, roi.width, roi.height));
  ArealMaps crop;
  for (std::size_t b = 0; b < crop.size(); ++b) crop[b] = after[b](roi);
  const cv::Mat t1 = transmit(crop, energy, sp, cv::Rect(0, 0, roi.width, roi.height));
  cv::Mat change = cv::Mat::zeros(roi.size(), CV_32F);
  for (std::size_t b = 0; b < crop.size(); ++b) change += cv::abs(crop[b] - before[b]);
  double maxChange = 0;
  cv::minMaxLoc(change, nullptr, &maxChange);
  if (maxChange <= 0) return 0.0;
  double sum = 0;
  int count = 0;
  for (int y = 0; y < roi.height; ++y)
    for (int x = 0; x < roi.width; ++x)
      if (static_cast<double>(change.at<float>(y, x)) >= 0.5 * maxChange) {
        sum += std::log(std::max(1e-12, static_cast<double>(t0.at<float>(y, x)))) -
               std::log(std::max(1e-12, static_cast<double>(t1.at<float>(y, x))));
        ++count;
      }
  return count > 0 ? sum / count : 0.0;
}

void toPx(TruthItem& t, double px, double py) {
  t.boxPx = {static_cast<int>(std::floor(t.boxMm[0] / px)),
             static_cast<int>(std::floor(t.boxMm[1] / py)),
             std::max(1, static_cast<int>(std::ceil((t.boxMm[0] + t.boxMm[2]) / px)) -
                             static_cast<int>(std::floor(t.boxMm[0] / px))),
             std::max(1, static_cast<int>(std::ceil((t.boxMm[1] + t.boxMm[3]) / py)) -
                             static_cast<int>(std::floor(t.boxMm[1] / py)))};
}

std::string isoContainerNumber(int index) {
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
  return number + std::to_string(sum % 11 % 10);
}

// Where a stash of this scan goes: load units most often, then the structure's places.
const Compartment* pickPlace(Rng& rng, const std::vector<Compartment>& units,
                             const std::vector<Compartment>& places) {
  std::vector<std::pair<const Compartment*, double>> options;
  for (const Compartment& u : units)
    options.emplace_back(&u, 0.45 / static_cast<double>(units.size()));
  std::map<std::string, std::vector<const Compartment*>> byKind;
  for (const Compartment& p : places) byKind[p.location].push_back(&p);
  const std::map<std::string, double> weights = {{"floor", 0.15},
                                                 {"front_wall", 0.12},
                                                 {"tyre", 0.12},
                                                 {"spare_tyre", 0.08},
                                                 {"fuel_tank", 0.08}};
  for (const auto& [kind, list] : byKind)
    for (const Compartment* c : list)
      options.emplace_back(c, weights.at(kind) / static_cast<double>(list.size()));
  double total = 0;
  for (const auto& o : options) total += o.second;
  if (options.empty()) return nullptr;
  double r = rng.uniform(0, total);
  for (const auto& o : options) {
    if (r < o.second) return o.first;
    r -= o.second;
  }
  return options.back().first;
}

}  // namespace

std::string worldName(World world) { return world == World::kTest ? "test" : "tuning"; }

Phantom generatePhantom(std::uint64_t seed, int index, const PhantomOptions& o) {
  Rng rng(seed * std::uint64_t{0x9e3779b97f4a7c15} +
          static_cast<std::uint64_t>(index) * std::uint64_t{0xbf58476d1ce4e5b9} +
          (o.world == World::kTest ? 0x7e57ULL : 1ULL));
  Phantom ph;
  PhantomTruth& truth = ph.truth;
  truth.world = worldName(o.world);
  // The world's draw: family, then pitches and beam (they size the scene).
  const bool heldOut = o.world == World::kTest && rng.chance(0.5);
  truth.vehicle = heldOut ? rng.pick(kHeldOutFamilies) : rng.pick(kTuningFamilies);
  const double tower = o.worldPitch ? rng.uniform(4300, 5200) : 4500.0;
  const double ground = tower - (o.worldPitch ? rng.uniform(0, 150) : 50.0);
  const double lead = rng.uniform(700, 1600);
  const double lengthMm = lead + phantom::vehicleLengthMm(truth.vehicle) + rng.uniform(500, 1200);
  const int roughRows =
      static_cast<int>(tower / (o.pixelVerticalMm > 0 ? o.pixelVerticalMm : o.pixelMm));
  Beam beam = drawBeam(rng, o, std::max(roughRows, 40));
  Scene s(beam.pitchX, beam.pitchY, lengthMm, tower);
  for (auto& r : beam.badRows)
    r[0] = std::clamp(r[0] * s.height / std::max(roughRows, 40), 2, s.height - 3);
  truth.pixelAlongMm = beam.pitchX;
  truth.pixelVerticalMm = beam.pitchY;
  truth.energiesMev = beam.energies;
  truth.artefacts = beam.names;

  phantom::Vehicle v = phantom::buildVehicle(s, rng, truth.vehicle, lead, ground);
  truth.frontEnd = v.frontEnd;
  // Scenario: clear load, load with a stash, declared empty (really empty, or not).
  const double clearShare = o.clearShare >= 0 ? o.clearShare : 0.45;
  const double scenario = rng.uniform(0, 1);
  const bool declaredEmpty = o.clearShare < 0 && scenario >= 0.88;
  const bool emptyWithContent = declaredEmpty && rng.chance(0.5);
  const bool withStash = o.clearShare >= 0 ? scenario >= clearShare
                                           : (scenario >= clearShare && scenario < 0.88) ||
                                                 (emptyWithContent && rng.chance(0.5));
  truth.declaredEmpty = declaredEmpty;
  if (declaredEmpty) {
    truth.load = emptyWithContent && !withStash
                     ? rng.pick(std::vector<std::string>{"cartons", "pallets", "bags"})
                     : "empty";
  } else {
    truth.load = rng.chance(0.06) ? "empty" : rng.pick(phantom::loadKinds());
  }
  const double emptyKg = s.massKg(0, 0, lengthMm, tower);
  std::vector<Compartment> units;
  const std::string description =
      phantom::fillLoad(s, rng, v, truth.load, units, truth.opaqueExpected);
  truth.hasContent = !units.empty() || truth.load == "steel" || truth.load == "machinery";

  if (withStash) {
    const int count = rng.chance(0.1) ? 2 : 1;
    for (int k = 0; k < count; ++k) {
      const double kg = rng.logUniform(1.0, 50.0);
      for (int attempt = 0; attempt < 8; ++attempt) {
        const Compartment* place = pickPlace(rng, units, v.places);
        if (place == nullptr) break;
        // Snapshot the neighbourhood to measure the stash's contrast afterwards.
        const double margin = 300;
        const cv::Rect roi = cv::Rect(static_cast<int>((place->x - margin) / s.pitchX),
                                      static_cast<int>((place->y - margin) / s.pitchY),
                                      static_cast<int>((place->w + 2 * margin) / s.pitchX) + 2,
                                      static_cast<int>((place->h + 2 * margin) / s.pitchY) + 2) &
                             cv::Rect(0, 0, s.width, s.height);
        ArealMaps before;
        TruthItem t;
        const auto snapshot = [&]() {
          for (std::size_t b = 0; b < before.size(); ++b) before[b] = s.maps[b](roi).clone();
        };
        if (!phantom::placeStash(s, rng, *place, kg, t, snapshot)) continue;
        t.deltaAlpha = stashContrast(before, s.maps, roi, beam.energies.front(), beam.spectrum);
        toPx(t, s.pitchX, s.pitchY);
        truth.concealments.push_back(t);
        break;
      }
    }
  }
  for (cv::Mat& m : s.maps) m = cv::max(m, 0.0);  // displaced goods never go below nothing
  // Cargo: everything the load and the stashes added to the empty vehicle.
  truth.cargoKg = s.massKg(0, 0, lengthMm, tower) - emptyKg;

  // Render, then detect: quanta, dose jitter, noise, artefacts, 16-bit output.
  const int rows = s.height;
  cv::RNG cvRng(rng.next());
  std::vector<double> dose(static_cast<std::size_t>(s.width));
  for (double& d : dose) d = 1.0 + beam.doseJitter * rng.normal();
  const std::uint64_t gainSeed = rng.next();
  Rng detRng(seed ^ std::uint64_t{0x5eedca1b});  // the scanner's own dark and gain per channel
  std::vector<double> dark(static_cast<std::size_t>(rows) * 2);
  std::vector<double> gain(static_cast<std::size_t>(rows) * 2);
  for (std::size_t i = 0; i < dark.size(); ++i) {
    dark[i] = 800 + 40 * detRng.normal();
    gain[i] = 1.0 + 0.08 * detRng.normal();
  }
  for (std::size_t e = 0; o.render && e < beam.energies.size(); ++e) {
    cv::Mat t =
        transmit(s.maps, beam.energies[e], beam.spectrum, cv::Rect(0, 0, s.width, s.height));
    if (e == 0) {
      // Not penetrated: fewer than ~25 quanta over at least 400 cm² of the cargo space, judged
      // at 100 mm (a drum's wall edge-on is a line the beam misses, not a region it cannot clear).
      cv::Mat coarse;
      cv::blur(t, coarse,
               cv::Size(std::max(1, static_cast<int>(100.0 / s.pitchX)),
                        std::max(1, static_cast<int>(100.0 / s.pitchY))));
      const cv::Mat starved = coarse < 25.0 / beam.n0;
      // The cargo space: inside the end walls and below the roof (dense structure there is
      // not cargo the beam failed to clear).
      const int bx0 = std::clamp(static_cast<int>((v.bodyX0 + 300) / s.pitchX), 0, s.width);
      const int bx1 = std::clamp(static_cast<int>((v.bodyX1 - 300) / s.pitchX), 0, s.width);
      const int by0 = std::clamp(static_cast<int>((v.bodyTop + 150) / s.pitchY), 0, s.height);
      const int by1 = std::clamp(static_cast<int>((v.deckY - 20) / s.pitchY), 0, s.height);
      if (bx1 > bx0 && by1 > by0 &&
          cv::countNonZero(starved(cv::Range(by0, by1), cv::Range(bx0, bx1))) * s.pitchX *
                  s.pitchY / 100.0 >=
              400.0)
        truth.opaqueExpected = true;
    }
    if (e == 1) shiftColumns(t, beam.lowShift);
    const double n0 = beam.n0 * (e == 0 ? 1.0 : 0.6);  // the low channel sees fewer photons
    cv::Mat n = detect(t, beam, n0, dose, cvRng, gainSeed + e);
    cv::Mat out(n.size(), CV_16UC1);
    ChannelCalibration cal;
    for (int y = 0; y < rows; ++y) {
      const std::size_t k = e * static_cast<std::size_t>(rows) + static_cast<std::size_t>(y);
      double g = gain[k];
      int bad = 0;
      for (const auto& br : beam.badRows)
        if (br[0] == y) bad = br[1];
      if (bad == 1) g = 0.0;
      if (bad == 2) g *= 1.8;
      // Raw: counts scaled so that open beam sits near 52,000 of 65,535.
      const double scale =
          o.raw ? 52000.0 / n0 * g : beam.openLevel / n0 * (bad ? g / gain[k] : 1.0);
      n.row(y).convertTo(out.row(y), CV_16U, scale, o.raw ? dark[k] : 0.0);
      cal.dark.push_back(static_cast<float>(dark[k]));
      cal.air.push_back(static_cast<float>(dark[k] + 52000.0 * gain[k]));
    }
    ph.bundle.planes.push_back(out);
    if (o.raw) ph.calibration.energies.push_back(std::move(cal));
  }

  char id[48];
  std::snprintf(id, sizeof id, "%s%llu-%04d", o.world == World::kTest ? "tw" : "ph",
                static_cast<unsigned long long>(seed % 1000000), index);
  truth.scanId = id;
  ScanMeta& m = ph.bundle.meta;
  m.scanId = id;
  m.time = "2026-11-27T12:00:00Z";
  m.scanner = "phantom";
  m.signal = o.raw ? Signal::kRaw : Signal::kTransmission;
  m.energiesMev = beam.energies;
  m.pixelAlongMm = beam.pitchX;
  m.pixelVerticalMm = beam.pitchY;
  m.conveyance.kind = v.conveyance;
  if (m.conveyance.kind == "container") m.conveyance.ids = {isoContainerNumber(index)};
  m.conveyance.declared.empty = declaredEmpty;
  m.conveyance.declared.description = declaredEmpty         ? "empty"
                                      : description.empty() ? "empty"
                                                            : description;
  if (!declaredEmpty && v.tareKg > 0) {
    // The legitimate load only: the stash is not on the manifest.
    double stashKg = 0;
    for (const TruthItem& c : truth.concealments) stashKg += c.massKg;
    m.conveyance.declared.grossKg =
        std::round(v.tareKg + std::max(0.0, truth.cargoKg - stashKg) * rng.uniform(0.95, 1.05));
  }
  return ph;
}

std::string truthToJson(const PhantomTruth& t) {
  nlohmann::json doc;
  doc["scan_id"] = t.scanId;
  doc["world"] = t.world;
  doc["vehicle"] = t.vehicle;
  doc["load"] = t.load;
  doc["front_end"] = t.frontEnd;
  doc["declared_empty"] = t.declaredEmpty;
  doc["has_content"] = t.hasContent;
  doc["opaque_expected"] = t.opaqueExpected;
  doc["cargo_kg"] = t.cargoKg;
  doc["pixel_mm"] = {{"along", t.pixelAlongMm}, {"vertical", t.pixelVerticalMm}};
  doc["energies_mev"] = t.energiesMev;
  doc["artefacts"] = t.artefacts;
  doc["concealments"] = nlohmann::json::array();
  for (const TruthItem& c : t.concealments)
    doc["concealments"].push_back({{"kind", c.kind},
                                   {"unit", c.unit},
                                   {"mass_kg", c.massKg},
                                   {"box_mm", c.boxMm},
                                   {"box_px", c.boxPx},
                                   {"delta_alpha_he", std::round(c.deltaAlpha * 1000.0) / 1000.0}});
  return doc.dump(2) + "\n";
}

tl::expected<PhantomTruth, std::string> parseTruth(const std::string& text,
                                                   const std::string& name) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return tl::unexpected(name + ": not a ground-truth JSON object");
  PhantomTruth t;
  try {
    t.scanId = doc.at("scan_id").get<std::string>();
    t.world = doc.value("world", "");
    t.vehicle = doc.value("vehicle", "");
    t.load = doc.value("load", "");
    t.frontEnd = doc.value("front_end", "");
    t.declaredEmpty = doc.value("declared_empty", false);
    t.hasContent = doc.value("has_content", false);
    t.opaqueExpected = doc.value("opaque_expected", false);
    t.cargoKg = doc.value("cargo_kg", 0.0);
    for (const auto& c : doc.at("concealments")) {
      TruthItem item;
      item.kind = c.at("kind").get<std::string>();
      item.unit = c.value("unit", "");
      item.massKg = c.at("mass_kg").get<double>();
      item.boxMm = c.at("box_mm").get<std::array<double, 4>>();
      item.boxPx = c.at("box_px").get<std::array<int, 4>>();
      item.deltaAlpha = c.value("delta_alpha_he", 1.0);
      t.concealments.push_back(item);
    }
  } catch (const nlohmann::json::exception& e) {
    return tl::unexpected(name + ": " + e.what());
  }
  return t;
}

cv::Mat idealTransmission(const ArealMaps& areal, double endpointMev, double shiftPx,
                          const PhantomOptions& o) {
  cv::Mat t =
      transmit(areal, endpointMev, Spectrum{}, cv::Rect(0, 0, areal[0].cols, areal[0].rows));
  shiftColumns(t, shiftPx);
  const double sigmaPx = o.blurMm / o.pixelMm;
  if (sigmaPx > 0.3) cv::GaussianBlur(t, t, cv::Size(0, 0), sigmaPx);
  return t;
}

std::vector<cv::Mat> renderArealPlanes(const ArealMaps& areal,
                                       const std::vector<double>& energiesMev,
                                       const PhantomOptions& o, std::uint64_t seed) {
  // The same detection chain as generatePhantom with the fixed detector, no bad channels.
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

tl::expected<int, std::string> writePhantomSet(const std::string& dir, int count,
                                               std::uint64_t seed, const PhantomOptions& options) {
  if (options.raw && options.worldPitch)
    return tl::unexpected(
        std::string("raw scans need one detector for the whole set: give a fixed pitch"));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return tl::unexpected(dir + ": cannot create (" + ec.message() + ")");
  for (int i = 0; i < count; ++i) {
    const Phantom p = generatePhantom(seed, i, options);
    const std::string base = (std::filesystem::path(dir) / p.truth.scanId).string();
    if (auto r = writeFileAtomic(base + ".truth.json", truthToJson(p.truth)); !r)
      return tl::unexpected(r.error());
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
