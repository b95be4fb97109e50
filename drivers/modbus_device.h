#pragma once
// What the two Modbus drivers (ims, xray) share: the keys of a device entry that reach a
// device (transport, address, unit, profile, intervals), and the connection handling:
// open() connects and checks the profile_version register, command() runs the command
// protocol of the profile, close() releases a TCP link (a serial bus stays with the
// other devices on it), and a failed request becomes health and an action. A driver
// derives from ModbusDevice and writes poll().

#include <chrono>
#include <memory>
#include <string>

#include <tl/expected.hpp>

#include "drivers/driver.h"
#include "drivers/modbus_link.h"
#include "drivers/modbus_profile.h"
#include "drivers/settings.h"

namespace lanegate {

/// The keys of a Modbus device entry.
struct ModbusDeviceSettings {
  std::string name;                                  ///< the device's configured name
  LinkConfig link;                                   ///< transport, address, timeouts
  int unitId = 1;                                    ///< Modbus unit id
  std::string profilePath;                           ///< resolved against the config file
  std::chrono::milliseconds interval{500};           ///< between polls
  std::chrono::milliseconds commandTimeout{60'000};  ///< for a whole command
};

/// Defaults that differ between device types.
struct ModbusDeviceDefaults {
  const char* name;               ///< used when the entry has none (messages only)
  const char* profile;            ///< relative to the config file
  std::int64_t intervalMs;        ///< poll_interval_ms
  std::int64_t commandTimeoutMs;  ///< command_timeout_ms
};

/// Reads transport, host, port, device, baud, parity, data_bits, stop_bits,
/// response_timeout_ms, byte_timeout_ms, unit_id, profile, poll_interval_ms, command_timeout_ms.
ModbusDeviceSettings readModbusDeviceSettings(SettingsReader& settings,
                                              const ModbusDeviceDefaults& defaults);

/// A path from a config file: absolute as it is, else relative to the file's directory,
/// so that a config directory (/etc/lanegate, or config/ in the source tree) carries its
/// profiles and inboxes along.
std::string resolveConfigPath(const std::string& configFile, const std::string& path);

/// Records a profile's errors under the device entry that names it.
void reportProfileErrors(SettingsReader& settings, const ModbusDeviceSettings& device,
                         const ConfigErrors& errors);

/// A Modbus device's connection, commands and failure handling.
class ModbusDevice : public Driver {
 public:
  /// `profile` is the shared part of the device's profile (copied); `what` names the device
  /// in command messages ("device", "scanner"), `commandNames` lists its commands.
  ModbusDevice(ModbusDeviceSettings settings, const ModbusProfile& profile, std::string what,
               std::string commandNames);
  /// Connects and checks profile_version: a device of another layout is out of service.
  DriverAction open(std::string& error) override;
  /// Runs a command of the profile; blocks up to command_timeout_ms.
  CommandResult command(const Command& cmd) override;
  /// Closes a TCP link; a serial bus is shared with the other devices on it.
  void close() override;
  [[nodiscard]] std::chrono::milliseconds pollInterval() const override {
    return settings_.interval;
  }
  /// Each request of a poll (or of open: connect, profile_version) waits at most the
  /// response timeout.
  [[nodiscard]] std::chrono::milliseconds callTimeout() const override {
    return timeout() * requestsPerPoll();
  }
  /// command_timeout_ms, and one response timeout for the request that ends it.
  [[nodiscard]] std::chrono::milliseconds commandTimeout() const override {
    return settings_.commandTimeout + timeout();
  }

 protected:
  /// The most requests one poll() makes.
  [[nodiscard]] virtual int requestsPerPoll() const { return 4; }
  /// Called by open() before it connects (e.g. to announce the state again).
  virtual void onOpen() {}
  /// This device's response timeout, also when its serial bus was opened by another.
  [[nodiscard]] std::chrono::milliseconds timeout() const { return settings_.link.responseTimeout; }
  /// A poll that failed: exception replies, garbage and rejected data count a fault; the
  /// action says whether to reconnect; health says fault or offline.
  PollResult failed(PollResult result, const LinkError& error);
  /// The link.
  [[nodiscard]] ModbusLink& link() { return *link_; }
  /// The settings.
  [[nodiscard]] const ModbusDeviceSettings& settings() const { return settings_; }

  std::uint64_t faults_ = 0;  ///< bad replies and rejected samples so far

 private:
  ModbusDeviceSettings settings_;
  ModbusProfile profile_;
  std::string what_, commandNames_;
  std::shared_ptr<ModbusLink> link_;
};

/// Validates a Modbus device entry with its settings reader and profile loader (a profile
/// that does not load is reported with the entry's line).
template <typename Settings, typename Profile>
void validateModbusDevice(SettingsReader& reader, Settings (*read)(SettingsReader&),
                          ProfileParser<Profile> parse) {
  const Settings s = read(reader);
  if (auto profile = loadProfile(s.device.profilePath, parse); !profile)
    reportProfileErrors(reader, s.device, profile.error());
}

/// Creates a validated Modbus device entry's driver; a profile that vanished since
/// validation gives a driver that stays out of service and says why.
template <typename Device, typename Settings, typename Profile>
std::unique_ptr<Driver> createModbusDevice(const DeviceSpec& spec,
                                           Settings (*read)(SettingsReader&),
                                           ProfileParser<Profile> parse) {
  ConfigErrors ignored;  // validated before; defaults stand in for anything odd
  SettingsReader reader(spec.file, spec.settings, "device", ignored);
  reader.allow("type");
  Settings s = read(reader);
  if (!spec.name.empty()) s.device.name = spec.name;
  auto profile = loadProfile(s.device.profilePath, parse);
  if (!profile) return outOfServiceDriver(profile.error().str());
  return std::make_unique<Device>(std::move(s), std::move(*profile));
}

}  // namespace lanegate
