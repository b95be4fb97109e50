#pragma once
// Runs several simulated IMS detectors, each read by its own `ims` driver on its own
// thread as the daemon's DeviceRunner does, and measures every sample's latency: from
// the moment the simulator makes it readable (its even sample_seq is written) to the
// moment the driver's poll() returns it. Used by the isolation test (issue 4,
// acceptance 4) and by tests/bench/ims_bench.cpp, which quotes the figures.
//
// Header-only and free of gtest, so the bench can use it; it links lanegate_sim.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <variant>

#include "drivers/registry.h"
#include "drivers/sim/ims_sim.h"

namespace lanegate::test {

/// What one device saw during a run.
struct DeviceLatency {
  std::vector<double> latencyMs;  ///< one per delivered sample
  std::vector<int> seqs;          ///< delivered sample_seq values, in order
  std::vector<std::string> errors;
};

/// A run's settings.
struct LatencyProbeOptions {
  std::string profile;   ///< profile file (Contract 3)
  std::string library;   ///< substance library
  std::chrono::milliseconds every{100};     ///< one sample per device this often
  std::chrono::milliseconds duration{3000};
  std::size_t points = 2000;
  int pollIntervalMs = 10;
  int responseTimeoutMs = 1000;
};

/// The p-quantile (0..1) of `v` (nearest rank); 0 for an empty vector.
inline double quantile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

/// Runs one detector per entry of `faults` ("none", "stall", "garbage", "disconnect",
/// "exception", "device"; the fault starts at once) for `o.duration`. `error` is set
/// when a simulator cannot start.
inline std::vector<DeviceLatency> measureImsLatency(const std::vector<std::string>& faults,
                                                    const LatencyProbeOptions& o, std::string& error) {
  using Clock = std::chrono::steady_clock;
  struct Device {
    std::unique_ptr<sim::ImsSimulator> sim;
    std::unique_ptr<Driver> driver;
    std::mutex mutex;
    std::map<int, Clock::time_point> produced;  // seq → when readable
    DeviceLatency seen;
  };
  std::vector<std::unique_ptr<Device>> devices;
  for (std::size_t i = 0; i < faults.size(); ++i) {
    auto d = std::make_unique<Device>();
    sim::ImsSimOptions so;
    so.profilePath = o.profile;
    so.libraryPath = o.library;
    so.every = o.every;
    so.points = o.points;
    so.seed = i + 1;
    so.sequence = {"clear", "cocaine:800", "clear", "fentanyl:500"};
    so.fault = faults[i];
    so.faultAfter = 0;
    auto s = sim::ImsSimulator::create(std::move(so));
    if (!s) {
      error = s.error();
      return {};
    }
    d->sim = std::move(*s);
    Device* raw = d.get();
    d->sim->setProducedHook([raw](std::uint16_t seq) {
      std::lock_guard l(raw->mutex);
      raw->produced[seq] = Clock::now();
    });
    DeviceSpec spec;
    spec.name = "ims-" + std::to_string(i + 1);
    spec.type = "ims";
    spec.file = "probe.yaml";
    spec.settings = YAML::Load("{name: " + spec.name + ", type: ims, host: 127.0.0.1, port: " +
                               std::to_string(d->sim->server().port()) + ", profile: '" + o.profile +
                               "', poll_interval_ms: " + std::to_string(o.pollIntervalMs) +
                               ", response_timeout_ms: " + std::to_string(o.responseTimeoutMs) + "}");
    d->driver = findDriverType("ims")->create(spec);
    devices.push_back(std::move(d));
  }

  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (auto& d : devices) {
    Device* raw = d.get();
    threads.emplace_back([raw, &stop] {
      while (!stop) raw->sim->step(std::chrono::milliseconds(5));
    });
    threads.emplace_back([raw, &stop] {
      while (!stop) {
        std::string err;
        if (raw->driver->open(err) != DriverAction::ok) {
          std::lock_guard l(raw->mutex);
          if (raw->seen.errors.size() < 20) raw->seen.errors.push_back(err);
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          continue;
        }
        while (!stop) {
          PollResult r = raw->driver->poll();
          const auto now = Clock::now();
          {
            std::lock_guard l(raw->mutex);
            for (const auto& s : r.samples) {
              const auto* trace = std::get_if<TraceSample>(&s.event);
              const int seq = trace != nullptr ? trace->sampleSeq : -1;
              raw->seen.seqs.push_back(seq);
              if (auto p = raw->produced.find(seq); p != raw->produced.end())
                raw->seen.latencyMs.push_back(
                    std::chrono::duration<double, std::milli>(now - p->second).count());
            }
            if (r.action != DriverAction::ok && raw->seen.errors.size() < 20) raw->seen.errors.push_back(r.error);
          }
          if (r.action != DriverAction::ok) break;
          std::this_thread::sleep_for(raw->driver->pollInterval());
        }
        raw->driver->close();
      }
    });
  }
  std::this_thread::sleep_for(o.duration);
  // A request blocked on a stalled simulator ends within the response timeout.
  stop = true;
  for (auto& t : threads) t.join();
  std::vector<DeviceLatency> out;
  for (auto& d : devices) {
    d->driver->close();
    std::lock_guard l(d->mutex);
    out.push_back(d->seen);
  }
  return out;
}

}  // namespace lanegate::test
