#pragma once
// The one narrow interface every device driver implements. A driver runs on its own
// thread (libmodbus blocks); the daemon calls open() once, poll() at the driver's
// interval, command() when a technician asks, and close() at the end. No exception
// crosses this boundary: every outcome is a value that tells the caller what to do.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "drivers/events.h"

namespace lanegate {

/// What the caller should do after a driver call.
enum class DriverAction {
  ok,             ///< carry on
  retry,          ///< transient failure: close, back off, open again
  outOfService,   ///< the device cannot be used until a technician acts
};

/// A device's health as published on its retained status topic.
struct DeviceHealth {
  std::string state = "unknown";  ///< ok, fault, offline, out_of_service, calibration_due, ...
  std::string detail;                       ///< one readable sentence when not ok
  std::map<std::string, double> readings;   ///< e.g. drift_temp_k, pressure_hpa
  std::uint64_t faults = 0;                 ///< bad replies and rejected samples so far
};

/// What one poll returned.
struct PollResult {
  DriverAction action = DriverAction::ok;
  DeviceHealth health;
  std::vector<Sample> samples;  ///< typed events, in the order they were read
  std::string error;  ///< set when action is not ok
};

/// A technician's command (calibrate, verify, clear fault) and its outcome.
struct Command {
  std::string name;
};
/// The outcome of a command.
struct CommandResult {
  bool ok = false;
  std::string message;
};

/// The configuration entry of one device (`devices:` in lanegate.yaml).
struct DeviceSpec {
  std::string name;
  std::string type;
  YAML::Node settings;  ///< the whole entry, including name and type
  std::string file;     ///< config file, for messages
  int line = 0;
};

/// A device driver; one instance per configured device, used from one thread.
class Driver {
 public:
  virtual ~Driver() = default;
  /// Connects to the device.
  virtual DriverAction open(std::string& error) = 0;
  /// Reads the device once.
  virtual PollResult poll() = 0;
  /// Runs a technician's command.
  virtual CommandResult command(const Command& cmd) = 0;
  /// Releases the device; safe to call when not open.
  virtual void close() = 0;
  /// How long to wait between polls.
  [[nodiscard]] virtual std::chrono::milliseconds pollInterval() const = 0;
  /// The longest open(), poll() or close() blocks when the device answers within the
  /// driver's timeouts; a call 3x over it counts as wedged (the daemon stops the watchdog).
  [[nodiscard]] virtual std::chrono::milliseconds callTimeout() const {
    return std::chrono::seconds(10);
  }
  /// The same for command(), which may wait for the device to finish (calibrations).
  [[nodiscard]] virtual std::chrono::milliseconds commandTimeout() const { return callTimeout(); }
};

/// A driver that never opens and says why (e.g. its profile vanished after validation),
/// instead of throwing across the driver boundary.
std::unique_ptr<Driver> outOfServiceDriver(std::string why);

}  // namespace lanegate
