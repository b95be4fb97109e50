#include "daemon/xray_inbox.h"

#include <malloc.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/log.h"
#include "lane/xray_pipeline.h"

namespace lanegate {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uintmax_t kMaxTiffBytes = 1ull << 30;
constexpr std::uintmax_t kMaxJsonBytes = 1ull << 20;

bool validScanId(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// Reads a whole file; "" and an error text when it cannot.
std::string readWhole(const fs::path& p, std::uintmax_t cap, std::string& error) {
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  if (ec) {
    error = p.string() + ": " + ec.message();
    return {};
  }
  if (size > cap) {
    error = p.string() + ": " + std::to_string(size) + " bytes, more than the limit of " +
            std::to_string(cap);
    return {};
  }
  std::ifstream in(p, std::ios::binary);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (!in) error = p.string() + ": cannot read";
  return bytes;
}

// Moves a file, replacing the target (rename, or copy + remove across file systems).
void moveReplacing(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (!ec) return;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::remove(from, ec);
}

double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace

/// What a worker made of one bundle.
struct XrayInbox::Result {
  std::string scanId;
  lane::XrayOutcome outcome;  // rejected, a scan, or a calibration bundle
  std::string alertId;        // a scan with findings: its alert id, image topic and data
  std::string imageTopic;
  std::string dataJson;  // the record's data, serialised (once) on the worker
};

// Every scan allocates and frees buffers of its own size: the TIFF's bytes (13 MB for a
// 3600x900 dual-energy scan) and the analysis planes (~20 MB per worker). By default glibc maps
// blocks that large from the kernel and unmaps them on free, so every scan page-faults them in
// afresh, which on a VM cost 20-30 ms per scan in read and overlay alone (xray_bench at 1 scan/s:
// p50 189 ms before, 81 ms after). Keeping them in the heap holds the lane at its high-water mark
// (tens of MB per worker) instead. Blocks over 32 MB (very long scans) are still mapped.
static void keepScanBuffersInTheHeap() {
  static std::once_flag once;
  std::call_once(once, [] {
    ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
    ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  });
}

// The first scan on each worker was the slowest of a run (xray_bench: the first two ~280 and
// ~370 ms against ~75): its thread's heap grew from nothing, page by page. Each worker now
// grows its heap once at start, off the io thread, by touching and freeing 64 MB, about what a
// 3600x900 dual-energy scan needs (its bytes, the analysis planes, the overlay);
// keepScanBuffersInTheHeap() keeps it (after: ~200 and ~115 ms).
void XrayInbox::primeWorkers() {
  const int n = std::max(1, options_.workers);
  auto arrived = std::make_shared<std::atomic<int>>(0);
  for (int i = 0; i < n; ++i) {
    asio::post(*pool_, [arrived, n] {
      // Hold until every worker has one of these (so that each thread primes its own heap),
      // but not for ever: a pool stopped meanwhile must still be able to join.
      arrived->fetch_add(1);
      const auto until = Clock::now() + std::chrono::milliseconds(500);
      while (arrived->load() < n && Clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      constexpr std::size_t kBlock = 8u << 20,
                            kBlocks = 8;  // 64 MB in blocks under the mmap threshold
      std::vector<std::unique_ptr<char[]>> blocks;
      for (std::size_t b = 0; b < kBlocks; ++b) {
        blocks.emplace_back(new char[kBlock]);
        volatile char* page = blocks.back().get();  // volatile: the stores must happen
        for (std::size_t at = 0; at < kBlock; at += 4096) page[at] = 1;
      }
    });
  }
}

XrayInbox::XrayInbox(asio::io_context& io, XrayInboxOptions options, AlertSink& sink,
                     lane::LaneIdentity identity)
    : io_(io),
      options_(std::move(options)),
      sink_(sink),
      identity_(std::move(identity)),
      calibrations_((fs::path(options_.stateDir) / "calibration" / options_.device).string()),
      inotify_(io),
      rescanTimer_(io) {}

XrayInbox::~XrayInbox() {
  *alive_ = false;
  stop();
}

std::string XrayInbox::start() {
  std::error_code ec;
  const fs::path inbox(options_.inbox);
  if (!fs::is_directory(inbox, ec))
    return options_.device + ": inbox " + options_.inbox + " is not a directory";
  for (const fs::path& d :
       {inbox / "rejected", fs::path(options_.stateDir) / "scans" / options_.device,
        fs::path(calibrations_.dir())}) {
    fs::create_directories(d, ec);
    if (ec) return options_.device + ": cannot create " + d.string() + ": " + ec.message();
  }
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return options_.device + ": inotify_init1: " + std::strerror(errno);
  if (::inotify_add_watch(fd, options_.inbox.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return options_.device + ": cannot watch " + options_.inbox + ": " + why;
  }
  inotify_.assign(fd);
  keepScanBuffersInTheHeap();
  if (const std::string why = calibrations_.loadLatest(); !why.empty())
    log::get("daemon")->error("{}: {}", options_.device, why);
  pool_ =
      std::make_unique<asio::thread_pool>(static_cast<std::size_t>(std::max(1, options_.workers)));
  primeWorkers();
  stopped_ = false;
  readEvents();
  rescan();
  scheduleRescan();
  log::get("daemon")->info("{}: watching {} ({} worker(s))", options_.device, options_.inbox,
                           options_.workers);
  return {};
}

void XrayInbox::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ec;
  rescanTimer_.cancel();
  inotify_.close(ec);
  if (pool_) pool_->join();  // analyses in progress finish; their bundles stay in the inbox
}

void XrayInbox::readEvents() {
  inotify_.async_read_some(
      asio::buffer(eventBuf_),
      [this, alive = alive_](const boost::system::error_code& ec, std::size_t n) {
        if (!*alive || stopped_ || ec) return;
        std::size_t at = 0;
        bool overflow = false;
        while (at + sizeof(inotify_event) <= n) {
          inotify_event ev{};
          std::memcpy(&ev, eventBuf_.data() + at, sizeof ev);
          if (ev.mask & IN_Q_OVERFLOW) overflow = true;
          if (ev.len > 0) consider(std::string(eventBuf_.data() + at + sizeof ev));  // NUL-padded
          at += sizeof ev + ev.len;
        }
        if (overflow) rescan();
        readEvents();
      });
}

void XrayInbox::scheduleRescan() {
  rescanTimer_.expires_after(options_.rescanEvery);
  rescanTimer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || stopped_ || ec) return;
    rescan();
    prune();
    scheduleRescan();
  });
}

