#pragma once

// The command protocol that Contracts 3 (IMS) and 4 (X-ray PLC) share: write a code to the
// command register, then follow the result register through running to ok or failed.

#include <chrono>
#include <string>

#include "drivers/driver.h"
#include "drivers/modbus_link.h"
#include "drivers/modbus_profile.h"

namespace lanegate {

/// Where and how one device takes commands (from its profile and settings).
struct ModbusCommandSpec {
  std::string what = "device";  ///< how messages name the device: "device", "scanner"
  std::string known;            ///< the command names, for the unknown-command message
  const ProfileCommands* commands = nullptr;  ///< registers, codes and result values (borrowed)
  int unitId = 1;
  std::chrono::milliseconds responseTimeout{1000};  ///< per request
  std::chrono::milliseconds pollStep{100};          ///< between reads of the result
  std::chrono::milliseconds commandTimeout{30000};  ///< for the whole command
};

/// Runs `cmd` and follows it to its result; blocks up to spec.commandTimeout.
CommandResult runModbusCommand(ModbusLink& link, const ModbusCommandSpec& spec, const Command& cmd);

}  // namespace lanegate
