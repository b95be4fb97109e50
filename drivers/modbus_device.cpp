#include "drivers/modbus_device.h"

#include <algorithm>
#include <filesystem>

#include "drivers/modbus_command.h"

namespace lanegate {

ModbusDeviceSettings readModbusDeviceSettings(SettingsReader& s,
                                              const ModbusDeviceDefaults& defaults) {
  ModbusDeviceSettings m;
  m.name = s.string("name", std::string(defaults.name));
  m.link = readLinkConfig(s);
  m.unitId = static_cast<int>(s.integer("unit_id", 1, 0, 247));
  m.profilePath = resolveConfigPath(s.file(), s.string("profile", std::string(defaults.profile)));
  m.interval =
      std::chrono::milliseconds(s.integer("poll_interval_ms", defaults.intervalMs, 10, 3'600'000));
  m.commandTimeout = std::chrono::milliseconds(
      s.integer("command_timeout_ms", defaults.commandTimeoutMs, 100, 3'600'000));
  return m;
}

std::string resolveConfigPath(const std::string& configFile, const std::string& path) {
  const std::filesystem::path p(path);
  if (path.empty() || p.is_absolute() || configFile.empty()) return path;
  return (std::filesystem::path(configFile).parent_path() / p).lexically_normal().string();
}

void reportProfileErrors(SettingsReader& settings, const ModbusDeviceSettings& device,
                         const ConfigErrors& errors) {
  for (const auto& e : errors.all()) settings.errors().add(e.file, e.line, e.message);
  settings.errors().add(settings.file(), settings.lineOfKey("profile"),
                        "device '" + device.name + "': profile '" + device.profilePath +
                            "' is not usable (see above)");
}

ModbusDevice::ModbusDevice(ModbusDeviceSettings settings, const ModbusProfile& profile,
                           std::string what, std::string commandNames)
    : settings_(std::move(settings)),
      profile_(profile),
      what_(std::move(what)),
      commandNames_(std::move(commandNames)),
      link_(acquireLink(settings_.link)) {}

DriverAction ModbusDevice::open(std::string& error) {
  onOpen();
  if (auto r = link_->connect(); !r) {
    error = r.error().message;
    return DriverAction::retry;
  }
  if (!profile_.versionAddress) return DriverAction::ok;
  auto v = link_->read(settings_.unitId, profile_.table, *profile_.versionAddress, 1,
                       kMaxRegistersPerRead, timeout());
  if (!v) {
    if (v.error().kind == LinkErrorKind::exception || v.error().kind == LinkErrorKind::badData)
      ++faults_;
    error = v.error().message;
    return DriverAction::retry;
  }
  if ((*v)[0] != profile_.expectedVersion) {
    // Reading another layout as this one would publish nonsense: stop until a technician acts.
    error = "device reports profile_version " + std::to_string((*v)[0]) + ", profile '" +
            profile_.name + "' (" + profile_.file + ") expects " +
            std::to_string(profile_.expectedVersion);
    return DriverAction::outOfService;
  }
  return DriverAction::ok;
}

CommandResult ModbusDevice::command(const Command& cmd) {
  ModbusCommandSpec spec;
  spec.what = what_;
  spec.known = commandNames_;
  spec.commands = &profile_.commands;
  spec.unitId = settings_.unitId;
  spec.responseTimeout = timeout();
  spec.pollStep = std::min(std::chrono::milliseconds(100), settings_.interval);
  spec.commandTimeout = settings_.commandTimeout;
  return runModbusCommand(*link_, spec, cmd);
}

void ModbusDevice::close() {
  if (settings_.link.transport == "tcp") link_->close();
}

PollResult ModbusDevice::failed(PollResult r, const LinkError& e) {
  const bool fault = e.kind == LinkErrorKind::exception || e.kind == LinkErrorKind::badData ||
                     e.kind == LinkErrorKind::invalid;
  if (fault) ++faults_;
  r.action = e.needsReconnect() ? DriverAction::retry : DriverAction::ok;
  r.error = e.message;
  r.health.state = fault ? "fault" : "offline";
  r.health.detail = e.message;
  r.health.faults = faults_;
  r.samples.clear();
  return r;
}

}  // namespace lanegate
