#pragma once
// Conveyance identifiers from scan metadata, checked but never a reason to drop a scan:
// ISO 6346 container numbers (owner code, category, serial, check digit) and IATA air
// waybill numbers (airline prefix, serial, mod-7 check digit). An invalid one is flagged
// in the alert with the reason, so that a mistyped or forged number is seen.

#include <string>
#include <string_view>

namespace lanegate {

/// The outcome of checking one identifier.
struct IdentifierCheck {
  std::string normalized;  ///< upper case, spaces and dashes removed (AWB: "PPP-SSSSSSSS")
  bool valid = false;
  std::string problem;     ///< one sentence when not valid
};

/// ISO 6346: three-letter owner code, category U, J or Z, six-digit serial and a check
/// digit (letters valued 10..38 skipping multiples of 11, weights 2^i, sum mod 11 mod 10).
IdentifierCheck checkContainerNumber(std::string_view text);

/// IATA air waybill: three-digit airline prefix and an eight-digit serial whose last
/// digit is the first seven taken mod 7.
IdentifierCheck checkAirWaybill(std::string_view text);

}  // namespace lanegate
