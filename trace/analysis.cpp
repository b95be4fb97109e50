#include "trace/analysis.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#endif

#include <nlohmann/json.hpp>

namespace lanegate::trace {

namespace {

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

std::size_t at(Index i) { return static_cast<std::size_t>(i); }
Index len(const std::vector<double>& v) { return static_cast<Index>(v.size()); }

// Order-preserving map of a double onto an unsigned key (negative values bit-inverted), so
// that selection can work on the bits.
std::uint64_t sortKey(double v) {
  const auto b = std::bit_cast<std::uint64_t>(v);
  constexpr std::uint64_t kSign = std::uint64_t{1} << 63;
  // Negative: ~b; otherwise b | kSign (= b ^ kSign). Without a branch or a conditional move:
  // the arithmetic shift spreads the sign bit over the whole word.
  const auto spread = static_cast<std::uint64_t>(std::bit_cast<std::int64_t>(b) >> 63);
  return b ^ (spread | kSign);
}

double fromSortKey(std::uint64_t k) {
  constexpr std::uint64_t kSign = std::uint64_t{1} << 63;
  return std::bit_cast<double>((k & kSign) != 0 ? k & ~kSign : ~k);
}

// The k-th smallest (0-based) of v[0, count): the value nth_element finds, for the few dozen
// values the selections below end on. Quickselect (median-of-three pivot) whose three-way
// partitions are branch-free: each value is written to both ends of the other buffer and
// the ends advance by the comparisons, so the coin-flip comparisons cost no mispredictions
// (nth_element's partitions mispredict about every other value). v is left as it is;
// scratch holds 2 count values. count >= 1, k < count; values must be ordered (no NaN).
template <class T>
T smallSelect(const T* v, std::size_t count, std::size_t k, T* scratch) {
  const T* from = v;          // the values left
  T* to = scratch;            // the buffer written next, from its start
  T* spare = scratch + count; // and the one after it
  for (;;) {
    if (count == 1) return from[0];
    const T x0 = from[0];
    const T x1 = from[count / 2];
    const T x2 = from[count - 1];
    const T pivot = std::max(std::min(x0, x1), std::min(std::max(x0, x1), x2));
    std::size_t less = 0;
    std::size_t greater = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const T x = from[i];
      to[less] = x;
      to[count - 1 - greater] = x;
      less += static_cast<std::size_t>(x < pivot);
      greater += static_cast<std::size_t>(pivot < x);
    }
    // The pivot is one of the values, so each step leaves at least one out.
    if (k < less) {
      count = less;
      from = to;
    } else if (k >= count - greater) {
      k -= count - greater;
      from = to + (count - greater);
      count = greater;
    } else {
      return pivot;
    }
    std::swap(to, spare);
  }
}

// The k-th smallest (0-based) of key[0, count): the value nth_element would find, by
// distribution selection. Each pass spreads the keys over 256 bins of equal key width, placed
// by the range of a small strided sample (keys outside it clamp to the end bins), and keeps
// only the bin that holds the k-th; on 2,000 noise values one or two passes leave a few dozen.
// That is several times faster than a quickselect's unpredictable branches. Reorders key.
std::uint64_t selectKey(std::uint64_t* key, std::size_t count, std::size_t k) {
  while (count > 48) {
    const std::size_t stride = count / 32;
    std::uint64_t lo = key[0];
    std::uint64_t hi = key[0];
    for (std::size_t i = stride; i < count; i += stride) {
      lo = std::min(lo, key[i]);
      hi = std::max(hi, key[i]);
    }
    if (lo == hi) {
      // The sample is all one value: widen to the whole range.
      for (std::size_t i = 0; i < count; ++i) {
        lo = std::min(lo, key[i]);
        hi = std::max(hi, key[i]);
      }
      if (lo == hi) return lo;  // every key equal
    }
    // Bin width 2^shift: the sample range spans at most 128 bins, centred in the 256.
    const int shift = std::max(0, static_cast<int>(std::bit_width(hi - lo)) - 7);
    const std::uint64_t margin = std::uint64_t{64} << shift;
    const std::uint64_t base = lo >= margin ? lo - margin : 0;
    auto binOf = [&](std::uint64_t v) -> std::size_t {
      const std::uint64_t d = v >= base ? (v - base) >> shift : 0;
      return static_cast<std::size_t>(std::min<std::uint64_t>(d, 255));
    };
    // Four interleaved histograms: runs of equal bins would otherwise serialise on one
    // counter's store-to-load forwarding.
    std::array<std::array<std::uint32_t, 256>, 4> hist{};
    std::size_t i = 0;
    for (; i + 4 <= count; i += 4) {
      ++hist[0][binOf(key[i])];
      ++hist[1][binOf(key[i + 1])];
      ++hist[2][binOf(key[i + 2])];
      ++hist[3][binOf(key[i + 3])];
    }
    for (; i < count; ++i) ++hist[0][binOf(key[i])];
    std::size_t bin = 0;
    std::size_t before = 0;
    for (;; ++bin) {
      const std::size_t inBin = hist[0][bin] + hist[1][bin] + hist[2][bin] + hist[3][bin];
      if (before + inBin > k) break;
      before += inBin;
    }
    if (before == 0 && hist[0][bin] + hist[1][bin] + hist[2][bin] + hist[3][bin] == count) {
      break;  // no progress (a pathological spread): finish with nth_element
    }
    k -= before;
    std::size_t kept = 0;
    for (i = 0; i < count; ++i) {
      const std::uint64_t v = key[i];
      key[kept] = v;
      kept += binOf(v) == bin ? std::size_t{1} : std::size_t{0};
    }
    count = kept;
  }
  if (count <= 48) {
    std::array<std::uint64_t, 2 * 48> scratch;
    return smallSelect(key, count, k, scratch.data());
  }
  std::nth_element(key, key + k, key + count);
  return key[k];
}

// Median (the upper one for an even count) of v[0, count); keys is scratch.
double median(const double* v, std::size_t count, std::vector<std::uint64_t>& keys) {
  if (count == 0) return 0.0;
  keys.resize(count);
  for (std::size_t i = 0; i < count; ++i) keys[i] = sortKey(v[i]);
  return fromSortKey(selectKey(keys.data(), count, count / 2));
}
struct Robust {
  double center = 0.0;
  double sigma = 0.0;
};

// Exact median and MAD-sigma of sel[0, count) by selection; keys is scratch.
Robust exactStats(const double* sel, std::size_t count, std::vector<std::uint64_t>& keys) {
  Robust r;
  if (count == 0) return r;
  r.center = median(sel, count, keys);
  // |x - center| >= 0, whose bits already sort as unsigned integers.
  keys.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    keys[i] = std::bit_cast<std::uint64_t>(std::abs(sel[i] - r.center));
  }
  r.sigma = kMadToSigma * std::bit_cast<double>(selectKey(keys.data(), count, count / 2));
  return r;
}

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

struct WindowCount {
  std::size_t below = 0;  // points below the window
  std::size_t kept = 0;   // points in it, their keys appended to the output
};

// One counting pass of binnedExactStats() over p[0, count): with w = p[i] (kDistance false)
// or w = |p[i] - center| (true), counts the w < lo and appends the keys of the w in
// [lo, hi] (sortKey(w); for w >= 0 its bits, which sort alike) to out, in order. The tests
// compare the doubles, so the window is a contiguous stretch of the key order, as the caller
// needs: -0 and +0 fall on the same side of any bound, counted or kept together (NaN, which
// the series never hold, would fall above). Few points lie in the window (it is about a bin
// of 1/32 sigma wide), so with SSE2 four points at a time are tested and counted in vector
// registers, and only a block with a point in the window is gone through one by one.
template <bool kDistance>
WindowCount windowPass(const double* p, Index count, double center, double lo, double hi,
                       std::uint64_t* out) {
  auto value = [center](double v) {
    if constexpr (kDistance) {
      return std::abs(v - center);
    } else {
      return v;
    }
  };
  auto keyOf = [](double w) {
    if constexpr (kDistance) {
      return std::bit_cast<std::uint64_t>(w);
    } else {
      return sortKey(w);
    }
  };
  std::size_t below = 0;
  std::size_t kept = 0;
  Index i = 0;
#if defined(__SSE2__) && defined(__x86_64__)
  const __m128d vLo = _mm_set1_pd(lo);
  const __m128d vHi = _mm_set1_pd(hi);
  const __m128d vCenter = _mm_set1_pd(center);
  const __m128d noSign = _mm_castsi128_pd(_mm_set1_epi64x(0x7fffffffffffffffLL));
  auto valueV = [&](__m128d v) {  // value(), two at a time: the same operations
    if constexpr (kDistance) {
      return _mm_and_pd(_mm_sub_pd(v, vCenter), noSign);
    } else {
      return v;
    }
  };
  __m128i minusBelow = _mm_setzero_si128();  // per lane; a true comparison is all ones (-1)
  for (; i + 4 <= count; i += 4) {
    const __m128d w0 = valueV(_mm_loadu_pd(p + i));
    const __m128d w1 = valueV(_mm_loadu_pd(p + i + 2));
    minusBelow = _mm_add_epi64(minusBelow, _mm_castpd_si128(_mm_cmplt_pd(w0, vLo)));
    minusBelow = _mm_add_epi64(minusBelow, _mm_castpd_si128(_mm_cmplt_pd(w1, vLo)));
    const int in0 = _mm_movemask_pd(_mm_and_pd(_mm_cmpge_pd(w0, vLo), _mm_cmple_pd(w0, vHi)));
    const int in1 = _mm_movemask_pd(_mm_and_pd(_mm_cmpge_pd(w1, vLo), _mm_cmple_pd(w1, vHi)));
    const int in = in0 | (in1 << 2);
    if (in != 0) {
      for (Index j = 0; j < 4; ++j) {
        out[kept] = keyOf(value(p[i + j]));
        kept += static_cast<std::size_t>((in >> j) & 1);
      }
    }
  }
  const auto lane0 = static_cast<std::uint64_t>(_mm_cvtsi128_si64(minusBelow));
  const auto lane1 =
      static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(minusBelow, minusBelow)));
  below = static_cast<std::size_t>(std::uint64_t{0} - lane0 - lane1);
#endif
  // The rest (all of it without SSE2), branch-free: the tests are coin flips on noise.
  for (; i < count; ++i) {
    const double w = value(p[i]);
    below += static_cast<std::size_t>(w < lo);
    out[kept] = keyOf(w);
    kept += static_cast<std::size_t>(w >= lo) & static_cast<std::size_t>(w <= hi);
  }
  return {below, kept};
}

std::optional<Robust> binnedExactStats(const double* p, const Ranges& ranges, std::size_t count,
                                       const Robust& pilot, BinnedSelect& s) {
  constexpr std::size_t kBins = BinnedSelect::kBins;
  constexpr double kTop = static_cast<double>(kBins);
  if (count < 16 || !(pilot.sigma > 0.0) || !std::isfinite(pilot.sigma) ||
      !std::isfinite(pilot.center)) {
    return std::nullopt;
  }
  const std::size_t k = count / 2;  // the rank of both statistics
  const double h = pilot.sigma / BinnedSelect::kBinsPerSigma;
  const double invH = 1.0 / h;
  const double lo = pilot.center - 0.5 * kTop * h;
  // --- 1. The histogram. ---
  for (auto& c : s.count) c.fill(0U);
  auto slot = [&](double v) {
    // max(-1, NaN) is -1: NaN lands in slot 0 without an undefined conversion. Through int:
    // x86-64 converts to unsigned only with branches; t + 1 >= 0, so truncation is floor.
    const double t = std::min(std::max(-1.0, (v - lo) * invH), kTop);
    return static_cast<std::size_t>(static_cast<int>(t + 1.0));
  };
  for (const auto& [r0, r1] : ranges) {
    Index i = r0;
    for (; i + 4 <= r1; i += 4) {
      ++s.count[0][slot(p[i])];
      ++s.count[1][slot(p[i + 1])];
      ++s.count[2][slot(p[i + 2])];
      ++s.count[3][slot(p[i + 3])];
    }
    for (; i < r1; ++i) ++s.count[0][slot(p[i])];
  }
  auto& before = s.before;
  before[0] = 0;
  for (std::size_t b = 0; b <= kBins + 1; ++b) {
    before[b + 1] = before[b] + s.count[0][b] + s.count[1][b] + s.count[2][b] + s.count[3][b];
  }
  std::size_t mb = 1;
  while (mb <= kBins && before[mb + 1] <= k) ++mb;
  if (before[mb] > k || mb > kBins) return std::nullopt;  // in an open-ended slot
  // --- 2. The median: the points of its bin, and a hair either side (the comparisons below
  // need not agree with slot() at the edges: they count and keep alike). ---
  s.keys.resize(count);
  std::uint64_t* keys = s.keys.data();
  const double a = lo + (static_cast<double>(mb) - 1.001) * h;
  const double b = lo + (static_cast<double>(mb) + 0.001) * h;
  std::size_t below = 0;
  std::size_t kept = 0;
  for (const auto& range : ranges) {
    const WindowCount c = windowPass<false>(p + range.first, range.second - range.first, 0.0, a,
                                            b, keys + kept);
    below += c.below;
    kept += c.kept;
  }
  // The median's rank among the kept.
  if (below > k || k >= below + kept) return std::nullopt;
  s.scratch.resize(2 * count);
  Robust r;
  r.center = fromSortKey(smallSelect(keys, kept, k - below, s.scratch.data()));
  const double center = r.center;
  // --- 3. The MAD. In bin units (slot b spans [b - 1, b)) m is at u; the points within T of
  // it are at least those of the bins wholly inside [u - T, u + T] and at most those of the
  // bins touching it (open-ended slots included). A thousandth of a bin of slack absorbs the
  // rounding of the bin positions; the exact counts below check the bracket anyway. ---
  const double u = (center - lo) * invH;
  auto floorAt = [&](double x) {  // floor(x), x clamped to [-2, kBins + 2]
    return static_cast<int>(std::min(std::max(-2.0, x), kTop + 2.0) + 3.0) - 3;
  };
  constexpr int kLast = static_cast<int>(kBins);
  auto span = [&](int first, int last) {  // points in slots [first, last]
    return first <= last ? before[at(last + 1)] - before[at(first)] : std::size_t{0};
  };
  auto atLeast = [&](double t) {  // the bins with b - 1 >= u - t and b <= u + t
    return span(std::max(1, floorAt(u - t + 1.001) + 1), std::min(kLast, floorAt(u + t - 0.001)));
  };
  auto atMost = [&](double t) {  // the slots with b > u - t and b - 1 < u + t
    return span(std::max(0, floorAt(u - t - 0.001) + 1), std::min(kLast + 1, floorAt(u + t + 0.001) + 1));
  };
  // Bisection on a grid of 1/16 bin for the largest T with atMost(T) <= k (0 will do if
  // none) and the smallest with atLeast(T) > k.
  constexpr int kGrid = 16;
  auto grid = [](int g) { return static_cast<double>(g) / kGrid; };
  int gLo = 0;
  int gHi = kLast * kGrid;
  if (atLeast(grid(gHi)) <= k) return std::nullopt;  // off the bins
  for (int l = gLo, hg = gHi; hg - l > 1;) {
    const int mid = (l + hg) / 2;
    if (atMost(grid(mid)) <= k) {
      l = mid;
      gLo = mid;
    } else {
      hg = mid;
    }
  }
  for (int l = gLo, hg = gHi; hg - l > 1;) {
    const int mid = (l + hg) / 2;
    if (atLeast(grid(mid)) <= k) {
      l = mid;
    } else {
      hg = mid;
      gHi = mid;
    }
  }
  const double tLo = grid(gLo) * h;
  const double tHi = grid(gHi) * h;
  std::size_t nearer = 0;
  std::size_t inBracket = 0;
  for (const auto& range : ranges) {
    const WindowCount c = windowPass<true>(p + range.first, range.second - range.first, center,
                                           tLo, tHi, keys + inBracket);
    nearer += c.below;
    inBracket += c.kept;
  }
  if (nearer > k || k >= nearer + inBracket) return std::nullopt;
  r.sigma = kMadToSigma *
            std::bit_cast<double>(smallSelect(keys, inBracket, k - nearer, s.scratch.data()));
  return r;
}

