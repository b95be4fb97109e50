#include "drivers/ims_driver.h"

#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "drivers/ims_profile.h"
#include "drivers/modbus_command.h"
#include "drivers/modbus_link.h"

namespace lanegate {
namespace {

using std::chrono::milliseconds;

struct ImsSettings {
  std::string name;
  LinkConfig link;
  int unitId = 1;
  std::string profilePath;
  milliseconds interval{500};
  int snapshotRetries = 5;
  milliseconds snapshotRetryDelay{20};
  milliseconds commandTimeout{60'000};
};

// A relative profile path is relative to the config file that names it, so a config
// directory (/etc/lanegate, or config/ in the source tree) carries its profiles along.
std::string resolveProfile(const std::string& configFile, const std::string& path) {
  const std::filesystem::path p(path);
  if (p.is_absolute() || configFile.empty()) return path;
  return (std::filesystem::path(configFile).parent_path() / p).lexically_normal().string();
}

ImsSettings readImsSettings(SettingsReader& s) {
  ImsSettings m;
  m.name = s.string("name", std::string("ims"));
  m.link = readLinkConfig(s);
  m.unitId = static_cast<int>(s.integer("unit_id", 1, 0, 247));
  m.profilePath =
      resolveProfile(s.file(), s.string("profile", std::string("profiles/ims-generic-v1.yaml")));
  m.interval = milliseconds(s.integer("poll_interval_ms", 500, 10, 3'600'000));
  m.snapshotRetries = static_cast<int>(s.integer("snapshot_retries", 5, 1, 100));
  m.snapshotRetryDelay = milliseconds(s.integer("snapshot_retry_ms", 20, 0, 10'000));
  m.commandTimeout = milliseconds(s.integer("command_timeout_ms", 60'000, 100, 3'600'000));
  return m;
}

class ImsDriver final : public Driver {
 public:
  ImsDriver(ImsSettings settings, ImsProfile profile)
      : settings_(std::move(settings)),
        profile_(std::move(profile)),
        link_(acquireLink(settings_.link)) {}

  DriverAction open(std::string& error) override {
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
        // Reading another layout as this one would publish nonsense: stop until fixed.
        error = "device reports profile_version " + std::to_string((*v)[0]) + ", profile '" +
                profile_.name + "' expects " + std::to_string(profile_.expectedVersion);
        return DriverAction::outOfService;
      }
    }
    return DriverAction::ok;
  }

  PollResult poll() override {
    PollResult r;
    auto header = readHeader();
    if (!header) return failed(std::move(r), header.error());
    fillHealth(r.health, *header);

    const std::uint16_t seq = profile_.at(*header, profile_.sampleSeq);
    const std::uint16_t points = profile_.at(*header, profile_.points);
    const bool fresh = !lastSeq_ || *lastSeq_ != seq;
    if (seq % 2 == 0 && fresh && points > 0) {
      auto sample = readSnapshot(std::move(*header));
      if (!sample) return failed(std::move(r), sample.error());
      Sample s;
      s.kind = "trace";
      s.json = std::move(*sample);
      s.time = std::chrono::system_clock::now();
      r.samples.push_back(std::move(s));
      r.health.readings["last_sample_time"] = static_cast<double>(lastSampleTime_);
    }
    r.health.faults = faults_;
    return r;
  }

  CommandResult command(const Command& cmd) override {
    return runModbusCommand(*link_,
                            commandSpecOf(profile_, "device", "verify, calibrate, clear_fault", settings_.unitId, timeout(),
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

  LinkResult<std::vector<std::uint16_t>> readHeader() {
    return link_->read(settings_.unitId, profile_.table, profile_.headerFirst(),
                       profile_.headerCount(), profile_.maxPerRead, timeout());
  }


  PollResult failed(PollResult r, const LinkError& e) {
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

  void fillHealth(DeviceHealth& h, std::span<const std::uint16_t> header) const {
    const std::uint16_t status = profile_.at(header, profile_.status);
    const auto& b = profile_.bits;
    h.readings["status"] = status;
    h.readings["sample_seq"] = profile_.at(header, profile_.sampleSeq);
    h.readings["drift_temp_k"] =
        profile_.driftTempK.decode(profile_.at(header, profile_.driftTempK.address));
    h.readings["pressure_hpa"] =
        profile_.pressureHpa.decode(profile_.at(header, profile_.pressureHpa.address));
    h.readings["desorber_temp_c"] =
        profile_.desorberTempC.decode(profile_.at(header, profile_.desorberTempC.address));
    h.readings["calibration_due"] = ImsProfile::bitSet(status, b.calibrationDue) ? 1 : 0;
    h.readings["verification_failed"] = ImsProfile::bitSet(status, b.verificationFailed) ? 1 : 0;
    h.readings["alarm"] = ImsProfile::bitSet(status, b.alarm) ? 1 : 0;
    h.readings["ready"] = ImsProfile::bitSet(status, b.ready) ? 1 : 0;
    if (lastSeq_) h.readings["last_sample_time"] = static_cast<double>(lastSampleTime_);
    h.faults = faults_;
    if (ImsProfile::bitSet(status, b.fault)) {
      h.state = "fault";
      h.detail = "the detector reports a fault (status " + std::to_string(status) + ")";
    } else if (ImsProfile::bitSet(status, b.verificationFailed)) {
      h.state = "verification_failed";
      h.detail = "the last verification failed";
    } else if (ImsProfile::bitSet(status, b.calibrationDue)) {
      h.state = "calibration_due";
      h.detail = "the detector asks for calibration";
    } else if (b.ready && !ImsProfile::bitSet(status, b.ready)) {
      h.state = "not_ready";
      h.detail = "the detector is not ready (warming up or busy)";
    } else {
      h.state = "ok";
    }
  }

  // Rejects a header that cannot describe a real sample; "" when it is fine.
  std::string implausible(std::span<const std::uint16_t> header) const {
    const int points = profile_.at(header, profile_.points);
    if (points > profile_.maxPoints)
      return "device reports " + std::to_string(points) + " points, at most " +
             std::to_string(profile_.maxPoints);
    const int alarms = profile_.at(header, profile_.alarmCount);
    if (alarms > profile_.maxAlarms)
      return "device reports " + std::to_string(alarms) + " alarms, at most " +
             std::to_string(profile_.maxAlarms);
    if (profile_.at(header, profile_.periodNs) == 0) return "device reports period_ns 0";
    return "";
  }

  // The json of a consistent sample, or why there is none (link failure, rejected data,
  // no consistent snapshot; the last two are `invalid`: the device is alive).
  LinkResult<std::string> readSnapshot(std::vector<std::uint16_t> header) {
    for (int attempt = 0; attempt < settings_.snapshotRetries; ++attempt) {
      if (attempt > 0) {
        std::this_thread::sleep_for(settings_.snapshotRetryDelay);
        auto h = readHeader();
        if (!h) return tl::make_unexpected(h.error());
        header = std::move(*h);
      }
      const std::uint16_t seq = profile_.at(header, profile_.sampleSeq);
      if (seq % 2 != 0) continue;  // the device is writing: read again
      if (const std::string why = implausible(header); !why.empty()) {
        // Counted once (by failed()): the same sample is not read again.
        lastSeq_ = seq;
        return tl::make_unexpected(LinkError{
            LinkErrorKind::invalid, "rejected sample " + std::to_string(seq) + ": " + why});
      }
      const int points = profile_.at(header, profile_.points);
      auto spectrum = link_->read(settings_.unitId, profile_.table, profile_.spectrum, points,
                                  profile_.maxPerRead, timeout());
      if (!spectrum) return tl::make_unexpected(spectrum.error());
      auto again = link_->read(settings_.unitId, profile_.table, profile_.sampleSeq, 1,
                               kMaxRegistersPerRead, timeout());
      if (!again) return tl::make_unexpected(again.error());
      if ((*again)[0] != seq) continue;  // a new sample began while we read
      lastSeq_ = seq;
      lastSampleTime_ = profile_.u32At(header, profile_.sampleTime);
      return toJson(header, *spectrum);
    }
    return tl::make_unexpected(
        LinkError{LinkErrorKind::invalid, "no consistent snapshot after " +
                                              std::to_string(settings_.snapshotRetries) +
                                              " attempts (sample_seq kept changing)"});
  }

  std::string toJson(std::span<const std::uint16_t> header,
                     const std::vector<std::uint16_t>& spectrum) const {
    const std::uint16_t status = profile_.at(header, profile_.status);
    nlohmann::json j;
    j["device"] = settings_.name;
    j["sample_seq"] = profile_.at(header, profile_.sampleSeq);
    j["sample_time"] = profile_.u32At(header, profile_.sampleTime);
    j["status"] = status;
    j["mode"] = ImsProfile::bitSet(status, profile_.bits.negativeMode) ? "negative" : "positive";
    j["drift_temp_k"] =
        profile_.driftTempK.decode(profile_.at(header, profile_.driftTempK.address));
    j["pressure_hpa"] =
        profile_.pressureHpa.decode(profile_.at(header, profile_.pressureHpa.address));
    j["desorber_temp_c"] =
        profile_.desorberTempC.decode(profile_.at(header, profile_.desorberTempC.address));
    j["period_ns"] = profile_.at(header, profile_.periodNs);
    j["segments"] = profile_.at(header, profile_.segments);
    nlohmann::json alarms = nlohmann::json::array();
    const int count = profile_.at(header, profile_.alarmCount);
    for (int i = 0; i < count; ++i) {
      const int code = profile_.at(header, profile_.alarms + 2 * i);
      const auto name = profile_.alarmCodes.find(code);
      alarms.push_back(
          {{"code", code},
           {"substance", name == profile_.alarmCodes.end() ? nlohmann::json(nullptr)
                                                           : nlohmann::json(name->second)},
           {"amplitude", profile_.at(header, profile_.alarms + 2 * i + 1)}});
    }
    j["alarms"] = std::move(alarms);
    j["points"] = spectrum;
    return j.dump();
  }

  ImsSettings settings_;
  ImsProfile profile_;
  std::shared_ptr<ModbusLink> link_;
  std::optional<std::uint32_t> lastSeq_;  // last sample_seq accepted (or rejected)
  std::uint32_t lastSampleTime_ = 0;
  std::uint64_t faults_ = 0;
};

}  // namespace

void validateImsDriver(SettingsReader& settings) {
  const ImsSettings s = readImsSettings(settings);
  auto profile = loadImsProfile(s.profilePath);
  if (!profile) {
    for (const auto& e : profile.error().all()) settings.errors().add(e.file, e.line, e.message);
    settings.errors().add(
        settings.file(), settings.lineOfKey("profile"),
        "device '" + s.name + "': profile '" + s.profilePath + "' is not usable (see above)");
  }
}

std::unique_ptr<Driver> createImsDriver(const DeviceSpec& spec) {
  ConfigErrors ignored;  // validated before; defaults stand in for anything odd
  SettingsReader reader(spec.file, spec.settings, "device", ignored);
  reader.allow("type");
  ImsSettings s = readImsSettings(reader);
  s.name = spec.name.empty() ? s.name : spec.name;
  auto profile = loadImsProfile(s.profilePath);
  if (!profile) {
    // Validation loads the profile too; it can only vanish between the two.
    return outOfServiceDriver(profile.error().str());
  }
  return std::make_unique<ImsDriver>(std::move(s), std::move(*profile));
}

}  // namespace lanegate
