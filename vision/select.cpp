#include "vision/select.h"

#include <algorithm>
#include <bit>

namespace lanegate::vision {
namespace {

// Moves the elements of a[0, n) for which less(v, pivot) holds to the front, keeping the
// others behind them, and returns their number. Branch-free (Lomuto with an unconditional
// swap): invariant a[0, j) pass, a[j, i) fail.
template <bool kOrEqual>
std::size_t partitionBelow(float* a, std::size_t n, float pivot) {
  std::size_t j = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = a[i];
    a[i] = a[j];
    a[j] = v;
    j += static_cast<std::size_t>(kOrEqual ? v <= pivot : v < pivot);
  }
  return j;
}

float medianOf3(float x, float y, float z) { return std::max(std::min(x, y), std::min(std::max(x, y), z)); }

}  // namespace

float kthSmallest(float* a, std::size_t n, std::size_t k) {
  // Each round either shrinks the range to the values below the pivot or removes those and the
  // pivot's copies; a NaN pivot (or an adversarial input) that stalls the rounds hands over to
  // nth_element.
  auto rounds = 2 * static_cast<int>(std::bit_width(n)) + 8;
  while (n > 32 && rounds-- > 0) {
    float pivot = medianOf3(a[0], a[n / 2], a[n - 1]);
    if (n > 512)  // the ninther: a pivot nearer the median for long ranges
      pivot = medianOf3(medianOf3(a[0], a[n / 8], a[n / 4]), pivot,
                        medianOf3(a[3 * n / 4], a[7 * n / 8], a[n - 2]));
    const std::size_t below = partitionBelow<false>(a, n, pivot);
    if (k < below) {
      n = below;
      continue;
    }
    const std::size_t equal = partitionBelow<true>(a + below, n - below, pivot);
    if (k < below + equal) return pivot;
    a += below + equal;
    n -= below + equal;
    k -= below + equal;
  }
  std::nth_element(a, a + k, a + n);
  return a[k];
}

double quantile(std::vector<float> v, double q) {
  if (v.empty()) return 0.0;
  const auto k = static_cast<std::size_t>(std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1));
  return static_cast<double>(kthSmallest(v.data(), v.size(), k));
}

double median(std::vector<float> v) {
  if (v.empty()) return 0.0;
  return static_cast<double>(kthSmallest(v.data(), v.size(), v.size() / 2));
}

}  // namespace lanegate::vision
