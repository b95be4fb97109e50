#pragma once

// Internal to the phantom generator: a scene of areal densities (g/cm² per basis material)
// on the scan's own pixel grid (pitches along and vertical may differ), the random source,
// and the drawing primitives the vehicle and load builders share. Coordinates are mm from
// the first column and the top detector channel.

#include "vision/phantom.h"

#include <opencv2/core/mat.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace lanegate::vision::phantom {

/// Deterministic random source (std::mt19937_64; the distributions are libstdc++'s).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : gen_(seed) {}
  double uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(gen_);
  }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen_); }
  bool chance(double p) { return uniform(0.0, 1.0) < p; }
  double normal() { return std::normal_distribution<double>(0.0, 1.0)(gen_); }
  /// Log-uniform in [lo, hi].
  double logUniform(double lo, double hi);
  /// One of `items`, uniformly.
  template <typename T>
  const T& pick(const std::vector<T>& items) {
    return items[static_cast<std::size_t>(integer(0, static_cast<int>(items.size()) - 1))];
  }
  std::uint64_t next() { return gen_(); }

 private:
  std::mt19937_64 gen_;
};

/// Short names of the basis materials for the builders.
inline constexpr Basis kOrg = Basis::kWater;
inline constexpr Basis kPe = Basis::kPolyethylene;
inline constexpr Basis kAl = Basis::kAluminium;
inline constexpr Basis kFe = Basis::kIron;
inline constexpr Basis kPb = Basis::kLead;

/// Densities used by several builders, g/cm³.
inline constexpr double kSteel = 7.87;
inline constexpr double kAluminium = 2.70;
inline constexpr double kWood = 0.60;
inline constexpr double kRubber = 1.15;
inline constexpr double kBrick = 1.15;  ///< packed drug bricks (1.0–1.4 in the notes, with voids)
inline constexpr double kPi = 3.14159265358979323846;

/// Areal-density maps of one scan, kept per basis material.
struct Scene {
  double pitchX = 5.0;  ///< mm per column
  double pitchY = 5.0;  ///< mm per row
  int width = 0;
  int height = 0;
  ArealMaps maps;  ///< g/cm² per Basis

  Scene(double px, double py, double widthMm, double heightMm);
  cv::Mat& of(Basis b) { return maps[static_cast<std::size_t>(b)]; }

  /// Adds `value` g/cm² over the rectangle, weighted by pixel coverage (thin parts keep their
  /// mass).
  void rect(Basis b, double x, double y, double w, double h, double value);
  /// Multiplies every basis by `factor` over the rectangle (coverage-blended): displaced goods.
  void scale(double x, double y, double w, double h, double factor);
  /// Adds value·f(u) over the rectangle, u ∈ [0, 1] across its width (a column profile).
  void profile(Basis b, double x, double y, double w, double h,
               const std::function<double(double)>& f);
  /// Adds `value` over the ring r ∈ [r0, r1) around (cx, cy) within angles [a0, a1) (radians).
  void annulus(Basis b, double cx, double cy, double r0, double r1, double value, double a0 = -10.0,
               double a1 = 10.0);
  /// An upright cylinder of radius r (a drum, a standing roll) seen from the side: chord
  /// lengths through its wall (thickness `wallMm`, density `wallRho`) and its contents up to
  /// `fillTop` (mm, rows below it are filled).
  void cylinderSide(double x, double y, double h, double r, double wallMm, Basis wall,
                    double wallRho, Basis content, double contentRho, double fillTop);
  /// Total mass of every basis inside the rectangle, kg.
  double massKg(double x, double y, double w, double h) const;
};

/// Where a stash can go, remembered by the builders.
struct Compartment {
  std::string location;               ///< load|floor|front_wall|tyre|spare_tyre|fuel_tank
  std::string unit;                   ///< what it is (a load unit kind, "tyre", …), for the truth
  double x = 0, y = 0, w = 0, h = 0;  ///< its extent, mm
  double depthCm = 0;                 ///< extent across the beam available for bricks
  Basis goods = Basis::kWater;        ///< what the bricks displace (load units, fuel)
  double goodsRho = 0;                ///< bulk density of that, g/cm³ (0: air)
  double cx = 0, cy = 0, r0 = 0, r1 = 0;  ///< wheels: hub and tyre radii
};

/// A vehicle as built: what the analysis should find where, and where stashes fit.
struct Vehicle {
  std::string family;
  double bodyX0 = 0, bodyX1 = 0;     ///< cargo space, mm
  double bodyTop = 0, deckY = 0;     ///< roof (or load top limit) and deck surface, mm
  double depthCm = 240;              ///< cargo width across the beam
  double frontEndMm = 0;             ///< depth of the front end's structure from bodyX0
  std::string frontEnd;              ///< framed|solid; empty when the body has none drawn
  double tareKg = 0;                 ///< what the body weighs empty (containers: declared tare)
  std::string conveyance = "truck";  ///< Contract 1 kind
  std::vector<Compartment> places;   ///< structural stash places (floor, tyres, tanks, …)
};

/// Builds `family` with its front at x0 (mm) on a road at `groundY`.
Vehicle buildVehicle(Scene& s, Rng& rng, const std::string& family, double x0, double groundY);

/// Overall length of `family` (mm) for sizing the scene before building.
double vehicleLengthMm(const std::string& family);

/// Fills the vehicle's cargo space with a load of `kind`; returns a manifest description and
/// appends the load units (as stash places) to `units`. Sets `opaque` when a part the beam
/// cannot penetrate was placed.
std::string fillLoad(Scene& s, Rng& rng, const Vehicle& v, const std::string& kind,
                     std::vector<Compartment>& units, bool& opaque);

/// Puts a stash of `kg` into `place`, drawing into `s`; fills the item's box and kind.
/// `beforeBricks` runs after any structure that comes with the stash (a false wall or floor
/// plate) and before the bricks, so the caller can measure the bricks' own contrast.
/// Returns false when it does not fit (nothing drawn).
bool placeStash(Scene& s, Rng& rng, const Compartment& place, double kg, TruthItem& item,
                const std::function<void()>& beforeBricks);

/// Load kinds the generator knows.
const std::vector<std::string>& loadKinds();

}  // namespace lanegate::vision::phantom
