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
}

bool DeviceRunner::sleepFor(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return !cv_.wait_for(lock, d, [this] { return stop_; });
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
      if (!sleepFor(std::chrono::milliseconds(d(rng)))) break;
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
    }
    driver_->close();
  }
  driver_->close();
}

}  // namespace lanegate
