#pragma once
// From an IMS driver's "trace" sample to an org.lanegate.trace.hit alert's data: our own
// analysis of the raw plasmagram (trace/) next to the device's verdict. Pure: no I/O.

#include <optional>
#include <string>

#include <tl/expected.hpp>

#include "trace/library.h"

namespace lanegate {

/// What one sample amounts to.
struct TraceOutcome {
  bool alert = false;          ///< the device alarmed or our analysis found a hit
  std::string id;              ///< the alert id, derived from device, sample time and seq
  std::string verdict;         ///< clear | hit | inconclusive (ours, or hit on a device alarm)
  std::string dataJson;        ///< the alert's data (config/schemas/trace-hit-data.schema.json)
};

/// Evaluates one sample (the JSON an IMS driver emits, see drivers/ims_driver.h);
/// `idPrefix` makes the alert id unique per lane, e.g. "site/lane".
tl::expected<TraceOutcome, std::string> evaluateTraceSample(const std::string& sampleJson,
                                                            const trace::SubstanceLibrary& library,
                                                            const std::string& idPrefix);

}  // namespace lanegate