void XrayInbox::rescan() {
  std::vector<std::pair<fs::file_time_type, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(options_.inbox, ec)) {
    const std::string name = e.path().filename().string();
    if (name.ends_with(".json") && e.is_regular_file(ec))
      found.emplace_back(e.last_write_time(ec), name);
  }
  std::sort(found.begin(), found.end());  // oldest first
  for (const auto& [time, name] : found) consider(name);
}

void XrayInbox::consider(const std::string& fileName) {
  if (stopped_ || !fileName.ends_with(".json") || fileName.front() == '.') return;
  const std::string scanId = fileName.substr(0, fileName.size() - 5);
  if (known_.count(scanId)) return;
  std::error_code ec;
  if (!fs::exists(fs::path(options_.inbox) / fileName, ec)) return;
  if (!validScanId(scanId)) {
    known_.insert(scanId);
    reject(scanId, "'" + fileName + "': a scan id is 1 to 64 of A-Z a-z 0-9 . _ - (Contract 1)");
    return;
  }
  if (queue_.size() >= static_cast<std::size_t>(std::max(1, options_.queue))) {
    skipped_ = true;  // it waits in the inbox; taken when the queue has room
    return;
  }
  known_.insert(scanId);
  queue_.push_back(scanId);
  pump();
}

void XrayInbox::pump() {
  if (skipped_ && queue_.empty() && !stopped_) {
    skipped_ = false;
    rescan();  // take what waited in the inbox (calls pump again)
    return;
  }
  while (!stopped_ && analysing_ < std::max(1, options_.workers) && !queue_.empty()) {
    const std::string scanId = queue_.front();
    queue_.pop_front();
    ++analysing_;
    log::get("daemon")->debug("{}: analysing {}", options_.device, scanId);
    lane::XrayContext context{calibrations_.calibration(), calibrations_.dark(), {}};
    asio::post(*pool_,
               [this, scanId, queuedAt = Clock::now(), context = std::move(context), alive = alive_,
                inbox = options_.inbox, device = options_.device, identity = identity_]() mutable {
                 auto r = std::make_shared<Result>();
                 r->scanId = scanId;
                 context.timingsMs["queue"] = msSince(queuedAt);
                 const auto readAt = Clock::now();
                 lane::BundleBytes bundle{scanId,
                                          (fs::path(inbox) / (scanId + ".json")).string(),
                                          {},
                                          (fs::path(inbox) / (scanId + ".tiff")).string(),
                                          {}};
                 std::string err;
                 bundle.jsonText = readWhole(bundle.jsonPath, kMaxJsonBytes, err);
                 if (err.empty()) bundle.tiffBytes = readWhole(bundle.tiffPath, kMaxTiffBytes, err);
                 context.timingsMs["read"] = msSince(readAt);
                 if (!err.empty()) {
                   r->outcome.error = err;
                 } else {
                   r->outcome = lane::processBundle(bundle, context);
                 }
                 // The record's data is serialised here, off the io thread, once.
                 if (const auto& scan = r->outcome.scan; scan && scan->alert()) {
                   r->alertId = lane::xrayAlertId(identity, device, scanId);
                   r->imageTopic = lane::laneTopic(identity, "alerts/" + r->alertId + "/image");
                   r->dataJson = lane::xrayHitData(*scan, r->imageTopic);
                 } else if (scan) {
                   r->dataJson = lane::scanTelemetryData(*scan);
                 }
                 asio::post(io_, [this, alive, r] {
                   if (*alive) finished(r);
                 });
               });
  }
}

