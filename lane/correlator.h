#pragma once
// The conveyance in the lane, so that a trace hit names what was swabbed. Two sources
// drive it: the X-ray scanner's PLC (lane_occupied: a conveyance entered, or left) and
// the scans (the bundle says which conveyance it was, and whether X-ray flagged it).
//
// While a PLC reports lane_occupied, the conveyance is the one scanned since it entered;
// when the lane empties, no conveyance is in it, and a scan that completes after its
// conveyance left is not carried forward. Without a PLC (none configured, or unreachable)
// the last scanned conveyance stands until the next scan. A hit on a conveyance that X-ray
// flagged names that alert and is raised to high priority. Pure: no I/O, no clock.

#include <optional>
#include <string>

#include "drivers/events.h"
#include "lane/conveyance.h"
#include "lane/trace_pipeline.h"

namespace lanegate::lane {

/// The conveyance in one lane.
class Correlator {
 public:
  /// What a PLC state changed.
  enum class Change { none, entered, left };
  /// A scanner PLC's state; the lane's occupancy follows it.
  Change onScannerState(const ScannerState& state);
  /// The PLC cannot be read any more: occupancy is unknown, scans alone decide.
  void onScannerLost();
  /// A scan is done: its conveyance, and its X-ray alert id ("" for a clear scan).
  /// False when the PLC says the lane is empty, so the conveyance is not in it any more.
  bool onScan(ConveyanceRecord conveyance, std::string xrayAlertId);
  /// Ties a trace result to the conveyance in the lane (when there is one).
  void attribute(TraceResult& result) const;
  /// The conveyance in the lane, if known.
  [[nodiscard]] const std::optional<ConveyanceRecord>& conveyance() const { return conveyance_; }
  /// True while a PLC is read and says a conveyance is in the lane.
  [[nodiscard]] bool occupied() const { return plcKnown_ && occupied_; }

 private:
  bool plcKnown_ = false;  // a PLC state arrived since start or since it was lost
  bool occupied_ = false;
  std::optional<ConveyanceRecord> conveyance_;
  std::string xrayAlert_;
};

}  // namespace lanegate::lane
