#pragma once
// The conveyance a scan bundle names (Contract 1) with its identifiers checked: ISO 6346
// container numbers (owner code, category, serial, check digit) and IATA air waybill
// numbers (airline prefix, serial, mod-7 check digit). An invalid identifier is flagged
// in the alert with the reason, never a reason to drop a scan, so that a mistyped or
// forged number is seen.

#include <string>
#include <string_view>
#include <vector>

#include "vision/scan.h"

namespace lanegate::lane {

/// The outcome of checking one identifier.
struct IdentifierCheck {
  std::string normalized;  ///< upper case, spaces and dashes removed (AWB: "PPP-SSSSSSSS")
  bool valid = false;
  std::string problem;  ///< one sentence when not valid
};

/// ISO 6346: three-letter owner code, category U, J or Z, six-digit serial and a check
/// digit (letters valued 10..38 skipping multiples of 11, weights 2^i, sum mod 11 mod 10).
IdentifierCheck checkContainerNumber(std::string_view text);

/// IATA air waybill: three-digit airline prefix and an eight-digit serial whose last
/// digit is the first seven taken mod 7.
IdentifierCheck checkAirWaybill(std::string_view text);

/// One identifier of a conveyance and whether its check digit holds.
struct IdCheck {
  std::string id;      ///< as the bundle wrote it
  bool valid = false;  ///< the check digit holds
  std::string scheme;  ///< "iso6346" or "iata_awb"
};

/// A conveyance as the lane knows it: what its scan bundle declared, its identifiers
/// checked, and the scan that saw it.
struct ConveyanceRecord {
  vision::Conveyance conveyance;  ///< kind, ids, plate, awb, declared
  std::vector<IdCheck> idChecks;  ///< the container numbers in order, then the air waybill
  std::string scanId;             ///< the scan it was read from
};

/// The conveyance of a scan, with its identifiers checked.
ConveyanceRecord checkedConveyance(const vision::ScanMeta& meta);

}  // namespace lanegate::lane
