#include "daemon/reload.h"

#include <functional>

namespace lanegate {

namespace {

using Key = std::pair<const char*, std::function<std::string(const Config&)>>;

std::string text(double v) { return std::to_string(v); }

// The keys a reload cannot apply, each read as text so that a change shows.
const std::vector<Key>& restartOnlyKeys() {
  static const std::vector<Key> keys{
      {"site", [](const Config& c) { return c.site; }},
      {"lane", [](const Config& c) { return c.lane; }},
      {"state_dir", [](const Config& c) { return c.stateDir; }},
      {"control_socket", [](const Config& c) { return c.controlSocket; }},
      {"admin_socket", [](const Config& c) { return c.adminSocket; }},
      {"control_max_connections",
       [](const Config& c) { return std::to_string(c.controlMaxConnections); }},
      {"control_idle_timeout_s", [](const Config& c) { return text(c.controlIdleTimeoutS); }},
      {"broker.uri", [](const Config& c) { return c.broker.uri; }},
      {"broker.client_id", [](const Config& c) { return c.broker.clientId; }},
      {"broker.credentials_file", [](const Config& c) { return c.broker.credentialsFile; }},
      {"broker.keepalive_s", [](const Config& c) { return text(c.broker.keepAliveS); }},
      {"broker.reconnect_min_s", [](const Config& c) { return text(c.broker.reconnectMinS); }},
      {"broker.reconnect_max_s", [](const Config& c) { return text(c.broker.reconnectMaxS); }},
      {"broker.tls.ca_file", [](const Config& c) { return c.broker.caFile; }},
      {"broker.tls.cert_file", [](const Config& c) { return c.broker.certFile; }},
      {"broker.tls.key_file", [](const Config& c) { return c.broker.keyFile; }},
      {"outbox.max_bytes",
       [](const Config& c) { return text(static_cast<double>(c.outbox.maxBytes)); }},
      {"outbox.min_free_bytes",
       [](const Config& c) { return text(static_cast<double>(c.outbox.minFreeBytes)); }},
      {"outbox.acked_retention_s", [](const Config& c) { return text(c.outbox.ackedRetentionS); }},
      {"metrics.listen", [](const Config& c) { return c.metricsListen; }},
      {"decode.max_scan_width", [](const Config& c) { return text(c.decode.maxWidth); }},
      {"decode.max_scan_height", [](const Config& c) { return text(c.decode.maxHeight); }},
      {"decode.max_scan_pixels",
       [](const Config& c) { return text(static_cast<double>(c.decode.maxPixels)); }},
      {"decode.max_tiff_bytes",
       [](const Config& c) { return text(static_cast<double>(c.decode.maxTiffBytes)); }},
      {"decode.max_json_bytes",
       [](const Config& c) { return text(static_cast<double>(c.decode.maxJsonBytes)); }},
  };
  return keys;
}

bool sameDevices(const std::vector<DeviceSpec>& a, const std::vector<DeviceSpec>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || YAML::Dump(a[i].settings) != YAML::Dump(b[i].settings))
      return false;
  return true;
}

}  // namespace

ReloadPlan planReload(const Config& running, const Config& fresh) {
  ReloadPlan plan;
  plan.next = running;
  for (const auto& [key, get] : restartOnlyKeys())
    if (get(running) != get(fresh)) plan.restartOnly.emplace_back(key);
  if (running.logLevel != fresh.logLevel) plan.applied.emplace_back("log_level");
  if (running.imsLibrary != fresh.imsLibrary) plan.applied.emplace_back("ims_library");
  if (!sameDevices(running.devices, fresh.devices)) plan.applied.emplace_back("devices");
  if (running.outbox.ackTimeoutS != fresh.outbox.ackTimeoutS)
    plan.applied.emplace_back("outbox.ack_timeout_s");
  plan.next.logLevel = fresh.logLevel;
  plan.next.imsLibrary = fresh.imsLibrary;
  plan.next.devices = fresh.devices;
  plan.next.outbox.ackTimeoutS = fresh.outbox.ackTimeoutS;
  return plan;
}

}  // namespace lanegate
