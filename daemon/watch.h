#pragma once
// `lanegatectl watch`: subscribes to a lane's alerts as the control room does (MQTT 5, a
// persistent session, an ack for each alert), prints them, and saves X-ray overlays
// whose SHA-256 matches what their alert says.

#include <string>

namespace lanegate {

/// What to watch and how.
struct WatchOptions {
  std::string uri;         ///< broker: tcp://host:port or ssl://host:port
  std::string site, lane;  ///< whose alerts
  std::string clientId;    ///< "" = lanegatectl-watch-{site}-{lane}-{host}
  std::string imageDir;    ///< "" = images are not saved
  bool json = false;       ///< one JSON object a line instead of a readable line
  bool ack = true;         ///< acknowledge each alert on .../acks
  long long count = 0;     ///< stop after this many alerts; 0 = run until SIGINT/SIGTERM
};

/// Watches until `count` alerts arrived or a signal; the exit code (0, or 1 for bad input).
int watchAlerts(const WatchOptions& options);

}  // namespace lanegate
