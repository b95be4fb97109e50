#pragma once
// Runs one driver on its own thread (libmodbus blocks), reconnecting with jittered
// backoff, and reports health to the io thread. A dead, slow or garbage-speaking
// device only ever stalls its own thread.

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "daemon/asio.h"
#include "drivers/driver.h"

namespace lanegate {

/// One device's thread.
class DeviceRunner {
 public:
  /// Health and samples are posted to `io` and handed to `onHealth` / `onSample`.
  DeviceRunner(asio::io_context& io, std::string name, std::unique_ptr<Driver> driver,
               std::function<void(const std::string&, const DeviceHealth&)> onHealth,
               std::function<void(const std::string&, const Sample&)> onSample);
  ~DeviceRunner();
  DeviceRunner(const DeviceRunner&) = delete;
  DeviceRunner& operator=(const DeviceRunner&) = delete;

  /// Starts the thread.
  void start();
  /// Asks the thread to stop and joins it (close() is called on the driver).
  void stop();
  /// The device name.
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  void run();
  bool sleepFor(std::chrono::milliseconds d);  // false when stopping
  void report(const DeviceHealth& h);

  asio::io_context& io_;
  std::string name_;
  std::unique_ptr<Driver> driver_;
  std::function<void(const std::string&, const DeviceHealth&)> onHealth_;
  std::function<void(const std::string&, const Sample&)> onSample_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace lanegate
