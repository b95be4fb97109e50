#include "drivers/xray_driver.h"

#include <filesystem>

#include "drivers/modbus_device.h"
#include "drivers/xray_profile.h"

namespace lanegate {
namespace {

using std::chrono::milliseconds;

struct XrayDriverSettings {
  ModbusDeviceSettings device;
};

XrayDriverSettings readDriverSettings(SettingsReader& s) {
  return {readModbusDeviceSettings(s, {"xray", "profiles/xray-generic-v1.yaml", 200, 120'000})};
}

class XrayDriver final : public ModbusDevice {
 public:
  XrayDriver(XrayDriverSettings settings, XrayProfile profile)
      : ModbusDevice(std::move(settings.device), profile, "scanner", "dark, air, clear_fault"),
        profile_(std::move(profile)) {}

  PollResult poll() override {
    PollResult r;
    auto block = link().read(settings().unitId, profile_.table, profile_.blockFirst(),
                             profile_.blockCount(), kMaxRegistersPerRead, timeout());
    if (!block) return failed(std::move(r), block.error());
    const ScannerState state = stateOf(*block);
    fillHealth(r.health, state);
    if (fresh_ || state.scanSeq != last_.scanSeq || state.laneOccupied != last_.laneOccupied) {
      // Built in place: moving a temporary variant trips GCC 12's -Wmaybe-uninitialized at -O2.
      Sample& s = r.samples.emplace_back();
      s.time = std::chrono::system_clock::now();
      s.event = state;
      fresh_ = false;
      last_ = state;
    }
    return r;
  }

 private:
  void onOpen() override {
    fresh_ = true;
  }  // the first poll of a connection re-announces the PLC's state

  ScannerState stateOf(std::span<const std::uint16_t> block) const {
    const auto& b = profile_.bits;
    ScannerState s;
    s.status = profile_.at(block, profile_.status);
    s.scanSeq = profile_.at(block, profile_.scanSeq);
    s.laneOccupied = profile_.at(block, profile_.laneOccupied) != 0;
    s.ready = XrayProfile::bitSet(s.status, b.ready);
    s.scanning = XrayProfile::bitSet(s.status, b.scanning);
    s.radiationOn = XrayProfile::bitSet(s.status, b.radiationOn);
    s.interlockOpen = XrayProfile::bitSet(s.status, b.interlockOpen);
    s.fault = XrayProfile::bitSet(s.status, b.fault);
    s.calibrationDue = XrayProfile::bitSet(s.status, b.calibrationDue);
    return s;
  }

  void fillHealth(DeviceHealth& h, const ScannerState& s) const {
    h.readings = {{"status", s.status},
                  {"scan_seq", s.scanSeq},
                  {"lane_occupied", s.laneOccupied ? 1 : 0},
                  {"ready", s.ready ? 1 : 0},
                  {"scanning", s.scanning ? 1 : 0},
                  {"radiation_on", s.radiationOn ? 1 : 0},
                  {"interlock_open", s.interlockOpen ? 1 : 0},
                  {"calibration_due", s.calibrationDue ? 1 : 0}};
    h.faults = faults_;
    if (s.fault) {
      h.state = "fault";
      h.detail = "the scanner reports a fault (status " + std::to_string(s.status) + ")";
    } else if (s.interlockOpen) {
      h.state = "interlock_open";
      h.detail = "a safety interlock is open: the scanner cannot scan";
    } else if (s.calibrationDue) {
      h.state = "calibration_due";
      h.detail = "the scanner asks for a dark and air calibration";
    } else if (profile_.bits.ready && !s.ready) {
      h.state = "not_ready";
      h.detail = "the scanner is not ready (warming up or busy)";
    } else {
      h.state = "ok";
    }
  }

  XrayProfile profile_;
  bool fresh_ = true;
  ScannerState last_;
};

}  // namespace

XrayLaneSettings readXrayLaneSettings(SettingsReader& s) {
  XrayLaneSettings l;
  const std::string where = "device '" + s.string("name", std::string("xray")) + "': ";
  const auto before = s.errors().all().size();
  const std::string inbox = s.string("inbox", std::nullopt);
  if (s.errors().all().size() == before) {
    if (inbox.empty() || inbox.find('\0') != std::string::npos)
      s.errors().add(s.file(), s.lineOfKey("inbox"), where + "'inbox' must be a directory path");
    else if (std::filesystem::path(inbox).lexically_normal() == "/")
      s.errors().add(s.file(), s.lineOfKey("inbox"),
                     where + "'inbox' must not be the root directory");
  }
  l.inbox = resolveConfigPath(s.file(), inbox);
  l.workers = static_cast<int>(s.integer("workers", 1, 1, 8));
  l.queue = static_cast<int>(s.integer("queue", 4, 1, 64));
  l.retentionDays = s.number("retention_days", 30.0, 0.0, 3650.0);
  l.retentionMb = s.integer("retention_mb", 2048, 0, 16'777'216);
  l.calibrationMaxAgeHours = s.number("calibration_max_age_h", 24.0, 0.1, 8760.0);
  return l;
}

XrayLaneSettings readXrayLaneSettings(const DeviceSpec& spec) {
  ConfigErrors ignored;  // validated before; defaults stand in for anything odd
  SettingsReader reader(spec.file, spec.settings, "device", ignored);
  return readXrayLaneSettings(reader);
}

void validateXrayDriver(SettingsReader& settings) {
  validateModbusDevice(settings, readDriverSettings, parseXrayProfile);
  readXrayLaneSettings(settings);
}

std::unique_ptr<Driver> createXrayDriver(const DeviceSpec& spec) {
  return createModbusDevice<XrayDriver>(spec, readDriverSettings, parseXrayProfile);
}

}  // namespace lanegate
