#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "trace/library.h"
#include "trace/spectrum.h"

namespace lanegate::trace {

/// One ion population to place in a synthetic plasmagram.
struct SynthIon {
  double k0 = 1.0;                       ///< reduced mobility, cm^2/(V s)
  double amplitude = 1000.0;             ///< apex height above baseline, counts
  std::optional<double> resolvingPower;  ///< overrides SynthParams::resolvingPower
};

/// Everything that shapes a synthetic spectrum. Defaults: 7 cm tube at 1750 V, 110 °C,
/// 1013.25 hPa, 2,000 points of 12.5 µs (25 ms), R = 40.
struct SynthParams {
  std::uint64_t seed = 1;                  ///< same seed, same spectrum
  IonMode mode = IonMode::kPositive;       ///< polarity written to the spectrum
  std::vector<SynthIon> ions;              ///< sample ions (substances, interferents)
  std::optional<double> reactantK0 = 2.20; ///< reactant ion peak; nullopt = none
  double reactantAmplitude = 30000.0;      ///< counts (above full scale = clipped)
  std::optional<double> calibrantK0 = 1.86;///< calibrant; nullopt = missing
  double calibrantAmplitude = 8000.0;      ///< counts
  double ripDepletion = 0.0;               ///< 0..1: share of reactant (and calibrant) charge consumed
  double driftTempK = 383.15;              ///< drift-tube temperature
  double pressureHpa = 1013.25;            ///< ambient pressure
  double driftLengthCm = 7.0;              ///< drift length L
  double driftVoltage = 1750.0;            ///< voltage across L
  double resolvingPower = 40.0;            ///< t / FWHM
  std::size_t points = 2000;               ///< samples
  double periodNs = 12500.0;               ///< sample spacing
  double electronicNoise = 20.0;           ///< Gaussian sigma, counts
  double countsPerIon = 1.0;               ///< Poisson shot noise scale (0 = none)
  double baselineOffset = 400.0;           ///< counts
  double baselineSlope = 150.0;            ///< rise over the whole spectrum, counts
  double baselineWander = 60.0;            ///< amplitude of a slow random wave, counts
  bool writeConditions = true;             ///< put drift_temp_k / pressure_hpa in the spectrum
};

/// Drift time (ms) of an ion: K = K0 (1013.25/P)(T/273.15), t = L^2 / (K V).
[[nodiscard]] double driftTimeMs(double k0, double driftTempK, double pressureHpa,
                                 double driftLengthCm, double driftVoltage);

/// Builds a deterministic synthetic plasmagram (Gaussian peaks, shot and electronic noise,
/// baseline drift, 16-bit clipping).
[[nodiscard]] Spectrum synthesize(const SynthParams& params);

/// Parameters with the reactant and calibrant K0 of the library's entries for this mode.
[[nodiscard]] tl::expected<SynthParams, std::string> synthDefaults(const SubstanceLibrary& library,
                                                                   IonMode mode);

/// A sample ion at a library entry's K0.
[[nodiscard]] tl::expected<SynthIon, std::string> synthIon(const SubstanceLibrary& library,
                                                           std::string_view name, double amplitude);

}  // namespace lanegate::trace
