#pragma once
// Peak detection: connected components of the negative second derivative above threshold,
// and each peak's apex, height, width and shape measured on the smoothed residual. The
// passes are templates over how -d2 is read. Internal to trace/ (namespace detail).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "trace/analysis.h"
#include "trace/internal.h"

namespace lanegate::trace::detail {

// A maximum of -d2 that survived merging: one ion population.
struct Component {
  Index center = 0;  // index of the -d2 maximum
  Index lo = 0;      // lobe limits: where -d2 falls to 0 or to the dip before a neighbour
  Index hi = 0;
  int group = 0;     // components of one contiguous -d2 run overlap
};

/// Finds components where nd (= -d2 normalised to unit white-noise gain) exceeds thr.
void findComponents(const std::vector<double>& nd, double thr, double sigmaNd, Index edge,
                    std::vector<Component>& out, std::vector<Index>& maxima);

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

/// Apex by 3-point log-parabola (exact for a Gaussian at any spacing h) around index k.
bool logParabola(const std::vector<double>& r, Index k, Index h, double& pos, double& amp);

/// Half-maximum crossing walking from k in direction dir; NaN when a valley (another peak)
double halfCrossing(const std::vector<double>& r, Index k, int dir, double half, double sigmaS);

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

}  // namespace lanegate::trace::detail