void XrayInbox::finished(std::shared_ptr<Result> r) {
  --analysing_;
  if (stopped_) return;  // the bundle stays in the inbox for the next start
  ++analysed_;
  const std::string scanId = r->scanId;
  if (r->outcome.raw) calibrations_.noteRawScan();
  if (!r->outcome.error.empty()) {
    reject(scanId, r->outcome.error);
    pump();
    return;
  }
  if (r->outcome.calibration) {
    storeCalibration(*r);
    known_.erase(scanId);
    pump();
    return;
  }
  lane::XrayScan& scan = *r->outcome.scan;
  const bool alert = scan.alert();
  RecordDraft d;
  d.id = alert ? r->alertId : lane::xrayScanId(identity_, options_.device, scanId);
  const std::string type = alert ? "org.lanegate.xray.hit" : "org.lanegate.xray.scan";
  // Contract 5 v1.1: the event's time is when the scan was taken (the bundle's), its
  // subject the conveyance's id.
  lane::EventHead head{type,
                       "",
                       0,
                       options_.device,
                       scan.takenAt.value_or(std::chrono::system_clock::now()),
                       lane::subjectOf(scan.conveyance),
                       alert ? lane::dataSchemaUri("xray-hit-data")
                             : lane::dataSchemaUri("scan-telemetry") + "#/properties/data",
                       ""};
  d.render = [identity = identity_, head = std::move(head),
              data = std::move(r->dataJson)](const RenderInfo& info) mutable {
    head.id = info.id;
    head.seq = info.seq;
    head.ackToken = info.ackToken;
    return lane::cloudEvent(identity, head, data);
  };
  if (alert) {
    // An alert: its overlay is stored with it and published first.
    d.kind = RecordKind::alert;
    d.topic = lane::laneTopic(identity_, "alerts");
    d.attachments.push_back({r->imageTopic, "image/jpeg", std::move(scan.image)});
    log::get("daemon")->warn("{}: scan {} {}: alert {}", options_.device, scanId, scan.verdict,
                             d.id);
  } else {
    // A clear scan: telemetry (counted, evidence kept; evicted before any alert under
    // disk pressure), archived once it is durable.
    d.kind = RecordKind::telemetry;
    d.topic = lane::laneTopic(identity_, "telemetry");
    log::get("daemon")->info("{}: scan {} clear", options_.device, scanId);
  }
  sink_.accept(std::move(d), [this, alive = alive_, scanId, conveyance = std::move(scan.conveyance),
                              alertId = alert ? r->alertId : std::string()](const std::string& err,
                                                                            std::uint64_t) {
    // Its id is taken: this scan's record was made durable before a crash kept the bundle
    // from being archived. It is done; analysed again, it is not sent twice.
    if (*alive)
      accepted(scanId, err.rfind(kIdTaken, 0) == 0 ? std::string() : err, conveyance, alertId);
  });
  pump();
}

