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
  for (std::size_t i = 0; i < params.points; ++i) {
    const double t = static_cast<double>(i) * params.periodNs * 1e-6;
    const double frac = static_cast<double>(i) / n;
    double signal = 0.0;
    for (const Placed& p : peaks) {
      const double d = (t - p.tMs) / p.fwhmMs;
      if (std::abs(d) < 6.0) signal += p.amplitude * std::exp(-fourLn2 * d * d);
    }
    if (params.countsPerIon > 0.0) {
      signal = params.countsPerIon * rng.poisson(signal / params.countsPerIon);
    }
    const double baseline = params.baselineOffset + params.baselineSlope * frac +
                            params.baselineWander * (0.6 * std::sin(2.0 * std::numbers::pi * cycles1 * frac + phase1) +
                                                     0.4 * std::sin(2.0 * std::numbers::pi * cycles2 * frac + phase2));
    const double v = baseline + signal + params.electronicNoise * rng.normal();
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
