#pragma once
// The X-ray scanner's inbox: Contract 1 bundles arrive as files (the JSON last, by
// rename); inotify through Asio notices them, a rescan at start and periodically catches
// anything written while the daemon was down or an event that was missed. Bundles are
// analysed by the vision module on a bounded pool of worker threads (when it is busy,
// bundles simply wait in the inbox). A scan with findings becomes an
// org.lanegate.xray.hit alert whose overlay image is stored with it and published first;
// its id is derived from the scan id, so a re-analysis after a crash yields the same id.
// A bundle leaves the inbox only after its record is durable in the outbox: processed
// bundles move to the state directory (kept by age and size), unreadable ones to
// `rejected/` beside a `.error` file that says why.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "daemon/alert_sink.h"
#include "daemon/asio.h"
#include "daemon/config.h"
#include "vision/scan.h"

namespace lanegate {

/// Where and how one scanner's bundles are taken in.
struct XrayLaneOptions {
  std::string device;                    ///< the scanner's configured name
  std::string inbox;                     ///< where the scanner writes bundles
  std::string stateDir;                  ///< processed bundles go to <stateDir>/scans/<device>/
  int workers = 1;                       ///< analyses at a time
  int queue = 4;                         ///< bundles queued for a worker; the rest wait in the inbox
  std::chrono::seconds rescanEvery{30};  ///< safety net for missed events
  double retentionDays = 30;             ///< processed bundles older than this are deleted (0: kept)
  std::uint64_t retentionBytes = 2048ull << 20;  ///< and the oldest beyond this total (0: no limit)
};

/// One scanner's inbox, analysis and alerts; lives on the io thread.
class XrayLane {
 public:
  /// `identity` gives site and lane for alert ids, topics and CloudEvents.
  XrayLane(asio::io_context& io, XrayLaneOptions options, AlertSink& sink, Config identity);
  ~XrayLane();
  XrayLane(const XrayLane&) = delete;
  XrayLane& operator=(const XrayLane&) = delete;

  /// Creates the inbox's `rejected/` and the state folders, starts watching and queues
  /// what is already there. Returns an error text when the inbox cannot be watched.
  std::string start();
  /// Stops watching and waits for analyses in progress (their bundles stay in the inbox).
  void stop();
  /// Called on the io thread when a scan is done: its conveyance (the bundle's, with
  /// id_checks, as JSON text) and its alert id once durable ("" for a clear scan).
  using ScanDone = std::function<void(const std::string& scanId, const std::string& conveyanceJson,
                                      const std::string& alertId)>;
  void onScan(ScanDone done) { onScan_ = std::move(done); }
  /// Calibration (dark/air bundles the scanner writes on `lanegatectl calibrate xray`):
  /// true when raw scans need one and the latest valid one is missing or older than
  /// `maxAgeHours`; `why` says which.
  [[nodiscard]] bool calibrationDue(double maxAgeHours, std::string& why) const;
  /// The scanner's name.
  [[nodiscard]] const std::string& device() const { return options_.device; }
  /// Counters for the status: queued, analysing, analysed, alerts, clear, rejected,
  /// last_error, and the calibration (file, age, last problem).
  [[nodiscard]] nlohmann::json status() const;

  /// The alert id of a scan: "xray:{site}:{lane}:{device}:{scan_id}" (no '/', so it can
  /// be part of the image topic).
  static std::string alertId(const Config& identity, const std::string& device, const std::string& scanId);

 private:
  struct Result;
  void readEvents();
  void scheduleRescan();
  void rescan();
  void consider(const std::string& fileName);
  void pump();
  void finished(std::shared_ptr<Result> r);
  void reject(const std::string& scanId, const std::string& why);
  void archive(const std::string& scanId);
  void prune();
  void loadLatestCalibration();
  void storeCalibration(const Result& r);
  void primeWorkers();

  asio::io_context& io_;
  XrayLaneOptions options_;
  AlertSink& sink_;
  Config identity_;
  std::unique_ptr<asio::thread_pool> pool_;
  asio::posix::stream_descriptor inotify_;
  asio::steady_timer rescanTimer_;
  std::array<char, 8192> eventBuf_{};
  std::deque<std::string> queue_;  // scan ids waiting for a worker
  std::set<std::string> known_;    // queued, analysing, or waiting for the outbox
  int analysing_ = 0;
  bool skipped_ = false;  // a bundle was left in the inbox because the queue was full
  std::uint64_t analysed_ = 0, alerts_ = 0, clear_ = 0, rejected_ = 0;
  std::string lastError_;
  bool stopped_ = true;
  ScanDone onScan_;
  // Calibration: the latest valid dark and air frames (per energy, per channel means) and
  // the calibration made of them, which raw scans are analysed with.
  struct Frames;
  std::shared_ptr<const Frames> dark_, air_;
  std::shared_ptr<const vision::Calibration> calibration_;
  std::chrono::system_clock::time_point calibratedAt_{};
  std::string calibrationFile_, calibrationError_;
  bool sawRaw_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lanegate
