#pragma once

// Synthetic cargo scans for tests, demos and the evaluation: a domain-randomised generator.
// A *world* is a set of parameter ranges (vehicle families and their geometry, loads, pixel
// pitches along and vertical, energy pairs, detector artefacts); a scan is a seed and an
// index drawn from it. Scenes are areal densities of basis materials (water-like organics,
// polyethylene, aluminium, iron, lead) rendered with Beer–Lambert over a coarse
// bremsstrahlung spectrum, then detected: blur, dose jitter, Poisson and electronic noise,
// dead and hot channels, banding, gain drift, scatter, afterglow streaks.
// It shares no thresholds with the analysis: only the μ/ρ tables.

#include "vision/physics.h"
#include "vision/scan.h"

#include <tl/expected.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace lanegate::vision {

/// Which parameter ranges a scan is drawn from (docs/detection.md lists them).
/// kTuning: what thresholds may be set on. kTest: holds out two vehicle families
/// (curtain-siders, flatbeds), pixel pitches above 8 mm or with an along/vertical ratio
/// above 2, and the 9/6 MeV pair; every test scan has a held-out pitch.
enum class World { kTuning, kTest };

/// "tuning" or "test".
std::string worldName(World world);

/// How a phantom set is rendered.
struct PhantomOptions {
  World world = World::kTuning;  ///< parameter ranges of scene, beam and detector
  bool worldPitch = false;  ///< draw pitches from the world; else pixelMm (and pixelVerticalMm)
  double pixelMm = 5.0;     ///< pitch along (and vertical when pixelVerticalMm is 0)
  double pixelVerticalMm = 0.0;  ///< vertical pitch; 0: pixelMm
  bool dualEnergy = true;        ///< two pages (high, low) instead of one
  bool raw = false;              ///< write detector counts (with a calibration) not transmission
  bool artefacts = false;  ///< draw the detector (quanta, noise, blur, artefacts) from the world's
                           ///< ranges instead of the fields below
  double openBeamQuanta = 2.0e6;       ///< detected quanta per pixel in open beam
  double electronicNoise = 3.0;        ///< σ of the electronic noise, in quanta
  double doseJitter = 0.01;            ///< relative σ of the pulse-to-pulse dose
  double blurMm = 3.0;                 ///< σ of the Gaussian point-spread function
  double lowShiftPx = 0.5;             ///< interlacing offset of the low-energy pulses, columns
  double badChannelProbability = 0.3;  ///< chance that a scan has a dead or hot channel
  double clearShare = -1.0;            ///< share of scans with no stash (−1: the world's own mix)
  bool render = true;  ///< false: the scene and its truth only (no planes, no opaque test)
};

/// One concealment as placed by the generator.
struct TruthItem {
  std::string kind;               ///< location: load|floor|front_wall|tyre|spare_tyre|fuel_tank
  double massKg = 0.0;            ///< true mass of the stash
  std::array<double, 4> boxMm{};  ///< x, y, w, h in mm
  std::array<int, 4> boxPx{};     ///< x, y, w, h in pixels
  double deltaAlpha = 0.0;  ///< mean high-energy α the stash adds where it lies (≥ 0.1: visible)
  std::string unit;         ///< what it hides in (a load unit kind, "tyre", …)
};

/// What the generator put into one scan.
struct PhantomTruth {
  std::string scanId;           ///< matches the bundle
  std::string world;            ///< tuning|test
  std::string vehicle;          ///< vehicle family
  std::string load;             ///< load kind (empty, cartons, pallets, …)
  std::string frontEnd;         ///< how the body's front end is built: framed|solid ("" for none)
  bool declaredEmpty = false;   ///< the manifest says empty
  bool hasContent = false;      ///< the body holds anything at all
  bool opaqueExpected = false;  ///< a region the beam cannot penetrate was placed
  double cargoKg = 0.0;         ///< mass of the load including stashes
  double pixelAlongMm = 0.0;    ///< drawn pitches and energies, for reports
  double pixelVerticalMm = 0.0;
  std::vector<double> energiesMev;
  std::vector<std::string> artefacts;   ///< detector artefacts drawn
  std::vector<TruthItem> concealments;  ///< stashes
};

/// A generated scan with its truth (and, for raw signal, the calibration).
struct Phantom {
  ScanBundle bundle;        ///< Contract 1 bundle
  Calibration calibration;  ///< filled when options.raw
  PhantomTruth truth;       ///< ground truth
};

/// Generates scan number `index` of the set seeded by `seed` (deterministic).
Phantom generatePhantom(std::uint64_t seed, int index, const PhantomOptions& options);

/// Serialises ground truth as JSON.
std::string truthToJson(const PhantomTruth& truth);

/// Parses ground truth written by truthToJson.
tl::expected<PhantomTruth, std::string> parseTruth(const std::string& text,
                                                   const std::string& name);

/// Areal densities (g/cm²) per basis material, one CV_32F map each, pixel = options.pixelMm.
using ArealMaps = std::array<cv::Mat, kBasisCount>;

/// Noise-free detected transmission of `areal` for one beam: the generator's spectrum, the
/// interlacing shift (`shiftPx` columns, 0 for none) and its Gaussian blur (options.blurMm).
cv::Mat idealTransmission(const ArealMaps& areal, double endpointMev, double shiftPx,
                          const PhantomOptions& options);

/// Counts of the open beam in planes written by renderArealPlanes (headroom below 65,535).
inline constexpr double kRenderedOpenBeamCounts = 60000.0;

/// Renders `areal` into 16-bit transmission planes ([high] or [high, low]) with the
/// generator's detector model: blur, dose jitter, Poisson and electronic noise (no bad channels).
std::vector<cv::Mat> renderArealPlanes(const ArealMaps& areal,
                                       const std::vector<double>& energiesMev,
                                       const PhantomOptions& options, std::uint64_t seed);

/// Writes `count` bundles, `<id>.truth.json` files and (raw) `calibration.json` into `dir`.
tl::expected<int, std::string> writePhantomSet(const std::string& dir, int count,
                                               std::uint64_t seed, const PhantomOptions& options);

}  // namespace lanegate::vision
