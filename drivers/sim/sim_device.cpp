#include "drivers/sim/sim_device.h"

#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>

namespace lanegate::sim {

namespace {
volatile std::sig_atomic_t gStop = 0;
// 1: SIGUSR1 asked for the fault, 0: SIGUSR2 asked it away, -1: nothing asked since taken.
volatile std::sig_atomic_t gFaultWanted = -1;
extern "C" void onStopSignal(int) { gStop = 1; }
extern "C" void onFaultSignal(int sig) { gFaultWanted = sig == SIGUSR1 ? 1 : 0; }
}  // namespace

void stopOnSignals() {
  struct sigaction sa {};
  sa.sa_handler = onStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction fa {};
  fa.sa_handler = onFaultSignal;
  sigemptyset(&fa.sa_mask);
  sigaction(SIGUSR1, &fa, nullptr);
  sigaction(SIGUSR2, &fa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

bool stopRequested() { return gStop != 0; }

std::optional<bool> takeFaultRequest() {
  const std::sig_atomic_t wanted = gFaultWanted;
  if (wanted < 0) return std::nullopt;
  gFaultWanted = -1;
  return wanted == 1;
}

void addDeviceSimOptions(CLI::App& app, DeviceSimOptions& o) {
  app.add_option("--port", o.server.port, "TCP port to serve on; 0: any free one (printed)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--host", o.server.host, "address to serve on")->capture_default_str();
  app.add_option("--unit-id", o.server.unitId, "Modbus unit id answered over RTU")
      ->check(CLI::Range(1, 247));
  app.add_option_function<std::string>(
         "--rtu",
         [&o](const std::string& device) {
           o.server.transport = "rtu";
           o.server.device = device;
         },
         "serve Modbus RTU on this serial device instead of TCP")
      ->type_name("DEVICE");
  app.add_option("--baud", o.server.baud, "RTU line speed")->check(CLI::Range(300, 4'000'000));
  app.add_option_function<std::string>(
         "--parity",
         [&o](const std::string& p) {
           o.server.parity = p == "even" ? 'E' : p == "odd" ? 'O' : 'N';
         },
         "RTU parity")
      ->check(CLI::IsMember({"none", "even", "odd"}));
  app.add_option("--profile", o.profilePath, "register profile")->capture_default_str();
  app.add_option("--seed", o.seed, "what the device produces is reproducible per seed")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 62U));
  app.add_option_function<long long>(
         "--command-ms", [&o](long long ms) { o.commandTime = std::chrono::milliseconds(ms); },
         "how long a command runs")
      ->check(CLI::Range(0LL, 3'600'000LL));
  app.add_flag("--fail-commands", o.failCommands, "commands end in failed");
  app.add_flag("--calibration-due", o.calibrationDue, "start with calibration_due set");
  app.add_option("--fault", o.fault,
                 "misbehave: stall, disconnect, garbage, exception, or device (the fault bit); "
                 "SIGUSR1 starts a wire fault, SIGUSR2 ends it")
      ->check(CLI::IsMember(faultNames()));
  app.add_option("--fault-after", o.faultAfter, "samples or scans produced before the fault starts")
      ->check(CLI::Range(0, 1'000'000));
}

std::optional<std::string> parseSimArgs(CLI::App& app, std::span<const std::string> args) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return std::string();
  } catch (const CLI::ParseError& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

std::span<std::uint16_t> ProfileRegisters::table() {
  return profile_.table == RegisterTable::input ? server_.input() : server_.holding();
}

std::uint16_t& ProfileRegisters::result() {
  const ProfileCommands& c = profile_.commands;
  return (c.resultTable == RegisterTable::input
              ? server_.input()
              : server_.holding())[static_cast<std::size_t>(c.resultRegister)];
}

void ProfileRegisters::setStatusBit(const std::optional<int>& bit, bool on) {
  if (!bit) return;
  auto& status = table()[static_cast<std::size_t>(profile_.status)];
  const auto mask = static_cast<std::uint16_t>(1U << static_cast<unsigned>(*bit));
  status =
      on ? static_cast<std::uint16_t>(status | mask) : static_cast<std::uint16_t>(status & ~mask);
}

void ProfileRegisters::initialise(const std::optional<int>& readyBit,
                                  const std::optional<int>& calibrationDueBit, bool due) {
  if (profile_.versionAddress)
    table()[static_cast<std::size_t>(*profile_.versionAddress)] =
        static_cast<std::uint16_t>(profile_.expectedVersion);
  setStatusBit(readyBit, true);
  setStatusBit(calibrationDueBit, due);
  result() = static_cast<std::uint16_t>(profile_.commands.idle);
}

std::optional<std::string> ProfileRegisters::takeCommand(const ServerRequest& req) {
  const ProfileCommands& c = profile_.commands;
  if (req.function != 6 && req.function != 16) return std::nullopt;
  if (req.address > c.commandRegister || req.address + req.count <= c.commandRegister)
    return std::nullopt;
  auto& reg = server_.holding()[static_cast<std::size_t>(c.commandRegister)];
  const int code = reg;
  reg = 0;
  return c.nameOf(code);
}

void applyFault(ModbusServer& server, ProfileRegisters& registers,
                const std::optional<int>& faultBit, const std::string& fault) {
  if (fault == "device") {
    auto lock = server.lock();
    registers.setStatusBit(faultBit, true);
    return;
  }
  server.setFault(parseServerFault(fault).value_or(ServerFault::none));
}

const std::vector<std::string>& faultNames() {
  static const std::vector<std::string> names{"none",    "stall",     "disconnect",
                                              "garbage", "exception", "device"};
  return names;
}

}  // namespace lanegate::sim
