#pragma once

// The command protocol that Contracts 3 (IMS) and 4 (X-ray PLC) share: write a code to the
// command register, then follow the result register through running to ok or failed.

#include <algorithm>
#include <chrono>
#include <map>
#include <string>

#include "drivers/driver.h"
#include "drivers/modbus_link.h"

namespace lanegate {

/// Where and how one device takes commands (from its profile and settings).
struct ModbusCommandSpec {
  std::string what = "device";  ///< how messages name the device: "device", "scanner"
  std::string known;            ///< the command names, for the unknown-command message
  const std::map<std::string, int>* codes = nullptr;  ///< command name → code
  int unitId = 1;
  int commandRegister = 40;
  int commandResult = 41;
  RegisterTable commandResultTable = RegisterTable::holding;
  int resultRunning = 1, resultOk = 2, resultFailed = 3;
  std::chrono::milliseconds responseTimeout{1000};  ///< per request
  std::chrono::milliseconds pollStep{100};          ///< between reads of the result
  std::chrono::milliseconds commandTimeout{30000};  ///< for the whole command
};

/// Runs `cmd` and follows it to its result; blocks up to spec.commandTimeout.
CommandResult runModbusCommand(ModbusLink& link, const ModbusCommandSpec& spec, const Command& cmd);

/// The spec from a profile with the command fields of Contracts 3 and 4 (commandCodes,
/// commandRegister, commandResult, commandResultTable, result codes); the result register is
/// read every `interval`, at most every 100 ms.
template <typename Profile>
ModbusCommandSpec commandSpecOf(const Profile& profile, std::string what, std::string known, int unitId,
                                std::chrono::milliseconds responseTimeout, std::chrono::milliseconds interval,
                                std::chrono::milliseconds commandTimeout) {
  ModbusCommandSpec spec;
  spec.what = std::move(what);
  spec.known = std::move(known);
  spec.codes = &profile.commandCodes;
  spec.unitId = unitId;
  spec.commandRegister = profile.commandRegister;
  spec.commandResult = profile.commandResult;
  spec.commandResultTable = profile.commandResultTable;
  spec.resultRunning = profile.resultRunning;
  spec.resultOk = profile.resultOk;
  spec.resultFailed = profile.resultFailed;
  spec.responseTimeout = responseTimeout;
  spec.pollStep = std::min(std::chrono::milliseconds(100), interval);
  spec.commandTimeout = commandTimeout;
  return spec;
}

}  // namespace lanegate
