#include "drivers/xray_profile.h"

#include <algorithm>

namespace lanegate {

int XrayProfile::blockFirst() const { return std::min({status, scanSeq, laneOccupied}); }

int XrayProfile::blockCount() const {
  return std::max({status, scanSeq, laneOccupied}) - blockFirst() + 1;
}

std::uint16_t XrayProfile::at(std::span<const std::uint16_t> block, int address) const {
  const int i = address - blockFirst();
  if (i < 0 || static_cast<std::size_t>(i) >= block.size()) return 0;
  return block[static_cast<std::size_t>(i)];
}

namespace {

void readRegisters(ProfileKeys& k, XrayProfile& p) {
  p.scanSeq = readAddress(k.registers, "scan_seq");
  p.laneOccupied = readAddress(k.registers, "lane_occupied");
  XrayStatusBits& b = p.bits;
  for (auto [key, bit] :
       {std::pair{"ready", &b.ready}, std::pair{"scanning", &b.scanning},
        std::pair{"radiation_on", &b.radiationOn}, std::pair{"interlock_open", &b.interlockOpen},
        std::pair{"fault", &b.fault}, std::pair{"calibration_due", &b.calibrationDue}})
    *bit = readStatusBit(k.bits, key);
}

// One request reads the block each poll.
void checkBlock(const XrayProfile& p, ConfigErrors& errors, int line) {
  if (p.blockCount() <= kMaxRegistersPerRead) return;
  errors.add(p.file, line,
             "profile: status, scan_seq and lane_occupied span " + std::to_string(p.blockCount()) +
                 " registers; one read takes at most " + std::to_string(kMaxRegistersPerRead));
}

}  // namespace

tl::expected<XrayProfile, ConfigErrors> parseXrayProfile(std::string_view yamlText,
                                                         const std::string& file) {
  return parseProfile<XrayProfile>(yamlText, file, {"dark", "air", "clear_fault"}, readRegisters,
                                   checkBlock);
}

}  // namespace lanegate
