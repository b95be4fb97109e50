#pragma once
// Runs drivers on a thread of their own (libmodbus blocks), opening them with jittered
// backoff, polling each at its interval, running technicians' commands between polls,
// and reporting health and samples to the io thread. A runner serves one TCP device, or
// every device on one serial bus (they share the line, so one thread takes turns). A
// dead, slow or garbage-speaking device only ever stalls its own runner.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/asio.h"
#include "drivers/driver.h"

namespace lanegate {

/// One thread for one device or one serial bus.
class DeviceRunner {
 public:
  /// A device the runner serves.
  struct Device {
    std::string name;
    std::unique_ptr<Driver> driver;
  };
  /// Health and samples are posted to `io` and handed to `onHealth` / `onSample`.
  /// `label` names the runner in logs (the device, or the bus).
  DeviceRunner(asio::io_context& io, std::string label, std::vector<Device> devices,
               std::function<void(const std::string&, const DeviceHealth&)> onHealth,
               std::function<void(const std::string&, Sample)> onSample);
  ~DeviceRunner();
  DeviceRunner(const DeviceRunner&) = delete;
  DeviceRunner& operator=(const DeviceRunner&) = delete;

  /// Starts the thread.
  void start();
  /// Asks the thread to stop and joins it (close() is called on every driver).
  void stop();
  /// The runner's label (device or bus).
  [[nodiscard]] const std::string& label() const { return label_; }
  /// True when `device` is one of this runner's devices.
  [[nodiscard]] bool serves(const std::string& device) const;

  /// Called on the io thread with a command's outcome.
  using CommandDone = std::function<void(const CommandResult&)>;
  /// Queues a technician's command for `device`, which the thread runs between polls
  /// (the driver may block until the device answers). `done` is posted to the io thread
  /// exactly once: with the driver's result, or with an error when the device is not
  /// connected or the runner stops first.
  void submit(const std::string& device, Command cmd, CommandDone done);

  /// A driver call that has not returned within 3x its timeout.
  struct Wedged {
    std::string device;
    std::string call;  ///< open, poll, command or close
    std::chrono::steady_clock::duration elapsed;
  };
  /// Called on the io thread after each open() and poll(): device, call ("open" or
  /// "poll"), how long it took, and whether it succeeded. Set before start().
  using CallDone = std::function<void(const std::string&, const char*,
                                      std::chrono::steady_clock::duration, bool)>;
  void onCall(CallDone done) { onCall_ = std::move(done); }

  /// The call the thread is stuck in at `now`, if any (any thread may ask).
  [[nodiscard]] std::optional<Wedged> wedged(std::chrono::steady_clock::time_point now) const;

 private:
  struct Slot;
  struct Pending {
    std::string device;
    Command cmd;
    CommandDone done;
  };
  void run();
  void step(Slot& s, std::chrono::steady_clock::time_point now);
  // Waits up to `d`; false when stopping. Wakes early when a command arrives.
  bool sleepFor(std::chrono::steady_clock::duration d);
  void report(const std::string& device, const DeviceHealth& h);
  void takeOutOfService(Slot& s, DeviceHealth health, const std::string& why);
  void runCommands();
  void finish(const CommandDone& done, CommandResult r);
  // Runs one driver call, noting it for wedged().
  template <typename F>
  auto call(const Slot& s, const char* what, std::chrono::milliseconds timeout, F&& f);

  asio::io_context& io_;
  std::string label_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::function<void(const std::string&, const DeviceHealth&)> onHealth_;
  std::function<void(const std::string&, Sample)> onSample_;
  CallDone onCall_;
  std::chrono::steady_clock::duration lastCall_{};  // how long the last call() took (runner thread)
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<Pending> commands_;
  // The driver call in progress (guarded by busyMutex_): who, what, since when, budget.
  mutable std::mutex busyMutex_;
  const Slot* busySlot_ = nullptr;
  const char* busyCall_ = "";
  std::chrono::steady_clock::time_point busySince_{};
  std::chrono::steady_clock::duration busyBudget_{};
  std::thread thread_;
};

}  // namespace lanegate
