// kthSmallest against the plain reference, std::nth_element, over sizes and value spreads
// (continuous noise, few distinct values, all equal, sorted and reversed runs).
#include "vision/select.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>

namespace lanegate::vision {
namespace {

float reference(std::vector<float> v, std::size_t k) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

struct Shape {
  const char* name;
  float (*make)(std::mt19937& rng, std::size_t i, std::size_t n);
};

const Shape kShapes[] = {
    {"noise", [](std::mt19937& r, std::size_t, std::size_t) { return std::normal_distribution<float>(1.f, .2f)(r); }},
    {"few", [](std::mt19937& r, std::size_t, std::size_t) { return static_cast<float>(r() % 5); }},
    {"equal", [](std::mt19937&, std::size_t, std::size_t) { return 0.25f; }},
    {"sorted", [](std::mt19937&, std::size_t i, std::size_t) { return static_cast<float>(i); }},
    {"reversed", [](std::mt19937&, std::size_t i, std::size_t n) { return static_cast<float>(n - i); }},
    {"organ pipe", [](std::mt19937&, std::size_t i, std::size_t n) {
       return static_cast<float>(std::min(i, n - i));
     }},
    {"signed zeros", [](std::mt19937& r, std::size_t, std::size_t) { return r() % 2 ? 0.f : -0.f; }},
    {"wide", [](std::mt19937& r, std::size_t, std::size_t) {
       return std::uniform_real_distribution<float>(-1e30f, 1e30f)(r);
     }},
};

class SelectSizes : public ::testing::TestWithParam<std::size_t> {};

TEST_P(SelectSizes, MatchesNthElementForEveryShape) {
  const std::size_t n = GetParam();
  std::mt19937 rng(static_cast<unsigned>(n));
  for (const Shape& shape : kShapes) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = shape.make(rng, i, n);
    for (const std::size_t k : {std::size_t{0}, n / 10, n / 4, n / 2, (9 * n) / 10, n - 1}) {
      std::vector<float> work = v;
      const float got = kthSmallest(work.data(), n, k);
      EXPECT_EQ(got, reference(v, k)) << shape.name << " n=" << n << " k=" << k;
      // The same values, reordered.
      std::sort(work.begin(), work.end());
      std::vector<float> sorted = v;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_EQ(work, sorted) << shape.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Select, SelectSizes,
                         ::testing::Values(1, 2, 3, 31, 32, 33, 128, 511, 513, 4000, 100001));

TEST(Select, QuantileAndMedianPickTheDocumentedElement) {
  EXPECT_EQ(median({}), 0.0);
  EXPECT_EQ(quantile({}, 0.5), 0.0);
  EXPECT_EQ(median({3, 1, 2, 4}), 3.0);  // the upper median
  std::vector<float> v(101);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(100 - i);
  EXPECT_EQ(quantile(v, 0.1), 10.0);
  EXPECT_EQ(quantile(v, -1.0), 0.0);
  EXPECT_EQ(quantile(v, 2.0), 100.0);
}

TEST(Select, ANaNDoesNotHangIt) {
  std::vector<float> v(1000, 1.0f);
  for (std::size_t i = 0; i < v.size(); i += 3) v[i] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> work = v;
  const float got = kthSmallest(work.data(), work.size(), 500);
  EXPECT_TRUE(got == 1.0f || std::isnan(got));
}

}  // namespace
}  // namespace lanegate::vision
