#include "trace/analysis.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <limits>
#include <utility>

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

// Median of a copy (nth_element reorders).
double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  const auto mid = v.begin() + static_cast<Index>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

struct Robust {
  double center = 0.0;
  double sigma = 0.0;
};

// Median and MAD-sigma of v over the points where mask is true (all when mask is empty).
Robust robustStats(const std::vector<double>& v, const std::vector<char>& mask) {
  std::vector<double> sel;
  sel.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (mask.empty() || mask[i] != 0) sel.push_back(v[i]);
  }
  // Too few peak-free points to trust: fall back to everything (a MAD is still robust).
  if (sel.size() < 16) sel = v;
  Robust r;
  r.center = median(sel);
  for (double& x : sel) x = std::abs(x - r.center);
  r.sigma = kMadToSigma * median(std::move(sel));
  return r;
}

// Quadratic Savitzky-Golay filters have coefficients a + b*j^2 (j = offset in the window), so
// any window is evaluated in O(1) from prefix sums of x, k*x and k^2*x. That lets the window
// follow the expected peak width, which grows with drift time, at no extra cost.
class SavitzkyGolay {
 public:
  SavitzkyGolay(const std::vector<double>& x, Index maxHalf) : pad_(maxHalf) {
    const Index n = len(x);
    const Index total = n + 2 * pad_;
    s0_.assign(at(total + 1), 0.0);
    s1_.assign(at(total + 1), 0.0);
    s2_.assign(at(total + 1), 0.0);
    for (Index k = 0; k < total; ++k) {
      // Mirror padding (x[-j] = x[j]) so edge windows see a plausible continuation.
      Index src = k - pad_;
      if (src < 0) src = -src;
      if (src >= n) src = 2 * (n - 1) - src;
      src = std::clamp<Index>(src, 0, n - 1);
      const double v = x[at(src)];
      const double kd = static_cast<double>(k);
      s0_[at(k + 1)] = s0_[at(k)] + v;
      s1_[at(k + 1)] = s1_[at(k)] + kd * v;
      s2_[at(k + 1)] = s2_[at(k)] + kd * kd * v;
    }
  }

  // Smoothed value at i with half-window m.
  double smooth(Index i, Index m) const {
    const double md = static_cast<double>(m);
    const double d = (2 * md - 1) * (2 * md + 1) * (2 * md + 3);
    const auto [sum0, sumj2] = sums(i, m);
    return (3.0 * (3 * md * md + 3 * md - 1) * sum0 - 15.0 * sumj2) / d;
  }

  // Second derivative (per point^2) at i with half-window m.
  double d2(Index i, Index m) const {
    const double md = static_cast<double>(m);
    const double d = (2 * md - 1) * (2 * md + 1) * (2 * md + 3) * md * (md + 1);
    const auto [sum0, sumj2] = sums(i, m);
    return (90.0 * sumj2 - 30.0 * md * (md + 1) * sum0) / d;
  }

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
  // Sum of x and of j^2 x over the window centred on i (j = k - centre).
  std::pair<double, double> sums(Index i, Index m) const {
    const Index c = i + pad_;
    const Index lo = c - m;
    const Index hi = c + m + 1;
    const double sum0 = s0_[at(hi)] - s0_[at(lo)];
    const double sum1 = s1_[at(hi)] - s1_[at(lo)];
    const double sum2 = s2_[at(hi)] - s2_[at(lo)];
    const double cd = static_cast<double>(c);
    return {sum0, sum2 - 2.0 * cd * sum1 + cd * cd * sum0};
  }

  Index pad_;
  std::vector<double> s0_, s1_, s2_;
};

// Centred running minimum or maximum over [i - half, i + half] (monotone deque, O(n)).
std::vector<double> runningExtreme(const std::vector<double>& v, Index half, bool wantMin) {
  const Index n = len(v);
  std::vector<double> out(v.size());
  std::vector<Index> dq(v.size());
  Index head = 0;
  Index tail = 0;
  Index next = 0;
  for (Index i = 0; i < n; ++i) {
    const Index hi = std::min(n - 1, i + half);
    for (; next <= hi; ++next) {
      while (tail > head && (wantMin ? v[at(dq[at(tail - 1)])] >= v[at(next)]
                                     : v[at(dq[at(tail - 1)])] <= v[at(next)])) {
        --tail;
      }
      dq[at(tail++)] = next;
    }
    while (dq[at(head)] < i - half) ++head;
    out[at(i)] = v[at(dq[at(head)])];
  }
  return out;
}

