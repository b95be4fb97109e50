#pragma once

// Attenuation physics shared by the analysis (to derive thresholds and material curves)
// and the phantom generator (to render). Values: NIST XCOM via notes/xray-imaging.md §6.

#include <array>
#include <string_view>

namespace lanegate::vision {

/// Basis materials the tables cover; wood, rubber and drugs are close to water.
enum class Basis { kWater, kPolyethylene, kAluminium, kIron, kLead };

/// Number of basis materials.
inline constexpr int kBasisCount = 5;

/// Mass attenuation coefficient μ/ρ in cm²/g at energy `mev` (log-log interpolation, 0.3–10 MeV).
double massAttenuation(Basis basis, double mev);

/// Effective (mean) photon energy of a bremsstrahlung beam with endpoint `endpointMev`.
double effectiveEnergy(double endpointMev, double fraction);

/// Material classes of Contract 2.
enum class Material { kNone, kOrganic, kInorganic, kMetal, kUnknown };

/// Contract 2 spelling of a material class ("organic", ...; kNone is "unknown").
std::string_view materialName(Material material);

}  // namespace lanegate::vision
