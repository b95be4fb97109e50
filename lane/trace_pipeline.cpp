#include "lane/trace_pipeline.h"

#include <cmath>
#include <set>

namespace lanegate::lane {

namespace {

// A reading outside what a drift tube or the weather can do is a unit or sensor mistake:
// kept in the readings for audit, left out of the spectrum the analysis is told about.
std::optional<double> plausible(double value, double lo, double hi) {
  if (!std::isfinite(value) || value < lo || value > hi) return std::nullopt;
  return value;
}

}  // namespace

tl::expected<trace::Spectrum, std::string> spectrumOf(TraceSample& sample) {
  // The limits of Contract 6 SPECTRUM.json, so that the daemon and `lanegatectl ims
  // analyze` refuse the same plasmagrams.
  if (sample.points.empty()) return tl::make_unexpected(std::string("points: empty"));
  if (sample.points.size() > trace::kMaxSpectrumPoints)
    return tl::make_unexpected("points: " + std::to_string(sample.points.size()) +
                               " points, at most " + std::to_string(trace::kMaxSpectrumPoints));
  if (!std::isfinite(sample.periodNs) || sample.periodNs <= 0.0 || sample.periodNs > 1.0e6)
    return tl::make_unexpected(
        "period_ns: expected a positive number of nanoseconds up to 1e6, got " +
        std::to_string(sample.periodNs));
  trace::Spectrum s;
  s.points = std::move(sample.points);
  s.periodNs = sample.periodNs;
  s.mode =
      sample.mode == IonPolarity::negative ? trace::IonMode::kNegative : trace::IonMode::kPositive;
  s.driftTempK = plausible(sample.driftTempK, 200.0, 800.0);
  s.pressureHpa = plausible(sample.pressureHpa, 100.0, 2000.0);
  return s;
}

tl::expected<TraceResult, std::string> evaluateTrace(const std::string& device, TraceSample sample,
                                                     std::chrono::system_clock::time_point readAt,
                                                     const trace::SubstanceLibrary& library,
                                                     const std::string& idPrefix) {
  auto spectrum = spectrumOf(sample);
  if (!spectrum)
    return tl::make_unexpected("trace sample from \"" + device + "\": " + spectrum.error());
  TraceResult r;
  r.device = device;
  r.readAt = readAt;
  r.sampleSeq = sample.sampleSeq;
  r.sampleTime = sample.sampleTime;
  r.driftTempK = sample.driftTempK;
  r.pressureHpa = sample.pressureHpa;
  r.desorberTempC = sample.desorberTempC;
  r.spectrum = std::move(*spectrum);
  if (!r.spectrum.driftTempK)
    r.readingsProblem = "drift_temp_k " + std::to_string(r.driftTempK) + " is outside 200 to 800 K";
  if (!r.spectrum.pressureHpa)
    r.readingsProblem += (r.readingsProblem.empty() ? "" : "; ") + std::string("pressure_hpa ") +
                         std::to_string(r.pressureHpa) + " is outside 100 to 2000 hPa";
  r.readingsValid = r.readingsProblem.empty();
  r.ours = trace::analyze(r.spectrum, library);
  r.deviceAlarms = std::move(sample.alarms);
  // The driver decided the alarm from the profile's own status bit: vendors put it
  // elsewhere (ACME T2: bit 5), so no bit number is known here.
  r.deviceAlarm = sample.alarmed || !r.deviceAlarms.empty();

  std::set<std::string> deviceNames, ourNames;
  for (const DeviceAlarm& a : r.deviceAlarms)
    if (a.substance) deviceNames.insert(*a.substance);
  for (const trace::SubstanceHit& h : r.ours.substances) ourNames.insert(h.name);
  const bool ourHit = r.ours.verdict == trace::Verdict::kHit;
  r.alert = r.deviceAlarm || ourHit;
  r.verdict = r.alert ? "hit" : std::string(trace::verdictName(r.ours.verdict));
  r.agree = r.deviceAlarm == ourHit && (!r.deviceAlarm || deviceNames == ourNames);
  std::set<std::string> all = ourNames;
  all.insert(deviceNames.begin(), deviceNames.end());
  r.substances.assign(all.begin(), all.end());
  r.id = "trace:" + idPrefix + "/" + device + "/" + std::to_string(r.sampleTime) + "/" +
         std::to_string(r.sampleSeq);
  return r;
}

}  // namespace lanegate::lane