// Centred moving average, window shrinking at the edges.
std::vector<double> movingAverage(const std::vector<double>& v, Index half) {
  const Index n = len(v);
  std::vector<double> prefix(v.size() + 1, 0.0);
  for (Index i = 0; i < n; ++i) prefix[at(i + 1)] = prefix[at(i)] + v[at(i)];
  std::vector<double> out(v.size());
  for (Index i = 0; i < n; ++i) {
    const Index lo = std::max<Index>(0, i - half);
    const Index hi = std::min(n - 1, i + half);
    out[at(i)] = (prefix[at(hi + 1)] - prefix[at(lo)]) / static_cast<double>(hi - lo + 1);
  }
  return out;
}

// Baseline from the peak-free points only: their local mean (unbiased, unlike a running
// minimum), linearly bridged across the masked peak regions.
std::vector<double> maskedBaseline(const std::vector<double>& x, const std::vector<char>& free,
                                   Index half, const std::vector<double>& fallback) {
  const Index n = len(x);
  std::vector<double> sum(x.size() + 1, 0.0);
  std::vector<double> count(x.size() + 1, 0.0);
  for (Index i = 0; i < n; ++i) {
    sum[at(i + 1)] = sum[at(i)] + (free[at(i)] != 0 ? x[at(i)] : 0.0);
    count[at(i + 1)] = count[at(i)] + (free[at(i)] != 0 ? 1.0 : 0.0);
  }
  if (count[at(n)] < static_cast<double>(n) * 0.1) return fallback;
  std::vector<double> out(x.size(), 0.0);
  const double minCount = std::max(3.0, static_cast<double>(half) * 0.5);
  std::vector<char> known(x.size(), 0);
  for (Index i = 0; i < n; ++i) {
    if (free[at(i)] == 0) continue;
    const Index lo = std::max<Index>(0, i - half);
    const Index hi = std::min(n - 1, i + half);
    const double c = count[at(hi + 1)] - count[at(lo)];
    if (c >= minCount) {
      out[at(i)] = (sum[at(hi + 1)] - sum[at(lo)]) / c;
      known[at(i)] = 1;
    }
  }
  // Bridge unknown stretches between known neighbours; hold the end values flat.
  Index prev = -1;
  for (Index i = 0; i <= n; ++i) {
    if (i < n && known[at(i)] == 0) continue;
    const Index gapLo = prev + 1;
    const Index gapHi = i - 1;
    for (Index j = gapLo; j <= gapHi; ++j) {
      if (prev < 0 && i >= n) {
        out[at(j)] = fallback[at(j)];
      } else if (prev < 0) {
        out[at(j)] = out[at(i)];
      } else if (i >= n) {
        out[at(j)] = out[at(prev)];
      } else {
        const double f = static_cast<double>(j - prev) / static_cast<double>(i - prev);
        out[at(j)] = out[at(prev)] + f * (out[at(i)] - out[at(prev)]);
      }
    }
    prev = i;
  }
  return out;
}

// A maximum of -d2 that survived merging: one ion population.
struct Component {
  Index center = 0;  // index of the -d2 maximum
  Index lo = 0;      // lobe limits: where -d2 falls to 0 or to the dip before a neighbour
  Index hi = 0;
  int group = 0;     // components of one contiguous -d2 run overlap
};

