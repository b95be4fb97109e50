#include "drivers/modbus_command.h"

#include <optional>
#include <thread>

namespace lanegate {

CommandResult runModbusCommand(ModbusLink& link, const ModbusCommandSpec& spec, const Command& cmd) {
  using Clock = std::chrono::steady_clock;
  using std::chrono::milliseconds;
  const ProfileCommands& c = *spec.commands;
  const auto found = c.codes.find(cmd.name);
  if (found == c.codes.end())
    return {false, "unknown command '" + cmd.name + "' (" + spec.known + ")"};
  if (auto up = link.connect(); !up) return {false, cmd.name + ": " + up.error().message};
  auto readResult = [&]() -> LinkResult<std::uint16_t> {
    auto v = link.read(spec.unitId, c.resultTable, c.resultRegister, 1, kMaxRegistersPerRead,
                       spec.responseTimeout);
    if (!v) return tl::make_unexpected(v.error());
    return (*v)[0];
  };
  const auto before = readResult();
  if (!before) return {false, cmd.name + ": cannot read command_result: " + before.error().message};
  if (*before == c.running)
    return {false, cmd.name + ": the " + spec.what + " is still running another command"};
  if (auto w = link.write(spec.unitId, c.commandRegister, static_cast<std::uint16_t>(found->second),
                          spec.responseTimeout);
      !w) {
    return {false, cmd.name + ": cannot write the command register: " + w.error().message};
  }
  const auto start = Clock::now();
  bool sawRunning = false;
  while (Clock::now() - start < spec.commandTimeout) {
    std::this_thread::sleep_for(spec.pollStep);
    const auto now = readResult();
    if (!now) return {false, cmd.name + ": lost the " + spec.what + ": " + now.error().message};
    if (*now == c.running) {
      sawRunning = true;
      continue;
    }
    // The result of the previous command may still stand until the device takes the new
    // one: trust ok/failed once it ran, changed, or had a second to start.
    const bool fresh = sawRunning || *now != *before || Clock::now() - start > milliseconds(1000);
    if (!fresh) continue;
    const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
    if (*now == c.ok) return {true, cmd.name + " ok (" + std::to_string(took) + " ms)"};
    if (*now == c.failed)
      return {false, cmd.name + " failed: the " + spec.what + " reported failure"};
  }
  return {false, cmd.name + ": no result within " + std::to_string(spec.commandTimeout.count()) + " ms"};
}

}  // namespace lanegate
