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
#include <nlohmann/json.hpp>

#include "drivers/registry.h"
#include "drivers/sim/ims_sim.h"
#include "drivers/sim/modbus_server.h"
#include "tests/support/harness.h"

namespace lanegate::test {

inline std::string sourcePath(const std::string& rel) {
  return std::string(LANEGATE_SOURCE_DIR) + "/" + rel;
}
inline const std::string kGenericProfile = sourcePath("config/profiles/ims-generic-v1.yaml");
inline const std::string kAcmeProfile = sourcePath("config/profiles/ims-acme-t2.yaml");
inline const std::string kLibrary = sourcePath("config/ims/substances.yaml");

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

/// A simulated detector served on its own thread.
struct ServedSim {
  std::unique_ptr<sim::ImsSimulator> sim;
  std::unique_ptr<Looper> looper;
  explicit ServedSim(sim::ImsSimOptions o) {
    if (o.profilePath.empty()) o.profilePath = kGenericProfile;
    if (o.libraryPath.empty()) o.libraryPath = kLibrary;
    auto s = sim::ImsSimulator::create(std::move(o));
    if (!s)
      ADD_FAILURE() << s.error();
    else
      sim = std::move(*s);
    if (sim)
      looper = std::make_unique<Looper>([p = sim.get()] { p->step(std::chrono::milliseconds(5)); });
  }
  ~ServedSim() { looper.reset(); }
  [[nodiscard]] int port() { return sim ? sim->server().port() : 0; }
};

/// An `ims` driver through the registry, as the daemon would create it from YAML.
inline std::unique_ptr<Driver> imsDriver(const std::string& name, int port,
                                         const std::string& extra = "",
                                         const std::string& profile = kGenericProfile) {
  DeviceSpec spec;
  spec.name = name;
  spec.type = "ims";
  spec.file = "test.yaml";
  spec.settings =
      YAML::Load("{name: " + name + ", type: ims, host: 127.0.0.1, port: " + std::to_string(port) +
                 ", profile: '" + profile + "', poll_interval_ms: 10, response_timeout_ms: 1000}");
  for (const auto& kv : YAML::Load("{" + extra + "}")) spec.settings[kv.first.Scalar()] = kv.second;
  const DriverType* t = findDriverType("ims");
  if (t == nullptr) return nullptr;
  ConfigErrors errors;
  SettingsReader reader(spec.file, spec.settings, "device '" + name + "'", errors);
  reader.allow("name");
  reader.allow("type");
  t->validate(reader);
  reader.finish();
  EXPECT_TRUE(errors.empty()) << errors.str();
  return t->create(spec);
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
          for (const auto& s : r.samples)
            seqs_.push_back(nlohmann::json::parse(s.json)["sample_seq"].get<int>());
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
