#include "daemon/device_runner.h"

#include <algorithm>
#include <random>
#include <string_view>

#include "daemon/log.h"

namespace lanegate {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {
constexpr milliseconds kMinBackoff{500}, kMaxBackoff{30'000};
}

/// One device's state on the runner's thread.
struct DeviceRunner::Slot {
  std::string name;
  std::unique_ptr<Driver> driver;
  bool open = false;
  bool outOfService = false;  // parked until a reload or restart
  unsigned attempt = 0;
  std::string error;  // why it is not open
  Clock::time_point due{};
};

DeviceRunner::DeviceRunner(asio::io_context& io, std::string label, std::vector<Device> devices,
                           std::function<void(const std::string&, const DeviceHealth&)> onHealth,
                           std::function<void(const std::string&, Sample)> onSample)
    : io_(io),
      label_(std::move(label)),
      onHealth_(std::move(onHealth)),
      onSample_(std::move(onSample)) {
  for (auto& d : devices) {
    auto s = std::make_unique<Slot>();
    s->name = std::move(d.name);
    s->driver = std::move(d.driver);
    s->error = "not opened yet";
    slots_.push_back(std::move(s));
  }
}

DeviceRunner::~DeviceRunner() { stop(); }

namespace {
bool succeeded(DriverAction a) { return a == DriverAction::ok; }
bool succeeded(const PollResult& r) { return r.action == DriverAction::ok; }
bool succeeded(const CommandResult& r) { return r.ok; }
}  // namespace

template <typename F>
auto DeviceRunner::call(const Slot& s, const char* what, milliseconds timeout, F&& f) {
  {
    std::lock_guard lock(busyMutex_);
    busySlot_ = &s;
    busyCall_ = what;
    busySince_ = Clock::now();
    busyBudget_ = 3 * timeout;
  }
  auto result = f();
  std::lock_guard lock(busyMutex_);
  busySlot_ = nullptr;
  lastCall_ = Clock::now() - busySince_;
  if (onCall_ && std::string_view(what) != "command")
    asio::post(io_, [cb = onCall_, name = s.name, what, took = lastCall_, ok = succeeded(result)] {
      cb(name, what, took, ok);
    });
  return result;
}

std::optional<DeviceRunner::Wedged> DeviceRunner::wedged(Clock::time_point now) const {
  std::lock_guard lock(busyMutex_);
  if (!busySlot_ || now - busySince_ <= busyBudget_) return std::nullopt;
  return Wedged{busySlot_->name, busyCall_, now - busySince_};
}

void DeviceRunner::start() { thread_ = std::thread([this] { run(); }); }

bool DeviceRunner::serves(const std::string& device) const {
  return std::any_of(slots_.begin(), slots_.end(), [&](const auto& s) { return s->name == device; });
}

void DeviceRunner::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::deque<Pending> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(commands_);
  }
  for (auto& p : left)
    finish(p.done, {false, p.cmd.name + " not run: the device was stopped (reload or shutdown)"});
}

void DeviceRunner::submit(const std::string& device, Command cmd, CommandDone done) {
  {
    std::lock_guard lock(mutex_);
    if (!stop_) {
      commands_.push_back({device, std::move(cmd), std::move(done)});
      cv_.notify_all();
      return;
    }
  }
  finish(done, {false, cmd.name + " not run: the device is stopping"});
}

void DeviceRunner::finish(const CommandDone& done, CommandResult r) {
  asio::post(io_, [done, r = std::move(r)] { done(r); });
}

void DeviceRunner::report(const std::string& device, const DeviceHealth& h) {
  // Copies, not `this`: a posted report may run after a reload replaced this runner.
  asio::post(io_, [cb = onHealth_, device, h] { cb(device, h); });
}

bool DeviceRunner::sleepFor(Clock::duration d) {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, d, [this] { return stop_ || !commands_.empty(); });
  return !stop_;
}

