#include "lane/correlator.h"

namespace lanegate::lane {

Correlator::Change Correlator::onScannerState(const ScannerState& state) {
  const bool was = plcKnown_ && occupied_;
  plcKnown_ = true;
  occupied_ = state.laneOccupied;
  if (was == occupied_) return Change::none;
  // Entering or leaving, the conveyance scanned before is not the one in the lane now.
  conveyance_.reset();
  xrayAlert_.clear();
  return occupied_ ? Change::entered : Change::left;
}

void Correlator::onScannerLost() { plcKnown_ = false; }

bool Correlator::onScan(ConveyanceRecord conveyance, std::string xrayAlertId) {
  if (plcKnown_ && !occupied_) return false;
  conveyance_ = std::move(conveyance);
  xrayAlert_ = std::move(xrayAlertId);
  return true;
}

void Correlator::attribute(TraceResult& result) const {
  if (!conveyance_) return;
  result.conveyance = conveyance_;
  if (!xrayAlert_.empty()) {
    result.correlatedAlerts = {xrayAlert_};
    result.highPriority = true;
  }
}

}  // namespace lanegate::lane
