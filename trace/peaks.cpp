#include "trace/peaks.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace lanegate::trace::detail {

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

}  // namespace lanegate::trace::detail