void DeviceRunner::runCommands() {
  auto logger = log::get("drivers");
  while (true) {
    Pending next;
    {
      std::lock_guard lock(mutex_);
      if (commands_.empty() || stop_) return;
      next = std::move(commands_.front());
      commands_.pop_front();
    }
    const auto slot = std::find_if(slots_.begin(), slots_.end(), [&](const auto& s) { return s->name == next.device; });
    if (slot == slots_.end()) {
      finish(next.done, {false, "no device '" + next.device + "' on " + label_});
      continue;
    }
    Slot& s = **slot;
    if (!s.open) {
      finish(next.done, {false, next.cmd.name + " not run: the device is " +
                                    (s.outOfService ? "out of service" : "not connected") + " (" +
                                    s.error + ")"});
      continue;
    }
    logger->info("{}: running command {}", s.name, next.cmd.name);
    CommandResult r =
        call(s, "command", s.driver->commandTimeout(), [&] { return s.driver->command(next.cmd); });
    logger->info("{}: command {}: {}{}", s.name, next.cmd.name, r.ok ? "ok" : "failed",
                 r.message.empty() ? "" : ": " + r.message);
    finish(next.done, std::move(r));
    s.due = Clock::now();  // poll at once: the health shows the command's effect
  }
}

void DeviceRunner::takeOutOfService(Slot& s, DeviceHealth health, const std::string& why) {
  log::get("drivers")->error("{}: out of service until a reload or restart: {}", s.name, why);
  s.driver->close();
  s.open = false;
  s.outOfService = true;
  s.error = why;
  s.due = Clock::time_point::max();
  health.state = "out_of_service";
  health.detail = why + " (out of service: fix the device or its profile, then lanegatectl reload)";
  report(s.name, health);
}

void DeviceRunner::step(Slot& s, Clock::time_point now) {
  auto logger = log::get("drivers");
  if (!s.open) {
    std::string error;
    const DriverAction action =
        call(s, "open", s.driver->callTimeout(), [&] { return s.driver->open(error); });
    if (action == DriverAction::ok) {
      logger->info("{}: open", s.name);
      s.open = true;
      s.attempt = 0;
      s.due = now;
      return;
    }
    if (action == DriverAction::outOfService) {
      takeOutOfService(s, DeviceHealth{}, error);
      return;
    }
    DeviceHealth h;
    h.state = "offline";
    h.detail = error;
    report(s.name, h);
    if (s.attempt % 10 == 0) logger->warn("{}: cannot open: {}", s.name, error);
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    const auto cap = std::min<std::int64_t>(kMaxBackoff.count(), kMinBackoff.count() << std::min(s.attempt, 6u));
    std::uniform_int_distribution<std::int64_t> d(kMinBackoff.count(), std::max(cap, kMinBackoff.count()));
    ++s.attempt;
    s.error = error;
    s.due = Clock::now() + milliseconds(d(rng));
    return;
  }
  PollResult r = call(s, "poll", s.driver->callTimeout(), [&] { return s.driver->poll(); });
  for (auto& sample : r.samples)
    asio::post(io_, [cb = onSample_, name = s.name, sample = std::move(sample)]() mutable {
      cb(name, std::move(sample));
    });
  if (r.action == DriverAction::outOfService) {
    takeOutOfService(s, std::move(r.health), r.error);
    return;
  }
  report(s.name, r.health);
  if (r.action != DriverAction::ok) {
    logger->warn("{}: {}", s.name, r.error);
    s.driver->close();
    s.open = false;
    s.error = r.error;
  }
  s.due = Clock::now() + s.driver->pollInterval();
}

void DeviceRunner::run() {
  while (true) {
    const auto now = Clock::now();
    for (auto& s : slots_) {
      if (s->due <= now) step(*s, now);
      runCommands();  // between two devices' turns: a technician never waits a whole round
    }
    // At most an hour at a time: a parked (out of service) device is due never.
    Clock::time_point next = Clock::now() + std::chrono::hours(1);
    for (const auto& s : slots_) next = std::min(next, s->due);
    const auto wait = next - Clock::now();
    if (wait > Clock::duration::zero() && !sleepFor(wait)) break;
    {
      std::lock_guard lock(mutex_);
      if (stop_) break;
    }
  }
  for (auto& s : slots_) s->driver->close();
}

}  // namespace lanegate
