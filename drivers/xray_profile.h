#pragma once
// An X-ray scanner PLC's register map as data (config/profiles/xray-*.yaml): which table,
// which addresses, status bits, command codes. Contract 4 is
// config/profiles/xray-generic-v1.yaml. The driver reads with it and lanegate-sim xray
// serves with it, so both sides share one definition of a layout.

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "drivers/modbus_link.h"
#include "drivers/settings.h"

namespace lanegate {

/// Status bit numbers; nullopt when the profile has no such bit.
struct XrayStatusBits {
  std::optional<int> ready, scanning, radiationOn, interlockOpen, fault, calibrationDue;
};

/// One X-ray PLC register map.
struct XrayProfile {
  std::string name;                              ///< the profile's `profile:` key
  std::string file;                              ///< where it was loaded from
  RegisterTable table = RegisterTable::holding;  ///< table of the readable registers
  std::optional<int> versionAddress;             ///< profile_version register
  int expectedVersion = 0;                       ///< value it must hold
  int status = 1;                                ///< status bits register
  int scanSeq = 2;                               ///< scans completed (u16, wraps)
  int laneOccupied = 3;                          ///< 1 while a conveyance is in the lane
  XrayStatusBits bits;                           ///< status bit numbers
  int commandRegister = 40;                      ///< holding register a command is written to
  int commandResult = 41;                        ///< register the PLC reports progress in
  RegisterTable commandResultTable = RegisterTable::holding;  ///< its table
  std::map<std::string, int> commandCodes;                    ///< dark, air, clear_fault → code
  int resultIdle = 0, resultRunning = 1, resultOk = 2, resultFailed = 3;  ///< result codes

  /// First register of the block read by each poll (status, scan_seq, lane_occupied).
  [[nodiscard]] int blockFirst() const;
  /// Registers in that block (≤ 125).
  [[nodiscard]] int blockCount() const;
  /// A register of a block read from blockFirst() (0 when outside it).
  [[nodiscard]] std::uint16_t at(std::span<const std::uint16_t> block, int address) const;
  /// True when the status word has bit `bit` set (false when the profile lacks it).
  [[nodiscard]] static bool bitSet(std::uint16_t word, const std::optional<int>& bit);
  /// The command name of a code, or "" when no command has it.
  [[nodiscard]] std::string commandOf(int code) const;
};

/// Parses a profile; every error is located in `file`.
[[nodiscard]] tl::expected<XrayProfile, ConfigErrors> parseXrayProfile(std::string_view yamlText,
                                                                       const std::string& file);
/// Reads and parses a profile file.
[[nodiscard]] tl::expected<XrayProfile, ConfigErrors> loadXrayProfile(const std::string& path);

}  // namespace lanegate
