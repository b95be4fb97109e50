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

/// A narrow electrical spike added on top of the noise (pick-up, a discharge): not an ion.
struct SynthSpike {
  double timeMs = 0.0;      ///< position
  double amplitude = 0.0;   ///< counts, either sign
  std::size_t samples = 1;  ///< width, samples
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
  double noiseCorrelation = 0.0;           ///< AR(1) coefficient of the electronic noise, 0..<1
  double reactantTailShare = 0.0;          ///< share of the RIP's charge in a slow-side tail
  double reactantTailFwhm = 1.0;           ///< decay length of that tail, in RIP FWHM
  std::vector<SynthSpike> spikes;          ///< added after the noise
};

/// Drift time (ms) of an ion: K = K0 (1013.25/P)(T/273.15), t = L^2 / (K V).
[[nodiscard]] double driftTimeMs(double k0, double driftTempK, double pressureHpa,
                                 double driftLengthCm, double driftVoltage);

/// Builds a deterministic synthetic plasmagram (Gaussian peaks, shot and electronic noise,
/// baseline drift, 16-bit clipping).
[[nodiscard]] Spectrum synthesize(const SynthParams& params);

/// What a randomised spectrum holds besides the reactant ion and the calibrant.
enum class SynthScene {
  kBlank,         ///< nothing: a clean swab
  kOutsideWatch,  ///< 1-4 interferent ions outside every target and watch window
  kInsideWatch,   ///< one interferent inside a watch window (outside every target window)
};

/// Randomised, deterministic parameters for one spectrum of this mode (domain
/// randomisation): drift-tube temperature and pressure, tube length and field, sampling,
/// resolving power, noise level and colour, shot noise, baseline offset, slope and wander,
/// RIP amplitude, hydration (K0 within the reactant window), slight depletion, tailing and
/// cluster ions, the calibrant's amplitude, spikes; then the scene's interferent ions at
/// random K0, amplitude and resolving power. Interferents keep at least `margin` of K0 from
/// every window they must avoid. Error when the library lacks this mode's references or
/// (kInsideWatch) a watch window of this mode with room outside the target windows.
[[nodiscard]] tl::expected<SynthParams, std::string> randomSpectrum(const SubstanceLibrary& library,
                                                                    IonMode mode, SynthScene scene,
                                                                    std::uint64_t seed,
                                                                    double margin = 0.008);

/// Parameters with the reactant and calibrant K0 of the library's entries for this mode.
[[nodiscard]] tl::expected<SynthParams, std::string> synthDefaults(const SubstanceLibrary& library,
                                                                   IonMode mode);

/// A sample ion at a library entry's K0.
[[nodiscard]] tl::expected<SynthIon, std::string> synthIon(const SubstanceLibrary& library,
                                                           std::string_view name, double amplitude);

}  // namespace lanegate::trace
