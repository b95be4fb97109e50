#pragma once
// Overlap resolution: least-squares fits of Gaussian ions on a small window, to tell two
// ions in one envelope from one broadened ion. Internal to trace/ (namespace detail).

#include <array>
#include <optional>
#include <vector>

#include "trace/analysis.h"
#include "trace/internal.h"

namespace lanegate::trace::detail {

// Two separated ions, in index units.
struct Split {
  std::array<double, 2> pos{};
  std::array<double, 2> amp{};
  std::array<double, 2> fwhm{};
};

/// Fits two ions of the instrument's width to resid[lo..hi] from each start, and one ion of
std::optional<Split> resolvePair(const std::vector<double>& resid, Index lo, Index hi,
                                 double resolvingPower,
                                 const std::vector<std::array<double, 4>>& starts,
                                 const std::array<double, 3>& single, double k0Scale,
                                 const AnalysisParams& params);

}  // namespace lanegate::trace::detail
