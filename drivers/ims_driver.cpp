#include "drivers/ims_driver.h"

#include <thread>

#include "drivers/ims_profile.h"
#include "drivers/modbus_device.h"

namespace lanegate {
namespace {

using std::chrono::milliseconds;

struct ImsSettings {
  ModbusDeviceSettings device;
  int snapshotRetries = 5;
  milliseconds snapshotRetryDelay{20};
};

ImsSettings readImsSettings(SettingsReader& s) {
  ImsSettings m;
  m.device = readModbusDeviceSettings(s, {"ims", "profiles/ims-generic-v1.yaml", 500, 60'000});
  m.snapshotRetries = static_cast<int>(s.integer("snapshot_retries", 5, 1, 100));
  m.snapshotRetryDelay = milliseconds(s.integer("snapshot_retry_ms", 20, 0, 10'000));
  return m;
}

class ImsDriver final : public ModbusDevice {
 public:
  ImsDriver(ImsSettings settings, ImsProfile profile)
      : ModbusDevice(settings.device, profile, "device", "verify, calibrate, clear_fault"),
        settings_(std::move(settings)),
        profile_(std::move(profile)) {}

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
      Sample& s = r.samples.emplace_back();  // in place: see xray_driver.cpp
      s.time = std::chrono::system_clock::now();
      s.event = std::move(*sample);
      r.health.readings["last_sample_time"] = static_cast<double>(lastSampleTime_);
    }
    r.health.faults = faults_;
    return r;
  }

  [[nodiscard]] std::chrono::milliseconds callTimeout() const override {
    return ModbusDevice::callTimeout() + settings_.snapshotRetries * settings_.snapshotRetryDelay;
  }

 protected:
  // The header, then for each snapshot attempt: the header, the spectrum, sample_seq.
  [[nodiscard]] int requestsPerPoll() const override {
    const int per = std::max(1, profile_.maxPerRead);
    const auto chunks = [per](int n) { return (n + per - 1) / per; };
    const int header = chunks(profile_.headerCount());
    return std::max(4,
                    header + settings_.snapshotRetries * (header + chunks(profile_.maxPoints) + 1));
  }

 private:
  LinkResult<std::vector<std::uint16_t>> readHeader() {
    return link().read(settings().unitId, profile_.table, profile_.headerFirst(),
                       profile_.headerCount(), profile_.maxPerRead, timeout());
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

  // A consistent sample, or why there is none (link failure, rejected data,
  // no consistent snapshot; the last two are `invalid`: the device is alive).
  LinkResult<TraceSample> readSnapshot(std::vector<std::uint16_t> header) {
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
      auto spectrum = link().read(settings().unitId, profile_.table, profile_.spectrum, points,
                                  profile_.maxPerRead, timeout());
      if (!spectrum) return tl::make_unexpected(spectrum.error());
      auto again = link().read(settings().unitId, profile_.table, profile_.sampleSeq, 1,
                               kMaxRegistersPerRead, timeout());
      if (!again) return tl::make_unexpected(again.error());
      if ((*again)[0] != seq) continue;  // a new sample began while we read
      lastSeq_ = seq;
      lastSampleTime_ = profile_.u32At(header, profile_.sampleTime);
      return toSample(header, std::move(*spectrum));
    }
    return tl::make_unexpected(
        LinkError{LinkErrorKind::invalid, "no consistent snapshot after " +
                                              std::to_string(settings_.snapshotRetries) +
                                              " attempts (sample_seq kept changing)"});
  }

  TraceSample toSample(std::span<const std::uint16_t> header,
                       std::vector<std::uint16_t> spectrum) const {
    const auto& p = profile_;
    TraceSample t;
    t.sampleSeq = p.at(header, p.sampleSeq);
    t.sampleTime = p.u32At(header, p.sampleTime);
    t.status = p.at(header, p.status);
    t.mode = ImsProfile::bitSet(t.status, p.bits.negativeMode) ? IonPolarity::negative
                                                               : IonPolarity::positive;
    t.driftTempK = p.driftTempK.decode(p.at(header, p.driftTempK.address));
    t.pressureHpa = p.pressureHpa.decode(p.at(header, p.pressureHpa.address));
    t.desorberTempC = p.desorberTempC.decode(p.at(header, p.desorberTempC.address));
    t.periodNs = p.at(header, p.periodNs);
    t.segments = p.at(header, p.segments);
    const int count = p.at(header, p.alarmCount);
    for (int i = 0; i < count; ++i) {
      DeviceAlarm a;
      a.code = p.at(header, p.alarms + 2 * i);
      if (const auto name = p.alarmCodes.find(a.code); name != p.alarmCodes.end())
        a.substance = name->second;
      a.amplitude = p.at(header, p.alarms + 2 * i + 1);
      t.alarms.push_back(std::move(a));
    }
    // The profile says which bit is the device's alarm (generic: 2, ACME T2: 5).
    t.alarmed = ImsProfile::bitSet(t.status, p.bits.alarm) || !t.alarms.empty();
    t.points = std::move(spectrum);
    return t;
  }

  ImsSettings settings_;
  ImsProfile profile_;
  std::optional<std::uint32_t> lastSeq_;  // last sample_seq accepted (or rejected)
  std::uint32_t lastSampleTime_ = 0;
};

}  // namespace

void validateImsDriver(SettingsReader& settings) {
  validateModbusDevice(settings, readImsSettings, parseImsProfile);
}

std::unique_ptr<Driver> createImsDriver(const DeviceSpec& spec) {
  return createModbusDevice<ImsDriver>(spec, readImsSettings, parseImsProfile);
}

}  // namespace lanegate
