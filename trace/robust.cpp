#include "trace/robust.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace lanegate::trace::detail {

namespace {

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
  const T* from = v;           // the values left
  T* to = scratch;             // the buffer written next, from its start
  T* spare = scratch + count;  // and the one after it
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

}  // namespace

// Median (the upper one for an even count) of v[0, count); keys is scratch.
double median(const double* v, std::size_t count, std::vector<std::uint64_t>& keys) {
  if (count == 0) return 0.0;
  keys.resize(count);
  for (std::size_t i = 0; i < count; ++i) keys[i] = sortKey(v[i]);
  return fromSortKey(selectKey(keys.data(), count, count / 2));
}

namespace {

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
  auto value = [=](double v) {  // [=]: `center` goes unused when !kDistance
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
    const WindowCount c =
        windowPass<false>(p + range.first, range.second - range.first, 0.0, a, b, keys + kept);
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
    return span(std::max(0, floorAt(u - t - 0.001) + 1),
                std::min(kLast + 1, floorAt(u + t + 0.001) + 1));
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
    const WindowCount c = windowPass<true>(p + range.first, range.second - range.first, center, tLo,
                                           tHi, keys + inBracket);
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
  double upEdge = std::floor(u) + 1.0;            // the next bin edge above m
  double downEdge = std::ceil(u) - 1.0;           // and below
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

}  // namespace

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

}  // namespace lanegate::trace::detail