// The runs of mask != 0 (all of [0, n) when mask is empty).
void rangesOf(const std::vector<char>& mask, Index n, Ranges& out) {
  out.clear();
  if (mask.empty()) {
    out.emplace_back(0, n);
    return;
  }
  const char* m = mask.data();
  Index i = 0;
  while (i < n) {
    while (i < n && m[i] == 0) ++i;
    const Index b = i;
    // The runs are long (most points are peak-free): the end is the next zero byte.
    const void* z = b < n ? std::memchr(m + b, 0, at(n - b)) : nullptr;
    i = z != nullptr ? static_cast<const char*>(z) - m : n;
    if (i > b) out.emplace_back(b, i);
  }
}

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

// Median and MAD-sigma read off a filled histogram: the median where the linearly
// interpolated count reaches its rank, the MAD by bisection on F(m + t) - F(m - t). Empty
// when the data do not look like noise at the histogram's scale (a quantile outside the bins,
// or one bin holding a quarter of the points: quantised data), for the exact path.
std::optional<Robust> fromHistogram(Histogram& hg) {
  constexpr std::size_t kBins = Histogram::kBins;
  constexpr double kTop = static_cast<double>(kBins);
  auto& below = hg.below;
  below[0] = 0;
  for (std::size_t b = 0; b <= kBins + 1; ++b) {
    below[b + 1] = below[b] + hg.count[0][b] + hg.count[1][b] + hg.count[2][b] + hg.count[3][b];
  }
  const auto total = static_cast<double>(below[kBins + 2]);
  if (total < 16.0) return std::nullopt;
  auto belowAt = [&](std::size_t b) { return static_cast<double>(below[b]); };
  // F(x): points below x, linear inside a bin; valid for x in [lo, lo + kBins h].
  auto cdf = [&](double xv) {
    const double t = std::min(std::max((xv - hg.lo) * hg.invH, 0.0), kTop);
    const auto b = std::min(static_cast<std::size_t>(t), kBins - 1);
    const double f = t - static_cast<double>(b);
    return belowAt(b + 1) + f * (belowAt(b + 2) - belowAt(b + 1));
  };
  // The median: the value of rank count / 2 (0-based), i.e. where F reaches rank + 0.5.
  const double target = std::floor(0.5 * total) + 0.5;
  std::size_t mb = 0;
  while (mb + 1 < kBins + 2 && belowAt(mb + 1) < target) ++mb;
  if (mb == 0 || mb > kBins) return std::nullopt;
  const double inBin = belowAt(mb + 1) - belowAt(mb);
  if (inBin > 0.25 * total) return std::nullopt;
  Robust r;
  r.center = hg.lo + (static_cast<double>(mb - 1) + (target - belowAt(mb)) / inBin) * hg.h;
  // The MAD: the t where G(t) = F(m + t) - F(m - t) reaches rank + 0.5. G is linear between
  // the distances from m to the bin edges, so walk those and solve in the last piece.
  const double u = (r.center - hg.lo) * hg.invH;  // m in bin units
  double upEdge = std::floor(u) + 1.0;  // the next bin edge above m
  double downEdge = std::ceil(u) - 1.0;  // and below
  double t = 0.0;
  double g = 0.0;
  for (;;) {
    const double next = std::min(upEdge - u, u - downEdge);  // bin units
    if (u + next > kTop || u - next < 0.0) return std::nullopt;
    const double gNext = cdf(r.center + next * hg.h) - cdf(r.center - next * hg.h);
    if (gNext >= target) {
      const double f = gNext > g ? (target - g) / (gNext - g) : 1.0;
      r.sigma = kMadToSigma * (t + f * (next - t)) * hg.h;
      return r;
    }
    t = next;
    g = gNext;
    if (upEdge - u <= next) upEdge += 1.0;
    if (u - downEdge <= next) downEdge -= 1.0;
  }
}

// Median and MAD-sigma of the series a and b over the points where mask is true (all when
// mask is empty), from one histogram pass over each instead of four exact selections, taking
// every strides[k]-th point of series k (a smooth series such as the SG derivative holds no
// more information in its neighbours). A pilot (the hint, or else the exact median and MAD of
// 64 evenly spread points) places 256 bins of 1/16 of its sigma around its median; the
// statistics are then read off the histogram (fromHistogram; the values are continuous:
// residuals from a smooth baseline, the SG derivative). The sigma differs from the exact sample
// MAD by about 1 % (the exact one is lumpy on integer counts), below the MAD's own sampling
// error (2-3 % on 1,000-2,000 points). Degenerate data take the exact path over every
// selected point; fewer than 16 masked-in points, over all points. With exactOnly, both are
// the exact median and MAD (selection), as the final noise estimates are: the histogram's
// 0.5 % on a lumpy MAD was enough to move knife-edge cases (an SNR of exactly 5.0, a merged
// pair broadened by exactly its allowance) across a decision line; there the hints only place
// the bins of binnedExactStats(), which finds the same values as the selection faster.
std::array<Robust, 2> robustPair(const std::vector<double>& a, const std::vector<double>& b,
                                 const std::vector<char>& mask, RobustScratch& s,
                                 const std::array<std::optional<Robust>, 2>& hints,
                                 const std::array<Index, 2>& strides, bool exactOnly) {
  const Index n = len(a);
  std::array<const std::vector<double>*, 2> series{&a, &b};
  rangesOf(mask, n, s.ranges);
  Index selected = 0;
  for (const auto& [r0, r1] : s.ranges) selected += r1 - r0;
  if (selected < 16) {
    rangesOf({}, n, s.ranges);
    selected = n;
  }
  auto exact = [&](std::size_t k) {
    s.sel.clear();
    for (const auto& [r0, r1] : s.ranges) {
      s.sel.insert(s.sel.end(), series[k]->begin() + r0, series[k]->begin() + r1);
    }
    return exactStats(s.sel.data(), s.sel.size(), s.keys);
  };
  std::array<Robust, 2> out;
  constexpr Index kPilot = 64;
  if (exactOnly) {
    // The hints (estimates of the right scale) place the bins of the fast exact path.
    for (std::size_t k = 0; k < 2; ++k) {
      std::optional<Robust> r;
      if (hints[k]) {
        r = binnedExactStats(series[k]->data(), s.ranges, static_cast<std::size_t>(selected),
                             *hints[k], s.select);
      }
      out[k] = r ? *r : exact(k);
    }
    return out;
  }
  if (n < 4 * kPilot) return {exact(0), exact(1)};
  std::array<bool, 2> done{false, false};
  for (std::size_t k = 0; k < 2; ++k) {
    Robust pilot;
    if (hints[k] && hints[k]->sigma > 0.0) {
      pilot = *hints[k];
    } else {
      s.sel.clear();
      const Index stride = n / kPilot;
      for (Index i = 0; i < n; i += stride) {
        if (mask.empty() || mask[at(i)] != 0) s.sel.push_back((*series[k])[at(i)]);
      }
      if (s.sel.size() < kPilot / 4) {
        out[k] = exact(k);  // mostly masked: few points anyway
        done[k] = true;
        continue;
      }
      // (smallSelect finds the value nth_element does, faster; the sample has no NaN.)
      const std::size_t m = s.sel.size();
      s.scratch.resize(2 * m);
      pilot.center = smallSelect(s.sel.data(), m, m / 2, s.scratch.data());
      for (double& v : s.sel) v = std::abs(v - pilot.center);
      pilot.sigma = kMadToSigma * smallSelect(s.sel.data(), m, m / 2, s.scratch.data());
    }
    if (!(pilot.sigma > 0.0) || !std::isfinite(pilot.sigma) || !std::isfinite(pilot.center)) {
      out[k] = exact(k);
      done[k] = true;
      continue;
    }
    s.hist[k].place(pilot);
  }
  if (!done[0] || !done[1]) {
    for (std::size_t k = 0; k < 2; ++k) {
      if (done[k]) continue;
      Histogram& hg = s.hist[k];
      const double* p = series[k]->data();
      const Index step = strides[k];
      for (const auto& [r0, r1] : s.ranges) {
        Index i = r0;
        for (; i + 3 * step < r1; i += 4 * step) {
          ++hg.count[0][hg.slot(p[i])];
          ++hg.count[1][hg.slot(p[i + step])];
          ++hg.count[2][hg.slot(p[i + 2 * step])];
          ++hg.count[3][hg.slot(p[i + 3 * step])];
        }
        for (; i < r1; i += step) ++hg.count[0][hg.slot(p[i])];
      }
    }
    for (std::size_t k = 0; k < 2; ++k) {
      if (done[k]) continue;
      const std::optional<Robust> r = fromHistogram(s.hist[k]);
      out[k] = r ? *r : exact(k);
    }
  }
  return out;
}

// Quadratic Savitzky-Golay filters have coefficients a + b*j^2 (j = offset in the window), so
// any window is evaluated in O(1) from prefix sums of x, k*x and k^2*x. That lets the window
// follow the expected peak width, which grows with drift time, at no extra cost. The samples
// are 16-bit counts, so the sums are integers: accumulated exactly in 64 bits and stored as
// doubles, which hold them exactly (below 2^53 for up to 4,000 points plus padding), so every
// window sum below is exact too.
class SavitzkyGolay {
 public:
  // Prefix sums of x, mirror-padded by maxHalf; the storage is kept for the next spectrum.
  void reset(const std::vector<std::uint16_t>& x, Index maxHalf) {
    pad_ = maxHalf;
    const Index n = static_cast<Index>(x.size());
    const Index total = n + 2 * pad_;
    s0_.resize(at(total + 1));
    s1_.resize(at(total + 1));
    s2_.resize(at(total + 1));
    // Per half-window factors of y = sA s0 + sB sj2 and of -d2 / (white-noise gain) =
    // dA s0 + dB sj2, and the gains themselves; they depend on the half-window only, so
    // they are computed once per thread and extended when a wider window turns up.
    const auto known = static_cast<Index>(coeffs_.size());
    if (known < maxHalf + 1) coeffs_.resize(at(maxHalf + 1));
    for (Index m = std::max<Index>(1, known); m <= maxHalf; ++m) {
      const double md = static_cast<double>(m);
      Coeffs& c = coeffs_[at(m)];
      const double smoothA = 3.0 * (3 * md * md + 3 * md - 1);
      const double smoothD = (2 * md - 1) * (2 * md + 1) * (2 * md + 3);
      const double d2B = 30.0 * md * (md + 1);
      const double d2D = (2 * md - 1) * (2 * md + 1) * (2 * md + 3) * md * (md + 1);
      c.d2Gain = d2NoiseGain(m);
      c.smoothGain = smoothNoiseGain(m);
      c.sA = smoothA / smoothD;
      c.sB = -15.0 / smoothD;
      c.dA = d2B / (d2D * c.d2Gain);
      c.dB = -90.0 / (d2D * c.d2Gain);
    }
    for (auto k = static_cast<Index>(position_.size()); k <= total; ++k) {
      position_.push_back(static_cast<double>(k));
    }
    std::int64_t a0 = 0;
    std::int64_t a1 = 0;
    std::int64_t a2 = 0;
    s0_[0] = 0.0;
    s1_[0] = 0.0;
    s2_[0] = 0.0;
    auto push = [&](Index k, std::int64_t v) {
      a0 += v;
      a1 += k * v;
      a2 += k * k * v;
      s0_[at(k + 1)] = static_cast<double>(a0);
      s1_[at(k + 1)] = static_cast<double>(a1);
      s2_[at(k + 1)] = static_cast<double>(a2);
    };
    // Mirror padding (x[-j] = x[j]) so edge windows see a plausible continuation.
    auto source = [&](Index k) {
      Index src = k - pad_;
      if (src < 0) src = -src;
      if (src >= n) src = 2 * (n - 1) - src;
      return static_cast<std::int64_t>(x[at(std::clamp<Index>(src, 0, n - 1))]);
    };
    const Index midLo = std::min(pad_, total);
    const Index midHi = std::max(midLo, std::min(total, pad_ + n));
    for (Index k = 0; k < midLo; ++k) push(k, source(k));
    for (Index k = midLo; k < midHi; ++k) push(k, static_cast<std::int64_t>(x[at(k - pad_)]));
    for (Index k = midHi; k < total; ++k) push(k, source(k));
  }

