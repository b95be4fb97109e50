#pragma once
// What the simulated devices share: the command-line options that put a device on the
// wire and make it misbehave (one definition for `lanegate-sim ims` and `lanegate-sim
// xray`), and the registers every profile has: profile_version, the status bits and the
// command protocol (a code written to the command register, progress in the result
// register).

#include <chrono>
#include <cstdint>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "drivers/modbus_profile.h"
#include "drivers/sim/modbus_server.h"

namespace CLI {
class App;
}

namespace lanegate::sim {

/// Options both simulators take.
struct DeviceSimOptions {
  ServerOptions server;                         ///< where to serve
  std::string profilePath;                      ///< register map
  std::uint64_t seed = 1;                       ///< what it produces is reproducible per seed
  std::chrono::milliseconds commandTime{1000};  ///< how long a command runs (at least)
  bool failCommands = false;                    ///< commands end in "failed"
  bool calibrationDue = false;                  ///< starts with calibration_due set
  std::string fault = "none";                   ///< none|stall|disconnect|garbage|exception|device
  int faultAfter = 0;        ///< samples or scans produced before the fault starts
  bool printEvents = false;  ///< one stdout line per sample, scan and command
};

/// Adds --port, --host, --unit-id, --rtu, --baud, --parity, --profile, --seed, --command-ms,
/// --fail-commands, --calibration-due, --fault and --fault-after to a simulator's command.
void addDeviceSimOptions(CLI::App& app, DeviceSimOptions& options);

/// Parses a simulator's arguments (after its subcommand) with `app`: nothing, or the
/// message of a usage error ("" when --help was asked for; the help is then on stdout).
std::optional<std::string> parseSimArgs(CLI::App& app, std::span<const std::string> args);

/// Makes SIGTERM and SIGINT ask a simulator's command line to stop, SIGUSR1 and SIGUSR2
/// start and end its --fault (SIGPIPE is ignored).
void stopOnSignals();
/// True once SIGTERM or SIGINT arrived.
[[nodiscard]] bool stopRequested();
/// What the last SIGUSR1 (true) or SIGUSR2 (false) asked for, once; nothing if neither came.
[[nodiscard]] std::optional<bool> takeFaultRequest();

/// A simulator's command line after parsing: a usage error (exit 2; --help already printed,
/// exit 0), or the simulator served until SIGTERM/SIGINT, printing "listening on ADDR:PORT"
/// first and "stopping" last (exit 0; 1 when it cannot start).
template <typename Simulator, typename Options>
int runSimulator(const std::string& name, tl::expected<Options, std::string> options) {
  if (!options) {
    if (options.error().empty()) return 0;
    std::cerr << name << ": " << options.error() << "\nRun with --help for more information.\n";
    return 2;
  }
  stopOnSignals();
  options->printEvents = true;
  // A wire fault (stall, disconnect, garbage, exception) comes and goes with SIGUSR1 and
  // SIGUSR2, so a test can make a device misbehave and come back without restarting it.
  const ServerFault wireFault = parseServerFault(options->fault).value_or(ServerFault::none);
  auto sim = Simulator::create(std::move(*options));
  if (!sim) {
    std::cerr << name << ": " << sim.error() << "\n";
    return 1;
  }
  std::cout << "listening on " << (*sim)->server().where() << std::endl;
  while (!stopRequested()) {
    if (const auto on = takeFaultRequest()) {
      (*sim)->server().setFault(*on ? wireFault : ServerFault::none);
      std::cout << "fault " << (*on ? "on" : "off") << std::endl;
    }
    (*sim)->step(std::chrono::milliseconds(20));
  }
  sim->reset();  // lets a worker finish the file it is writing, and its line
  std::cout << "stopping" << std::endl;
  return 0;
}

/// The registers of a profile's shared part on a server. Lock the server around every call.
class ProfileRegisters {
 public:
  /// Both are borrowed and must outlive this.
  ProfileRegisters(ModbusServer& server, const ModbusProfile& profile)
      : server_(server), profile_(profile) {}
  /// The table the readable registers live in.
  [[nodiscard]] std::span<std::uint16_t> table();
  /// The command result register.
  [[nodiscard]] std::uint16_t& result();
  /// Sets or clears a status bit (nothing when the profile has no such bit).
  void setStatusBit(const std::optional<int>& bit, bool on);
  /// profile_version, the ready bit, calibration_due as asked, an idle command result.
  void initialise(const std::optional<int>& readyBit, const std::optional<int>& calibrationDueBit,
                  bool due);
  /// After a request: the command a write put in the command register (which is cleared
  /// again, as a device takes it), or nullopt when the request wrote no command.
  std::optional<std::string> takeCommand(const ServerRequest& request);

 private:
  ModbusServer& server_;
  const ModbusProfile& profile_;
};

/// Starts playing `fault`: "device" sets the profile's fault bit (the device says it is
/// broken), the others the server plays on the wire (stall, disconnect, garbage, exception).
void applyFault(ModbusServer& server, ProfileRegisters& registers,
                const std::optional<int>& faultBit, const std::string& fault);

/// The fault names --fault takes.
const std::vector<std::string>& faultNames();

}  // namespace lanegate::sim
