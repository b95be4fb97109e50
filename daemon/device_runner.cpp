#include "daemon/device_runner.h"

#include <algorithm>
#include <random>

#include "daemon/log.h"

namespace lanegate {

DeviceRunner::DeviceRunner(asio::io_context& io, std::string name, std::unique_ptr<Driver> driver,
                           std::function<void(const std::string&, const DeviceHealth&)> onHealth,
                           std::function<void(const std::string&, const Sample&)> onSample)
    : io_(io),
      name_(std::move(name)),
      driver_(std::move(driver)),
      onHealth_(std::move(onHealth)),
      onSample_(std::move(onSample)) {}

DeviceRunner::~DeviceRunner() { stop(); }

void DeviceRunner::start() { thread_ = std::thread([this] { run(); }); }

void DeviceRunner::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::deque<std::pair<Command, CommandDone>> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(commands_);
  }
  for (auto& [cmd, done] : left)
    finish(done, {false, name_ + ": " + cmd.name + " not run: the device was stopped (reload or shutdown)"});
}

void DeviceRunner::submit(Command cmd, CommandDone done) {
  {
    std::lock_guard lock(mutex_);
    if (!stop_) {
      commands_.emplace_back(std::move(cmd), std::move(done));
      cv_.notify_all();
      return;
    }
  }
  finish(done, {false, name_ + ": " + cmd.name + " not run: the device is stopping"});
}

void DeviceRunner::finish(const CommandDone& done, CommandResult r) {
  asio::post(io_, [done, r = std::move(r)] { done(r); });
}

bool DeviceRunner::runCommands(bool connected, const std::string& why) {
  bool ran = false;
  while (true) {
    std::pair<Command, CommandDone> next;
    {
      std::lock_guard lock(mutex_);
      if (commands_.empty() || stop_) return ran;
      next = std::move(commands_.front());
      commands_.pop_front();
    }
    auto& [cmd, done] = next;
    if (!connected) {
      finish(done, {false, name_ + ": " + cmd.name + " not run: the device is not connected (" + why + ")"});
      continue;
    }
    log::get("drivers")->info("{}: running command {}", name_, cmd.name);
    CommandResult r = driver_->command(cmd);
    log::get("drivers")->info("{}: command {}: {}{}", name_, cmd.name, r.ok ? "ok" : "failed",
                              r.message.empty() ? "" : ": " + r.message);
    finish(done, std::move(r));
    ran = true;
  }
}

bool DeviceRunner::sleepFor(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, d, [this] { return stop_ || !commands_.empty(); });
  return !stop_;
}

void DeviceRunner::report(const DeviceHealth& h) {
  // Copies, not `this`: a posted report may run after a reload replaced this runner.
  asio::post(io_, [cb = onHealth_, name = name_, h] { cb(name, h); });
}

void DeviceRunner::run() {
  auto logger = log::get("drivers");
  std::mt19937_64 rng{std::random_device{}()};
  const std::chrono::milliseconds minBackoff{500}, maxBackoff{30'000};
  unsigned attempt = 0;
  while (true) {
    std::string error;
    if (driver_->open(error) != DriverAction::ok) {
      DeviceHealth h;
      h.state = "offline";
      h.detail = error;
      report(h);
      const auto cap = std::min<std::int64_t>(maxBackoff.count(), minBackoff.count() << std::min(attempt, 6u));
      std::uniform_int_distribution<std::int64_t> d(minBackoff.count(), std::max(cap, minBackoff.count()));
      if (attempt++ % 10 == 0) logger->warn("{}: cannot open: {}", name_, error);
      // Back off; a command arriving meanwhile is answered at once, not after the wait.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(d(rng));
      bool stopping = false;
      while (!stopping && std::chrono::steady_clock::now() < until) {
        runCommands(false, error);
        stopping = !sleepFor(std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now()));
      }
      if (stopping) break;
      continue;
    }
    logger->info("{}: open", name_);
    attempt = 0;
    bool reopen = false;
    while (!reopen) {
      PollResult r = driver_->poll();
      report(r.health);
      for (auto& s : r.samples)
        asio::post(io_, [cb = onSample_, name = name_, s = std::move(s)] { cb(name, s); });
      if (r.action != DriverAction::ok) {
        logger->warn("{}: {}", name_, r.error);
        reopen = true;
      }
      if (!sleepFor(driver_->pollInterval())) {
        driver_->close();
        return;
      }
      if (!reopen) runCommands(true, "");
    }
    driver_->close();
  }
  driver_->close();
}

}  // namespace lanegate
