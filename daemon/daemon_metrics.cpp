// The daemon's /metrics page: what it counts for Prometheus, and the names it uses.
#include <chrono>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "daemon/daemon.h"

namespace lanegate {

void Daemon::onDeviceCall(const std::string& device, const char* call,
                          std::chrono::steady_clock::duration took, bool ok) {
  if (std::string_view(call) == "poll") {
    pollSeconds_.try_emplace(device, durationBuckets())
        .first->second.observe(std::chrono::duration<double>(took).count());
  } else if (ok) {
    ++opens_[device];
  }
}

std::string Daemon::metricsText() {
  MetricsPage m;
  const auto dev = [](const std::string& name) { return MetricLabels{{"device", name}}; };
  m.family("lanegate_build_info", "gauge", "The daemon's version and lane.");
  m.sample("lanegate_build_info",
           {{"version", LANEGATE_VERSION}, {"site", config_.site}, {"lane", config_.lane}}, 1);
  const auto issues = problems();
  m.family("lanegate_healthy", "gauge",
           "1 when the daemon is fully healthy (the verdict of lanegatectl status and /healthz).");
  m.sample("lanegate_healthy", {}, issues.empty() ? 1 : 0);

  m.family("lanegate_device_up", "gauge", "1 when the device's state is ok.");
  for (const auto& [name, h] : health_) m.sample("lanegate_device_up", dev(name), h.state == "ok");
  m.family("lanegate_device_state", "gauge", "The device's state, as a label (value 1).");
  for (const auto& [name, h] : health_)
    m.sample("lanegate_device_state", {{"device", name}, {"state", h.state}}, 1);
  m.family("lanegate_device_poll_duration_seconds", "histogram",
           "How long one poll of the device took.");
  for (const auto& [name, h] : pollSeconds_)
    m.histogram("lanegate_device_poll_duration_seconds", dev(name), h);
  m.family("lanegate_device_faults_total", "counter",
           "Bad replies and rejected samples of the device since start.");
  for (const auto& [name, n] : faultsTotal_)
    m.sample("lanegate_device_faults_total", dev(name), static_cast<double>(n));
  m.family("lanegate_device_reconnects_total", "counter",
           "Connections to the device after its first since start.");
  for (const auto& [name, n] : opens_)
    m.sample("lanegate_device_reconnects_total", dev(name), static_cast<double>(n > 0 ? n - 1 : 0));

  m.family("lanegate_scans_analysed_total", "counter",
           "X-ray bundles analysed since start, by outcome (alert, clear, calibration, rejected).");
  for (const auto& [key, n] : scansAnalysed_)
    m.sample("lanegate_scans_analysed_total", {{"device", key.first}, {"outcome", key.second}},
             static_cast<double>(n));
  m.family("lanegate_scan_analysis_duration_seconds", "histogram",
           "How long reading and analysing one X-ray bundle took.");
  for (const auto& [name, h] : analysisSeconds_)
    m.histogram("lanegate_scan_analysis_duration_seconds", dev(name), h);
  m.family("lanegate_scans_queued", "gauge", "X-ray bundles waiting for an analysis worker.");
  for (const auto& l : inboxes_)
    m.sample("lanegate_scans_queued", dev(l->device()), l->status().value("queued", 0.0));

  m.family("lanegate_alerts_total", "counter",
           "Alerts accepted into the outbox since start, by type.");
  for (const auto& [type, n] : alertsByType_)
    m.sample("lanegate_alerts_total", {{"type", type}}, static_cast<double>(n));

  const auto ob = outboxJson();
  const auto num = [&](const char* key) { return ob.value(key, 0.0); };
  m.family("lanegate_outbox_records", "gauge", "Records in the outbox, by state.");
  for (const char* state : {"pending", "published", "acked"})
    m.sample("lanegate_outbox_records", {{"state", state}}, num(state));
  m.family("lanegate_outbox_oldest_pending_age_seconds", "gauge",
           "Age of the oldest record not yet published (0 when none).");
  m.sample("lanegate_outbox_oldest_pending_age_seconds", {}, num("oldest_pending_age_s"));
  m.family("lanegate_outbox_file_bytes", "gauge", "Size of the outbox database on disk.");
  m.sample("lanegate_outbox_file_bytes", {}, num("file_bytes"));
  m.family("lanegate_outbox_evicted_telemetry_total", "counter",
           "Telemetry records evicted to keep within the disk budget.");
  m.sample("lanegate_outbox_evicted_telemetry_total", {}, num("evicted_telemetry"));
  m.family("lanegate_outbox_disk_fault", "gauge", "1 when alerts alone exceed the outbox budget.");
  m.sample("lanegate_outbox_disk_fault", {}, ob.value("disk_fault", false) ? 1 : 0);
  m.family("lanegate_acks_total", "counter", "Acks from the control room applied.");
  m.sample("lanegate_acks_total", {}, num("acks_applied"));
  m.family("lanegate_acks_rejected_total", "counter",
           "Acks ignored: forged, unknown, or not shaped like an ack.");
  m.sample("lanegate_acks_rejected_total", {}, num("acks_rejected"));
  m.family("lanegate_alerts_unacked_overdue", "gauge",
           "Published alerts without an ack after outbox.ack_timeout_s.");
  m.sample("lanegate_alerts_unacked_overdue", {}, num("unacked_overdue"));
  m.family("lanegate_alerts_oldest_unacked_age_seconds", "gauge",
           "Age of the oldest published alert without an ack (0 when none).");
  m.sample("lanegate_alerts_oldest_unacked_age_seconds", {}, num("oldest_unacked_age_s"));

  m.family("lanegate_mqtt_connected", "gauge", "1 while connected to the broker.");
  m.sample("lanegate_mqtt_connected", {}, publisher_->connected() ? 1 : 0);
  m.family("lanegate_mqtt_reconnects_total", "counter",
           "Connections to the broker after the first since start.");
  const auto connections = publisher_->connections();
  m.sample("lanegate_mqtt_reconnects_total", {},
           static_cast<double>(connections > 0 ? connections - 1 : 0));
  return m.text();
}

}  // namespace lanegate
