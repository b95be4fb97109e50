#include "drivers/registry.h"

#include <array>

#include "drivers/ims_driver.h"
#include "drivers/mock_driver.h"
#include "drivers/xray_driver.h"

namespace lanegate {
namespace {

// Add a driver here: its config type, a one-line summary, its validator and factory.
constexpr std::array kDriverTypes{
    DriverType{"mock", "software device for tests and dry runs (no hardware)",
               &validateMockDriver, &createMockDriver},
    DriverType{"ims", "ion-mobility trace detector over Modbus TCP/RTU (register profile)",
               &validateImsDriver, &createImsDriver},
    DriverType{"xray", "cargo X-ray scanner: PLC over Modbus TCP/RTU (register profile), inbox",
               &validateXrayDriver, &createXrayDriver},
};

}  // namespace

std::span<const DriverType> driverTypes() { return kDriverTypes; }

const DriverType* findDriverType(std::string_view type) {
  for (const auto& t : kDriverTypes)
    if (t.type == type) return &t;
  return nullptr;
}

std::string serialBusOf(const DeviceSpec& spec) {
  const YAML::Node& s = spec.settings;
  if (!s.IsMap() || !s["transport"] || !s["transport"].IsScalar() || s["transport"].Scalar() != "rtu") return "";
  return s["device"] && s["device"].IsScalar() ? s["device"].Scalar() : "";
}

}  // namespace lanegate
