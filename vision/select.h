#pragma once

// Order statistics for the analysis' many medians and percentiles (a few hundred values per
// image row or column, tens of thousands over a region, ~4,000 small sets per scan).

#include <cstddef>
#include <vector>

namespace lanegate::vision {

/// The k-th smallest (0-based) of a[0, n), k < n: the value std::nth_element would put at
/// a + k, found by a quickselect whose partitions do not branch on the data (std::nth_element
/// mispredicts about every other comparison on noisy values). Reorders a[0, n). NaN-free
/// input; with a NaN the result is some element of the input (as with nth_element).
float kthSmallest(float* a, std::size_t n, std::size_t k);

/// The element at index ⌊q·(n − 1)⌋ of the sorted values, q clamped to [0, 1]; 0 when empty.
double quantile(std::vector<float> v, double q);

/// The element at index ⌊n / 2⌋ of the sorted values (the upper median); 0 when empty.
double median(std::vector<float> v);

}  // namespace lanegate::vision
