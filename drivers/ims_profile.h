#pragma once
// An IMS detector's register map as data (config/profiles/*.yaml): which table,
// which addresses, scaling, 32-bit word order, chunk size, status bits, alarm codes
// and command codes. Contract 3 is config/profiles/ims-generic-v1.yaml; another
// vendor's map is another file, not code. The driver reads with it and lanegate-sim
// serves with it, so both sides share one definition of a layout.

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "drivers/modbus_link.h"
#include "drivers/modbus_profile.h"
#include "drivers/settings.h"

namespace lanegate {

/// A register holding a scaled quantity: value = raw × scale + offset.
struct ScaledRegister {
  int address = 0;
  double scale = 1.0;
  double offset = 0.0;
  bool isSigned = false;  ///< raw is int16 (e.g. a temperature below zero)
  /// The engineering value of a raw register.
  [[nodiscard]] double decode(std::uint16_t raw) const;
  /// The raw register for an engineering value (rounded, clamped).
  [[nodiscard]] std::uint16_t encode(double value) const;
};

/// Status bit numbers; nullopt when the profile has no such bit.
struct ImsStatusBits {
  std::optional<int> ready, analysing, alarm, fault, calibrationDue, verificationFailed,
      negativeMode;
};

/// One IMS register map (the shared part: name, table, profile_version, status, commands).
struct ImsProfile : ModbusProfile {
  bool highWordFirst = true;              ///< word order of 32-bit values
  int maxPerRead = kMaxRegistersPerRead;  ///< registers per read request (≤ 125)
  int maxPoints = 4000;                   ///< points above this are rejected
  int sampleSeq = 2;                      ///< sequence lock register
  int sampleTime = 3;                     ///< u32 unix seconds (two registers)
  ScaledRegister driftTempK{5, 0.1};      ///< drift-tube temperature → K
  ScaledRegister pressureHpa{6, 0.1};     ///< ambient pressure → hPa
  ScaledRegister desorberTempC{7, 0.1};   ///< desorber temperature → °C
  int points = 8;                         ///< spectrum length register
  int periodNs = 9;                       ///< drift-time step register, ns
  int segments = 10;                      ///< scans averaged
  int alarmCount = 11;                    ///< alarms the device raised
  int alarms = 12;                        ///< first (code, amplitude) pair
  int maxAlarms = 8;                      ///< pairs in the alarm block
  int spectrum = 100;                     ///< first spectrum register
  ImsStatusBits bits;                     ///< status bit numbers
  std::map<int, std::string> alarmCodes;  ///< device alarm code → substance name

  /// First register of the header block (everything but the spectrum and commands).
  [[nodiscard]] int headerFirst() const;
  /// Registers in the header block.
  [[nodiscard]] int headerCount() const;
  /// A register of a header block read from headerFirst().
  [[nodiscard]] std::uint16_t at(std::span<const std::uint16_t> header, int address) const;
  /// A 32-bit value of a header block, in the profile's word order.
  [[nodiscard]] std::uint32_t u32At(std::span<const std::uint16_t> header, int address) const;
  /// Writes a 32-bit value at regs[address], in the profile's word order.
  void putU32(std::span<std::uint16_t> regs, int address, std::uint32_t value) const;
  /// The alarm code of a substance name, or nullopt.
  [[nodiscard]] std::optional<int> alarmCodeOf(std::string_view substance) const;
  /// Highest register address the profile uses (for sizing a simulator's map).
  [[nodiscard]] int lastAddress() const;
};

/// Parses a profile; every error is located in `file`.
[[nodiscard]] tl::expected<ImsProfile, ConfigErrors> parseImsProfile(std::string_view yamlText,
                                                                     const std::string& file);

}  // namespace lanegate
