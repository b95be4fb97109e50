#pragma once
// An X-ray scanner PLC's register map as data (config/profiles/xray-*.yaml): which table,
// which addresses, status bits, command codes. Contract 4 is
// config/profiles/xray-generic-v1.yaml. The driver reads with it and lanegate-sim xray
// serves with it, so both sides share one definition of a layout.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "drivers/modbus_link.h"
#include "drivers/modbus_profile.h"
#include "drivers/settings.h"

namespace lanegate {

/// Status bit numbers; nullopt when the profile has no such bit.
struct XrayStatusBits {
  std::optional<int> ready, scanning, radiationOn, interlockOpen, fault, calibrationDue;
};

/// One X-ray PLC register map (the shared part: name, table, profile_version, status, commands).
struct XrayProfile : ModbusProfile {
  int scanSeq = 2;       ///< scans completed (u16, wraps)
  int laneOccupied = 3;  ///< 1 while a conveyance is in the lane
  XrayStatusBits bits;   ///< status bit numbers

  /// First register of the block read by each poll (status, scan_seq, lane_occupied).
  [[nodiscard]] int blockFirst() const;
  /// Registers in that block (≤ 125).
  [[nodiscard]] int blockCount() const;
  /// A register of a block read from blockFirst() (0 when outside it).
  [[nodiscard]] std::uint16_t at(std::span<const std::uint16_t> block, int address) const;
};

/// Parses a profile; every error is located in `file`.
[[nodiscard]] tl::expected<XrayProfile, ConfigErrors> parseXrayProfile(std::string_view yamlText,
                                                                       const std::string& file);

}  // namespace lanegate
