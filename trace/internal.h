#pragma once
// What the parts of the plasmagram analysis share: the index type, the physical constants
// of the pipeline and two small accessors. Internal to trace/ (namespace detail).

#include <cstddef>
#include <vector>

namespace lanegate::trace::detail {

using Index = std::ptrdiff_t;

constexpr double kMadToSigma = 1.4826;
constexpr Index kMinPoints = 32;
// Rounding to integer counts alone leaves sigma = 1/sqrt(12); a noise-free spectrum must
// not make every quantisation step a "peak".
constexpr double kQuantisationSigma = 0.2887;
constexpr double kFwhmPerGaussSigma = 2.354820045;
// Savitzky-Golay windows relative to the local FWHM expected at that drift time: smoothing
// at 0.7 FWHM keeps 99 % of the apex; the second derivative at 1.1 FWHM detects a peak of
// SNR 3-5 at 3 sigma while still separating peaks one FWHM apart.
constexpr double kSmoothWindowPerFwhm = 0.7;
constexpr double kD2WindowPerFwhm = 1.1;

inline std::size_t at(Index i) { return static_cast<std::size_t>(i); }
inline Index len(const std::vector<double>& v) { return static_cast<Index>(v.size()); }

}  // namespace lanegate::trace::detail
