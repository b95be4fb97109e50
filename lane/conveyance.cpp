#include "lane/conveyance.h"

#include <cctype>

namespace lanegate::lane {
namespace {

std::string normalize(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == ' ' || c == '-' || c == '\t') continue;
    out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return out;
}

bool allDigits(std::string_view s) {
  for (const char c : s)
    if (c < '0' || c > '9') return false;
  return !s.empty();
}

// ISO 6346 letter values: A=10 upwards, skipping 11, 22 and 33.
int letterValue(char c) {
  int v = 10 + (c - 'A');
  if (v >= 11) ++v;
  if (v >= 22) ++v;
  if (v >= 33) ++v;
  return v;
}

}  // namespace

IdentifierCheck checkContainerNumber(std::string_view text) {
  IdentifierCheck r;
  r.normalized = normalize(text);
  const std::string& s = r.normalized;
  if (s.size() != 11) {
    r.problem = "'" + std::string(text) + "' is not an ISO 6346 container number: expected 4 letters and 7 digits";
    return r;
  }
  for (std::size_t i = 0; i < 4; ++i) {
    if (s[i] < 'A' || s[i] > 'Z') {
      r.problem = "'" + s + "': the owner code and category must be 4 letters";
      return r;
    }
  }
  if (s[3] != 'U' && s[3] != 'J' && s[3] != 'Z') {
    r.problem = "'" + s + "': the category letter must be U, J or Z, not " + s[3];
    return r;
  }
  if (!allDigits(std::string_view(s).substr(4))) {
    r.problem = "'" + s + "': the serial number and check digit must be 7 digits";
    return r;
  }
  long sum = 0;
  for (std::size_t i = 0; i < 10; ++i) {
    const int v = i < 4 ? letterValue(s[i]) : s[i] - '0';
    sum += static_cast<long>(v) << i;
  }
  const int check = static_cast<int>(sum % 11 % 10);
  if (check != s[10] - '0') {
    r.problem = "'" + s + "': check digit is " + s[10] + ", ISO 6346 gives " + std::to_string(check);
    return r;
  }
  r.valid = true;
  return r;
}

IdentifierCheck checkAirWaybill(std::string_view text) {
  IdentifierCheck r;
  const std::string s = normalize(text);
  r.normalized = s;
  if (s.size() != 11 || !allDigits(s)) {
    r.problem = "'" + std::string(text) + "' is not an IATA air waybill number: expected 3 + 8 digits";
    return r;
  }
  r.normalized = s.substr(0, 3) + "-" + s.substr(3);
  const long serial = std::stol(s.substr(3, 7));
  const int check = static_cast<int>(serial % 7);
  if (check != s[10] - '0') {
    r.problem = "'" + r.normalized + "': check digit is " + s[10] + ", the serial's mod 7 gives " + std::to_string(check);
    return r;
  }
  r.valid = true;
  return r;
}

ConveyanceRecord checkedConveyance(const vision::ScanMeta& meta) {
  ConveyanceRecord r;
  r.conveyance = meta.conveyance;
  r.scanId = meta.scanId;
  for (const auto& id : meta.conveyance.ids)
    r.idChecks.push_back({id, checkContainerNumber(id).valid, "iso6346"});
  if (!meta.conveyance.awb.empty())
    r.idChecks.push_back(
        {meta.conveyance.awb, checkAirWaybill(meta.conveyance.awb).valid, "iata_awb"});
  return r;
}

}  // namespace lanegate::lane