  // y[i] (smoothed, half-window ms) and nd[i] (-d2 at half-window md over its white-noise
  // gain) for i in [b, e), both windows fixed over the range.
  void run(Index b, Index e, Index ms, Index md, double* __restrict y,
           double* __restrict nd) const {
    // Locals, so that the stores cannot alias them: the loop then vectorises.
    const double sA = coeffs_[at(ms)].sA;
    const double sB = coeffs_[at(ms)].sB;
    const double dA = coeffs_[at(md)].dA;
    const double dB = coeffs_[at(md)].dB;
    const double* __restrict s0 = s0_.data() + pad_;
    const double* __restrict s1 = s1_.data() + pad_;
    const double* __restrict s2 = s2_.data() + pad_;
    const double* __restrict position = position_.data() + pad_;
    for (Index i = b; i < e; ++i) {
      const double c = position[i];  // i + pad as a double, loaded: SSE2 cannot convert
      const double a0 = s0[i + ms + 1] - s0[i - ms];
      const double a1 = s1[i + ms + 1] - s1[i - ms];
      const double a2 = s2[i + ms + 1] - s2[i - ms];
      y[i] = sA * a0 + sB * (a2 - 2.0 * c * a1 + c * c * a0);
      const double b0 = s0[i + md + 1] - s0[i - md];
      const double b1 = s1[i + md + 1] - s1[i - md];
      const double b2 = s2[i + md + 1] - s2[i - md];
      nd[i] = dA * b0 + dB * (b2 - 2.0 * c * b1 + c * c * b0);
    }
  }

  // Second derivative (per point^2) at i with half-window m.
  double d2(Index i, Index m) const {
    const Coeffs& c = coeffs_[at(m)];
    const Index lo = i + pad_ - m;
    const Index hi = i + pad_ + m + 1;
    const double sum0 = s0_[at(hi)] - s0_[at(lo)];
    const double sum1 = s1_[at(hi)] - s1_[at(lo)];
    const double sum2 = s2_[at(hi)] - s2_[at(lo)];
    const double cc = static_cast<double>(i + pad_);
    const double sumj2 = sum2 - 2.0 * cc * sum1 + cc * cc * sum0;
    return -(c.dA * sum0 + c.dB * sumj2) * c.d2Gain;
  }

  double smoothGain(Index m) const { return coeffs_[at(m)].smoothGain; }

  // Norm of the second-derivative coefficients: the gain of white noise through d2().
  static double d2NoiseGain(Index m) {
    const double md = static_cast<double>(m);
    const double d = (2 * md - 1) * (2 * md + 1) * (2 * md + 3) * md * (md + 1);
    double sum = 0.0;
    for (Index j = -m; j <= m; ++j) {
      const double c = 30.0 * (3.0 * static_cast<double>(j * j) - md * (md + 1)) / d;
      sum += c * c;
    }
    return std::sqrt(sum);
  }

  // Norm of the smoothing coefficients: the gain of white noise through smooth().
  static double smoothNoiseGain(Index m) {
    const double md = static_cast<double>(m);
    const double d = (2 * md - 1) * (2 * md + 1) * (2 * md + 3);
    double sum = 0.0;
    for (Index j = -m; j <= m; ++j) {
      const double c = 3.0 * (3 * md * md + 3 * md - 1 - 5.0 * static_cast<double>(j * j)) / d;
      sum += c * c;
    }
    return std::sqrt(sum);
  }

 private:
  struct Coeffs {
    double sA = 0.0, sB = 0.0, dA = 0.0, dB = 0.0, d2Gain = 1.0, smoothGain = 1.0;
  };

  Index pad_ = 0;
  std::vector<double> s0_, s1_, s2_;
  std::vector<double> position_;  // position_[k] = k
  std::vector<Coeffs> coeffs_;
};

// 35 times the 5-point quadratic Savitzky-Golay smooth (-3 12 17 12 -3)/35 of x,
// mirror-padded: an integer. The smooth is that over 35.0, the very value the formula gives
// in doubles (whose numerator, a sum of integers far below 2^53, is exact too); the integers
// vectorise, and they order exactly as the smooth does (distinct numerators below 2^47 stay
// distinct over 35), so the smooth needs computing only where a value is read.
void smooth5Times35(const std::vector<std::uint16_t>& x, std::vector<std::int32_t>& out) {
  const Index n = static_cast<Index>(x.size());
  out.resize(x.size());
  auto v = [&](Index k) {
    if (k < 0) k = -k;
    if (k >= n) k = 2 * (n - 1) - k;
    return static_cast<std::int32_t>(x[at(std::clamp<Index>(k, 0, n - 1))]);
  };
  auto at5 = [](std::int32_t a, std::int32_t b, std::int32_t c, std::int32_t d, std::int32_t e) {
    return 17 * c + 12 * (b + d) - 3 * (a + e);
  };
  for (Index i = 0; i < std::min<Index>(2, n); ++i) {
    out[at(i)] = at5(v(i - 2), v(i - 1), v(i), v(i + 1), v(i + 2));
  }
  const std::uint16_t* p = x.data();
  std::int32_t* o = out.data();
  for (Index i = 2; i < n - 2; ++i) {
    o[i] = at5(p[i - 2], p[i - 1], p[i], p[i + 1], p[i + 2]);
  }
  for (Index i = std::max<Index>(2, n - 2); i < n; ++i) {
    out[at(i)] = at5(v(i - 2), v(i - 1), v(i), v(i + 1), v(i + 2));
  }
}

// Centred running minimum or maximum over [i - half, i + half], clipped at the ends, into
// out. van Herk / Gil-Werman: with blocks of one window length, every window is the union of
// a block suffix and the next block's prefix. pre and suf are scratch.
template <bool kWantMin>
void runningExtreme(const std::vector<double>& v, Index half, std::vector<double>& out,
                    std::vector<double>& pre, std::vector<double>& suf) {
  const Index n = len(v);
  const Index w = 2 * half + 1;
  auto pick = [](double l, double r) { return kWantMin ? std::min(l, r) : std::max(l, r); };
  out.resize(v.size());
  pre.resize(v.size());
  suf.resize(v.size());
  const Index full = n / w;  // complete blocks
  const double* pv = v.data();
  double* pp = pre.data();
  double* ps = suf.data();
  // Two blocks at a time, the prefix and the suffix scan of each together: four independent
  // chains, each carried in a register, the values only stored.
  Index b = 0;
  for (; b + 2 <= full; b += 2) {
    const double* __restrict va = pv + b * w;
    const double* __restrict vb = va + w;
    double* __restrict pa = pp + b * w;
    double* __restrict pb = pa + w;
    double* __restrict sa = ps + b * w;
    double* __restrict sb = sa + w;
    double p0 = va[0];
    double p1 = vb[0];
    double s0 = va[w - 1];
    double s1 = vb[w - 1];
    pa[0] = p0;
    pb[0] = p1;
    sa[w - 1] = s0;
    sb[w - 1] = s1;
    for (Index t = 1; t < w; ++t) {
      p0 = pick(p0, va[t]);
      p1 = pick(p1, vb[t]);
      pa[t] = p0;
      pb[t] = p1;
      s0 = pick(va[w - 1 - t], s0);
      s1 = pick(vb[w - 1 - t], s1);
      sa[w - 1 - t] = s0;
      sb[w - 1 - t] = s1;
    }
  }
  for (; b < full; ++b) {
    const double* __restrict vb = pv + b * w;
    double* __restrict pb = pp + b * w;
    double* __restrict sb = ps + b * w;
    double p = vb[0];
    double s = vb[w - 1];
    pb[0] = p;
    sb[w - 1] = s;
    for (Index t = 1; t < w; ++t) {
      p = pick(p, vb[t]);
      pb[t] = p;
      s = pick(vb[w - 1 - t], s);
      sb[w - 1 - t] = s;
    }
  }
  if (full * w < n) {  // the partial last block
    const Index o = full * w;
    pre[at(o)] = v[at(o)];
    for (Index i = o + 1; i < n; ++i) pre[at(i)] = pick(pre[at(i - 1)], v[at(i)]);
    suf[at(n - 1)] = v[at(n - 1)];
    for (Index i = n - 2; i >= o; --i) suf[at(i)] = pick(v[at(i)], suf[at(i + 1)]);
  }
  // Left end: [0, i + half] lies in block 0 (i + half < w).
  const Index leftEnd = std::min(n, half + 1);
  for (Index i = 0; i < leftEnd; ++i) out[at(i)] = pre[at(std::min(n - 1, i + half))];
  // Interior: [i - half, i + half] is a whole block or a suffix plus the next prefix.
  const Index rightStart = std::max(leftEnd, n - half);
  for (Index i = leftEnd; i < rightStart; ++i) out[at(i)] = pick(suf[at(i - half)], pre[at(i + half)]);
  // Right end: [i - half, n - 1]; a suffix of its block, plus the last prefix if that differs.
  const Index lastBlock = (n - 1) / w;
  for (Index i = rightStart; i < n; ++i) {
    const Index lo = std::max<Index>(0, i - half);
    out[at(i)] = lo / w == lastBlock ? suf[at(lo)] : pick(suf[at(lo)], pre[at(n - 1)]);
  }
}

// Centred moving average into out, window shrinking at the edges; prefix is scratch. The
// prefix sum runs as four independent chains over the quarters, then joins them.
void movingAverage(const std::vector<double>& v, Index half, std::vector<double>& out,
                   std::vector<double>& prefix) {
  const Index n = len(v);
  prefix.resize(v.size() + 1);
  prefix[0] = 0.0;
  // Four independent chains over the quarters (the last may be short), then joined.
  const Index q = (n + 3) / 4;
  const double* pv = v.data();
  double* pp = prefix.data() + 1;  // pp[i] = sum of v[0..i]
  const Index last = n - 3 * q;    // length of the last quarter
  if (last < 0) {                  // too short to split (n < 9)
    for (Index i = 0; i < n; ++i) pp[i] = (i > 0 ? pp[i - 1] : 0.0) + pv[i];
  } else {
    // Named accumulators: GCC keeps an array of them in memory, which puts a store-to-load
    // forwarding on every step of each chain.
    double acc0 = 0.0;
    double acc1 = 0.0;
    double acc2 = 0.0;
    double acc3 = 0.0;
    const double* __restrict v0 = pv;
    const double* __restrict v1 = pv + q;
    const double* __restrict v2 = pv + 2 * q;
    const double* __restrict v3 = pv + 3 * q;
    double* __restrict p0 = pp;
    double* __restrict p1 = pp + q;
    double* __restrict p2 = pp + 2 * q;
    double* __restrict p3 = pp + 3 * q;
    for (Index j = 0; j < last; ++j) {
      acc0 += v0[j];
      acc1 += v1[j];
      acc2 += v2[j];
      acc3 += v3[j];
      p0[j] = acc0;
      p1[j] = acc1;
      p2[j] = acc2;
      p3[j] = acc3;
    }
    for (Index j = last; j < q; ++j) {
      acc0 += v0[j];
      acc1 += v1[j];
      acc2 += v2[j];
      p0[j] = acc0;
      p1[j] = acc1;
      p2[j] = acc2;
    }
  }
  for (Index k = 1; k < 4 && last >= 0; ++k) {
    const double offset = pp[k * q - 1];
    for (Index i = k * q; i < std::min(n, (k + 1) * q); ++i) pp[i] += offset;
  }
  out.resize(v.size());
  auto clipped = [&](Index i) {
    const Index lo = std::max<Index>(0, i - half);
    const Index hi = std::min(n - 1, i + half);
    out[at(i)] = (prefix[at(hi + 1)] - prefix[at(lo)]) / static_cast<double>(hi - lo + 1);
  };
  const Index innerLo = std::min(n, half);
  const Index innerHi = std::max(innerLo, n - half);  // [innerLo, innerHi): full windows
  const double inv = 1.0 / static_cast<double>(2 * half + 1);
  for (Index i = 0; i < innerLo; ++i) clipped(i);
  for (Index i = innerLo; i < innerHi; ++i) {
    out[at(i)] = (prefix[at(i + half + 1)] - prefix[at(i - half)]) * inv;
  }
  for (Index i = innerHi; i < n; ++i) clipped(i);
}

// Scratch of maskedBaseline().
struct BaselineScratch {
  std::vector<double> out, inv;
  std::vector<std::int32_t> weighted, counted;
};

