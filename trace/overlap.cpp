#include "trace/overlap.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <vector>

namespace lanegate::trace::detail {

namespace {

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

}  // namespace

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

}  // namespace lanegate::trace::detail
