#pragma once
// The trace pipeline: one IMS sample, typed as the driver read it, through our own
// plasmagram analysis (trace/) next to the device's verdict, to a typed result that the
// correlator ties to a conveyance and lane/payloads.h serialises once. Pure: no I/O.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "drivers/events.h"
#include "lane/conveyance.h"
#include "trace/analysis.h"
#include "trace/library.h"
#include "trace/spectrum.h"

namespace lanegate::lane {

/// What one trace sample amounts to: a hit (an alert) or not, and everything its alert says.
struct TraceResult {
  std::string id;      ///< "trace:{prefix}/{device}/{sample_time}/{sample_seq}"
  std::string device;  ///< the detector's configured name
  std::chrono::system_clock::time_point readAt;  ///< when the driver read the sample
  std::uint16_t sampleSeq = 0;                   ///< as the device numbered it
  std::uint32_t sampleTime = 0;                  ///< the device's clock, unix seconds
  double driftTempK = 0.0, pressureHpa = 0.0, desorberTempC = 0.0;  ///< readings, for audit
  /// False when a reading is outside what a drift tube or the weather can do (a sensor or
  /// unit fault): the device is then `fault`, yet an alarm or a match still alerts.
  bool readingsValid = true;
  std::string readingsProblem;  ///< which reading and why, when not valid
  trace::Spectrum spectrum;                                         ///< the plasmagram analysed
  trace::Analysis ours;                                             ///< our analysis
  bool deviceAlarm = false;               ///< the device alarmed (its status bit or its alarm list)
  std::vector<DeviceAlarm> deviceAlarms;  ///< what the device named
  bool alert = false;                     ///< the device alarmed or our analysis found a hit
  std::string verdict;                    ///< "hit" when alert, else ours (clear | inconclusive)
  bool agree = false;                   ///< both alarmed on the same substances, or neither alarmed
  std::vector<std::string> substances;  ///< every substance named by either, sorted
  // Filled by the correlator (lane/correlator.h):
  std::optional<ConveyanceRecord> conveyance;  ///< the conveyance in the lane, when known
  std::vector<std::string> correlatedAlerts;   ///< other alerts on that conveyance
  bool highPriority = false;                   ///< the conveyance was already flagged
};

/// The spectrum of a sample as trace/ analyses it (points moved out of `sample`), or why
/// the sample cannot be analysed (no points, too many, a zero drift-time step).
tl::expected<trace::Spectrum, std::string> spectrumOf(TraceSample& sample);

/// Evaluates one sample from `device`, read at `readAt`; `idPrefix` makes the alert id
/// unique per lane, e.g. "site/lane". Consumes the sample's points.
tl::expected<TraceResult, std::string> evaluateTrace(const std::string& device, TraceSample sample,
                                                     std::chrono::system_clock::time_point readAt,
                                                     const trace::SubstanceLibrary& library,
                                                     const std::string& idPrefix);

}  // namespace lanegate::lane
