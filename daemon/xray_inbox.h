#pragma once
// An X-ray scanner's inbox: Contract 1 bundles arrive as files (the JSON last, by rename);
// inotify through Asio notices them, a rescan at start and periodically catches anything
// written while the daemon was down or an event that was missed. A bounded pool of worker
// threads reads each bundle and runs the lane's X-ray pipeline on it (lane/xray_pipeline.h:
// decode, analyse, render, hash; when the pool is busy, bundles simply wait in the inbox).
// A scan with findings becomes an org.lanegate.xray.hit alert whose overlay image is stored
// with it and published first; a clear scan becomes telemetry; a dark/air calibration
// bundle goes to the scanner's calibration store (lane/calibration_store.h). A bundle
// leaves the inbox only after its record is durable in the outbox: processed bundles move
// to <state_dir>/scans/<device>/ (kept by age and size), malformed ones to
// <state_dir>/rejected/<device>/ beside a `.error` file that says why; both out of the
// inbox writer's reach. Every file is opened relative to a directory handle, never through
// a link (lane/files.h). A transient error (EMFILE, EIO, ...) is retried, first within the
// worker with a backoff, then at the next rescan: it never rejects a bundle. Before a
// bundle is analysed a marker in <state_dir>/inflight/<device>/ says so; a bundle whose
// marker two consecutive starts find (the daemon died while analysing it, twice) is moved
// to <state_dir>/quarantine/<device>/ unanalysed and raises an `inconclusive` alert.

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "daemon/alert_sink.h"
#include "daemon/asio.h"
#include "lane/calibration_store.h"
#include "lane/conveyance.h"
#include "lane/files.h"
#include "lane/payloads.h"

namespace lanegate {

/// Where and how one scanner's bundles are taken in.
struct XrayInboxOptions {
  std::string device;    ///< the scanner's configured name
  std::string inbox;     ///< where the scanner writes bundles
  std::string stateDir;  ///< processed bundles go to <stateDir>/scans/<device>/
  int workers = 1;       ///< analyses at a time
  int queue = 4;         ///< bundles queued for a worker; the rest wait in the inbox
  std::chrono::seconds rescanEvery{30};  ///< safety net for missed events
  double retentionDays = 30;  ///< processed bundles older than this are deleted (0: kept)
  std::uint64_t retentionBytes = 2048ull << 20;  ///< and the oldest beyond this total (0: no limit)
  vision::DecodeLimits limits;  ///< caps on a bundle's files and image (config `decode:`)
  /// Waits before each retry of a transiently failing read, within one worker run.
  std::vector<std::chrono::milliseconds> readBackoff{std::chrono::milliseconds(50),
                                                     std::chrono::milliseconds(200),
                                                     std::chrono::milliseconds(800)};
};

/// One scanner's inbox; lives on the io thread.
class XrayInbox {
 public:
  /// `identity` gives site and lane for alert ids, topics and CloudEvents.
  XrayInbox(asio::io_context& io, XrayInboxOptions options, AlertSink& sink,
            lane::LaneIdentity identity);
  ~XrayInbox();
  XrayInbox(const XrayInbox&) = delete;
  XrayInbox& operator=(const XrayInbox&) = delete;

  /// Opens the inbox and the state folders (a link in their place is refused), quarantines
  /// what two consecutive starts found in progress, starts watching and queues what is
  /// already there. Returns an error text when that cannot be done.
  std::string start();
  /// Stops watching and waits for analyses in progress (their bundles stay in the inbox).
  void stop();
  /// Called on the io thread when a scan is done and its record durable: its conveyance
  /// and its alert id ("" for a clear scan).
  using ScanDone =
      std::function<void(const lane::ConveyanceRecord& conveyance, const std::string& alertId)>;
  void onScan(ScanDone done) { onScan_ = std::move(done); }
  /// Called on the io thread for each bundle analysed: seconds it took (read and
  /// analysis) and its outcome: "alert", "clear", "calibration" or "rejected".
  using Analysed = std::function<void(double seconds, const char* outcome)>;
  void onAnalysed(Analysed done) { onAnalysed_ = std::move(done); }
  /// Calibration: true when raw scans need one and the latest valid one is missing or
  /// older than `maxAgeHours`; `why` says which.
  [[nodiscard]] bool calibrationDue(double maxAgeHours, std::string& why) const;
  /// The scanner's name.
  [[nodiscard]] const std::string& device() const { return options_.device; }
  /// Counters for the status: queued, analysing, analysed, alerts, clear, rejected,
  /// last_error, and the calibration (file, age, last problem).
  [[nodiscard]] nlohmann::json status() const;

 private:
  struct Result;
  std::string open();
  void readEvents();
  void scheduleRescan();
  void rescan();
  void consider(const std::string& fileName);
  void pump();
  void finished(std::shared_ptr<Result> r);
  void accepted(const std::string& scanId, const std::string& error,
                const lane::ConveyanceRecord& conveyance, const std::string& alertId);
  void reject(const std::string& scanId, const std::string& why);
  bool archive(const std::string& scanId);
  void retryPending();
  void quarantineInterrupted();
  void quarantine(const std::string& scanId, int starts);
  void endInflight(const std::string& scanId);
  void prune();
  void storeCalibration(const Result& r);
  void primeWorkers();

  asio::io_context& io_;
  XrayInboxOptions options_;
  AlertSink& sink_;
  lane::LaneIdentity identity_;
  lane::CalibrationStore calibrations_;
  lane::Dir inboxDir_, rejectedDir_, archiveDir_, inflightDir_, quarantineDir_;
  std::unique_ptr<asio::thread_pool> pool_;
  asio::posix::stream_descriptor inotify_;
  asio::steady_timer rescanTimer_;
  std::array<char, 8192> eventBuf_{};
  std::deque<std::string> queue_;           // scan ids waiting for a worker
  std::set<std::string> known_;             // queued, analysing, or waiting for the outbox
  std::map<std::string, int> interrupted_;  // scan id → starts that found it in progress
  std::map<std::string, std::string>
      pending_;  // moves that failed transiently: id → why ("" archive)
  std::set<std::string> analysingIds_;
  int analysing_ = 0;
  bool skipped_ = false;  // a bundle was left in the inbox because the queue was full
  std::uint64_t analysed_ = 0, alerts_ = 0, clear_ = 0, rejected_ = 0;
  std::string lastError_;
  bool stopped_ = true;
  ScanDone onScan_;
  Analysed onAnalysed_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lanegate