// Finds components where nd (= -d2 normalised to unit white-noise gain) exceeds thr.
std::vector<Component> findComponents(const std::vector<double>& nd, double thr, double sigmaNd,
                                      Index edge) {
  std::vector<Component> out;
  const Index n = len(nd);
  int group = 0;
  Index i = edge;
  while (i < n - edge) {
    if (nd[at(i)] <= thr) {
      ++i;
      continue;
    }
    Index runLo = i;
    while (i < n - edge && nd[at(i)] > thr) ++i;
    const Index runHi = i - 1;
    std::vector<Index> maxima;
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
  return out;
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

Measured measure(const Component& c, const std::vector<double>& r, const std::vector<double>& d2,
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
    const Index n = len(d2);
    if (i > 0 && i + 1 < n) {
      const double l = -d2[at(i - 1)];
      const double ce = -d2[at(i)];
      const double rr = -d2[at(i + 1)];
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

// Peaks of one pass: components measured and filtered by amplitude.
std::vector<Measured> detectPass(const std::vector<double>& nd, const std::vector<double>& r,
                                 const std::vector<double>& d2, double sigmaNd, double sigma,
                                 double sigmaS, const AnalysisParams& params, Index edge) {
  std::vector<Measured> peaks;
  for (const Component& c : findComponents(nd, params.detectSigma * sigmaNd, sigmaNd, edge)) {
    Measured m = measure(c, r, d2, sigmaS);
    if (m.amplitude >= params.minPeakSnr * sigma) peaks.push_back(m);
  }
  // Overlap: members of one -d2 run, or neighbours whose envelope between apexes never
  // falls below half the weaker peak (closer than about one FWHM).
  for (std::size_t i = 0; i < peaks.size(); ++i) {
    for (std::size_t j = i + 1; j < peaks.size(); ++j) {
      bool overlap = peaks[i].group == peaks[j].group;
      if (!overlap) {
        double valley = std::numeric_limits<double>::infinity();
        for (Index k = peaks[i].apexIndex; k <= peaks[j].apexIndex; ++k) valley = std::min(valley, r[at(k)]);
        overlap = valley > 0.5 * std::min(peaks[i].amplitude, peaks[j].amplitude);
      }
      if (overlap) {
        peaks[i].overlapped = true;
        peaks[j].overlapped = true;
      }
    }
  }
  return peaks;
}

double round(double v, double scale) { return std::round(v * scale) / scale; }

// Fixed-point text for reasons ("1.1601").
std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
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
  std::vector<double> x(spectrum.points.begin(), spectrum.points.end());

  // --- Saturation: a run of samples at full scale means the apex was clipped. -------------
  {
    const double clip = params.saturationLevel - params.saturationMargin;
    Index run = 0;
    Index longest = 0;
    for (const double v : x) {
      run = v >= clip ? run + 1 : 0;
      longest = std::max(longest, run);
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
    const Index maxHalf0 = std::min<Index>(2, (n - 1) / 2);
    SavitzkyGolay sg0(x, maxHalf0);
    std::vector<double> y0(x.size());
    for (Index i = 0; i < n; ++i) y0[at(i)] = sg0.smooth(i, maxHalf0);
    const double level = median(y0);
    for (Index i = 0; i < n; ++i) {
      if (y0[at(i)] > y0[at(biggest)]) biggest = i;
    }
    std::vector<double> r(x.size());
    for (Index i = 0; i < n; ++i) r[at(i)] = y0[at(i)] - level;
    const double half = 0.5 * r[at(biggest)];
    Index lo = biggest;
    while (lo > 0 && r[at(lo)] > half) --lo;
    Index hi = biggest;
    while (hi < n - 1 && r[at(hi)] > half) ++hi;
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
    const Index m = static_cast<Index>(std::lround(0.5 * perFwhm * expectedFwhm(i)));
    return std::clamp<Index>(m, 2, maxHalfAllowed);
  };

  // --- Smoothing and second derivative with windows that follow the peak width. ----------
  const Index maxHalf = halfWindow(n - 1, kD2WindowPerFwhm);
  SavitzkyGolay sg(x, maxHalf);
  std::vector<double> y(x.size());
  std::vector<double> d2(x.size());
  std::vector<double> nd(x.size());  // -d2 scaled to unit white-noise gain
  std::vector<double> smoothGain(x.size());
  // Noise gains depend only on the half-window; computed once per distinct window.
  std::vector<double> d2Gain(at(maxHalf + 1), 0.0);
  std::vector<double> smGain(at(maxHalf + 1), 0.0);
  for (Index i = 0; i < n; ++i) {
    const Index ms = std::min(halfWindow(i, kSmoothWindowPerFwhm), maxHalf);
    const Index md = std::min(halfWindow(i, kD2WindowPerFwhm), maxHalf);
    if (d2Gain[at(md)] == 0.0) d2Gain[at(md)] = SavitzkyGolay::d2NoiseGain(md);
    if (smGain[at(ms)] == 0.0) smGain[at(ms)] = SavitzkyGolay::smoothNoiseGain(ms);
    y[at(i)] = sg.smooth(i, ms);
    d2[at(i)] = sg.d2(i, md);
    nd[at(i)] = -d2[at(i)] / d2Gain[at(md)];
    smoothGain[at(i)] = smGain[at(ms)];
  }
  const double meanSmoothGain = smoothGain[at(n / 2)];

  // --- Pass-1 baseline: morphological opening wider than the widest expected peak. --------
  const Index openHalf = std::clamp<Index>(
      static_cast<Index>(std::lround(2.0 * expectedFwhm(n - 1))), 3, std::max<Index>(3, n / 2));
  std::vector<double> baseline =
      movingAverage(runningExtreme(runningExtreme(y, openHalf, true), openHalf, false), openHalf);
  const Index edge = std::min<Index>(halfWindow(0, kD2WindowPerFwhm) + 1, n / 4);

  std::vector<double> resid(x.size());
  std::vector<double> rawResid(x.size());
  auto residuals = [&]() {
    for (Index i = 0; i < n; ++i) {
      resid[at(i)] = y[at(i)] - baseline[at(i)];
      rawResid[at(i)] = x[at(i)] - baseline[at(i)];
    }
  };
  residuals();
  Robust noise = robustStats(rawResid, {});
  Robust ndNoise = robustStats(nd, {});
  double sigma = std::max(noise.sigma, kQuantisationSigma);
  double sigmaNd = std::max(ndNoise.sigma, kQuantisationSigma);
  std::vector<Measured> peaks =
      detectPass(nd, resid, d2, sigmaNd, sigma, sigma * meanSmoothGain, params, edge);

  // --- Peak-free mask, then the baseline and noise from peak-free points only. ------------
  std::vector<char> free(x.size(), 1);
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
    baseline = maskedBaseline(x, free, bHalf, baseline);
    residuals();
    noise = robustStats(rawResid, free);
    ndNoise = robustStats(nd, free);
    sigma = std::max(noise.sigma, kQuantisationSigma);
    sigmaNd = std::max(ndNoise.sigma, kQuantisationSigma);
    peaks = detectPass(nd, resid, d2, sigmaNd, sigma, sigma * meanSmoothGain, params, edge);
  }
  a.noiseSigma = sigma;
  {
    double sum = 0.0;
    for (const double b : baseline) sum += b;
    a.baselineMean = sum / static_cast<double>(n);
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
    } else if (ripIdx >= 0 && m.group == peaks[at(ripIdx)].group) {
      // Shoulders inside the RIP's envelope are its cluster ions, not sample ions.
      p.role = PeakRole::kReactantCluster;
      ripArea += area;
    } else {
      maxAnalyteAmp = std::max(maxAnalyteAmp, m.amplitude);
    }
    if (p.role == PeakRole::kAnalyte && p.snr >= params.shapeCheckMinSnr && refR && !m.shoulder) {
      // Width noise at half height is about 0.4/SNR of the FWHM, so the allowance grows as
      // the peak weakens; two equal ions half a FWHM apart already widen it by 20 %.
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

  // --- Library matching. ------------------------------------------------------------------
  bool anyUnidentified = false;
  bool anyOverlap = false;
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
          SubstanceHit hit{best->name, *p.k0, best->k0, p.amplitude, p.snr, p.driftMs, p.overlapped};
          if (it == a.substances.end()) {
            a.substances.push_back(std::move(hit));
          } else {
            *it = std::move(hit);
          }
        }
      }
    } else if (p.snr >= unidentifiedSnr && p.amplitude >= library.defaultMinAmplitude()) {
      p.unidentified = true;
      anyUnidentified = true;
    }
  }

  // --- Verdict. -----------------------------------------------------------------------------
  if (a.saturated) a.flags.emplace_back("saturated");
  if (a.reactantDepleted) a.flags.emplace_back("rip_depleted");
  if (anyUnidentified) a.flags.emplace_back("unidentified");
  if (anyOverlap) a.flags.emplace_back("overlapped");
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
                          (h.overlapped ? ", overlapping another peak" : ""));
    }
    if (anyUnidentified) {
      a.reasons.emplace_back("also unidentified peaks that match no library entry");
    }
  } else if (anyUnidentified) {
    a.verdict = Verdict::kInconclusive;
    for (const Peak& p : a.peaks) {
      if (!p.unidentified) continue;
      a.reasons.push_back("unidentified peak at K0 " + fixed(*p.k0, 4) +
                          ", SNR " + std::to_string(static_cast<long>(std::lround(p.snr))) +
                          ": matches no library entry (possibly an unprogrammed analogue)");
    }
  } else {
    a.verdict = Verdict::kClear;
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
                     {"overlapped", p.overlapped},
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
                          {"overlapped", h.overlapped}});
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