// Baseline from the peak-free points only: their local mean (unbiased, unlike a running
// minimum), linearly bridged across the masked peak regions. Replaces baseline (which is
// also the fallback where nothing is known) unless too few points are peak-free. One pass
// (after one that tabulates each point's share): the window sum and count slide along (exact
// integers), and each stretch without a trusted mean is bridged as soon as the next trusted
// point is reached.
void maskedBaseline(const std::vector<std::uint16_t>& x, const std::vector<char>& free, Index half,
                    std::vector<double>& baseline, BaselineScratch& w) {
  const Index n = static_cast<Index>(x.size());
  std::vector<double>& out = w.out;
  out.resize(x.size());
  // A window mean is trusted when it holds at least this many peak-free points.
  const auto minCount = static_cast<std::int32_t>(std::ceil(std::max(3.0, static_cast<double>(half) * 0.5)));
  // 1/c for every count a window can hold.
  std::vector<double>& inv = w.inv;
  inv.resize(at(2 * half + 2));
  inv[0] = 0.0;
  for (std::size_t c = 1; c < inv.size(); ++c) inv[c] = 1.0 / static_cast<double>(c);
  std::int64_t sum = 0;    // peak-free counts in [i - half, i + half]
  std::int32_t count = 0;  // peak-free points there
  std::int32_t total = 0;  // peak-free points (each point enters the window once)
  // What each point adds to the sum and the count, in a vectorised pass of its own: the
  // sliding loop then only adds and subtracts them (the same integers, so the same sums).
  const std::uint16_t* __restrict xp = x.data();
  const char* __restrict fp = free.data();
  w.weighted.resize(x.size());
  w.counted.resize(x.size());
  std::int32_t* __restrict wp = w.weighted.data();
  std::int32_t* __restrict cp = w.counted.data();
  for (Index k = 0; k < n; ++k) {
    const std::int32_t f = fp[k] != 0 ? 1 : 0;
    wp[k] = f * static_cast<std::int32_t>(xp[k]);
    cp[k] = f;
    total += f;
  }
  double* __restrict op = out.data();
  const double* __restrict ip = inv.data();
  auto enter = [&](Index k) {
    sum += wp[k];
    count += cp[k];
  };
  auto leave = [&](Index k) {
    sum -= wp[k];
    count -= cp[k];
  };
  for (Index k = 0; k < std::min(n, half); ++k) enter(k);
  Index prev = -1;  // the last point with a trusted mean
  // Point i enters i + half while that is inside (i < enterEnd) and leaves i - half - 1
  // once that is (i >= leaveFrom). The stretches between those two change points run as
  // loops of their own, without the two per-point tests.
  const Index enterEnd = std::max<Index>(0, n - half);
  const Index leaveFrom = std::min(n, half + 1);
  auto stretch = [&]<bool kEnter, bool kLeave>(Index from, Index to) {
    for (Index i = from; i < to; ++i) {
      if constexpr (kEnter) enter(i + half);
      if constexpr (kLeave) leave(i - half - 1);
      op[i] = static_cast<double>(sum) * ip[count];
      if (fp[i] == 0 || count < minCount) continue;
      // Bridge the stretch since the previous trusted point; before the first, hold flat.
      if (prev < 0) {
        std::fill(op, op + i, op[i]);
      } else if (i > prev + 1) {
        const double step = (op[i] - op[prev]) / static_cast<double>(i - prev);
        for (Index j = prev + 1; j < i; ++j) op[j] = op[prev] + static_cast<double>(j - prev) * step;
      }
      prev = i;
    }
  };
  const Index first = std::min(enterEnd, leaveFrom);
  const Index second = std::max(enterEnd, leaveFrom);
  stretch.template operator()<true, false>(0, first);
  if (enterEnd > leaveFrom) {
    stretch.template operator()<true, true>(first, second);
  } else {
    stretch.template operator()<false, false>(first, second);
  }
  stretch.template operator()<false, true>(second, n);
  if (static_cast<double>(total) < static_cast<double>(n) * 0.1) return;
  if (prev < 0) return;  // nothing trusted: keep the fallback everywhere
  std::fill(out.begin() + prev + 1, out.end(), out[at(prev)]);  // hold the end flat
  baseline.swap(out);
}


// A maximum of -d2 that survived merging: one ion population.
struct Component {
  Index center = 0;  // index of the -d2 maximum
  Index lo = 0;      // lobe limits: where -d2 falls to 0 or to the dip before a neighbour
  Index hi = 0;
  int group = 0;     // components of one contiguous -d2 run overlap
};

// Finds components where nd (= -d2 normalised to unit white-noise gain) exceeds thr.
// Finds components into out; maxima is scratch.
void findComponents(const std::vector<double>& nd, double thr, double sigmaNd, Index edge,
                    std::vector<Component>& out, std::vector<Index>& maxima) {
  out.clear();
  const Index n = len(nd);
  int group = 0;
  Index i = edge;
  const Index end = n - edge;
  while (i < end) {
    // Most of the series lies below the threshold: skip it eight points at a time, on the
    // largest of each eight (one branch instead of eight). nd holds no NaN (it is a sum of
    // finite prefix-sum differences), so the maximum decides exactly what the single
    // comparisons would.
    while (i + 8 <= end) {
      const double* q = nd.data() + i;
      const double top = std::max(std::max(std::max(q[0], q[1]), std::max(q[2], q[3])),
                                  std::max(std::max(q[4], q[5]), std::max(q[6], q[7])));
      if (top > thr) break;
      i += 8;
    }
    if (i >= end) break;
    if (nd[at(i)] <= thr) {
      ++i;
      continue;
    }
    Index runLo = i;
    while (i < n - edge && nd[at(i)] > thr) ++i;
    const Index runHi = i - 1;
    maxima.clear();
    for (Index k = runLo; k <= runHi; ++k) {
      const double left = k > 0 ? nd[at(k - 1)] : -std::numeric_limits<double>::infinity();
      const double right = k + 1 < n ? nd[at(k + 1)] : -std::numeric_limits<double>::infinity();
      if (nd[at(k)] >= left && nd[at(k)] > right) maxima.push_back(k);
    }
    if (maxima.empty()) maxima.push_back(runLo);
    // Merge maxima separated by a dip that noise alone could make: the weaker one must rise
    // above the dip by 3 sigma of nd and by 5 % of its height.
    for (;;) {
      std::size_t worst = 0;
      double worstProminence = std::numeric_limits<double>::infinity();
      for (std::size_t k = 0; k + 1 < maxima.size(); ++k) {
        double dip = nd[at(maxima[k])];
        for (Index j = maxima[k]; j <= maxima[k + 1]; ++j) dip = std::min(dip, nd[at(j)]);
        const double weaker = std::min(nd[at(maxima[k])], nd[at(maxima[k + 1])]);
        const double prominence = weaker - dip;
        const double needed = std::max(3.0 * sigmaNd, 0.05 * weaker);
        if (prominence < needed && prominence - needed < worstProminence) {
          worstProminence = prominence - needed;
          worst = k;
        }
      }
      if (!std::isfinite(worstProminence)) break;
      // Drop the weaker of the pair.
      if (nd[at(maxima[worst])] < nd[at(maxima[worst + 1])]) {
        maxima.erase(maxima.begin() + static_cast<Index>(worst));
      } else {
        maxima.erase(maxima.begin() + static_cast<Index>(worst) + 1);
      }
    }
    for (std::size_t k = 0; k < maxima.size(); ++k) {
      Component c;
      c.center = maxima[k];
      c.group = group;
      // Lobe: out to the zero crossing of -d2, but never past the dip before a neighbour.
      Index lo = c.center;
      const Index loLimit = k > 0 ? maxima[k - 1] : 0;
      while (lo > loLimit && nd[at(lo - 1)] > 0.0) --lo;
      if (k > 0) {
        Index dip = maxima[k - 1];
        for (Index j = maxima[k - 1]; j <= c.center; ++j) {
          if (nd[at(j)] < nd[at(dip)]) dip = j;
        }
        lo = std::max(lo, dip);
      }
      Index hi = c.center;
      const Index hiLimit = k + 1 < maxima.size() ? maxima[k + 1] : n - 1;
      while (hi < hiLimit && nd[at(hi + 1)] > 0.0) ++hi;
      if (k + 1 < maxima.size()) {
        Index dip = c.center;
        for (Index j = c.center; j <= maxima[k + 1]; ++j) {
          if (nd[at(j)] < nd[at(dip)]) dip = j;
        }
        hi = std::min(hi, dip);
      }
      c.lo = lo;
      c.hi = hi;
      out.push_back(c);
    }
    ++group;
  }
}

// A measured peak, in index units, before roles and K0 are assigned.
struct Measured {
  double pos = 0.0;        // apex, fractional index
  double amplitude = 0.0;  // above baseline
  double fwhm = 0.0;       // points
  double leftHalf = std::numeric_limits<double>::quiet_NaN();
  double rightHalf = std::numeric_limits<double>::quiet_NaN();
  Index apexIndex = 0;
  Index lo = 0;
  Index hi = 0;
  int group = 0;
  bool shoulder = false;
  bool overlapped = false;
  bool flatTop = false;
};

// Apex by 3-point log-parabola (exact for a Gaussian at any spacing h) around index k.
bool logParabola(const std::vector<double>& r, Index k, Index h, double& pos, double& amp) {
  const Index n = len(r);
  if (k - h < 0 || k + h >= n) return false;
  const double yl = r[at(k - h)];
  const double yc = r[at(k)];
  const double yr = r[at(k + h)];
  if (yl <= 0.0 || yc <= 0.0 || yr <= 0.0) return false;
  const double l = std::log(yl);
  const double c = std::log(yc);
  const double rr = std::log(yr);
  const double a = 0.5 * (l + rr - 2.0 * c);
  const double b = 0.5 * (rr - l);
  if (a >= 0.0) return false;
  const double u = -b / (2.0 * a);
  if (std::abs(u) > 1.0) return false;
  pos = static_cast<double>(k) + u * static_cast<double>(h);
  amp = std::exp(c - b * b / (4.0 * a));
  return true;
}

// Half-maximum crossing walking from k in direction dir; NaN when a valley (another peak)
// is met before half height. sigmaS is the noise of the smoothed trace.
double halfCrossing(const std::vector<double>& r, Index k, int dir, double half, double sigmaS) {
  // A rise by more than noise (shot noise grows with the signal, hence the 5 %) means
  // another peak's flank.
  const double rise = std::max(3.0 * sigmaS, 0.05 * r[at(k)]);
  const Index n = len(r);
  Index j = k;
  double lowest = r[at(k)];
  for (;;) {
    const Index nxt = j + dir;
    if (nxt < 0 || nxt >= n) return std::numeric_limits<double>::quiet_NaN();
    const double v = r[at(nxt)];
    if (v <= half) {
      const double f = (r[at(j)] - half) / (r[at(j)] - v);
      return static_cast<double>(j) + static_cast<double>(dir) * f;
    }
    if (v > lowest + rise) return std::numeric_limits<double>::quiet_NaN();
    lowest = std::min(lowest, v);
    j = nxt;
  }
}

// negD2(i) is -d2 at i (only read for shoulders).
template <class NegD2>
Measured measure(const Component& c, const std::vector<double>& r, const NegD2& negD2,
                 double sigmaS) {
  Measured m;
  m.lo = c.lo;
  m.hi = c.hi;
  m.group = c.group;
  Index k = c.lo;
  for (Index j = c.lo; j <= c.hi; ++j) {
    if (r[at(j)] > r[at(k)]) k = j;
  }
  const bool interior = k > c.lo && k < c.hi;
  double pos = static_cast<double>(k);
  double amp = r[at(k)];
  if (interior) {
    // Spacing of about FWHM/4 (the lobe spans about 0.85 FWHM) averages over more of the
    // peak than adjacent samples would, so noise moves the apex less.
    Index h = std::max<Index>(1, static_cast<Index>(std::lround(static_cast<double>(c.hi - c.lo) / 4.0)));
    h = std::min({h, k - c.lo, c.hi - k});
    h = std::max<Index>(h, 1);
    double p = 0.0;
    double a = 0.0;
    if (logParabola(r, k, h, p, a)) {
      pos = p;
      amp = a;
      // Re-centre once so the three samples straddle the apex symmetrically.
      const Index k2 = static_cast<Index>(std::lround(p));
      if (k2 != k && k2 >= c.lo && k2 <= c.hi && logParabola(r, k2, h, p, a)) {
        pos = p;
        amp = a;
        k = k2;
      }
    }
  } else {
    // A shoulder: no maximum of its own, so the apex is where -d2 peaks.
    m.shoulder = true;
    const Index i = c.center;
    const Index n = len(r);
    if (i > 0 && i + 1 < n) {
      const double l = negD2(i - 1);
      const double ce = negD2(i);
      const double rr = negD2(i + 1);
      const double den = l - 2.0 * ce + rr;
      const double u = den < 0.0 ? 0.5 * (l - rr) / den : 0.0;
      pos = static_cast<double>(i) + std::clamp(u, -1.0, 1.0);
    } else {
      pos = static_cast<double>(i);
    }
    const Index f = std::clamp<Index>(static_cast<Index>(std::floor(pos)), 0, len(r) - 2);
    const double frac = pos - static_cast<double>(f);
    amp = r[at(f)] * (1.0 - frac) + r[at(f + 1)] * frac;
    k = std::clamp<Index>(static_cast<Index>(std::lround(pos)), 0, len(r) - 1);
  }
  m.pos = pos;
  m.amplitude = amp;
  m.apexIndex = k;
  // The lobe between -d2 zero crossings spans 2 Gaussian sigma.
  const double lobeFwhm = static_cast<double>(c.hi - c.lo) * kFwhmPerGaussSigma / 2.0;
  if (!m.shoulder && amp > 0.0) {
    const double half = 0.5 * amp;
    const double left = halfCrossing(r, k, -1, half, sigmaS);
    const double right = halfCrossing(r, k, +1, half, sigmaS);
    if (std::isfinite(left)) m.leftHalf = pos - left;
    if (std::isfinite(right)) m.rightHalf = right - pos;
    if (std::isfinite(left) && std::isfinite(right)) {
      m.fwhm = right - left;
    } else if (std::isfinite(left)) {
      m.fwhm = 2.0 * m.leftHalf;
      m.overlapped = true;
    } else if (std::isfinite(right)) {
      m.fwhm = 2.0 * m.rightHalf;
      m.overlapped = true;
    } else {
      m.fwhm = lobeFwhm;
      m.overlapped = true;
    }
  } else {
    m.fwhm = lobeFwhm;
  }
  if (!(m.fwhm > 0.0)) m.fwhm = std::max(1.0, lobeFwhm);
  return m;
}

