#pragma once
// Robust statistics of the analysis: exact medians and MAD-sigmas by selection, and the
// binned and histogram shortcuts that find the same values in fewer passes. Internal to
// trace/ (namespace detail).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "trace/internal.h"

namespace lanegate::trace::detail {

/// A robust centre and spread.
struct Robust {
  double center = 0.0;
  double sigma = 0.0;
};

// Index ranges [first, second) of the points a statistic is taken over.
using Ranges = std::vector<std::pair<Index, Index>>;

// Exact median and MAD-sigma of p over ranges (count points in all): the values exactStats()
// finds on the gathered points, in three linear passes instead of its dozen (gathering, key
// conversion and the sampling and distribution passes of two selections):
//  1. a histogram of bins 1/32 of the pilot sigma wide (+/-4 sigma) locates the bin that
//     holds the median's rank;
//  2. one pass counts the points below that bin and keeps the keys of those inside it, and a
//     small selection among those finds the median m;
//  3. the histogram bounds how many points lie within t of m from below (bins wholly inside
//     [m - t, m + t]) and from above (bins touching it), which brackets the MAD to about a
//     bin on each side; one pass counts the distances below the bracket and keeps those in
//     it for a small selection.
// The counts are exact and checked to hold each rank, so the results are the very order
// statistics selectKey() finds (an order statistic is one value whatever finds it; -0 and +0
// compare equal, are kept together and ordered by their keys as there; NaN, which the series
// never hold, would be ordered by its key too). The pilot decides only how few points are
// kept. Empty when a rank is not where the histogram put it (a pilot far off scale): the
// caller then selects over everything.
struct BinnedSelect {
  static constexpr std::size_t kBins = 256;
  static constexpr double kBinsPerSigma = 32.0;
  // Slot 0: below the bins (and NaN); 1..kBins: the bins; kBins + 1: above. Four interleaved
  // copies, so that runs of values in one bin do not serialise on one counter.
  std::array<std::array<std::uint32_t, kBins + 2>, 4> count{};
  std::array<std::size_t, kBins + 3> before{};  // points in the slots before a slot
  std::vector<std::uint64_t> keys, scratch;     // kept keys; smallSelect()'s scratch
};

// A histogram of one series over 256 bins of 1/16 of a pilot sigma (+/-8 sigma) around a
// pilot median. Linear interpolation inside a bin biases the MAD by about +(bin/sigma)^2 / 5:
// 0.05 % at 1/16 (0.2 % at 1/8 was enough to move SNR-5.0 peaks across the alarm line).
struct Histogram {
  static constexpr std::size_t kBins = 256;
  static constexpr double kBinsPerSigma = 16.0;
  double lo = 0.0;
  double h = 1.0;
  double invH = 1.0;
  // Slot 0: below lo; 1..kBins: the bins; kBins + 1: above. Four interleaved copies, so that
  // runs of neighbouring values in one bin (the smooth derivative) do not serialise on it.
  std::array<std::array<std::uint32_t, kBins + 2>, 4> count{};
  std::array<std::uint32_t, kBins + 3> below{};  // points in slots before b

  void place(const Robust& pilot) {
    h = pilot.sigma / kBinsPerSigma;
    invH = 1.0 / h;
    lo = pilot.center - 0.5 * static_cast<double>(kBins) * h;
    for (auto& c : count) c.fill(0U);
  }
  std::size_t slot(double v) const {
    const double t = std::min(std::max((v - lo) * invH, -1.0), static_cast<double>(kBins));
    // t + 1 >= 0: truncation is floor. Through int: x86-64 converts to unsigned only with
    // branches.
    return static_cast<std::size_t>(static_cast<int>(t + 1.0));
  }
};

// Scratch of robustPair().
struct RobustScratch {
  std::vector<double> sel, scratch;
  std::vector<std::uint64_t> keys;
  Ranges ranges;
  std::array<Histogram, 2> hist;
  BinnedSelect select;
};

/// Median (the upper one for an even count) of v[0, count); keys is scratch.
double median(const double* v, std::size_t count, std::vector<std::uint64_t>& keys);

/// Median and MAD-sigma of the series a and b over the points where mask is true (all when
std::array<Robust, 2> robustPair(const std::vector<double>& a, const std::vector<double>& b,
                                 const std::vector<char>& mask, RobustScratch& s,
                                 const std::array<std::optional<Robust>, 2>& hints,
                                 const std::array<Index, 2>& strides, bool exactOnly);

}  // namespace lanegate::trace::detail
