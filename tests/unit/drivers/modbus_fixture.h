#pragma once
// Shared by the driver tests: in-process libmodbus servers and simulators on port 0,
// each served by its own thread that stops and joins with the fixture, and IMS
// drivers created through the registry as the daemon creates them.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "drivers/registry.h"
#include "drivers/sim/ims_sim.h"
#include "drivers/sim/modbus_server.h"
#include "drivers/sim/xray_sim.h"
#include "tests/support/harness.h"

namespace lanegate::test {

inline std::string sourcePath(const std::string& rel) {
  return std::string(LANEGATE_SOURCE_DIR) + "/" + rel;
}
inline const std::string kGenericProfile = sourcePath("config/profiles/ims-generic-v1.yaml");
inline const std::string kAcmeProfile = sourcePath("config/profiles/ims-acme-t2.yaml");
inline const std::string kLibrary = sourcePath("config/ims/substances.yaml");

/// The trace sample a driver emitted (a failure, and an empty one, when it is not one).
inline const TraceSample& traceOf(const Sample& s) {
  static const TraceSample none;
  EXPECT_TRUE(std::holds_alternative<TraceSample>(s.event)) << "not a trace sample";
  return std::holds_alternative<TraceSample>(s.event) ? std::get<TraceSample>(s.event) : none;
}

/// The scanner state a driver emitted (a failure, and a default one, when it is not one).
inline const ScannerState& scannerOf(const Sample& s) {
  static const ScannerState none;
  EXPECT_TRUE(std::holds_alternative<ScannerState>(s.event)) << "not a scanner state";
  return std::holds_alternative<ScannerState>(s.event) ? std::get<ScannerState>(s.event) : none;
}

/// Calls `step` in a loop on its own thread until destroyed.
class Looper {
 public:
  explicit Looper(std::function<void()> step)
      : thread_([this, s = std::move(step)] {
          while (!stop_) s();
        }) {}
  ~Looper() {
    stop_ = true;
    thread_.join();
  }
  Looper(const Looper&) = delete;
  Looper& operator=(const Looper&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// A bare server on a loopback port chosen by the kernel, served on its own thread.
struct ServedServer {
  std::unique_ptr<sim::ModbusServer> server;
  std::unique_ptr<Looper> looper;
  explicit ServedServer(int port = 0) {
    sim::ServerOptions o;
    o.port = port;
    auto s = sim::ModbusServer::start(o);
    if (!s)
      ADD_FAILURE() << s.error();
    else
      server = std::move(*s);
    if (server)
      looper = std::make_unique<Looper>(
          [srv = server.get()] { srv->serveOnce(std::chrono::milliseconds(10)); });
  }
  ~ServedServer() { looper.reset(); }  // stop serving before the server goes
  [[nodiscard]] int port() const { return server ? server->port() : 0; }
};

/// A simulator (sim::ImsSimulator, sim::XraySimulator) served on its own thread; it stops
/// serving before the simulator goes.
template <typename Simulator, typename Options>
struct Served {
  std::unique_ptr<Simulator> sim;
  std::unique_ptr<Looper> looper;
  explicit Served(Options o) {
    auto s = Simulator::create(std::move(o));
    if (!s)
      ADD_FAILURE() << s.error();
    else
      sim = std::move(*s);
    if (sim)
      looper = std::make_unique<Looper>([p = sim.get()] { p->step(std::chrono::milliseconds(5)); });
  }
  ~Served() {
    looper.reset();
    sim.reset();
  }
  Served(const Served&) = delete;
  Served& operator=(const Served&) = delete;
  [[nodiscard]] int port() { return sim ? sim->server().port() : 0; }
};
/// A simulated detector (Contract 3 and the shipped library unless the options say otherwise).
using ServedSim = Served<sim::ImsSimulator, sim::ImsSimOptions>;
/// A simulated scanner (Contract 4 unless the options say otherwise).
using ServedXray = Served<sim::XraySimulator, sim::XraySimOptions>;

/// A driver through the registry, validated and created as the daemon does from a
/// `devices:` entry: `entry` is the entry as a YAML flow map's keys, `extra` more keys
/// (they win).
inline std::unique_ptr<Driver> registryDriver(const std::string& entry,
                                              const std::string& extra = "") {
  DeviceSpec spec;
  spec.file = "test.yaml";
  spec.settings = YAML::Load("{" + entry + "}");
  for (const auto& kv : YAML::Load("{" + extra + "}")) spec.settings[kv.first.Scalar()] = kv.second;
  spec.name = spec.settings["name"].Scalar();
  spec.type = spec.settings["type"].Scalar();
  const DriverType* t = findDriverType(spec.type);
  if (t == nullptr) return nullptr;
  ConfigErrors errors;
  SettingsReader reader(spec.file, spec.settings, "device '" + spec.name + "'", errors);
  reader.allow("name");
  reader.allow("type");
  t->validate(reader);
  reader.finish();
  EXPECT_TRUE(errors.empty()) << errors.str();
  return t->create(spec);
}

/// What validating a `devices:` entry (YAML text, as it stands in `file`) reports through
/// the registry, one "file:line: message" a line ("" when it is valid).
inline std::string validationErrors(const std::string& entry,
                                    const std::string& file = "lanegate.yaml") {
  const YAML::Node n = YAML::Load(entry);
  ConfigErrors errors;
  SettingsReader r(file, n, "device '" + n["name"].Scalar() + "'", errors);
  r.allow("name");
  r.allow("type");
  const DriverType* t = findDriverType(n["type"].Scalar());
  EXPECT_NE(t, nullptr) << n["type"].Scalar();
  if (t != nullptr) t->validate(r);
  r.finish();
  return errors.str();
}

/// Expects every one of `wanted` in `all`.
inline void expectEach(const std::string& all, std::initializer_list<const char*> wanted) {
  for (const char* want : wanted)
    EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << all;
}

/// An `ims` driver through the registry, as the daemon would create it from YAML.
inline std::unique_ptr<Driver> imsDriver(const std::string& name, int port,
                                         const std::string& extra = "",
                                         const std::string& profile = kGenericProfile) {
  return registryDriver(
      "name: " + name + ", type: ims, host: 127.0.0.1, port: " + std::to_string(port) +
          ", profile: '" + profile + "', poll_interval_ms: 10, response_timeout_ms: 1000",
      extra);
}

/// A driver opened (a test failure, and the driver as it is, when it does not open).
inline std::unique_ptr<Driver> opened(std::unique_ptr<Driver> d) {
  std::string err;
  EXPECT_EQ(d->open(err), DriverAction::ok) << err;
  return d;
}

// Hand-driven registers, for tests that need a device to say exactly this.
// A hand-driven Contract 3 device: one sample of `points` registers of `value`.
inline void writeSample(sim::ModbusServer& s, std::uint16_t seq, std::uint16_t points,
                        std::uint16_t value, std::uint16_t alarms = 0) {
  auto regs = s.holding();
  regs[0] = 1;
  regs[1] = 1;
  regs[2] = seq;
  regs[3] = 0x6A00;
  regs[4] = 0x0001;
  regs[5] = 3831;
  regs[6] = 10132;
  regs[7] = 2500;
  regs[8] = points;
  regs[9] = 12500;
  regs[10] = 8;
  regs[11] = alarms;
  for (std::size_t i = 0; i < points && i < 4000; ++i) regs[100 + i] = value;
}

// The PLC registers of Contract 4.
inline void setPlc(sim::ModbusServer& s, std::uint16_t status, std::uint16_t seq,
                   std::uint16_t occupied) {
  auto lock = s.lock();
  auto regs = s.holding();
  regs[0] = 1;
  regs[1] = status;
  regs[2] = seq;
  regs[3] = occupied;
}

/// The scanner states a poll emitted.
inline std::vector<ScannerState> plcSamples(const PollResult& r) {
  std::vector<ScannerState> out;
  for (const auto& s : r.samples) out.push_back(scannerOf(s));
  return out;
}

// Runs a driver as the daemon's DeviceRunner does: own thread, open, poll, retry.
class DeviceThread {
 public:
  explicit DeviceThread(std::unique_ptr<Driver> d)
      : driver_(std::move(d)), thread_([this] { run(); }) {}
  ~DeviceThread() {
    {
      std::lock_guard l(mutex_);
      stop_ = true;
    }
    thread_.join();
  }
  DeviceThread(const DeviceThread&) = delete;
  DeviceThread& operator=(const DeviceThread&) = delete;

  std::vector<int> seqs() {
    std::lock_guard l(mutex_);
    return seqs_;
  }
  int calls() {
    std::lock_guard l(mutex_);
    return calls_;
  }
  bool inCall() {
    std::lock_guard l(mutex_);
    return inCall_;
  }
  std::uint64_t faults() {
    std::lock_guard l(mutex_);
    return faults_;
  }
  /// True when some open() or poll() failed with a message containing `text`.
  bool failedWith(const std::string& text) {
    std::lock_guard l(mutex_);
    for (const auto& e : errors_)
      if (e.find(text) != std::string::npos) return true;
    return false;
  }

 private:
  bool stopping() {
    std::lock_guard l(mutex_);
    return stop_;
  }
  void note(const std::string& error) {
    std::lock_guard l(mutex_);
    if (errors_.size() < 100) errors_.push_back(error);
  }
  void mark(bool in) {
    std::lock_guard l(mutex_);
    inCall_ = in;
    if (in) ++calls_;
  }
  void run() {
    while (!stopping()) {
      std::string err;
      mark(true);
      const DriverAction a = driver_->open(err);
      mark(false);
      if (a != DriverAction::ok) {
        note(err);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      while (!stopping()) {
        mark(true);
        PollResult r = driver_->poll();
        mark(false);
        {
          std::lock_guard l(mutex_);
          faults_ = std::max(faults_, r.health.faults);
          for (const auto& s : r.samples) seqs_.push_back(traceOf(s).sampleSeq);
        }
        if (r.action != DriverAction::ok) {
          note(r.error);
          break;
        }
        std::this_thread::sleep_for(driver_->pollInterval());
      }
      driver_->close();
    }
  }

  std::unique_ptr<Driver> driver_;
  std::mutex mutex_;
  bool stop_ = false, inCall_ = false;
  int calls_ = 0;
  std::uint64_t faults_ = 0;
  std::vector<int> seqs_;
  std::vector<std::string> errors_;
  std::thread thread_;
};

}  // namespace lanegate::test