void XrayInbox::accepted(const std::string& scanId, const std::string& error,
                         const lane::ConveyanceRecord& conveyance, const std::string& alertId) {
  if (!error.empty()) {
    // Not durable: the bundle stays in the inbox and the next rescan tries again.
    lastError_ = (alertId.empty() ? "telemetry of scan " + scanId : "alert " + alertId) +
                 " not accepted: " + error;
    log::get("daemon")->error("{}: {}", options_.device, lastError_);
  } else {
    ++(alertId.empty() ? clear_ : alerts_);
    archive(scanId);
    if (onScan_) onScan_(conveyance, alertId);
  }
  known_.erase(scanId);
}

void XrayInbox::storeCalibration(const Result& r) {
  auto logger = log::get("daemon");
  const lane::CalibrationFrames& frames = *r.outcome.calibration;
  const std::string kind(lane::calibrationKindName(frames.kind));
  const lane::CalibrationStored stored =
      calibrations_.record(frames, std::chrono::system_clock::now());
  // The bundle itself, kept beside its check record under a versioned name.
  for (const char* ext : {".tiff", ".json"})
    moveReplacing(fs::path(options_.inbox) / (r.scanId + ext),
                  fs::path(calibrations_.dir()) / (stored.version + "-" + r.scanId + ext));
  if (!stored.usable) {
    logger->error("{}: {} (the previous calibration stays in use)", options_.device, stored.error);
    return;
  }
  logger->info("{}: {} calibration {} accepted", options_.device, kind, r.scanId);
  if (!stored.error.empty()) logger->error("{}: {}", options_.device, stored.error);
  if (!stored.made.empty())
    logger->info("{}: new calibration {}; raw scans use it", options_.device, stored.made);
}

bool XrayInbox::calibrationDue(double maxAgeHours, std::string& why) const {
  return calibrations_.due(std::chrono::system_clock::now(), maxAgeHours, why);
}

void XrayInbox::reject(const std::string& scanId, const std::string& why) {
  ++rejected_;
  lastError_ = why;
  log::get("daemon")->error("{}: rejected bundle {}: {}", options_.device, scanId, why);
  const fs::path dir = fs::path(options_.inbox) / "rejected";
  for (const char* ext : {".tiff", ".json"}) {
    std::error_code ec;
    const fs::path from = fs::path(options_.inbox) / (scanId + ext);
    if (fs::exists(from, ec)) moveReplacing(from, dir / (scanId + ext));
  }
  std::ofstream(dir / (scanId + ".error"))
      << lane::rfc3339(std::chrono::system_clock::now()) << " " << why << "\n";
  known_.erase(scanId);
}

void XrayInbox::archive(const std::string& scanId) {
  const fs::path dir = fs::path(options_.stateDir) / "scans" / options_.device;
  for (const char* ext : {".tiff", ".json"})
    moveReplacing(fs::path(options_.inbox) / (scanId + ext), dir / (scanId + ext));
}

void XrayInbox::prune() {
  const fs::path dir = fs::path(options_.stateDir) / "scans" / options_.device;
  std::vector<std::tuple<fs::file_time_type, std::uintmax_t, fs::path>> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) files.emplace_back(e.last_write_time(ec), e.file_size(ec), e.path());
  std::sort(files.begin(), files.end());  // oldest first
  std::uintmax_t total = 0;
  for (const auto& f : files) total += std::get<1>(f);
  const auto cutoff = fs::file_time_type::clock::now() -
                      std::chrono::duration_cast<fs::file_time_type::duration>(
                          std::chrono::duration<double, std::ratio<86400>>(options_.retentionDays));
  for (const auto& [time, size, path] : files) {
    const bool tooOld = options_.retentionDays > 0 && time < cutoff;
    const bool overBudget = options_.retentionBytes > 0 && total > options_.retentionBytes;
    if (!tooOld && !overBudget) break;
    fs::remove(path, ec);
    total -= size;
  }
}

nlohmann::json XrayInbox::status() const {
  const lane::CalibrationStatus c = calibrations_.status(std::chrono::system_clock::now());
  nlohmann::json cal{{"file", c.file}, {"problem", c.problem}};
  if (c.ageH) cal["age_h"] = *c.ageH;
  return {{"inbox", options_.inbox}, {"queued", queue_.size()},  {"analysing", analysing_},
          {"analysed", analysed_},   {"alerts", alerts_},        {"clear", clear_},
          {"rejected", rejected_},   {"last_error", lastError_}, {"calibration", cal}};
}

}  // namespace lanegate
