#include "trace/synth.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>

namespace lanegate::trace {

namespace {

// Own draws on top of mt19937_64 (whose output is fixed by the standard) so that a seed
// gives the same spectrum with any standard library.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}

  double uniform() {  // [0, 1)
    return static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  }

  double normal() {
    if (haveSpare_) {
      haveSpare_ = false;
      return spare_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * std::numbers::pi * u2);
    haveSpare_ = true;
    return r * std::cos(2.0 * std::numbers::pi * u2);
  }

  double poisson(double lambda) {
    if (lambda <= 0.0) return 0.0;
    if (lambda > 30.0) return std::max(0.0, std::round(lambda + std::sqrt(lambda) * normal()));
    const double limit = std::exp(-lambda);
    double product = uniform();
    double count = 0.0;
    while (product > limit) {
      product *= uniform();
      count += 1.0;
    }
    return count;
  }

 private:
  std::mt19937_64 engine_;
  bool haveSpare_ = false;
  double spare_ = 0.0;
};

struct Placed {
  double tMs;
  double fwhmMs;
  double amplitude;
};

}  // namespace

double driftTimeMs(double k0, double driftTempK, double pressureHpa, double driftLengthCm,
                   double driftVoltage) {
  const double k = k0 * (1013.25 / pressureHpa) * (driftTempK / 273.15);
  return 1000.0 * driftLengthCm * driftLengthCm / (k * driftVoltage);
}

Spectrum synthesize(const SynthParams& params) {
  Rng rng(params.seed);
  auto place = [&](double k0, double amplitude, std::optional<double> r) {
    const double t = driftTimeMs(k0, params.driftTempK, params.pressureHpa, params.driftLengthCm,
                                 params.driftVoltage);
    return Placed{t, t / r.value_or(params.resolvingPower), amplitude};
  };
  std::vector<Placed> peaks;
  const double kept = std::clamp(1.0 - params.ripDepletion, 0.0, 1.0);
  if (params.reactantK0) peaks.push_back(place(*params.reactantK0, params.reactantAmplitude * kept, {}));
  if (params.calibrantK0) peaks.push_back(place(*params.calibrantK0, params.calibrantAmplitude * kept, {}));
  for (const SynthIon& ion : params.ions) peaks.push_back(place(ion.k0, ion.amplitude, ion.resolvingPower));

  // A slow random wave for baseline wander: two sinusoids with seeded phases.
  const double phase1 = 2.0 * std::numbers::pi * rng.uniform();
  const double phase2 = 2.0 * std::numbers::pi * rng.uniform();
  const double cycles1 = 0.5 + rng.uniform();
  const double cycles2 = 1.5 + 2.0 * rng.uniform();

  Spectrum s;
  s.mode = params.mode;
  s.periodNs = params.periodNs;
  if (params.writeConditions) {
    s.driftTempK = params.driftTempK;
    s.pressureHpa = params.pressureHpa;
  }
  s.points.resize(params.points);
  const double n = static_cast<double>(params.points);
  const double fourLn2 = 4.0 * std::numbers::ln2;
  const double dtMs = params.periodNs * 1e-6;
  auto gaussian = [&](const Placed& p, double t) {
    const double d = (t - p.tMs) / p.fwhmMs;
    return std::abs(d) < 6.0 ? p.amplitude * std::exp(-fourLn2 * d * d) : 0.0;
  };
  std::vector<double> clean(params.points, 0.0);
  for (std::size_t i = 0; i < params.points; ++i) {
    const double t = static_cast<double>(i) * dtMs;
    for (const Placed& p : peaks) clean[i] += gaussian(p, t);
  }
  const double tailShare = std::clamp(params.reactantTailShare, 0.0, 1.0);
  if (params.reactantK0 && tailShare > 0.0) {
    // Part of the RIP's charge arrives late (ions formed or released in the drift region):
    // that share of its Gaussian, convolved with an exponential, moved behind it. The
    // recursion keeps the area.
    Placed rip = peaks.front();
    rip.amplitude *= tailShare;
    const double decay = std::exp(-dtMs / (params.reactantTailFwhm * rip.fwhmMs));
    double tail = 0.0;
    for (std::size_t i = 0; i < params.points; ++i) {
      const double g = gaussian(rip, static_cast<double>(i) * dtMs);
      tail = decay * tail + (1.0 - decay) * g;
      clean[i] += tail - g;
    }
  }
  const double correlation = std::clamp(params.noiseCorrelation, 0.0, 0.999);
  const double innovation = std::sqrt(1.0 - correlation * correlation);
  double colored = 0.0;
  for (std::size_t i = 0; i < params.points; ++i) {
    const double frac = static_cast<double>(i) / n;
    double signal = clean[i];
    if (params.countsPerIon > 0.0) {
      signal = params.countsPerIon * rng.poisson(signal / params.countsPerIon);
    }
    const double baseline = params.baselineOffset + params.baselineSlope * frac +
                            params.baselineWander * (0.6 * std::sin(2.0 * std::numbers::pi * cycles1 * frac + phase1) +
                                                     0.4 * std::sin(2.0 * std::numbers::pi * cycles2 * frac + phase2));
    // AR(1) with unit variance (white when the correlation is 0).
    const double e = rng.normal();
    colored = i == 0 ? e : correlation * colored + innovation * e;
    double v = baseline + signal + params.electronicNoise * colored;
    for (const SynthSpike& spike : params.spikes) {
      const double start = spike.timeMs / dtMs;
      const double at = static_cast<double>(i);
      if (at >= std::floor(start) && at < std::floor(start) + static_cast<double>(spike.samples)) {
        v += spike.amplitude;
      }
    }
    s.points[i] = static_cast<std::uint16_t>(std::clamp(std::round(v), 0.0, 65535.0));
  }
  return s;
}

