#pragma once
// The explicit table of driver types: config `type:` → validator and factory.
// A table, not static self-registration, because registrars in a static library are
// dropped by the linker when nothing references them.

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "drivers/driver.h"
#include "drivers/settings.h"

namespace lanegate {

/// One driver type known to the daemon.
struct DriverType {
  std::string_view type;     ///< the config `type:` value
  std::string_view summary;  ///< one line for `lanegatectl devices` and docs
  /// Checks a device entry's settings (reader holds the entry; name and type are read).
  void (*validate)(SettingsReader& settings);
  /// Creates the driver; the spec was validated before.
  std::unique_ptr<Driver> (*create)(const DeviceSpec& spec);
};

/// Every driver type, in table order.
std::span<const DriverType> driverTypes();
/// The driver type for a config `type:`, or nullptr.
const DriverType* findDriverType(std::string_view type);

/// The serial line a device is on (`transport: rtu` and its `device:` path), or "" when
/// it has a connection of its own. Devices on one line share one thread and context.
std::string serialBusOf(const DeviceSpec& spec);

}  // namespace lanegate
