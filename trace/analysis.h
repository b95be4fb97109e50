#pragma once

#include <optional>
#include <string>
#include <vector>

#include "trace/library.h"
#include "trace/spectrum.h"

namespace lanegate::trace {

/// Tunables of the analysis. Thresholds are multiples of the measured noise or ratios
/// fixed by physics, never absolute counts (those live in the substance library).
struct AnalysisParams {
  double detectSigma = 3.0;          ///< peak where -d2 (SG) exceeds this many sigma of d2
  double minPeakSnr = 3.0;           ///< peaks below this amplitude/noise are not reported
  double minReferenceSnr = 10.0;     ///< RIP and calibrant must be at least this strong
  double saturationLevel = 65535.0;  ///< ADC full scale
  double saturationMargin = 64.0;    ///< counts below full scale that still count as clipped
  double ripMinIonFraction = 0.3;    ///< RIP share of total peak area below this = depleted
  double broadeningFactor = 1.02;    ///< FWHM above (this + 1.5/SNR) x t/R_ref = overlapped
  double asymmetryFactor = 1.3;      ///< half-width ratio above (this + 3/SNR) = overlapped
  double shapeCheckMinSnr = 10.0;    ///< broadening/asymmetry judged only on peaks this strong
  double resolveMinF = 30.0;         ///< two-ion fit must beat one free-width ion by this F ratio
  double resolveMinSeparation = 0.3; ///< fitted ions closer than this many FWHM: not separable
  double resolveMaxWidthF = 10.0;    ///< freeing the two widths may improve the fit by this F
  double resolveMinSignificance = 6.0; ///< each fitted amplitude / its standard error, at least
  double resolveMaxK0Sigma = 0.0015; ///< fitted K0 standard error above this: not resolved
  double maxIonWidthFactor = 3.0;    ///< wider than this x t/R (references): not an ion
  std::optional<double> unidentifiedMinSnr;  ///< default: the library's defaults.min_snr
};

/// clear: nothing alarmed and nothing prevents clearing (unidentified peaks outside every
/// watch window are listed, not held against the sample); hit: a library target alarmed;
/// inconclusive: the spectrum is unusable or an unidentified peak lies in a watch window
/// (see Analysis::reasons).
enum class Verdict { kClear, kHit, kInconclusive };

/// "clear", "hit" or "inconclusive".
[[nodiscard]] std::string_view verdictName(Verdict verdict);

/// What a detected peak was taken to be.
enum class PeakRole { kAnalyte, kReactant, kCalibrant, kReactantCluster };

/// One detected peak (a resolved component when peaks overlap).
struct Peak {
  double driftMs = 0.0;                 ///< apex drift time (log-parabola interpolated), ms
  std::optional<double> k0;             ///< from the calibrant ratio; empty without calibrant
  double amplitude = 0.0;               ///< apex height above baseline, counts (smoothed)
  double snr = 0.0;                     ///< amplitude / baseline noise sigma
  double fwhmMs = 0.0;                  ///< full width at half maximum, ms
  PeakRole role = PeakRole::kAnalyte;   ///< analyte, reactant ion, calibrant, RIP cluster
  std::optional<std::string> substance; ///< library target whose K0 window holds the peak
  std::vector<std::string> alternatives;///< other targets whose windows also hold it
  bool alarm = false;                   ///< substance set and its thresholds met
  bool unidentified = false;            ///< significant, matches no library entry
  std::optional<std::string> watchWindow;  ///< unidentified and inside this watch window
  bool overlapped = false;              ///< shares its envelope with another peak
  bool resolved = false;                ///< separated from its overlapping neighbour by a fit
  bool shoulder = false;                ///< no maximum of its own: apex from -d2 only
  bool broadened = false;               ///< wider or more skewed than one ion at this R
  bool flatTop = false;                 ///< clipped / flat-topped apex
};

/// One alarmed substance (the strongest peak if several match it).
struct SubstanceHit {
  std::string name;      ///< library name
  double k0 = 0.0;       ///< measured K0
  double libraryK0 = 0.0;///< library K0
  double amplitude = 0.0;///< counts above baseline
  double snr = 0.0;      ///< amplitude / noise sigma
  double driftMs = 0.0;  ///< apex drift time, ms
  bool overlapped = false;///< its peak overlaps another and was not resolved (K0 uncertain)
  bool resolved = false;  ///< its peak was separated from an overlapping one by a fit
};

/// Result of analysing one plasmagram (Contract 6 plus diagnostics).
struct Analysis {
  Verdict verdict = Verdict::kInconclusive;  ///< clear | hit | inconclusive
  bool calibrantFound = false;               ///< calibrant located by its ratio to the RIP
  std::optional<double> calibrantDriftMs;    ///< calibrant apex, ms
  std::optional<double> calibrantK0;         ///< K0 used for the calibrant
  bool reactantFound = false;                ///< reactant ion peak located
  std::optional<double> reactantDriftMs;     ///< RIP apex, ms
  double reactantAmplitude = 0.0;            ///< RIP height, counts
  double reactantIonFraction = 0.0;          ///< RIP area / all peak area
  bool reactantDepleted = false;             ///< RIP consumed by the sample (overload)
  bool saturated = false;                    ///< points at full scale or a flat-topped peak
  double noiseSigma = 0.0;                   ///< baseline noise, counts (MAD of peak-free region)
  double baselineMean = 0.0;                 ///< mean estimated baseline, counts
  std::optional<double> resolvingPower;      ///< t/FWHM of the reference peaks
  std::vector<Peak> peaks;                   ///< every reported peak, by drift time
  std::vector<SubstanceHit> substances;      ///< alarmed targets
  std::vector<std::string> flags;            ///< machine-readable: saturated, rip_depleted, ...
  std::vector<std::string> reasons;          ///< one sentence each, why the verdict is what it is
};

/// Analyses one plasmagram against the library. Pure: no I/O, no exceptions.
[[nodiscard]] Analysis analyze(const Spectrum& spectrum, const SubstanceLibrary& library,
                               const AnalysisParams& params = {});

/// The analysis as Contract 6 JSON (with the extra diagnostic fields), compact.
[[nodiscard]] std::string toJson(const Analysis& analysis);

}  // namespace lanegate::trace
