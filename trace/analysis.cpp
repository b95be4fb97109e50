#include "trace/analysis.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "trace/filters.h"
#include "trace/internal.h"
#include "trace/overlap.h"
#include "trace/peaks.h"
#include "trace/robust.h"

namespace lanegate::trace {

namespace {

using namespace detail;  // the parts: robust.h, filters.h, peaks.h, overlap.h

double round(double v, double scale) { return std::round(v * scale) / scale; }

// Fixed-point text for reasons ("1.1601").
std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
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
  const auto t = static_cast<Index>(v);         // truncates toward zero
  const double f = v - static_cast<double>(t);  // exact: the fractional part
  return f >= 0.5 ? t + 1 : (f <= -0.5 ? t - 1 : t);
}

// Buffers one thread reuses from spectrum to spectrum. A 2,000-point analysis otherwise
// makes some thirty heap allocations of 16 KB or more, and handing them back to the kernel
// (brk, with TLB flushes on a VM) costs more than all the arithmetic.
struct Workspace {
  std::vector<std::int32_t> y35;
  std::vector<std::uint16_t> despiked;
  std::vector<double> y, nd, baseline, runMin, runMax, pre, suf, prefix, resid, rawResid, gapMin;
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
    case Verdict::kClear:
      return "clear";
    case Verdict::kHit:
      return "hit";
    case Verdict::kInconclusive:
      break;
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
      const std::int32_t m = std::max(std::max(y35[at(i4)], y35[at(i4 + 1)]),
                                      std::max(y35[at(i4 + 2)], y35[at(i4 + 3)]));
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
  auto expectedFwhm = [&](Index i) { return std::max(fwhmFloor, static_cast<double>(i) / r0); };
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
    Index g = std::clamp<Index>(
        static_cast<Index>(std::ceil(std::min(cross, static_cast<double>(n)))), i0 + 1, n);
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
  detectPass(nd, resid, negD2, sigmaNd, sigma, sigma * meanSmoothGain, params, edge, ws.components,
             ws.maxima, peaks, ws.gapMin);

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
    const Index bHalf =
        std::max<Index>(10, static_cast<Index>(std::lround(2.0 * expectedFwhm(n / 2))));
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
    for (Index j = std::max<Index>(0, p.apexIndex - h); j <= std::min(n - 1, p.apexIndex + h);
         ++j) {
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
    const double expected =
        2.0 * p.fwhm * std::sqrt(tol / (4.0 * std::log(2.0) * p.amplitude)) + 1.0;
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
      if (ripIdx < 0 || peaks[i].amplitude > peaks[at(ripIdx)].amplitude)
        ripIdx = static_cast<Index>(i);
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
    // The valley stays above half the weaker apex: walking from the peak towards the RIP,
    // the first sample at or below that decides (between distant peaks, within a few).
    const double floor = 0.5 * std::min(m.amplitude, rp.amplitude);
    const Index step = m.apexIndex <= rp.apexIndex ? 1 : -1;
    for (Index k = m.apexIndex; k >= lo && k <= hi; k += step)
      if (resid[at(k)] <= floor) return false;
    return true;
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
      a.reasons.push_back(
          "reactant ion peak holds " +
          std::to_string(static_cast<int>(std::lround(100.0 * a.reactantIonFraction))) +
          " % of the ion signal: depleted by an overloaded sample");
    } else if (maxAnalyteAmp > ripAmp) {
      a.reactantDepleted = true;
      a.reasons.push_back("a product ion is taller than the reactant ion peak: sample overload");
    }
  } else {
    a.flags.emplace_back("rip_missing");
    a.reasons.emplace_back(
        "no reactant ion peak: the source, the dopant or the sample load is wrong");
  }
  if (!haveCal) {
    a.flags.emplace_back("calibrant_missing");
    a.reasons.emplace_back(
        "calibrant not found at its drift-time ratio to the reactant ion peak: K0 cannot be "
        "computed");
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
            starts = {{a1, first, a2, last}, {0.8 * a1, first - 0.1 * w, 0.8 * a2, last + 0.1 * w}};
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
          const bool duplicate =
              k > i && fittable(k) &&
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
    for (std::size_t k = 1; k < matches.size(); ++k)
      p.alternatives.push_back(matches[k].second->name);
    if (best != nullptr) {
      p.substance = best->name;
      p.alarm = p.amplitude >= best->minAmplitude && p.snr >= best->minSnr;
      if (p.alarm) {
        auto it = std::find_if(a.substances.begin(), a.substances.end(),
                               [&](const SubstanceHit& h) { return h.name == best->name; });
        if (it == a.substances.end() || it->amplitude < p.amplitude) {
          SubstanceHit hit{best->name,
                           *p.k0,
                           best->k0,
                           p.amplitude,
                           p.snr,
                           p.driftMs,
                           p.overlapped && !p.resolved,
                           p.resolved};
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
  const bool unusable =
      a.saturated || !a.reactantFound || a.reactantDepleted || !haveCal || calLib == nullptr;
  if (unusable) {
    a.verdict = Verdict::kInconclusive;
  } else if (!a.substances.empty()) {
    a.verdict = Verdict::kHit;
    for (const SubstanceHit& h : a.substances) {
      a.reasons.push_back(
          h.name + " at K0 " + fixed(h.k0, 4) + " (library " + fixed(h.libraryK0, 4) + "), SNR " +
          std::to_string(static_cast<long>(std::lround(h.snr))) +
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
    case PeakRole::kReactant:
      return "reactant";
    case PeakRole::kCalibrant:
      return "calibrant";
    case PeakRole::kReactantCluster:
      return "reactant_cluster";
    case PeakRole::kAnalyte:
      break;
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