tl::expected<SynthParams, std::string> synthDefaults(const SubstanceLibrary& library, IonMode mode) {
  const Substance* cal = library.calibrant(mode);
  const Substance* rip = library.reactant(mode);
  if (cal == nullptr || rip == nullptr) {
    return tl::make_unexpected("the library has no " + std::string(ionModeName(mode)) +
                               "-mode calibrant and reactant");
  }
  SynthParams p;
  p.mode = mode;
  p.calibrantK0 = cal->k0;
  p.reactantK0 = rip->k0;
  return p;
}

tl::expected<SynthParams, std::string> randomSpectrum(const SubstanceLibrary& library, IonMode mode,
                                                      SynthScene scene, std::uint64_t seed,
                                                      double margin) {
  auto base = synthDefaults(library, mode);
  if (!base) return base;
  SynthParams p = *base;
  const Substance& rip = *library.reactant(mode);
  const Substance& cal = *library.calibrant(mode);
  // Its own stream (the seed mixed, so that seed n here and seed n of synthesize() differ).
  Rng rng(seed * 0x9E3779B97F4A7C15ULL + 0x5851F42D4C957F2DULL);
  auto uniform = [&](double lo, double hi) { return lo + (hi - lo) * rng.uniform(); };
  auto logUniform = [&](double lo, double hi) { return lo * std::pow(hi / lo, rng.uniform()); };
  auto chance = [&](double probability) { return rng.uniform() < probability; };
  p.seed = seed;

  // Drift tube: 90-220 °C, weather and altitude, 4-8 cm at 200-300 V/cm.
  p.driftTempK = uniform(363.0, 493.0);
  p.pressureHpa = uniform(950.0, 1040.0);
  p.driftLengthCm = uniform(4.0, 8.0);
  p.driftVoltage = uniform(200.0, 300.0) * p.driftLengthCm;
  // Resolving power: the diffusion limit sqrt(eV / (16 kT ln 2)) (about 70 at 1750 V and
  // 110 °C), lowered by the gate pulse's width, which matters most for the fast reactant
  // ions: FWHM^2 = tGate^2 + (t / Rdiffusion)^2. Commercial swab detectors show R 20-40.
  constexpr double kElectronVoltPerKelvin = 8.617333e-5;
  const double rDiffusion = std::sqrt(p.driftVoltage / (kElectronVoltPerKelvin * p.driftTempK) /
                                      (16.0 * std::numbers::ln2));
  p.resolvingPower = rDiffusion * uniform(0.35, 0.95);  // at the RIP

  // The slowest ion that matters (targets, watch windows), with room behind it.
  double slowest = cal.k0;
  for (const Substance& s : library.substances()) {
    if (s.mode == mode) slowest = std::min(slowest, s.k0 - s.window);
  }
  for (const WatchWindow& w : library.watchWindows()) {
    if (w.mode == mode) slowest = std::min(slowest, w.k0Min);
  }
  const double spanMs = uniform(1.1, 1.4) * driftTimeMs(0.95 * slowest, p.driftTempK, p.pressureHpa,
                                                        p.driftLengthCm, p.driftVoltage);
  p.points = static_cast<std::size_t>(uniform(1500.0, 4000.0));
  p.periodNs = 1e6 * spanMs / static_cast<double>(p.points);

  // Reactant ions: hydration moves their K0 within the library window; part of their charge
  // may arrive late (tailing); larger or smaller clusters show as ions of their own nearby.
  p.reactantK0 = rip.k0 + uniform(-0.6, 0.6) * rip.window;
  p.electronicNoise = logUniform(3.0, 60.0);
  p.countsPerIon = uniform(0.0, 4.0);
  p.baselineSlope = uniform(-400.0, 400.0);
  p.baselineWander = uniform(0.0, 8.0) * p.electronicNoise + uniform(0.0, 50.0);
  // Detectors set their offset so that the noise is not clipped at zero.
  p.baselineOffset = std::max(0.0, -p.baselineSlope) + p.baselineWander + 6.0 * p.electronicNoise +
                     uniform(0.0, 3000.0);
  const double headroom = 60000.0 - p.baselineOffset - std::abs(p.baselineSlope) -
                          p.baselineWander - 8.0 * p.electronicNoise;
  // Cluster ions (below) may add up to 30 % on the RIP's flank.
  p.reactantAmplitude = std::min(logUniform(3000.0, 50000.0), headroom / 1.3);
  p.ripDepletion = uniform(0.0, 0.15);
  const double ripMs =
      driftTimeMs(*p.reactantK0, p.driftTempK, p.pressureHpa, p.driftLengthCm, p.driftVoltage);
  const double gateMs = ripMs * std::sqrt(1.0 / (p.resolvingPower * p.resolvingPower) -
                                          1.0 / (rDiffusion * rDiffusion));
  auto resolvingPowerAt = [&](double k0) {
    const double t = driftTimeMs(k0, p.driftTempK, p.pressureHpa, p.driftLengthCm, p.driftVoltage);
    return t / std::hypot(gateMs, t / rDiffusion);
  };
  const double ripFwhmPoints = ripMs / p.resolvingPower / (p.periodNs * 1e-6);
  // An amplifier low-pass of up to 0.3 RIP FWHM.
  const double tau = uniform(0.0, 0.3) * ripFwhmPoints;
  p.noiseCorrelation = tau > 0.05 ? std::exp(-1.0 / tau) : 0.0;
  if (chance(0.5)) {
    p.reactantTailShare = uniform(0.02, 0.25);
    p.reactantTailFwhm = uniform(0.5, 3.0);
  }
  const int clusters = chance(0.5) ? 1 + static_cast<int>(2.0 * rng.uniform()) : 0;
  for (int k = 0; k < clusters; ++k) {
    SynthIon ion;
    ion.k0 = std::clamp(*p.reactantK0 + uniform(-0.9, 0.9) * rip.window, rip.k0 - 0.95 * rip.window,
                        rip.k0 + 0.95 * rip.window);
    ion.amplitude = uniform(0.02, 0.3) * p.reactantAmplitude;
    p.ions.push_back(ion);
  }
  // The calibrant, strong enough to serve (at least 25 noise sigma).
  p.calibrantAmplitude = std::max(uniform(0.05, 0.6) * p.reactantAmplitude,
                                  25.0 * (p.electronicNoise + std::sqrt(p.countsPerIon * 1000.0)));
  const int spikes = chance(0.3) ? 1 + static_cast<int>(3.0 * rng.uniform()) : 0;
  for (int k = 0; k < spikes; ++k) {
    SynthSpike spike;
    spike.timeMs = uniform(0.0, spanMs);
    spike.amplitude = (chance(0.8) ? 1.0 : -1.0) * uniform(5.0, 40.0) * p.electronicNoise;
    spike.samples = chance(0.7) ? 1 : 2;
    p.spikes.push_back(spike);
  }
  if (scene == SynthScene::kBlank) return p;

  // Interferents: K0 between the slowest ion that matters and the calibrant, away from the
  // windows they must avoid; amplitude from 8 sigma up to a quarter of the RIP; their own R.
  auto nearTarget = [&](double k0) {
    for (const Substance& s : library.substances()) {
      if (s.mode == mode && std::abs(k0 - s.k0) <= s.window + margin) return true;
    }
    return false;
  };
  auto watched = [&](double k0, double pad) {
    for (const WatchWindow& w : library.watchWindows()) {
      if (w.mode == mode && k0 >= w.k0Min - pad && k0 <= w.k0Max + pad) return true;
    }
    return false;
  };
  const double k0Lo = 0.95 * slowest;
  const double k0Hi = cal.k0 - cal.window - 0.05;
  const bool inside = scene == SynthScene::kInsideWatch;
  const int count = inside ? 1 : 1 + static_cast<int>(4.0 * rng.uniform());
  for (int k = 0; k < count; ++k) {
    SynthIon ion;
    bool found = false;
    for (int attempt = 0; attempt < 1000 && !found; ++attempt) {
      ion.k0 = uniform(k0Lo, k0Hi);
      found = !nearTarget(ion.k0) && (inside ? watched(ion.k0, -margin) : !watched(ion.k0, margin));
    }
    if (!found) {
      return tl::make_unexpected(std::string("no room for an interferent ") +
                                 (inside ? "inside" : "outside") + " the " +
                                 std::string(ionModeName(mode)) + "-mode watch windows");
    }
    // Above the library's reporting floor for an unidentified peak, so that each is seen.
    const double floor = std::max(8.0 * p.electronicNoise, 2.0 * library.defaultMinAmplitude());
    ion.amplitude = logUniform(floor, std::max(1.5 * floor, 0.25 * p.reactantAmplitude));
    // Reactions on the way (cluster exchange, adducts) broaden some ions a little.
    ion.resolvingPower = resolvingPowerAt(ion.k0) * uniform(0.9, 1.1);
    p.ions.push_back(ion);
  }
  // Their charge comes from the reactant ions: keep the spectrum usable (a load that
  // consumes the RIP is an overload, inconclusive by design, not this scene).
  auto area = [&](double k0, double amplitude, double r) {
    return amplitude *
           driftTimeMs(k0, p.driftTempK, p.pressureHpa, p.driftLengthCm, p.driftVoltage) / r;
  };
  const double ripArea =
      area(*p.reactantK0, p.reactantAmplitude * (1.0 - p.ripDepletion), p.resolvingPower);
  double sampleArea = 0.0;
  const auto first = p.ions.end() - count;
  for (auto it = first; it != p.ions.end(); ++it) {
    sampleArea += area(it->k0, it->amplitude, *it->resolvingPower);
  }
  if (sampleArea > 0.5 * ripArea) {
    for (auto it = first; it != p.ions.end(); ++it) it->amplitude *= 0.5 * ripArea / sampleArea;
  }
  return p;
}

tl::expected<SynthIon, std::string> synthIon(const SubstanceLibrary& library, std::string_view name,
                                             double amplitude) {
  const Substance* s = library.find(name);
  if (s == nullptr) return tl::make_unexpected("no substance '" + std::string(name) + "' in the library");
  SynthIon ion;
  ion.k0 = s->k0;
  ion.amplitude = amplitude;
  return ion;
}

}  // namespace lanegate::trace
