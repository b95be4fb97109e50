#include "vision/physics.h"

#include <algorithm>
#include <cmath>

namespace lanegate::vision {
namespace {

// NIST XCOM total attenuation with coherent scattering; 0.3–0.8 MeV reach the low part of a
// 2–4 MV bremsstrahlung spectrum (where lead's photoelectric rise begins).
constexpr std::array<double, 10> kEnergiesMev = {0.3, 0.5, 0.8, 1, 2, 3, 4, 6, 8, 10};
// Rows follow Basis order: water, polyethylene, Al, Fe, Pb.
constexpr std::array<std::array<double, 10>, kBasisCount> kMuRho = {{
    {0.1186, 0.09687, 0.07865, 0.07072, 0.04942, 0.03969, 0.03403, 0.02770, 0.02429, 0.02219},
    {0.1226, 0.09985, 0.08102, 0.07262, 0.05064, 0.04045, 0.03444, 0.02760, 0.02383, 0.02145},
    {0.1042, 0.08445, 0.06841, 0.06146, 0.04324, 0.03541, 0.03106, 0.02655, 0.02437, 0.02318},
    {0.1066, 0.08414, 0.06699, 0.05995, 0.04265, 0.03621, 0.03312, 0.03057, 0.02991, 0.02994},
    {0.4032, 0.1614, 0.08870, 0.07102, 0.04606, 0.04234, 0.04197, 0.04391, 0.04675, 0.04972},
}};

}  // namespace

double massAttenuation(Basis basis, double mev) {
  const auto& row = kMuRho[static_cast<std::size_t>(basis)];
  const double e = std::clamp(mev, kEnergiesMev.front(), kEnergiesMev.back());
  std::size_t i = 0;
  while (i + 2 < kEnergiesMev.size() && e > kEnergiesMev[i + 1]) ++i;
  const double t = (std::log(e) - std::log(kEnergiesMev[i])) /
                   (std::log(kEnergiesMev[i + 1]) - std::log(kEnergiesMev[i]));
  return std::exp(std::log(row[i]) + t * (std::log(row[i + 1]) - std::log(row[i])));
}

double effectiveEnergy(double endpointMev, double fraction) {
  // A thick-target bremsstrahlung spectrum, filtered, has its mean near a third to a half of
  // the endpoint; the table starts at 0.3 MeV.
  return std::max(0.3, endpointMev * fraction);
}

std::string_view materialName(Material material) {
  switch (material) {
    case Material::kOrganic:
      return "organic";
    case Material::kInorganic:
      return "inorganic";
    case Material::kMetal:
      return "metal";
    case Material::kNone:
    case Material::kUnknown:
      break;
  }
  return "unknown";
}

}  // namespace lanegate::vision