// Peaks of one pass: components measured and filtered by amplitude; found into peaks.
// gapMin is scratch.
template <class NegD2>
void detectPass(const std::vector<double>& nd, const std::vector<double>& r, const NegD2& negD2,
                double sigmaNd, double sigma, double sigmaS, const AnalysisParams& params,
                Index edge, std::vector<Component>& components, std::vector<Index>& maxima,
                std::vector<Measured>& peaks, std::vector<double>& gapMin) {
  peaks.clear();
  findComponents(nd, params.detectSigma * sigmaNd, sigmaNd, edge, components, maxima);
  for (const Component& c : components) {
    Measured m = measure(c, r, negD2, sigmaS);
    if (m.amplitude >= params.minPeakSnr * sigma) peaks.push_back(m);
  }
  // Overlap: members of one -d2 run, or neighbours whose envelope between apexes never
  // falls below half the weaker peak (closer than about one FWHM). The apexes come in order,
  // so the valley between any two is the lowest of the gaps between neighbours in between,
  // each scanned once (gapMin[j]: the lowest r on [apex j-1, apex j]).
  bool ordered = true;
  for (std::size_t j = 1; j < peaks.size(); ++j) {
    ordered = ordered && peaks[j].apexIndex >= peaks[j - 1].apexIndex;
  }
  gapMin.assign(peaks.size(), std::numeric_limits<double>::infinity());
  if (ordered) {
    for (std::size_t j = 1; j < peaks.size(); ++j) {
      // Four interleaved minima, so that the gaps (which span most of the spectrum) are not
      // one long dependency chain. The minimum is the same in any order: r holds no NaN, and
      // -0 and +0, which a different order could swap, compare equal where gapMin is used.
      const Index k0 = peaks[j - 1].apexIndex;
      const Index k1 = peaks[j].apexIndex + 1;  // one past the gap
      constexpr double kInf = std::numeric_limits<double>::infinity();
      double low0 = kInf;
      double low1 = kInf;
      double low2 = kInf;
      double low3 = kInf;
      const double* rp = r.data();
      Index k = k0;
      for (; k + 4 <= k1; k += 4) {
        low0 = std::min(low0, rp[k]);
        low1 = std::min(low1, rp[k + 1]);
        low2 = std::min(low2, rp[k + 2]);
        low3 = std::min(low3, rp[k + 3]);
      }
      for (; k < k1; ++k) low0 = std::min(low0, rp[k]);
      gapMin[j] = std::min(std::min(low0, low1), std::min(low2, low3));
    }
  }
  for (std::size_t i = 0; i < peaks.size(); ++i) {
    double valley = std::numeric_limits<double>::infinity();
    for (std::size_t j = i + 1; j < peaks.size(); ++j) {
      valley = std::min(valley, gapMin[j]);
      bool overlap = peaks[i].group == peaks[j].group;
      if (!overlap) {
        if (!ordered) {
          valley = std::numeric_limits<double>::infinity();
          for (Index k = peaks[i].apexIndex; k <= peaks[j].apexIndex; ++k) valley = std::min(valley, r[at(k)]);
        }
        overlap = valley > 0.5 * std::min(peaks[i].amplitude, peaks[j].amplitude);
      }
      if (overlap) {
        peaks[i].overlapped = true;
        peaks[j].overlapped = true;
      }
    }
  }
}

double round(double v, double scale) { return std::round(v * scale) / scale; }

// Fixed-point text for reasons ("1.1601").
std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// --- Overlap resolution: least-squares fits of Gaussian ions on a small window. ------------

constexpr double kFourLn2 = 2.772588722239781;

// Solves the P x P system m x = b in place (Gaussian elimination, partial pivoting); false
// when singular.
template <std::size_t P>
bool solve(std::array<std::array<double, P>, P> m, std::array<double, P>& b) {
  for (std::size_t c = 0; c < P; ++c) {
    std::size_t piv = c;
    for (std::size_t r = c + 1; r < P; ++r) {
      if (std::abs(m[r][c]) > std::abs(m[piv][c])) piv = r;
    }
    if (!(std::abs(m[piv][c]) > 1e-300)) return false;
    std::swap(m[piv], m[c]);
    std::swap(b[piv], b[c]);
    for (std::size_t r = c + 1; r < P; ++r) {
      const double f = m[r][c] / m[c][c];
      for (std::size_t k = c; k < P; ++k) m[r][k] -= f * m[c][k];
      b[r] -= f * b[c];
    }
  }
  for (std::size_t c = P; c-- > 0;) {
    for (std::size_t k = c + 1; k < P; ++k) b[c] -= m[c][k] * b[k];
    b[c] /= m[c][c];
  }
  return std::isfinite(b[0]);
}

// One fitted model: parameters, residual sum of squares and the normal matrix at the optimum.
template <std::size_t P>
struct Fit {
  std::array<double, P> p{};
  double rss = std::numeric_limits<double>::infinity();
  std::array<std::array<double, P>, P> normal{};
  bool ok = false;
};

// Levenberg-Marquardt on y[lo..hi] for a model evaluated by eval.at(p)(i, grad) -> value. A few
// dozen iterations at most: the start is close and the model has two to four parameters.
template <std::size_t P, class Eval>
Fit<P> levenbergMarquardt(const std::vector<double>& y, Index lo, Index hi, std::array<double, P> p,
                          Eval eval) {
  auto accumulate = [&](const std::array<double, P>& q, Fit<P>& f, std::array<double, P>& jtr) {
    // The sums in locals, not in f and jtr: to the compiler, stores there could change q
    // (all are doubles). Same operations, same order.
    const auto model = eval.at(q);  // with what depends on the parameters only, computed once
    const double* yp = y.data();
    double rss = 0.0;
    std::array<std::array<double, P>, P> normal{};
    std::array<double, P> jr{};
    std::array<double, P> g{};
    for (Index i = lo; i <= hi; ++i) {
      const double r = yp[i] - model(static_cast<double>(i), g);
      rss += r * r;
      for (std::size_t a = 0; a < P; ++a) {
        jr[a] += g[a] * r;
        for (std::size_t b = 0; b <= a; ++b) normal[a][b] += g[a] * g[b];
      }
    }
    for (std::size_t a = 0; a < P; ++a) {
      for (std::size_t b = a + 1; b < P; ++b) normal[a][b] = normal[b][a];
    }
    f.rss = rss;
    f.normal = normal;
    jtr = jr;
  };
  Fit<P> cur;
  cur.p = p;
  std::array<double, P> jtr{};
  accumulate(cur.p, cur, jtr);
  double lambda = 1e-3;
  for (int iter = 0; iter < 40 && std::isfinite(cur.rss); ++iter) {
    auto m = cur.normal;
    for (std::size_t a = 0; a < P; ++a) m[a][a] *= 1.0 + lambda;
    std::array<double, P> step = jtr;
    if (!solve<P>(m, step)) break;
    Fit<P> trial;
    for (std::size_t a = 0; a < P; ++a) trial.p[a] = cur.p[a] + step[a];
    std::array<double, P> trialJtr{};
    accumulate(trial.p, trial, trialJtr);
    if (std::isfinite(trial.rss) && trial.rss <= cur.rss) {
      const bool converged = cur.rss - trial.rss <= 1e-10 * cur.rss;
      cur = trial;
      jtr = trialJtr;
      lambda = std::max(lambda * 0.2, 1e-9);
      if (converged) break;
    } else {
      lambda *= 10.0;
      if (lambda > 1e8) break;
    }
  }
  cur.ok = std::isfinite(cur.rss);
  return cur;
}

// Two ions whose FWHM is fixed by the instrument: mu / resolvingPower. p = {A1, mu1, A2, mu2}.
struct TwoIons {
  double resolvingPower;
  // The model at p. The widths mu / R are the same at every point: divided once, not at each
  // (the compiler may not hoist a division that could trap out of the loop by itself).
  auto at(const std::array<double, 4>& p) const {
    return Bound{p, resolvingPower, {p[1] / resolvingPower, p[3] / resolvingPower}};
  }
  struct Bound {
    std::array<double, 4> p;
    double resolvingPower;
    std::array<double, 2> width;
    double operator()(double i, std::array<double, 4>& g) const;
  };
};

double TwoIons::Bound::operator()(double i, std::array<double, 4>& g) const {
  double sum = 0.0;
  for (std::size_t k = 0; k < 2; ++k) {
    const double amp = p[2 * k];
    const double mu = p[2 * k + 1];
    const double w = width[k];
    const double u = (i - mu) / w;
    const double e = std::exp(-kFourLn2 * u * u);
    sum += amp * e;
    g[2 * k] = e;
    // d/dmu of exp(-c u^2) with u = (i - mu) R / mu: the width moves with the apex.
    g[2 * k + 1] = amp * e * 2.0 * kFourLn2 * u * (1.0 + u / resolvingPower) / w;
  }
  return sum;
}

// Two ions of free widths. p = {A1, mu1, fwhm1, A2, mu2, fwhm2}.
struct TwoFreeIons {
  auto at(const std::array<double, 6>& p) const {
    return [this, p](double i, std::array<double, 6>& g) { return (*this)(i, p, g); };
  }
  double operator()(double i, const std::array<double, 6>& p, std::array<double, 6>& g) const {
    double sum = 0.0;
    for (std::size_t k = 0; k < 2; ++k) {
      const double amp = p[3 * k];
      const double w = p[3 * k + 2];
      const double u = (i - p[3 * k + 1]) / w;
      const double e = std::exp(-kFourLn2 * u * u);
      sum += amp * e;
      g[3 * k] = e;
      g[3 * k + 1] = amp * e * 2.0 * kFourLn2 * u / w;
      g[3 * k + 2] = amp * e * 2.0 * kFourLn2 * u * u / w;
    }
    return sum;
  }
};

// One ion of free width. p = {A, mu, fwhm}.
struct OneIon {
  auto at(const std::array<double, 3>& p) const {
    return [this, p](double i, std::array<double, 3>& g) { return (*this)(i, p, g); };
  }
  double operator()(double i, const std::array<double, 3>& p, std::array<double, 3>& g) const {
    const double u = (i - p[1]) / p[2];
    const double e = std::exp(-kFourLn2 * u * u);
    g[0] = e;
    g[1] = p[0] * e * 2.0 * kFourLn2 * u / p[2];
    g[2] = p[0] * e * 2.0 * kFourLn2 * u * u / p[2];
    return p[0] * e;
  }
};

// Two separated ions, in index units.
struct Split {
  std::array<double, 2> pos{};
  std::array<double, 2> amp{};
  std::array<double, 2> fwhm{};
};

// Fits two ions of the instrument's width to resid[lo..hi] from each start, and one ion of
// free width; accepts the split only when the data demand it and pin both ions down: the
// pair must beat the single ion by an F ratio, each amplitude must be significant, the ions
// at least a fraction of a FWHM apart, and each position known well enough for K0 matching
// (k0Scale / pos is the K0 at a position).
std::optional<Split> resolvePair(const std::vector<double>& resid, Index lo, Index hi,
                                 double resolvingPower,
                                 const std::vector<std::array<double, 4>>& starts,
                                 const std::array<double, 3>& single, double k0Scale,
                                 const AnalysisParams& params) {
  const Index count = hi - lo + 1;
  if (count < 12) return std::nullopt;
  Fit<4> best;
  for (const auto& start : starts) {
    Fit<4> f = levenbergMarquardt<4>(resid, lo, hi, start, TwoIons{resolvingPower});
    if (!f.ok || f.rss >= best.rss) continue;
    best = f;
  }
  if (!best.ok) return std::nullopt;
  std::array<double, 4> p = best.p;
  if (p[1] > p[3]) {
    std::swap(p[0], p[2]);
    std::swap(p[1], p[3]);
  }
  const auto lod = static_cast<double>(lo);
  const auto hid = static_cast<double>(hi);
  if (!(p[0] > 0.0 && p[2] > 0.0 && p[1] > lod && p[3] < hid)) return std::nullopt;
  const double meanFwhm = 0.5 * (p[1] + p[3]) / resolvingPower;
  if (p[3] - p[1] < params.resolveMinSeparation * meanFwhm) return std::nullopt;

  const Fit<3> one = levenbergMarquardt<3>(resid, lo, hi, single, OneIon{});
  const double dof = static_cast<double>(count - 4);
  const double s2 = best.rss / dof;
  if (!(s2 > 0.0)) return std::nullopt;
  const double f = one.ok ? (one.rss - best.rss) / s2 : std::numeric_limits<double>::infinity();
  if (!(f >= params.resolveMinF)) return std::nullopt;

  // The instrument's width must explain the envelope: if letting both widths free improves
  // the fit markedly, there are more than two ions (or other shapes) and the split is unsafe.
  const Fit<6> free = levenbergMarquardt<6>(
      resid, lo, hi, {p[0], p[1], p[1] / resolvingPower, p[2], p[3], p[3] / resolvingPower},
      TwoFreeIons{});
  if (free.ok && count > 6) {
    const double s2Free = free.rss / static_cast<double>(count - 6);
    if (s2Free > 0.0 && (best.rss - free.rss) / (2.0 * s2Free) > params.resolveMaxWidthF) {
      return std::nullopt;
    }
  }

  // Standard errors from the covariance s2 (J^T J)^-1 (the fit's own parameter order).
  std::array<double, 4> se{};
  for (std::size_t k = 0; k < 4; ++k) {
    std::array<double, 4> e{};
    e[k] = 1.0;
    if (!solve<4>(best.normal, e) || !(e[k] > 0.0)) return std::nullopt;
    se[k] = std::sqrt(s2 * e[k]);
  }
  if (best.p[1] > best.p[3]) {
    std::swap(se[0], se[2]);
    std::swap(se[1], se[3]);
  }
  Split out;
  for (std::size_t k = 0; k < 2; ++k) {
    const double amp = p[2 * k];
    const double mu = p[2 * k + 1];
    if (amp < params.resolveMinSignificance * se[2 * k]) return std::nullopt;
    if (k0Scale / mu * se[2 * k + 1] / mu > params.resolveMaxK0Sigma) return std::nullopt;
    out.pos[k] = mu;
    out.amp[k] = amp;
    out.fwhm[k] = mu / resolvingPower;
  }
  return out;
}

