#include "drivers/mock_driver.h"

#include <filesystem>
#include <thread>

namespace lanegate {
namespace {

struct MockSettings {
  std::chrono::milliseconds interval{1000};
  std::string fail;  // "", "open" or "poll"
  double temperatureK = 373.0;
  std::chrono::milliseconds callTimeout{1000};
  std::string wedgeFile;  // while it exists, poll() does not return
};

MockSettings readMockSettings(SettingsReader& s) {
  MockSettings m;
  m.interval = std::chrono::milliseconds(s.integer("poll_interval_ms", 1000, 10, 3'600'000));
  const std::string fail = s.choice("fail", std::string("none"), {"none", "open", "poll"});
  m.fail = fail == "none" ? "" : fail;
  m.temperatureK = s.number("temperature_k", 373.0, 0.0, 1000.0);
  m.callTimeout = std::chrono::milliseconds(s.integer("call_timeout_ms", 1000, 10, 3'600'000));
  m.wedgeFile = s.string("wedge_file", std::string());
  return m;
}

class MockDriver final : public Driver {
 public:
  explicit MockDriver(MockSettings settings) : settings_(std::move(settings)) {}

  DriverAction open(std::string& error) override {
    if (settings_.fail == "open") {
      error = "mock device configured to fail on open";
      return DriverAction::retry;
    }
    open_ = true;
    return DriverAction::ok;
  }

  PollResult poll() override {
    // A driver stuck inside a call, as a hung library would be: the daemon's watchdog
    // must notice (tests create the file, then remove it).
    std::error_code ec;
    while (!settings_.wedgeFile.empty() && std::filesystem::exists(settings_.wedgeFile, ec))
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    PollResult r;
    if (!open_) {
      r.action = DriverAction::retry;
      r.error = "not open";
      r.health.state = "offline";
      return r;
    }
    if (settings_.fail == "poll") {
      ++faults_;
      r.action = DriverAction::retry;
      r.error = "mock device configured to fail on poll";
      r.health.state = "fault";
      r.health.detail = r.error;
      r.health.faults = faults_;
      return r;
    }
    r.health.state = faultLatched_ ? "fault" : "ok";
    r.health.readings["temperature_k"] = settings_.temperatureK;
    r.health.faults = faults_;
    return r;
  }

  CommandResult command(const Command& cmd) override {
    if (cmd.name == "clear_fault") {
      faultLatched_ = false;
      return {true, "fault cleared"};
    }
    if (cmd.name == "verify" || cmd.name == "calibrate") return {true, cmd.name + " ok"};
    return {false, "mock device has no command '" + cmd.name + "'"};
  }

  void close() override { open_ = false; }

  [[nodiscard]] std::chrono::milliseconds pollInterval() const override {
    return settings_.interval;
  }
  [[nodiscard]] std::chrono::milliseconds callTimeout() const override {
    return settings_.callTimeout;
  }

 private:
  MockSettings settings_;
  bool open_ = false;
  bool faultLatched_ = false;
  std::uint64_t faults_ = 0;
};

}  // namespace

void validateMockDriver(SettingsReader& settings) { readMockSettings(settings); }

std::unique_ptr<Driver> createMockDriver(const DeviceSpec& spec) {
  ConfigErrors ignored;  // validated before; defaults stand in for anything odd
  SettingsReader reader(spec.file, spec.settings, "device", ignored);
  reader.allow("name");
  reader.allow("type");
  return std::make_unique<MockDriver>(readMockSettings(reader));
}

}  // namespace lanegate
