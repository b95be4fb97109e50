#include "drivers/xray_driver.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "drivers/modbus_command.h"
#include "drivers/modbus_link.h"
#include "drivers/xray_profile.h"

namespace lanegate {
namespace {

using std::chrono::milliseconds;

struct XrayDriverSettings {
  std::string name;
  LinkConfig link;
  int unitId = 1;
  std::string profilePath;
  milliseconds interval{200};
  milliseconds commandTimeout{120'000};
};

// A relative path is relative to the config file that names it, so a config directory
// (/etc/lanegate, or config/ in the source tree) carries its profiles and inbox along.
std::string resolvePath(const std::string& configFile, const std::string& path) {
  const std::filesystem::path p(path);
  if (path.empty() || p.is_absolute() || configFile.empty()) return path;
  return (std::filesystem::path(configFile).parent_path() / p).lexically_normal().string();
}

XrayDriverSettings readDriverSettings(SettingsReader& s) {
  XrayDriverSettings m;
  m.name = s.string("name", std::string("xray"));
  m.link = readLinkConfig(s);
  m.unitId = static_cast<int>(s.integer("unit_id", 1, 0, 247));
  m.profilePath =
      resolvePath(s.file(), s.string("profile", std::string("profiles/xray-generic-v1.yaml")));
  m.interval = milliseconds(s.integer("poll_interval_ms", 200, 10, 3'600'000));
  m.commandTimeout = milliseconds(s.integer("command_timeout_ms", 120'000, 100, 3'600'000));
  return m;
}

class XrayDriver final : public Driver {
 public:
  XrayDriver(XrayDriverSettings settings, XrayProfile profile)
      : settings_(std::move(settings)),
        profile_(std::move(profile)),
        link_(acquireLink(settings_.link)) {}

  DriverAction open(std::string& error) override {
    fresh_ = true;  // the first poll of a connection re-announces the PLC's state
    if (auto r = link_->connect(); !r) {
      error = r.error().message;
      return DriverAction::retry;
    }
    if (profile_.versionAddress) {
      auto v = link_->read(settings_.unitId, profile_.table, *profile_.versionAddress, 1,
                           kMaxRegistersPerRead, timeout());
      if (!v) {
        if (v.error().kind == LinkErrorKind::exception || v.error().kind == LinkErrorKind::badData)
          ++faults_;
        error = v.error().message;
        return DriverAction::retry;
      }
      if ((*v)[0] != profile_.expectedVersion) {
        // Reading another layout as this one would follow the wrong registers: stop until fixed.
        error = "device reports profile_version " + std::to_string((*v)[0]) + ", profile '" +
                profile_.name + "' (" + profile_.file + ") expects " +
                std::to_string(profile_.expectedVersion);
        return DriverAction::outOfService;
      }
    }
    return DriverAction::ok;
  }

  PollResult poll() override {
    PollResult r;
    auto block = link_->read(settings_.unitId, profile_.table, profile_.blockFirst(),
                             profile_.blockCount(), kMaxRegistersPerRead, timeout());
    if (!block) return failed(std::move(r), block.error());
    const std::uint16_t status = profile_.at(*block, profile_.status);
    const std::uint16_t seq = profile_.at(*block, profile_.scanSeq);
    const bool occupied = profile_.at(*block, profile_.laneOccupied) != 0;
    fillHealth(r.health, status, seq, occupied);
    if (fresh_ || seq != lastSeq_ || occupied != lastOccupied_) {
      nlohmann::json j;
      j["device"] = settings_.name;
      j["scan_seq"] = seq;
      j["lane_occupied"] = occupied;
      j["status"] = status;
      Sample s;
      s.kind = "xray_plc";
      s.json = j.dump();
      s.time = std::chrono::system_clock::now();
      r.samples.push_back(std::move(s));
      fresh_ = false;
      lastSeq_ = seq;
      lastOccupied_ = occupied;
    }
    return r;
  }

  CommandResult command(const Command& cmd) override {
    return runModbusCommand(*link_,
                            commandSpecOf(profile_, "scanner", "dark, air, clear_fault", settings_.unitId, timeout(),
                                          settings_.interval, settings_.commandTimeout),
                            cmd);
  }

  void close() override {
    // A serial bus is shared with the other devices on it: only a TCP link is ours to close.
    if (settings_.link.transport == "tcp") link_->close();
  }

  [[nodiscard]] milliseconds pollInterval() const override { return settings_.interval; }

 private:
  // This device's response timeout, also when its serial bus was opened by another.
  [[nodiscard]] milliseconds timeout() const { return settings_.link.responseTimeout; }


  PollResult failed(PollResult r, const LinkError& e) {
    const bool fault = e.kind == LinkErrorKind::exception || e.kind == LinkErrorKind::badData ||
                       e.kind == LinkErrorKind::invalid;
    if (fault) ++faults_;
    r.action = e.needsReconnect() ? DriverAction::retry : DriverAction::ok;
    r.error = e.message;
    r.health.state = fault ? "fault" : "offline";
    r.health.detail = e.message;
    r.health.faults = faults_;
    return r;
  }

  void fillHealth(DeviceHealth& h, std::uint16_t status, std::uint16_t seq, bool occupied) const {
    const auto& b = profile_.bits;
    auto flag = [&](const std::optional<int>& bit) {
      return XrayProfile::bitSet(status, bit) ? 1.0 : 0.0;
    };
    h.readings["status"] = status;
    h.readings["scan_seq"] = seq;
    h.readings["lane_occupied"] = occupied ? 1 : 0;
    h.readings["ready"] = flag(b.ready);
    h.readings["scanning"] = flag(b.scanning);
    h.readings["radiation_on"] = flag(b.radiationOn);
    h.readings["interlock_open"] = flag(b.interlockOpen);
    h.readings["calibration_due"] = flag(b.calibrationDue);
    h.faults = faults_;
    if (XrayProfile::bitSet(status, b.fault)) {
      h.state = "fault";
      h.detail = "the scanner reports a fault (status " + std::to_string(status) + ")";
    } else if (XrayProfile::bitSet(status, b.interlockOpen)) {
      h.state = "interlock_open";
      h.detail = "a safety interlock is open: the scanner cannot scan";
    } else if (XrayProfile::bitSet(status, b.calibrationDue)) {
      h.state = "calibration_due";
      h.detail = "the scanner asks for a dark and air calibration";
    } else if (b.ready && !XrayProfile::bitSet(status, b.ready)) {
      h.state = "not_ready";
      h.detail = "the scanner is not ready (warming up or busy)";
    } else {
      h.state = "ok";
    }
  }

  XrayDriverSettings settings_;
  XrayProfile profile_;
  std::shared_ptr<ModbusLink> link_;
  bool fresh_ = true;
  std::uint16_t lastSeq_ = 0;
  bool lastOccupied_ = false;
  std::uint64_t faults_ = 0;
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
  l.inbox = resolvePath(s.file(), inbox);
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
  const XrayDriverSettings s = readDriverSettings(settings);
  readXrayLaneSettings(settings);
  auto profile = loadXrayProfile(s.profilePath);
  if (!profile) {
    for (const auto& e : profile.error().all()) settings.errors().add(e.file, e.line, e.message);
    settings.errors().add(
        settings.file(), settings.lineOfKey("profile"),
        "device '" + s.name + "': profile '" + s.profilePath + "' is not usable (see above)");
  }
}

std::unique_ptr<Driver> createXrayDriver(const DeviceSpec& spec) {
  ConfigErrors ignored;  // validated before; defaults stand in for anything odd
  SettingsReader reader(spec.file, spec.settings, "device", ignored);
  reader.allow("type");
  XrayDriverSettings s = readDriverSettings(reader);
  s.name = spec.name.empty() ? s.name : spec.name;
  auto profile = loadXrayProfile(s.profilePath);
  if (!profile) return outOfServiceDriver(profile.error().str());
  return std::make_unique<XrayDriver>(std::move(s), std::move(*profile));
}

}  // namespace lanegate