// Why an unidentified peak keeps the sample from clearing, if it does (issue 11): it may be
// an ion of a watched family, or, an envelope of ions the fit could not separate, it may hold
// a target. Sets p.watchWindow when a watch window holds it.
struct Hold {
  std::string reason;
  bool watched = false;  // a watch window, else a target's window
};

std::optional<Hold> holdFor(Peak& p, const std::optional<double>& refR,
                            const SubstanceLibrary& library, IonMode mode) {
  // The K0 the peak may stand for: its apex; for an envelope, the spread of its ions'
  // apexes, which widens one ion's width w = t/R to the envelope's W: widths add in
  // quadrature, so the apexes lie within about +/- sqrt(W^2 - w^2) / 2 of the envelope's
  // (two equal ions d apart: 0.53 d).
  const bool envelope = p.overlapped && !p.resolved;
  double k0Lo = *p.k0;
  double k0Hi = *p.k0;
  if (envelope) {
    const double w = refR ? p.driftMs / *refR : 0.0;
    const double half = 0.5 * std::sqrt(std::max(0.0, p.fwhmMs * p.fwhmMs - w * w));
    k0Lo = *p.k0 * p.driftMs / (p.driftMs + half);
    k0Hi = *p.k0 * p.driftMs / std::max(p.driftMs - half, 0.5 * p.driftMs);
  }
  const std::string what =
      "unidentified peak at K0 " + fixed(*p.k0, 4) + ", SNR " +
      std::to_string(static_cast<long>(std::lround(p.snr))) +
      (envelope ? ", an unresolved envelope (K0 " + fixed(k0Lo, 4) + "-" + fixed(k0Hi, 4) + ")"
                : std::string());
  if (const WatchWindow* w = library.watchWindowAt(mode, k0Lo, k0Hi)) {
    // An ion the library cannot name where a watched family's analogues lie: it may be one
    // nobody programmed (CBSA saw exactly that with fentanyl analogues).
    p.watchWindow = w->describe();
    return Hold{what + ", inside watch window " + *p.watchWindow +
                    (w->reason.empty() ? "" : ": " + w->reason),
                true};
  }
  if (!envelope) return std::nullopt;
  for (const Substance& s : library.substances()) {
    // The merged apex of a target and another ion falls outside the target's window: do not
    // clear what may hide it.
    if (s.mode == mode && s.role == SubstanceRole::kTarget &&
        std::abs(std::clamp(s.k0, k0Lo, k0Hi) - s.k0) <= s.window) {
      return Hold{what + ", reaches the window of " + s.name + ": an ion of it may be " + s.name,
                  false};
    }
  }
  return std::nullopt;
}

// Round half away from zero, as std::lround, without the library call (|v| < 2^52).
Index roundIndex(double v) {
  const auto t = static_cast<Index>(v);  // truncates toward zero
  const double f = v - static_cast<double>(t);  // exact: the fractional part
  return f >= 0.5 ? t + 1 : (f <= -0.5 ? t - 1 : t);
}

// Replaces electrical spikes (pick-up, discharges) by the line between their neighbours, in
// out; false (out untouched) when there are none. A spike is a run of one or two samples
// that stands more than 8 sigma above (or below) both neighbours, while those stay below half
// its height over the local floor (the lowest sample within four of it): no ion arrives that
// narrow (a Gaussian sampled at 3 points per FWHM keeps 80 % of its apex on the next
// sample), so that shape is not an ion. Sigma is that of single samples, from the MAD of
// first differences of every fourth pair: the smoothing that follows would turn a spike
// into a peak a few samples wide, taller than the noise.
bool despike(const std::vector<std::uint16_t>& x, std::vector<std::uint16_t>& out,
             std::vector<double>& scratch, std::vector<std::uint64_t>& keys) {
  const Index n = static_cast<Index>(x.size());
  if (n < 16) return false;
  scratch.clear();
  for (Index i = 0; i + 1 < n; i += 4) {
    scratch.push_back(std::abs(static_cast<double>(x[at(i + 1)]) - static_cast<double>(x[at(i)])));
  }
  const double sigma =
      std::max(kMadToSigma * median(scratch.data(), scratch.size(), keys) / std::sqrt(2.0), 1.0);
  const double jump = 8.0 * sigma;
  auto v = [&](Index i) { return static_cast<double>(x[at(std::clamp<Index>(i, 0, n - 1))]); };
  bool any = false;
  for (Index i = 1; i + 1 < n; ++i) {
    // Cheap screen: a step of 8 sigma up or down into i.
    if (std::abs(v(i) - v(i - 1)) <= jump) continue;
    const double sign = v(i) > v(i - 1) ? 1.0 : -1.0;
    for (Index width = 1; width <= 2; ++width) {
      const Index last = i + width - 1;
      if (last + 1 >= n) break;
      const double top = sign * std::min(sign * v(i), sign * v(last));
      const double side = sign * std::max(sign * v(i - 1), sign * v(last + 1));
      double floor = top;
      for (Index k = i - 4; k <= last + 4; ++k) floor = sign * std::min(sign * floor, sign * v(k));
      if (sign * (top - side) <= jump || sign * (side - floor) >= 0.5 * sign * (top - floor)) {
        continue;
      }
      if (!any) out = x;
      any = true;
      const double l = v(i - 1);
      const double r = v(last + 1);
      for (Index k = i; k <= last; ++k) {
        const double f = static_cast<double>(k - i + 1) / static_cast<double>(width + 1);
        out[at(k)] = static_cast<std::uint16_t>(std::lround(l + f * (r - l)));
      }
      i = last;
      break;
    }
  }
  return any;
}

// Buffers one thread reuses from spectrum to spectrum. A 2,000-point analysis otherwise
// makes some thirty heap allocations of 16 KB or more, and handing them back to the kernel
// (brk, with TLB flushes on a VM) costs more than all the arithmetic.
struct Workspace {
  std::vector<std::int32_t> y35;
  std::vector<std::uint16_t> despiked;
  std::vector<double> y, nd, baseline, runMin, runMax, pre, suf, prefix, resid, rawResid,
      gapMin;
  std::vector<Index> maxima;
  std::vector<char> free, noMask;
  std::vector<Component> components;
  std::vector<Measured> peaks;
  SavitzkyGolay sg;
  BaselineScratch masked;
  RobustScratch robust;
};

Workspace& workspace() {
  thread_local Workspace ws;
  return ws;
}

}  // namespace

std::string_view verdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kClear: return "clear";
    case Verdict::kHit: return "hit";
    case Verdict::kInconclusive: break;
  }
  return "inconclusive";
}

