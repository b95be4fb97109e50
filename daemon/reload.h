#pragma once
// What `systemctl reload` (SIGHUP, `lanegatectl reload`) does with a freshly parsed config:
// every key either takes effect now or is named as needing a restart; none is ignored in
// silence. Applied: log_level, ims_library, devices (all devices restart, so edited
// profiles are read again), outbox.ack_timeout_s. Restart only (the running values are
// kept): site, lane, state_dir, control_socket, admin_socket, control_max_connections,
// control_idle_timeout_s, metrics.listen (the sockets are bound once), broker.* (one MQTT client for the
// process lifetime), outbox.max_bytes, outbox.min_free_bytes, outbox.acked_retention_s
// (the outbox's writer thread holds them). config/lanegate.yaml says the same.

#include <string>
#include <vector>

#include "daemon/config.h"

namespace lanegate {

/// A reload worked out before anything is touched.
struct ReloadPlan {
  Config next;                           ///< the running config with the keys a reload applies
  std::vector<std::string> applied;      ///< keys whose change takes effect now
  std::vector<std::string> restartOnly;  ///< keys that changed but take effect only on restart
};

/// Compares the running config with a fresh one.
ReloadPlan planReload(const Config& running, const Config& fresh);

}  // namespace lanegate
