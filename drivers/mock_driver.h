#pragma once
// `type: mock` — a software device that behaves like a real one (open, poll, health,
// commands, failures on request), for tests and for trying a config without hardware.

#include "drivers/registry.h"

namespace lanegate {

/// Validates a mock device entry.
void validateMockDriver(SettingsReader& settings);
/// Creates a mock device.
std::unique_ptr<Driver> createMockDriver(const DeviceSpec& spec);

}  // namespace lanegate
