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

bool validScanId(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// Reads a file of the inbox, retrying a transient failure after each wait of `backoff`
// (this runs on a worker, which may wait).
lane::FileResult<std::string> readRetrying(const lane::Dir& dir, const std::string& name,
                                           std::uint64_t cap,
                                           const std::vector<std::chrono::milliseconds>& backoff) {
  auto r = dir.read(name, cap);
  for (const auto wait : backoff) {
    if (r || !r.error().transient()) break;
    std::this_thread::sleep_for(wait);
    r = dir.read(name, cap);
  }
  return r;
}

double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace

/// What a worker made of one bundle.
struct XrayInbox::Result {
  std::string scanId;
  std::string retryLater;     // a transient read error: the bundle stays for the next rescan
  lane::XrayOutcome outcome;  // rejected, a scan, or a calibration bundle
  std::string alertId;        // a scan with findings: its alert id, image topic and data
  std::string imageTopic;
  std::string dataJson;  // the record's data, serialised (once) on the worker
  double seconds = 0;    // read and analysis, on the worker
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
  // Why it could not start is also its last error, on the status.
  std::string why = open();
  if (!why.empty()) lastError_ = why;
  return why;
}

std::string XrayInbox::open() {
  const std::string& device = options_.device;
  auto inbox = lane::Dir::open(options_.inbox, false);
  if (!inbox) return device + ": inbox " + inbox.error().message;
  auto state = lane::Dir::open(options_.stateDir, true);
  if (!state) return device + ": state_dir " + state.error().message;
  // <state_dir>/<what>/<device>/, each opened without following a link.
  auto stateSub = [&](const char* what, lane::Dir& into) -> std::string {
    auto parent = state->sub(what, true);
    auto dir = parent ? parent->sub(device, true) : tl::unexpected(parent.error());
    if (!dir) return device + ": " + dir.error().message;
    into = std::move(*dir);
    return {};
  };
  lane::Dir calibration;
  for (const auto& [what, into] :
       std::initializer_list<std::pair<const char*, lane::Dir*>>{{"rejected", &rejectedDir_},
                                                                 {"scans", &archiveDir_},
                                                                 {"inflight", &inflightDir_},
                                                                 {"quarantine", &quarantineDir_},
                                                                 {"calibration", &calibration}}) {
    if (std::string why = stateSub(what, *into); !why.empty()) return why;
  }
  inboxDir_ = std::move(*inbox);
  calibrations_.open(std::move(calibration));
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return device + ": inotify_init1: " + std::strerror(errno);
  if (::inotify_add_watch(fd, options_.inbox.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return device + ": cannot watch " + options_.inbox + ": " + why;
  }
  inotify_.assign(fd);
  keepScanBuffersInTheHeap();
  if (const std::string why = calibrations_.loadLatest(); !why.empty())
    log::get("daemon")->error("{}: {}", device, why);
  pool_ =
      std::make_unique<asio::thread_pool>(static_cast<std::size_t>(std::max(1, options_.workers)));
  primeWorkers();
  stopped_ = false;
  quarantineInterrupted();
  readEvents();
  rescan();
  scheduleRescan();
  log::get("daemon")->info("{}: watching {} ({} worker(s))", device, options_.inbox,
                           options_.workers);
  return {};
}

// Markers left in inflight/ name bundles that were being analysed when the daemon stopped
// without finishing them (a crash, a SIGKILL, a power cut). One such stop proves nothing
// (the scan is analysed again); a bundle found so by two consecutive starts is quarantined,
// so that a scan that kills the daemon cannot keep it in a crash loop.
void XrayInbox::quarantineInterrupted() {
  auto entries = inflightDir_.list();
  if (!entries) {
    log::get("daemon")->error("{}: {}", options_.device, entries.error().message);
    return;
  }
  for (const lane::DirEntry& e : *entries) {
    if (e.name.front() == '.') {
      (void)inflightDir_.remove(e.name);  // a temporary of an interrupted write
      continue;
    }
    auto text = inflightDir_.read(e.name, 64);
    int starts = 1;
    if (text) starts += std::atoi(text->c_str());
    if (!validScanId(e.name) || !inboxDir_.exists(e.name + ".json")) {
      (void)inflightDir_.remove(e.name);  // gone from the inbox meanwhile
      continue;
    }
    if (starts >= 2) {
      quarantine(e.name, starts);
      continue;
    }
    log::get("daemon")->warn(
        "{}: scan {} was being analysed when the daemon stopped; analysing it again",
        options_.device, e.name);
    interrupted_[e.name] = starts;
    if (auto w = inflightDir_.replace(e.name, std::to_string(starts) + "\n"); !w)
      log::get("daemon")->error("{}: {}", options_.device, w.error().message);
  }
}

void XrayInbox::quarantine(const std::string& scanId, int starts) {
  auto logger = log::get("daemon");
  const std::string why =
      "scan " + scanId + " was being analysed when the daemon stopped, at " +
      std::to_string(starts) +
      " consecutive starts; it is quarantined unanalysed (a technician must look at it)";
  logger->error("{}: {}", options_.device, why);
  lastError_ = why;
  lane::BundleBytes bundle{scanId,
                           options_.inbox + "/" + scanId + ".json",
                           {},
                           options_.inbox + "/" + scanId + ".tiff",
                           {}};
  // Its bytes, for the evidence hashes (bounded like any bundle's); a file that cannot be
  // read is hashed as empty, and the files are kept as they are either way.
  if (auto j = inboxDir_.read(scanId + ".json", options_.limits.maxJsonBytes))
    bundle.jsonText = std::move(*j);
  if (auto t = inboxDir_.read(scanId + ".tiff", options_.limits.maxTiffBytes))
    bundle.tiffBytes = std::move(*t);
  lane::XrayScan scan = lane::quarantinedScan(bundle, why);
  RecordDraft d;
  d.id = lane::xrayAlertId(identity_, options_.device, scanId);
  d.kind = RecordKind::alert;
  d.topic = lane::laneTopic(identity_, "alerts");
  const std::string imageTopic = lane::laneTopic(identity_, "alerts/" + d.id + "/image");
  // Contract 5 v1.1 as for any X-ray alert: the bundle's time and conveyance when its JSON
  // could be read, else now and none.
  lane::EventHead head{"org.lanegate.xray.hit",
                       "",
                       0,
                       options_.device,
                       scan.takenAt.value_or(std::chrono::system_clock::now()),
                       lane::subjectOf(scan.conveyance),
                       lane::dataSchemaUri("xray-hit-data"),
                       ""};
  d.render = [identity = identity_, head = std::move(head),
              data = lane::xrayHitData(scan, imageTopic)](const RenderInfo& info) mutable {
    head.id = info.id;
    head.seq = info.seq;
    head.ackToken = info.ackToken;
    return lane::cloudEvent(identity, head, data);
  };
  d.attachments.push_back({imageTopic, "image/jpeg", std::move(scan.image)});
  // Not analysed in this run whatever happens; it leaves the inbox once its alert is
  // durable (until then its marker stays, and the next start quarantines it again).
  known_.insert(scanId);
  sink_.accept(std::move(d), [this, alive = alive_, scanId, why](const std::string& err,
                                                                 std::uint64_t) {
    if (!*alive) return;
    if (!err.empty()) {
      lastError_ = "quarantine alert for scan " + scanId + " not accepted: " + err;
      log::get("daemon")->error("{}: {}", options_.device, lastError_);
      return;
    }
    ++alerts_;
    auto out = log::get("daemon");
    for (const char* ext : {".tiff", ".json"}) {
      const std::string name = scanId + ext;
      if (!inboxDir_.exists(name)) continue;
      if (auto m = inboxDir_.move(name, quarantineDir_, name); !m)
        out->error("{}: {}", options_.device, m.error().message);
    }
    if (auto w = quarantineDir_.replace(
            scanId + ".error", lane::rfc3339(std::chrono::system_clock::now()) + " " + why + "\n");
        !w)
      out->error("{}: {}", options_.device, w.error().message);
    (void)inflightDir_.remove(scanId);
    known_.erase(scanId);
  });
}

void XrayInbox::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ec;
  rescanTimer_.cancel();
  inotify_.close(ec);
  if (pool_) pool_->join();  // analyses in progress finish; their bundles stay in the inbox
  // Those analyses ended: their markers go, so a stop is not taken for a crash.
  for (const std::string& id : analysingIds_) (void)inflightDir_.remove(id);
  analysingIds_.clear();
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
  retryPending();
  auto entries = inboxDir_.list();
  if (!entries) {
    lastError_ = entries.error().message;
    log::get("daemon")->error("{}: {}", options_.device, lastError_);
    return;
  }
  std::vector<std::pair<std::int64_t, std::string>> found;
  for (const lane::DirEntry& e : *entries)
    if (e.name.ends_with(".json") && !e.directory) found.emplace_back(e.mtimeNs, e.name);
  std::sort(found.begin(), found.end());  // oldest first
  for (const auto& [time, name] : found) consider(name);
}

void XrayInbox::consider(const std::string& fileName) {
  if (stopped_ || !fileName.ends_with(".json") || fileName.front() == '.') return;
  const std::string scanId = fileName.substr(0, fileName.size() - 5);
  if (known_.count(scanId)) return;
  if (!inboxDir_.exists(fileName)) return;
  if (!validScanId(scanId)) {
    known_.insert(scanId);
    // The name may hold any bytes (not UTF-8, control characters): escaped wherever it is shown.
    reject(scanId, "'" + lane::printableName(fileName) +
                       "': a scan id is 1 to 64 of A-Z a-z 0-9 . _ - (Contract 1)");
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
    // In progress, durably, before the analysis starts (see quarantineInterrupted).
    const auto found = interrupted_.find(scanId);
    const int starts = found == interrupted_.end() ? 0 : found->second;
    if (auto w = inflightDir_.replace(scanId, std::to_string(starts) + "\n"); !w) {
      lastError_ = "scan " + scanId + " waits: " + w.error().message;
      log::get("daemon")->error("{}: {}", options_.device, lastError_);
      known_.erase(scanId);  // stays in the inbox; the next rescan tries again
      continue;
    }
    analysingIds_.insert(scanId);
    ++analysing_;
    log::get("daemon")->debug("{}: analysing {}", options_.device, scanId);
    lane::XrayContext context{
        calibrations_.calibration(), calibrations_.dark(), {}, options_.limits};
    asio::post(*pool_, [this, scanId, queuedAt = Clock::now(), context = std::move(context),
                        alive = alive_, device = options_.device, identity = identity_]() mutable {
      auto r = std::make_shared<Result>();
      r->scanId = scanId;
      const auto startedAt = Clock::now();
      // Nothing a bundle does may end the worker (or the daemon): whatever
      // escapes below rejects this bundle.
      try {
        context.timingsMs["queue"] = msSince(queuedAt);
        const auto readAt = Clock::now();
        lane::BundleBytes bundle{scanId,
                                 options_.inbox + "/" + scanId + ".json",
                                 {},
                                 options_.inbox + "/" + scanId + ".tiff",
                                 {}};
        auto json = readRetrying(inboxDir_, scanId + ".json", options_.limits.maxJsonBytes,
                                 options_.readBackoff);
        auto tiff = json ? readRetrying(inboxDir_, scanId + ".tiff", options_.limits.maxTiffBytes,
                                        options_.readBackoff)
                         : tl::unexpected(json.error());
        context.timingsMs["read"] = msSince(readAt);
        if (!tiff) {
          if (tiff.error().transient())
            r->retryLater = tiff.error().message;
          else
            r->outcome.error = tiff.error().message;
        } else {
          bundle.jsonText = std::move(*json);
          bundle.tiffBytes = std::move(*tiff);
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
      } catch (const std::exception& e) {
        r->outcome = {};
        r->outcome.error = options_.inbox + "/" + scanId + ".json: analysis failed: " + e.what();
      } catch (...) {
        r->outcome = {};
        r->outcome.error = options_.inbox + "/" + scanId + ".json: analysis failed";
      }
      r->seconds = msSince(startedAt) / 1000.0;
      asio::post(io_, [this, alive, r] {
        if (*alive) finished(r);
      });
    });
  }
}

void XrayInbox::endInflight(const std::string& scanId) {
  analysingIds_.erase(scanId);
  interrupted_.erase(scanId);
  if (auto rm = inflightDir_.remove(scanId); !rm)
    log::get("daemon")->error("{}: {}", options_.device, rm.error().message);
}

void XrayInbox::finished(std::shared_ptr<Result> r) {
  --analysing_;
  if (stopped_) return;  // the bundle stays in the inbox for the next start
  const std::string scanId = r->scanId;
  endInflight(scanId);
  if (!r->retryLater.empty()) {
    // Not the bundle's fault: it stays in the inbox and the next rescan tries again.
    lastError_ = "scan " + scanId + " will be read again: " + r->retryLater;
    log::get("daemon")->warn("{}: {}", options_.device, lastError_);
    known_.erase(scanId);
    pump();
    return;
  }
  ++analysed_;
  if (onAnalysed_)
    onAnalysed_(r->seconds, !r->outcome.error.empty() ? "rejected"
                            : r->outcome.calibration  ? "calibration"
                            : r->outcome.scan && r->outcome.scan->alert() ? "alert"
                                                                          : "clear");
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
    const bool moved = archive(scanId);
    if (onScan_) onScan_(conveyance, alertId);
    if (!moved) return;  // stays known until it is archived (retryPending)
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
  for (const char* ext : {".tiff", ".json"}) {
    if (auto m = inboxDir_.move(r.scanId + ext, calibrations_.directory(),
                                stored.version + "-" + r.scanId + ext);
        !m)
      logger->error("{}: {}", options_.device, m.error().message);
  }
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
  auto logger = log::get("daemon");
  const std::string shown = lane::printableName(scanId);
  if (!pending_.count(scanId)) {
    ++rejected_;
    lastError_ = why;
    logger->error("{}: rejected bundle {}: {}", options_.device, shown, why);
  }
  std::string notes;
  for (const char* ext : {".tiff", ".json"}) {
    const std::string name = scanId + ext;
    if (!inboxDir_.exists(name)) continue;
    auto m = inboxDir_.move(name, rejectedDir_, name);
    if (m) continue;
    if (m.error().code == ELOOP) {
      // A link has no content of its own: it goes, its target is never touched.
      (void)inboxDir_.remove(name);
      notes += " (" + lane::printableName(name) + " was a symbolic link: removed, not followed)";
      continue;
    }
    logger->error("{}: {}", options_.device, m.error().message);
    // Transient: tried again at the next rescan. Otherwise it stays known (not retried
    // until a restart) rather than being analysed and rejected in a loop.
    if (m.error().transient()) pending_[scanId] = why;
    return;
  }
  if (auto w =
          rejectedDir_.replace(scanId + ".error", lane::rfc3339(std::chrono::system_clock::now()) +
                                                      " " + why + notes + "\n");
      !w) {
    logger->error("{}: {}", options_.device, w.error().message);
    if (w.error().transient()) {
      pending_[scanId] = why;
      return;
    }
  }
  pending_.erase(scanId);
  known_.erase(scanId);
}

bool XrayInbox::archive(const std::string& scanId) {
  for (const char* ext : {".tiff", ".json"}) {
    const std::string name = scanId + ext;
    if (!inboxDir_.exists(name)) continue;
    if (auto m = archiveDir_.isOpen() ? inboxDir_.move(name, archiveDir_, name)
                                      : lane::FileResult<void>();
        !m) {
      log::get("daemon")->error("{}: {} (archived at the next rescan)", options_.device,
                                m.error().message);
      pending_[scanId] = "";  // accepted already: never analysed again, only moved
      return false;
    }
  }
  pending_.erase(scanId);
  return true;
}

// Moves that failed (the record is durable or the bundle judged): tried again, never
// re-analysed.
void XrayInbox::retryPending() {
  const auto pending = pending_;
  for (const auto& [scanId, why] : pending) {
    if (why.empty()) {
      if (archive(scanId)) known_.erase(scanId);
    } else {
      reject(scanId, why);
    }
  }
}

void XrayInbox::prune() {
  auto entries = archiveDir_.list();
  if (!entries) return;
  std::vector<std::tuple<std::int64_t, std::uint64_t, std::string>> files;
  for (const lane::DirEntry& e : *entries)
    if (e.regular) files.emplace_back(e.mtimeNs, e.size, e.name);
  std::sort(files.begin(), files.end());  // oldest first
  std::uint64_t total = 0;
  for (const auto& f : files) total += std::get<1>(f);
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto cutoff = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count() -
                      static_cast<std::int64_t>(options_.retentionDays * 86400.0 * 1e9);
  for (const auto& [time, size, name] : files) {
    const bool tooOld = options_.retentionDays > 0 && time < cutoff;
    const bool overBudget = options_.retentionBytes > 0 && total > options_.retentionBytes;
    if (!tooOld && !overBudget) break;
    (void)archiveDir_.remove(name);
    total -= size;
  }
}

nlohmann::json XrayInbox::status() const {
  const lane::CalibrationStatus c = calibrations_.status(std::chrono::system_clock::now());
  // Messages may quote file names, which may hold any bytes: only printable UTF-8 goes out.
  nlohmann::json cal{{"file", lane::printableName(c.file)},
                     {"problem", lane::printableName(c.problem)}};
  if (c.ageH) cal["age_h"] = *c.ageH;
  return {{"inbox", options_.inbox}, {"queued", queue_.size()},
          {"analysing", analysing_}, {"analysed", analysed_},
          {"alerts", alerts_},       {"clear", clear_},
          {"rejected", rejected_},   {"last_error", lane::printableName(lastError_)},
          {"calibration", cal}};
}

}  // namespace lanegate