Analysis analyze(const Spectrum& spectrum, const SubstanceLibrary& library,
                 const AnalysisParams& params) {
  Analysis a;
  const Index n = static_cast<Index>(spectrum.points.size());
  if (n < kMinPoints || !(spectrum.periodNs > 0.0)) {
    a.verdict = Verdict::kInconclusive;
    a.flags.emplace_back("too_short");
    a.reasons.push_back("spectrum has " + std::to_string(n) + " points; at least " +
                        std::to_string(kMinPoints) + " are needed");
    return a;
  }
  const double dtMs = spectrum.periodNs * 1e-6;
  Workspace& ws = workspace();
  const std::vector<std::uint16_t>& x =
      despike(spectrum.points, ws.despiked, ws.robust.sel, ws.robust.keys) ? ws.despiked
                                                                           : spectrum.points;

  // --- Saturation: a run of samples at full scale means the apex was clipped. -------------
  double topSample = 0.0;  // the largest sample: where any clipping ceiling shows
  {
    const double clip = params.saturationLevel - params.saturationMargin;
    // The largest sample, as a signed 16-bit maximum of the samples offset by 2^15 (SSE2
    // has a vector maximum of signed 16-bit values only, so an unsigned one stays scalar).
    std::int16_t topOffset = std::numeric_limits<std::int16_t>::min();
    for (const std::uint16_t v : x) {
      topOffset = std::max(topOffset, static_cast<std::int16_t>(v ^ 0x8000U));
    }
    const auto top = static_cast<std::uint16_t>(static_cast<std::uint16_t>(topOffset) ^ 0x8000U);
    topSample = static_cast<double>(top);
    Index longest = 0;
    if (static_cast<double>(top) >= clip) {
      Index run = 0;
      for (const std::uint16_t v : x) {
        run = static_cast<double>(v) >= clip ? run + 1 : 0;
        longest = std::max(longest, run);
      }
    }
    if (longest >= 2) {
      a.saturated = true;
      a.reasons.push_back(std::to_string(longest) + " consecutive points at full scale (" +
                          std::to_string(static_cast<long>(params.saturationLevel)) +
                          "): the detector was saturated");
    }
  }

  // --- Pass 0: the width of the largest peak sets the expected resolving power. ----------
  // FWHM grows in proportion to drift time at constant R (diffusion-limited), and no later
  // than that when gate width matters, so FWHM(t) = t / R0 bounds every peak's width.
  double r0 = 40.0;
  Index biggest = 0;
  {
    std::vector<std::int32_t>& y35 = ws.y35;
    smooth5Times35(x, y35);
    auto y0 = [&](Index i) { return static_cast<double>(y35[at(i)]) / 35.0; };
    // The first index of the maximum, four points at a time (once past the tallest peak the
    // branch is never taken).
    std::int32_t best = y35[0];
    Index from = 0;
    Index i4 = 0;
    for (; i4 + 4 <= n; i4 += 4) {
      const std::int32_t m =
          std::max(std::max(y35[at(i4)], y35[at(i4 + 1)]), std::max(y35[at(i4 + 2)], y35[at(i4 + 3)]));
      if (m > best) {
        best = m;
        from = i4;
      }
    }
    for (; i4 < n; ++i4) {
      if (y35[at(i4)] > best) {
        best = y35[at(i4)];
        from = i4;
      }
    }
    biggest = from;
    while (y35[at(biggest)] < best) ++biggest;
    // The level under the peak: the median of every eighth point is as good a level for a
    // half height as the median of all (it only has to be well below the apex).
    std::vector<double>& sample = ws.robust.sel;
    sample.clear();
    for (Index i = 0; i < n; i += 8) sample.push_back(y0(i));
    const double level = median(sample.data(), sample.size(), ws.robust.keys);
    const double half = 0.5 * (y0(biggest) - level);
    Index lo = biggest;
    while (lo > 0 && y0(lo) - level > half) --lo;
    Index hi = biggest;
    while (hi < n - 1 && y0(hi) - level > half) ++hi;
    const double w0 = static_cast<double>(hi - lo);
    if (biggest >= 8 && w0 >= 2.0) r0 = std::clamp(static_cast<double>(biggest) / w0, 8.0, 200.0);
  }
  // Expected FWHM (points) at index i; a floor keeps very early windows meaningful.
  const double fwhmFloor = std::max(3.0, static_cast<double>(biggest) / r0 * 0.5);
  auto expectedFwhm = [&](Index i) {
    return std::max(fwhmFloor, static_cast<double>(i) / r0);
  };
  const Index maxHalfAllowed = std::max<Index>(2, (n - 1) / 4);
  auto halfWindow = [&](Index i, double perFwhm) {
    const Index m = roundIndex(0.5 * perFwhm * expectedFwhm(i));
    return std::clamp<Index>(m, 2, maxHalfAllowed);
  };

  // --- Smoothing and second derivative with windows that follow the peak width. ----------
  const Index maxHalf = halfWindow(n - 1, kD2WindowPerFwhm);
  auto smoothHalf = [&](Index i) { return std::min(halfWindow(i, kSmoothWindowPerFwhm), maxHalf); };
  auto d2Half = [&](Index i) { return std::min(halfWindow(i, kD2WindowPerFwhm), maxHalf); };
  // The windows never shrink with i: the first index past i0 whose window differs. The
  // formula finds it but for rounding; the steps after it make that exact.
  auto nextChange = [&](Index i0, Index m, double perFwhm, const auto& window) {  // m = window(i0)
    if (m >= std::min(maxHalf, maxHalfAllowed)) return n;
    const double cross = (static_cast<double>(m) + 0.5) * 2.0 * r0 / perFwhm;
    Index g = std::clamp<Index>(static_cast<Index>(std::ceil(std::min(cross, static_cast<double>(n)))), i0 + 1, n);
    while (g > i0 + 1 && window(g - 1) != m) --g;
    while (g < n && window(g) == m) ++g;
    return g;
  };
  SavitzkyGolay& sg = ws.sg;
  sg.reset(x, maxHalf);
  std::vector<double>& y = ws.y;
  std::vector<double>& nd = ws.nd;  // -d2 scaled to unit white-noise gain
  y.resize(x.size());
  nd.resize(x.size());
  // Each window's next change is found only once it is reached: before that, it is the
  // same index (the windows never shrink, so the first change past any point of a stretch of
  // one window is the stretch's end).
  // The windows themselves are constant up to there too: each is computed once per stretch.
  Index smoothEnd = 0;
  Index d2End = 0;
  Index smoothM = 0;
  Index d2M = 0;
  for (Index i = 0; i < n;) {
    if (smoothEnd <= i) {
      smoothM = smoothHalf(i);
      smoothEnd = nextChange(i, smoothM, kSmoothWindowPerFwhm, smoothHalf);
    }
    if (d2End <= i) {
      d2M = d2Half(i);
      d2End = nextChange(i, d2M, kD2WindowPerFwhm, d2Half);
    }
    const Index e = std::min(smoothEnd, d2End);
    sg.run(i, e, smoothM, d2M, y.data(), nd.data());
    i = e;
  }
  const double meanSmoothGain = sg.smoothGain(smoothHalf(n / 2));
  auto negD2 = [&](Index i) { return -sg.d2(i, d2Half(i)); };

  // --- Pass-1 baseline: morphological opening wider than the widest expected peak. --------
  const Index openHalf = std::clamp<Index>(
      static_cast<Index>(std::lround(2.0 * expectedFwhm(n - 1))), 3, std::max<Index>(3, n / 2));
  std::vector<double>& baseline = ws.baseline;
  runningExtreme<true>(y, openHalf, ws.runMin, ws.pre, ws.suf);
  runningExtreme<false>(ws.runMin, openHalf, ws.runMax, ws.pre, ws.suf);
  movingAverage(ws.runMax, openHalf, baseline, ws.prefix);
  const Index edge = std::min<Index>(halfWindow(0, kD2WindowPerFwhm) + 1, n / 4);

  std::vector<double>& resid = ws.resid;
  std::vector<double>& rawResid = ws.rawResid;
  resid.resize(x.size());
  rawResid.resize(x.size());
  auto residuals = [&]() {
    // Plain restrict pointers: through the vectors every store might change the others'
    // data, so the loop vectorised only behind run-time overlap checks.
    const std::uint16_t* __restrict xp = x.data();
    const double* __restrict yp = y.data();
    const double* __restrict bp = baseline.data();
    double* __restrict rp = resid.data();
    double* __restrict wp = rawResid.data();
    for (Index i = 0; i < n; ++i) {
      rp[i] = yp[i] - bp[i];
      wp[i] = static_cast<double>(xp[i]) - bp[i];
    }
  };
  residuals();
  // These first estimates only find the peaks to mask: every other point, from a histogram,
  // is plenty.
  std::array<Robust, 2> stats = robustPair(rawResid, nd, ws.noMask, ws.robust, {}, {2, 2}, false);
  Robust noise = stats[0];
  Robust ndNoise = stats[1];
  double sigma = std::max(noise.sigma, kQuantisationSigma);
  double sigmaNd = std::max(ndNoise.sigma, kQuantisationSigma);
  std::vector<Measured>& peaks = ws.peaks;
  detectPass(nd, resid, negD2, sigmaNd, sigma, sigma * meanSmoothGain, params, edge,
             ws.components, ws.maxima, peaks, ws.gapMin);

  // --- Peak-free mask, then the baseline and noise from peak-free points only. ------------
  std::vector<char>& free = ws.free;
  free.assign(x.size(), 1);
  for (const Measured& p : peaks) {
    // Out to where the peak has sunk into the noise, plus half a width of margin.
    Index lo = p.apexIndex;
    while (lo > 0 && resid[at(lo)] > sigma) --lo;
    Index hi = p.apexIndex;
    while (hi < n - 1 && resid[at(hi)] > sigma) ++hi;
    const Index margin = static_cast<Index>(std::ceil(std::max(0.5 * p.fwhm, 2.0)));
    lo = std::max<Index>(0, std::min(lo, static_cast<Index>(p.pos - p.fwhm)) - margin);
    hi = std::min(n - 1, std::max(hi, static_cast<Index>(p.pos + p.fwhm)) + margin);
    for (Index i = lo; i <= hi; ++i) free[at(i)] = 0;
  }
  {
    const Index bHalf = std::max<Index>(10, static_cast<Index>(std::lround(2.0 * expectedFwhm(n / 2))));
    maskedBaseline(x, free, bHalf, baseline, ws.masked);
    residuals();
    // The first estimates (inflated by the peaks, but of the right scale) place the bins.
    stats = robustPair(rawResid, nd, free, ws.robust, {noise, ndNoise}, {1, 2}, true);
    noise = stats[0];
    ndNoise = stats[1];
    sigma = std::max(noise.sigma, kQuantisationSigma);
    sigmaNd = std::max(ndNoise.sigma, kQuantisationSigma);
    detectPass(nd, resid, negD2, sigmaNd, sigma, sigma * meanSmoothGain, params, edge,
               ws.components, ws.maxima, peaks, ws.gapMin);
  }
  a.noiseSigma = sigma;
  {
    std::array<double, 4> sum{};  // four chains
    Index i = 0;
    for (; i + 4 <= n; i += 4) {
      for (Index k = 0; k < 4; ++k) sum[at(k)] += baseline[at(i + k)];
    }
    for (; i < n; ++i) sum[0] += baseline[at(i)];
    a.baselineMean = (sum[0] + sum[1] + sum[2] + sum[3]) / static_cast<double>(n);
  }

  // --- Flat tops: more samples near the apex value than a Gaussian of this width allows. --
  for (Measured& p : peaks) {
    if (p.amplitude < 20.0 * sigma || p.shoulder) continue;
    const Index h = std::max<Index>(1, static_cast<Index>(std::lround(p.fwhm / 4.0)));
    Index k = p.apexIndex;
    for (Index j = std::max<Index>(0, p.apexIndex - h); j <= std::min(n - 1, p.apexIndex + h); ++j) {
      if (x[at(j)] > x[at(k)]) k = j;
    }
    const double tol = std::max(3.0 * sigma, 0.002 * p.amplitude);
    // Clipping is a ceiling of the signal chain: a flat top below the tallest sample (on a
    // reactant ion's tail, a cluster's plateau) is the shape of the signal, not saturation.
    if (static_cast<double>(x[at(k)]) < topSample - 2.0 * tol) continue;
    Index lo = k;
    while (lo > 0 && x[at(lo - 1)] >= x[at(k)] - tol) --lo;
    Index hi = k;
    while (hi < n - 1 && x[at(hi + 1)] >= x[at(k)] - tol) ++hi;
    const double runLength = static_cast<double>(hi - lo + 1);
    const double expected = 2.0 * p.fwhm * std::sqrt(tol / (4.0 * std::log(2.0) * p.amplitude)) + 1.0;
    if (runLength >= std::max(4.0, 1.5 * expected + 2.0)) {
      p.flatTop = true;
      if (!a.saturated) {
        a.saturated = true;
        a.reasons.push_back("flat-topped peak at " + fixed(p.pos * dtMs, 3) +
                            " ms: the detector or its amplifier was saturated");
      }
    }
  }

  // --- Reactant ion and calibrant: the pair whose drift-time ratio matches the library. ---
  // t_cal / t_rip = K0_rip / K0_cal whatever the temperature and pressure, since both
  // drift times scale by the same factor; the reactant window covers its hydration shift.
  const Substance* calLib = library.calibrant(spectrum.mode);
  const Substance* ripLib = library.reactant(spectrum.mode);
  Index ripIdx = -1;
  Index calIdx = -1;
  const double calK0 = spectrum.calibrantK0.value_or(calLib != nullptr ? calLib->k0 : 0.0);
  if (calLib == nullptr || ripLib == nullptr) {
    a.flags.emplace_back("library_mode_missing");
    a.reasons.push_back("the library has no " + std::string(ionModeName(spectrum.mode)) +
                        "-mode calibrant and reactant entries");
  } else {
    const double nominal = ripLib->k0 / calK0;
    const double lo = (ripLib->k0 - ripLib->window) / (calK0 + calLib->window);
    const double hi = (ripLib->k0 + ripLib->window) / (calK0 - calLib->window);
    double best = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < peaks.size(); ++i) {
      const Measured& rp = peaks[i];
      if (rp.shoulder || rp.amplitude < params.minReferenceSnr * sigma) continue;
      for (std::size_t j = 0; j < peaks.size(); ++j) {
        const Measured& cp = peaks[j];
        if (j == i || cp.shoulder || cp.amplitude < params.minReferenceSnr * sigma) continue;
        if (!(cp.pos > rp.pos) || rp.pos <= 0.0) continue;
        const double ratio = cp.pos / rp.pos;
        if (ratio < lo || ratio > hi) continue;
        const double span = std::log(ratio >= nominal ? hi / nominal : nominal / lo);
        const double dev = span > 0.0 ? std::log(ratio / nominal) / span : 0.0;
        const double score = std::log(rp.amplitude) + std::log(cp.amplitude) - 2.0 * dev * dev;
        if (score > best) {
          best = score;
          ripIdx = static_cast<Index>(i);
          calIdx = static_cast<Index>(j);
        }
      }
    }
  }
  if (ripIdx < 0) {
    // No consistent pair: still report the strongest peak as the likely RIP for diagnosis.
    for (std::size_t i = 0; i < peaks.size(); ++i) {
      if (peaks[i].shoulder || peaks[i].amplitude < params.minReferenceSnr * sigma) continue;
      if (ripIdx < 0 || peaks[i].amplitude > peaks[at(ripIdx)].amplitude) ripIdx = static_cast<Index>(i);
    }
  }

  // --- Build the reported peaks. -------------------------------------------------------------
  const bool haveCal = calIdx >= 0;
  const double tCal = haveCal ? peaks[at(calIdx)].pos : 0.0;
  a.calibrantFound = haveCal;
  if (haveCal) {
    a.calibrantDriftMs = tCal * dtMs;
    a.calibrantK0 = calK0;
  }
  a.reactantFound = ripIdx >= 0;
  double ripAmp = 0.0;
  if (ripIdx >= 0) {
    const Measured& rp = peaks[at(ripIdx)];
    a.reactantDriftMs = rp.pos * dtMs;
    a.reactantAmplitude = rp.amplitude;
    ripAmp = rp.amplitude;
  }
  // Resolving power of the references; later single ions are at most this wide (t / R).
  std::optional<double> refR;
  for (const Index idx : {ripIdx, calIdx}) {
    if (idx < 0) continue;
    const Measured& p = peaks[at(idx)];
    if (p.overlapped || p.flatTop || !(p.fwhm > 0.0)) continue;
    const double rr = p.pos / p.fwhm;
    refR = refR ? std::min(*refR, rr) : rr;
  }
  a.resolvingPower = refR;

  const double unidentifiedSnr = params.unidentifiedMinSnr.value_or(library.defaultMinSnr());
  auto inReactantWindow = [&](double k0) {
    return ripLib != nullptr && std::abs(k0 - ripLib->k0) <= ripLib->window;
  };
  // A peak riding on the RIP's flank: the signal between the two apexes never falls below
  // half the weaker, so its height is mostly the RIP's, and shot noise on the RIP's tail
  // (far above the baseline noise the thresholds use) makes such ripples. Its role decides
  // nothing about the sample: no target can lie within a width of the reactant ion.
  auto onRipFlank = [&](const Measured& m) {
    const Measured& rp = peaks[at(ripIdx)];
    const Index lo = std::min(rp.apexIndex, m.apexIndex);
    const Index hi = std::max(rp.apexIndex, m.apexIndex);
    const double valley = *std::min_element(resid.begin() + lo, resid.begin() + hi + 1);
    return valley > 0.5 * std::min(m.amplitude, rp.amplitude);
  };
  double totalArea = 0.0;
  double ripArea = 0.0;
  double maxAnalyteAmp = 0.0;
  for (std::size_t i = 0; i < peaks.size(); ++i) {
    const Measured& m = peaks[i];
    Peak p;
    p.driftMs = m.pos * dtMs;
    p.amplitude = m.amplitude;
    p.snr = m.amplitude / sigma;
    p.fwhmMs = m.fwhm * dtMs;
    p.overlapped = m.overlapped;
    p.shoulder = m.shoulder;
    p.flatTop = m.flatTop;
    if (haveCal && m.pos > 0.0) p.k0 = calK0 * tCal / m.pos;
    const auto si = static_cast<Index>(i);
    const double area = m.amplitude * m.fwhm;
    totalArea += area;
    if (si == ripIdx) {
      p.role = PeakRole::kReactant;
      ripArea += area;
    } else if (si == calIdx) {
      p.role = PeakRole::kCalibrant;
    } else if (ripIdx >= 0 && (m.group == peaks[at(ripIdx)].group || onRipFlank(m) ||
                               (p.k0 && inReactantWindow(*p.k0)))) {
      // Shoulders inside the RIP's envelope are its cluster ions or its tail, not sample
      // ions; so is any ion the library's reactant window holds (other hydrates).
      p.role = PeakRole::kReactantCluster;
      ripArea += area;
    } else {
      maxAnalyteAmp = std::max(maxAnalyteAmp, m.amplitude);
    }
    if (p.role == PeakRole::kAnalyte && p.snr >= params.shapeCheckMinSnr && refR && !m.shoulder) {
      // Width noise at half height is about 0.4/SNR of the FWHM, so the allowance grows as
      // the peak weakens. Two equal ions 0.3 FWHM apart widen it by 6 % (half a FWHM: 13 %),
      // and look like one ion at their midpoint: a tight base flags them, and a flagged peak
      // costs only a fit that the overlap step rejects for a single ion.
      const double expected = m.pos / *refR;
      const bool wide = m.fwhm > (params.broadeningFactor + 1.5 / p.snr) * expected;
      bool skewed = false;
      if (std::isfinite(m.leftHalf) && std::isfinite(m.rightHalf) && m.leftHalf > 0.0 &&
          m.rightHalf > 0.0) {
        skewed = std::max(m.leftHalf, m.rightHalf) / std::min(m.leftHalf, m.rightHalf) >
                 params.asymmetryFactor + 3.0 / p.snr;
      }
      if (wide || skewed) {
        p.broadened = true;
        p.overlapped = true;
      }
    }
    a.peaks.push_back(std::move(p));
  }

  // --- RIP depletion: a sample strong enough to consume the reactant ions. ----------------
  if (a.reactantFound) {
    a.reactantIonFraction = totalArea > 0.0 ? ripArea / totalArea : 0.0;
    if (a.reactantIonFraction < params.ripMinIonFraction) {
      a.reactantDepleted = true;
      a.reasons.push_back("reactant ion peak holds " +
                          std::to_string(static_cast<int>(std::lround(100.0 * a.reactantIonFraction))) +
                          " % of the ion signal: depleted by an overloaded sample");
    } else if (maxAnalyteAmp > ripAmp) {
      a.reactantDepleted = true;
      a.reasons.push_back("a product ion is taller than the reactant ion peak: sample overload");
    }
  } else {
    a.flags.emplace_back("rip_missing");
    a.reasons.emplace_back("no reactant ion peak: the source, the dopant or the sample load is wrong");
  }
  if (!haveCal) {
    a.flags.emplace_back("calibrant_missing");
    a.reasons.emplace_back(
        "calibrant not found at its drift-time ratio to the reactant ion peak: K0 cannot be computed");
  }

  // --- Overlapping analyte ions: separate pairs with the instrument's own peak width. -----
  // One ion is t/R wide (R from the references), so an analyte envelope that is broader or
  // more skewed than that, or two analyte maxima in one envelope, is fitted as two ions of
  // that width. The fit replaces the peaks only when the data demand two ions and pin both
  // down (resolvePair); otherwise they stay as measured, flagged overlapped.
  bool anyResolved = false;
  if (refR && haveCal && a.peaks.size() == peaks.size()) {
    std::vector<Peak> merged;
    merged.reserve(a.peaks.size() + 2);
    const double k0Scale = calK0 * tCal;
    auto expectedWidth = [&](double pos) { return pos / *refR; };
    auto fittable = [&](std::size_t k) {
      return a.peaks[k].role == PeakRole::kAnalyte && a.peaks[k].overlapped && !a.peaks[k].flatTop;
    };
    std::size_t i = 0;
    while (i < peaks.size()) {
      std::size_t j = i + 1;  // the cluster is [i, j)
      std::optional<Split> split;
      if (fittable(i)) {
        const double w = expectedWidth(peaks[i].pos);
        while (j < peaks.size() && fittable(j) && peaks[j].pos - peaks[j - 1].pos < 1.6 * w) ++j;
        // Components of one envelope may report the same apex; count distinct positions.
        std::vector<std::size_t> distinct{i};
        bool broadened = a.peaks[i].broadened;
        for (std::size_t k = i + 1; k < j; ++k) {
          broadened = broadened || a.peaks[k].broadened;
          if (peaks[k].pos - peaks[distinct.back()].pos > 0.2 * w) {
            distinct.push_back(k);
          } else if (peaks[k].amplitude > peaks[distinct.back()].amplitude) {
            distinct.back() = k;
          }
        }
        const bool single = distinct.size() == 1;
        const double first = peaks[distinct.front()].pos;
        const double last = peaks[distinct.back()].pos;
        // Another peak's flank inside the window would bias the fit: leave those flagged.
        const bool clearLeft = i == 0 || first - peaks[i - 1].pos > 2.3 * w;
        const bool clearRight = j == peaks.size() || peaks[j].pos - last > 2.3 * w;
        if (distinct.size() <= 2 && (!single || broadened) && clearLeft && clearRight) {
          const Index lo = std::max<Index>(0, static_cast<Index>(std::floor(first - 1.3 * w)));
          const Index hi = std::min<Index>(n - 1, static_cast<Index>(std::ceil(last + 1.3 * w)));
          std::vector<std::array<double, 4>> starts;
          std::array<double, 3> one{};
          if (single) {
            const double a0 = peaks[distinct.front()].amplitude;
            starts = {{0.6 * a0, first - 0.35 * w, 0.6 * a0, first + 0.35 * w},
                      {0.85 * a0, first - 0.15 * w, 0.4 * a0, first + 0.5 * w},
                      {0.4 * a0, first - 0.5 * w, 0.85 * a0, first + 0.15 * w}};
            one = {a0, first, std::max(peaks[distinct.front()].fwhm, w)};
          } else {
            const double a1 = peaks[distinct.front()].amplitude;
            const double a2 = peaks[distinct.back()].amplitude;
            starts = {{a1, first, a2, last},
                      {0.8 * a1, first - 0.1 * w, 0.8 * a2, last + 0.1 * w}};
            one = {std::max(a1, a2), 0.5 * (first + last), last - first + w};
          }
          split = resolvePair(rawResid, lo, hi, *refR, starts, one, k0Scale, params);
        }
      }
      if (!split) {
        // Members within 0.2 FWHM of a stronger one are the same envelope measured twice (or
        // shot-noise ripples on one ion): report the strongest, still flagged overlapped.
        std::size_t keep = i;
        for (std::size_t k = i; k < j; ++k) {
          const bool duplicate = k > i && fittable(k) &&
                                 peaks[k].pos - peaks[keep].pos <= 0.2 * expectedWidth(peaks[keep].pos);
          if (!duplicate) {
            merged.push_back(std::move(a.peaks[k]));
            keep = k;
          } else if (peaks[k].amplitude > peaks[keep].amplitude) {
            merged.back() = std::move(a.peaks[k]);
            keep = k;
          }
        }
      } else {
        anyResolved = true;
        for (std::size_t k = 0; k < 2; ++k) {
          Peak p;
          p.driftMs = split->pos[k] * dtMs;
          p.k0 = k0Scale / split->pos[k];
          p.amplitude = split->amp[k];
          p.snr = split->amp[k] / sigma;
          p.fwhmMs = split->fwhm[k] * dtMs;
          p.overlapped = true;
          p.resolved = true;
          merged.push_back(std::move(p));
        }
      }
      i = j;
    }
    a.peaks = std::move(merged);
  }

  // --- Library matching. ------------------------------------------------------------------
  // What cannot be an ion of the sample is not called unidentified (it stays listed): a peak
  // faster than every reactant ion (product ions form on the reactant ions, so they are
  // heavier: gate pick-up, noise where the windows are narrowest), or one several times
  // wider than an ion at its drift time can be (R from the references; two merged ions make
  // at most about twice that, more show maxima of their own): baseline wander.
  auto mayBeSampleIon = [&](const Peak& p) {
    if (ripLib != nullptr && *p.k0 > ripLib->k0 + ripLib->window) return false;
    return !refR || p.fwhmMs <= params.maxIonWidthFactor * p.driftMs / *refR;
  };
  bool anyUnidentified = false;
  bool anyOverlap = false;
  std::vector<std::string> held;       // why an unidentified peak keeps the sample from clearing
  std::vector<const Peak*> unwatched;  // unidentified peaks that do not
  bool inWatchWindow = false;
  bool mayHideTarget = false;
  for (Peak& p : a.peaks) {
    if (p.overlapped) anyOverlap = true;
    if (p.role != PeakRole::kAnalyte || !p.k0) continue;
    std::vector<std::pair<double, const Substance*>> matches;
    for (const Substance& s : library.substances()) {
      if (s.mode != spectrum.mode || s.role != SubstanceRole::kTarget) continue;
      const double dist = std::abs(*p.k0 - s.k0);
      if (dist <= s.window) matches.emplace_back(dist / s.window, &s);
    }
    std::sort(matches.begin(), matches.end(),
              [](const auto& l, const auto& r) { return l.first < r.first; });
    const Substance* best = matches.empty() ? nullptr : matches.front().second;
    for (std::size_t k = 1; k < matches.size(); ++k) p.alternatives.push_back(matches[k].second->name);
    if (best != nullptr) {
      p.substance = best->name;
      p.alarm = p.amplitude >= best->minAmplitude && p.snr >= best->minSnr;
      if (p.alarm) {
        auto it = std::find_if(a.substances.begin(), a.substances.end(),
                               [&](const SubstanceHit& h) { return h.name == best->name; });
        if (it == a.substances.end() || it->amplitude < p.amplitude) {
          SubstanceHit hit{best->name, *p.k0,      best->k0,   p.amplitude,
                           p.snr,      p.driftMs, p.overlapped && !p.resolved, p.resolved};
          if (it == a.substances.end()) {
            a.substances.push_back(std::move(hit));
          } else {
            *it = std::move(hit);
          }
        }
      }
    } else if (p.snr >= unidentifiedSnr && p.amplitude >= library.defaultMinAmplitude() &&
               mayBeSampleIon(p)) {
      p.unidentified = true;
      anyUnidentified = true;
      if (std::optional<Hold> hold = holdFor(p, refR, library, spectrum.mode)) {
        inWatchWindow = inWatchWindow || hold->watched;
        mayHideTarget = mayHideTarget || !hold->watched;
        held.push_back(std::move(hold->reason));
      } else {
        unwatched.push_back(&p);
      }
    }
  }

  // --- Verdict. -----------------------------------------------------------------------------
  if (a.saturated) a.flags.emplace_back("saturated");
  if (a.reactantDepleted) a.flags.emplace_back("rip_depleted");
  if (anyUnidentified) a.flags.emplace_back("unidentified");
  if (inWatchWindow) a.flags.emplace_back("unidentified_in_watch_window");
  if (mayHideTarget) a.flags.emplace_back("unidentified_may_hide_target");
  if (!unwatched.empty()) a.flags.emplace_back("unidentified_outside_watch_windows");
  if (anyOverlap) a.flags.emplace_back("overlapped");
  if (anyResolved) a.flags.emplace_back("overlap_resolved");
  const bool unusable = a.saturated || !a.reactantFound || a.reactantDepleted || !haveCal ||
                        calLib == nullptr;
  if (unusable) {
    a.verdict = Verdict::kInconclusive;
  } else if (!a.substances.empty()) {
    a.verdict = Verdict::kHit;
    for (const SubstanceHit& h : a.substances) {
      a.reasons.push_back(h.name + " at K0 " + fixed(h.k0, 4) +
                          " (library " + fixed(h.libraryK0, 4) +
                          "), SNR " + std::to_string(static_cast<long>(std::lround(h.snr))) +
                          (h.overlapped ? ", overlapping another peak (not resolved)" : "") +
                          (h.resolved ? ", separated from an overlapping peak by a two-ion fit" : ""));
    }
    if (anyUnidentified) {
      a.reasons.emplace_back("also unidentified peaks that match no library entry");
    }
  } else if (!held.empty()) {
    a.verdict = Verdict::kInconclusive;
    a.reasons.insert(a.reasons.end(), held.begin(), held.end());
  } else {
    a.verdict = Verdict::kClear;
  }
  if (!unwatched.empty() && a.verdict != Verdict::kHit) {
    // Perfume, lotions, ions nobody programmed: listed (substance null), not held against
    // the sample.
    std::string list;
    for (const Peak* p : unwatched) {
      list += (list.empty() ? "" : ", ") + std::string("K0 ") + fixed(*p->k0, 4) + " (SNR " +
              std::to_string(static_cast<long>(std::lround(p->snr))) + ")";
    }
    a.reasons.push_back("unidentified peak(s) outside watch windows: " + list +
                        "; listed, they match no library entry");
  }
  std::sort(a.peaks.begin(), a.peaks.end(),
            [](const Peak& l, const Peak& r) { return l.driftMs < r.driftMs; });
  return a;
}

