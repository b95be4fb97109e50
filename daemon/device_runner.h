#pragma once
// Runs one driver on its own thread (libmodbus blocks), reconnecting with jittered
// backoff, and reports health to the io thread. A dead, slow or garbage-speaking
// device only ever stalls its own thread.

#include <condition_variable>
#include <deque>
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

  /// Called on the io thread with a command's outcome.
  using CommandDone = std::function<void(const CommandResult&)>;
  /// Queues a technician's command for the device thread, which runs it between polls
  /// (the driver may block until the device answers). `done` is posted to the io thread
  /// exactly once: with the driver's result, or with an error when the device is not
  /// connected or the runner stops first.
  void submit(Command cmd, CommandDone done);

 private:
  void run();
  bool sleepFor(std::chrono::milliseconds d);  // false when stopping; wakes early for a command
  void report(const DeviceHealth& h);
  // Runs (connected) or refuses (not connected: `why`) every queued command; true if any ran.
  bool runCommands(bool connected, const std::string& why);
  void finish(const CommandDone& done, CommandResult r);

  asio::io_context& io_;
  std::string name_;
  std::unique_ptr<Driver> driver_;
  std::function<void(const std::string&, const DeviceHealth&)> onHealth_;
  std::function<void(const std::string&, const Sample&)> onSample_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<std::pair<Command, CommandDone>> commands_;
  std::thread thread_;
};

}  // namespace lanegate
