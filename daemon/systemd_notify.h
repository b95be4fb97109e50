#pragma once
// What the daemon tells systemd (sd_notify, libsystemd): READY=1, RELOADING=1, STOPPING=1,
// a one-line STATUS=, and WATCHDOG=1 at half of WatchdogSec= but only while the daemon is
// whole: the keep-alive is sent from a timer on the io_context (so the loop must turn), and
// only when `stuck()` finds nothing stuck (the publisher, a device thread). Outside
// systemd (no $NOTIFY_SOCKET) every call does nothing.

#include <chrono>
#include <functional>
#include <string>

#include "daemon/asio.h"

namespace lanegate {

/// The daemon's side of Type=notify and WatchdogSec=.
class SystemdNotify {
 public:
  /// `stuck` returns "" when all is well, else what is stuck (one sentence); it runs on
  /// the io thread before each keep-alive.
  SystemdNotify(asio::io_context& io, std::function<std::string()> stuck);
  /// READY=1 and, when systemd asks for a watchdog (WATCHDOG_USEC), starts the keep-alive.
  void ready();
  /// RELOADING=1 (READY=1 again when the reload is over).
  void reloading();
  /// READY=1 after a reload.
  void reloaded();
  /// STOPPING=1; the keep-alive ends.
  void stopping();
  /// STATUS=line, sent when it differs from the last one.
  void status(const std::string& line);

 private:
  void tick();
  void sendStatus();

  std::function<std::string()> stuck_;
  asio::steady_timer timer_;
  std::chrono::microseconds interval_{0};
  std::string line_, sent_;  // the daemon's summary; the STATUS= text last sent
  std::string withheld_;     // why the keep-alive is withheld, "" when it is sent
  bool stopping_ = false;
};

}  // namespace lanegate
