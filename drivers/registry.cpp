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

namespace {
class OutOfServiceDriver final : public Driver {
 public:
  explicit OutOfServiceDriver(std::string why) : why_(std::move(why)) {}
  DriverAction open(std::string& error) override {
    error = why_;
    return DriverAction::outOfService;
  }
  PollResult poll() override {
    PollResult r;
    r.action = DriverAction::outOfService;
    r.error = why_;
    r.health.state = "fault";
    r.health.detail = why_;
    return r;
  }
  CommandResult command(const Command&) override { return {false, why_}; }
  void close() override {}
  [[nodiscard]] std::chrono::milliseconds pollInterval() const override { return std::chrono::milliseconds(1000); }

 private:
  std::string why_;
};
}  // namespace

std::unique_ptr<Driver> outOfServiceDriver(std::string why) {
  return std::make_unique<OutOfServiceDriver>(std::move(why));
}

}  // namespace lanegate
