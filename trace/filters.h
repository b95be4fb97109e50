#pragma once
// The analysis' filters: Savitzky-Golay smoothing and derivatives, running extremes and
// means, the baseline from peak-free points, and spike removal. Internal to trace/
// (namespace detail).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "trace/internal.h"

namespace lanegate::trace::detail {

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

/// 35 times the 5-point quadratic Savitzky-Golay smooth (-3 12 17 12 -3)/35 of x,
void smooth5Times35(const std::vector<std::uint16_t>& x, std::vector<std::int32_t>& out);

/// Centred running minimum or maximum over [i - half, i + half], clipped at the ends, into
template <bool kWantMin>
void runningExtreme(const std::vector<double>& v, Index half, std::vector<double>& out,
                    std::vector<double>& pre, std::vector<double>& suf);

/// Centred moving average into out, window shrinking at the edges; prefix is scratch. The
void movingAverage(const std::vector<double>& v, Index half, std::vector<double>& out,
                   std::vector<double>& prefix);

// Scratch of maskedBaseline().
struct BaselineScratch {
  std::vector<double> out, inv;
  std::vector<std::int32_t> weighted, counted;
};

/// Baseline from the peak-free points only: their local mean (unbiased, unlike a running
void maskedBaseline(const std::vector<std::uint16_t>& x, const std::vector<char>& free, Index half,
                    std::vector<double>& baseline, BaselineScratch& w);

/// Replaces electrical spikes (pick-up, discharges) by the line between their neighbours, in
bool despike(const std::vector<std::uint16_t>& x, std::vector<std::uint16_t>& out,
             std::vector<double>& scratch, std::vector<std::uint64_t>& keys);

}  // namespace lanegate::trace::detail
