#include "daemon/systemd_notify.h"

#include <systemd/sd-daemon.h>

#include "daemon/log.h"

namespace lanegate {

SystemdNotify::SystemdNotify(asio::io_context& io, std::function<std::string()> stuck)
    : stuck_(std::move(stuck)), timer_(io) {}

void SystemdNotify::ready() {
  sd_notify(0, "READY=1");
  sent_.clear();  // the summary follows READY, even when it was sent before
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  // Half the period, as sd_watchdog_enabled(3) advises: one late turn is not a restart.
  interval_ = std::chrono::microseconds(usec / 2);
  log::get("daemon")->info("systemd watchdog: keep-alive every {} ms while nothing is stuck",
                           interval_.count() / 1000);
  tick();
}

void SystemdNotify::reloading() { sd_notify(0, "RELOADING=1"); }

void SystemdNotify::reloaded() { sd_notify(0, "READY=1"); }

void SystemdNotify::stopping() {
  stopping_ = true;
  timer_.cancel();
  sd_notify(0, "STOPPING=1");
}

void SystemdNotify::status(const std::string& line) {
  line_ = line;
  sendStatus();
}

void SystemdNotify::sendStatus() {
  const std::string text =
      withheld_.empty() ? line_ : "WATCHDOG WITHHELD: " + withheld_ + "; " + line_;
  if (text == sent_) return;
  sent_ = text;
  sd_notify(0, ("STATUS=" + text).c_str());
}

void SystemdNotify::tick() {
  if (stopping_) return;
  const std::string why = stuck_();
  auto logger = log::get("daemon");
  if (why.empty()) {
    if (!withheld_.empty()) {
      logger->warn("systemd watchdog: keep-alive resumes ({} is over)", withheld_);
      withheld_.clear();
      sendStatus();
    }
    sd_notify(0, "WATCHDOG=1");
  } else if (why != withheld_) {
    // systemd restarts the daemon when WatchdogSec= passes without a keep-alive.
    logger->critical("systemd watchdog: keep-alive withheld: {}", why);
    withheld_ = why;
    sendStatus();
  }
  timer_.expires_after(interval_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) tick();
  });
}

}  // namespace lanegate