namespace {

std::string_view roleName(PeakRole role) {
  switch (role) {
    case PeakRole::kReactant: return "reactant";
    case PeakRole::kCalibrant: return "calibrant";
    case PeakRole::kReactantCluster: return "reactant_cluster";
    case PeakRole::kAnalyte: break;
  }
  return "analyte";
}

nlohmann::json optionalJson(const std::optional<double>& v, double scale) {
  return v ? nlohmann::json(round(*v, scale)) : nlohmann::json(nullptr);
}

}  // namespace

std::string toJson(const Analysis& a) {
  using Json = nlohmann::json;
  Json doc;
  doc["verdict"] = std::string(verdictName(a.verdict));
  doc["calibrant"] = {{"found", a.calibrantFound},
                      {"drift_ms", optionalJson(a.calibrantDriftMs, 1e4)},
                      {"k0", optionalJson(a.calibrantK0, 1e4)}};
  doc["reactant"] = {{"found", a.reactantFound},
                     {"drift_ms", optionalJson(a.reactantDriftMs, 1e4)},
                     {"amplitude", round(a.reactantAmplitude, 10.0)},
                     {"ion_fraction", round(a.reactantIonFraction, 1000.0)},
                     {"depleted", a.reactantDepleted}};
  Json peaks = Json::array();
  for (const Peak& p : a.peaks) {
    Json alternatives = Json::array();
    for (const std::string& s : p.alternatives) alternatives.push_back(s);
    peaks.push_back({{"drift_ms", round(p.driftMs, 1e4)},
                     {"k0", optionalJson(p.k0, 1e4)},
                     {"amplitude", round(p.amplitude, 10.0)},
                     {"snr", round(p.snr, 10.0)},
                     {"fwhm_ms", round(p.fwhmMs, 1e4)},
                     {"substance", p.substance ? Json(*p.substance) : Json(nullptr)},
                     {"role", std::string(roleName(p.role))},
                     {"alarm", p.alarm},
                     {"unidentified", p.unidentified},
                     {"watch_window", p.watchWindow ? Json(*p.watchWindow) : Json(nullptr)},
                     {"overlapped", p.overlapped},
                     {"resolved", p.resolved},
                     {"shoulder", p.shoulder},
                     {"broadened", p.broadened},
                     {"flat_top", p.flatTop},
                     {"alternatives", alternatives}});
  }
  doc["peaks"] = peaks;
  Json substances = Json::array();
  for (const SubstanceHit& h : a.substances) {
    substances.push_back({{"name", h.name},
                          {"k0", round(h.k0, 1e4)},
                          {"library_k0", round(h.libraryK0, 1e4)},
                          {"amplitude", round(h.amplitude, 10.0)},
                          {"snr", round(h.snr, 10.0)},
                          {"drift_ms", round(h.driftMs, 1e4)},
                          {"overlapped", h.overlapped},
                          {"resolved", h.resolved}});
  }
  doc["substances"] = substances;
  doc["saturated"] = a.saturated;
  doc["noise_sigma"] = round(a.noiseSigma, 100.0);
  doc["baseline"] = round(a.baselineMean, 10.0);
  doc["resolving_power"] = optionalJson(a.resolvingPower, 10.0);
  doc["flags"] = a.flags;
  doc["reasons"] = a.reasons;
  // Replace invalid UTF-8 instead of throwing: names come from the library file.
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace lanegate::trace
