#pragma once
// lanegated's core: one io_context thread owns all state; signals, the control socket,
// the MQTT publisher and the device threads all feed it.

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/alert_sink.h"
#include "daemon/asio.h"
#include "daemon/config.h"
#include "daemon/control_server.h"
#include "daemon/delivery.h"
#include "daemon/device_runner.h"
#include "daemon/metrics.h"
#include "daemon/metrics_server.h"
#include "daemon/mqtt_publisher.h"
#include "daemon/outbox.h"
#include "daemon/systemd_notify.h"
#include "daemon/xray_inbox.h"
#include "lane/correlator.h"

namespace lanegate {

/// The daemon. Construct with a validated config, then run().
class Daemon {
 public:
  explicit Daemon(Config config);
  ~Daemon();
  /// Runs until SIGTERM/SIGINT; returns the process exit code.
  int run();
  /// True once run() has its sockets and handles requests (any thread may ask).
  [[nodiscard]] bool ready() const { return ready_; }
  /// One control request line handled as the control socket (or, with `admin`, the admin
  /// socket) would, without a socket: posted to the io thread, answered through `reply`.
  /// For in-process drivers such as the control fuzz target; call once ready().
  void controlLine(std::string line, bool admin, std::shared_ptr<ControlReply> reply);

 private:
  void waitSignals();
  /// Re-reads the config; "" when applied (what changed in `outcome`), else why it was
  /// refused, with the file:line errors (the old config stays).
  std::string reload(nlohmann::json* outcome = nullptr);
  void shutdown();
  void startDevices();
  void stopDevices();
  void onControl(const nlohmann::json& request, std::shared_ptr<ControlReply> reply);
  void testAlerts(int count, std::shared_ptr<ControlReply> reply);
  void deviceCommand(const nlohmann::json& request, std::shared_ptr<ControlReply> reply);
  void checkStatus();
  void onAck(const std::string& payload);
  void acceptTraceHit(RecordDraft draft, const std::string& device, int attempt);
  void clearDeviceStatus(const std::string& name);
  [[nodiscard]] nlohmann::json outboxJson();
  [[nodiscard]] nlohmann::json devicesJson();
  void onDeviceHealth(const std::string& name, const DeviceHealth& health);
  void onSample(const std::string& device, Sample sample);
  void onTrace(const std::string& device, TraceSample sample,
               std::chrono::system_clock::time_point readAt);
  void onScanner(const std::string& device, const ScannerState& state);
  void onScan(const lane::ConveyanceRecord& conveyance, const std::string& alertId);
  void publishDeviceStatus(const std::string& name, const DeviceHealth& health);
  [[nodiscard]] std::string statusJson();
  /// What keeps the daemon from being fully healthy (Contract 6: a device not ok, the
  /// broker unreachable, a fault, something stuck), one sentence each; empty when healthy.
  /// `status` is statusObject(), when the caller has built it already (it queries the outbox).
  [[nodiscard]] std::vector<std::string> problems(const nlohmann::json& status);
  [[nodiscard]] std::vector<std::string> problems();
  /// The one-line summary for systemd's STATUS= and the log, from statusObject().
  [[nodiscard]] std::string summaryLine(const nlohmann::json& status);
  [[nodiscard]] std::string summaryLine();
  /// What is stuck (the publisher, a device thread), or "": gates the watchdog.
  [[nodiscard]] std::string stuck() const;
  /// The /metrics page.
  [[nodiscard]] std::string metricsText();
  void onDeviceCall(const std::string& device, const char* call,
                    std::chrono::steady_clock::duration took, bool ok);
  [[nodiscard]] nlohmann::json statusObject();

  Config config_;
  asio::io_context io_;
  asio::signal_set signals_;
  std::unique_ptr<MqttPublisher> publisher_;
  std::unique_ptr<Outbox> outbox_;
  std::unique_ptr<Delivery> delivery_;
  asio::steady_timer statusTimer_;
  std::string lastStatusSummary_;
  SystemdNotify notify_;
  std::unique_ptr<ControlServer> control_;  // group lanegate: status, devices, outbox
  std::unique_ptr<ControlServer> admin_;    // group lanegate-admin: every command
  ControlSocketOptions controlOptions_, adminOptions_;
  std::atomic<bool> ready_{false};
  std::vector<std::unique_ptr<DeviceRunner>> runners_;
  std::vector<std::unique_ptr<XrayInbox>> inboxes_;
  // The conveyance in the lane (PLC lane_occupied and scans); trace hits are tied to it.
  lane::Correlator correlator_;
  std::map<std::string, double> calibrationMaxAgeH_;  // per X-ray scanner
  std::map<std::string, DeviceHealth> health_;        // as published
  std::map<std::string, DeviceHealth> reported_;      // as the driver last reported it
  std::map<std::string, std::string> readingsFault_;  // the last sample's bad readings, per device
  std::optional<trace::SubstanceLibrary> imsLibrary_;
  std::chrono::system_clock::time_point started_;
  std::map<std::string, std::uint64_t> alertsByType_;  // accepted since start, by CloudEvent type
  std::uint64_t acksMalformed_ = 0;  // acks not even shaped like one
  static constexpr std::size_t kMaxTraceHitsWaiting = 256;
  std::size_t traceHitsWaiting_ = 0;      // refused by the outbox, to be retried
  std::uint64_t traceHitsDropped_ = 0;    // beyond kMaxTraceHitsWaiting
  std::set<std::string> removedDevices_;  // retained statuses still to clear
  std::unique_ptr<MetricsServer> metrics_;
  // Since start, by device: poll latency, faults (summed over driver instances), opens.
  std::map<std::string, Histogram> pollSeconds_;
  std::map<std::string, std::uint64_t> faultsTotal_, faultsSeen_, opens_;
  // Since start, by scanner: analysis time, and bundles by outcome.
  std::map<std::string, Histogram> analysisSeconds_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> scansAnalysed_;
  bool stopping_ = false;
};

}  // namespace lanegate
