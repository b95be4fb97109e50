#include "trace/filters.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "trace/robust.h"

namespace lanegate::trace::detail {

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
  for (Index i = leftEnd; i < rightStart; ++i)
    out[at(i)] = pick(suf[at(i - half)], pre[at(i + half)]);
  // Right end: [i - half, n - 1]; a suffix of its block, plus the last prefix if that differs.
  const Index lastBlock = (n - 1) / w;
  for (Index i = rightStart; i < n; ++i) {
    const Index lo = std::max<Index>(0, i - half);
    out[at(i)] = lo / w == lastBlock ? suf[at(lo)] : pick(suf[at(lo)], pre[at(n - 1)]);
  }
}

template void runningExtreme<true>(const std::vector<double>&, Index, std::vector<double>&,
                                   std::vector<double>&, std::vector<double>&);
template void runningExtreme<false>(const std::vector<double>&, Index, std::vector<double>&,
                                    std::vector<double>&, std::vector<double>&);

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
  const auto minCount =
      static_cast<std::int32_t>(std::ceil(std::max(3.0, static_cast<double>(half) * 0.5)));
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
        for (Index j = prev + 1; j < i; ++j)
          op[j] = op[prev] + static_cast<double>(j - prev) * step;
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
  // The differences are integers: their median (element count/2, as a selection returns it)
  // comes from a histogram, which costs a tenth of a selection; a noise so large that the
  // median lies beyond the histogram takes the selection.
  constexpr int kBins = 1024;
  std::array<std::uint16_t, kBins> hist{};
  std::size_t count = 0;
  std::size_t beyond = 0;
  for (Index i = 0; i + 1 < n; i += 4) {
    const int d = std::abs(static_cast<int>(x[at(i + 1)]) - static_cast<int>(x[at(i)]));
    if (d < kBins) {
      ++hist[static_cast<std::size_t>(d)];
    } else {
      ++beyond;
    }
    ++count;
  }
  double med = 0.0;
  if (count / 2 < count - beyond) {
    std::size_t seen = 0;
    for (int b = 0; b < kBins; ++b) {
      seen += hist[static_cast<std::size_t>(b)];
      if (seen > count / 2) {
        med = b;
        break;
      }
    }
  } else {
    scratch.clear();
    for (Index i = 0; i + 1 < n; i += 4)
      scratch.push_back(
          std::abs(static_cast<double>(x[at(i + 1)]) - static_cast<double>(x[at(i)])));
    med = median(scratch.data(), scratch.size(), keys);
  }
  const double sigma = std::max(kMadToSigma * med / std::sqrt(2.0), 1.0);
  const double jump = 8.0 * sigma;
  auto v = [&](Index i) { return static_cast<double>(x[at(std::clamp<Index>(i, 0, n - 1))]); };
  bool any = false;
  // A spike needs a step of more than 8 sigma into it and one as large back out of it, one
  // or two samples later (its top minus both sides): a cheap integer screen of both, ahead of
  // the exact test (a peak's flank steps one way only).
  // For integer steps, step > jump is step > floor(jump).
  const int cut = static_cast<int>(std::floor(std::min(jump, 1e9)));
  const std::uint16_t* px = x.data();
  const auto d = [px](Index i) { return static_cast<int>(px[i]) - static_cast<int>(px[i - 1]); };
  for (Index i = 1; i + 1 < n; ++i) {
    const int in = d(i);
    if (in > cut) {
      if (!(d(i + 1) < -cut || (i + 2 < n && d(i + 2) < -cut))) continue;
    } else if (in < -cut) {
      if (!(d(i + 1) > cut || (i + 2 < n && d(i + 2) > cut))) continue;
    } else {
      continue;
    }
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

}  // namespace lanegate::trace::detail
