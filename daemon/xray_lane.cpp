#include "daemon/xray_lane.h"

#include <sys/inotify.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <future>
#include <mutex>
#include <atomic>
#include <thread>
#include <memory>
#include <optional>
#include <tuple>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "daemon/events.h"
#include "daemon/identifiers.h"
#include "daemon/log.h"
#include "daemon/sha256.h"
#include "vision/analysis.h"
#include "vision/decode.h"
#include "vision/overlay.h"

namespace lanegate {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uintmax_t kMaxTiffBytes = 1ull << 30;

bool validScanId(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
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
    error = p.string() + ": " + std::to_string(size) + " bytes, more than the limit of " + std::to_string(cap);
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

// The alert's conveyance: the bundle's, as it arrived, plus the identifier checks.
nlohmann::json conveyanceWithChecks(const nlohmann::json& meta) {
  nlohmann::json c = meta.contains("conveyance") && meta["conveyance"].is_object() ? meta["conveyance"]
                                                                                    : nlohmann::json{{"kind", "vehicle"}};
  nlohmann::json checks = nlohmann::json::array();
  if (c.contains("ids") && c["ids"].is_array()) {
    for (const auto& id : c["ids"]) {
      if (!id.is_string()) continue;
      const auto r = checkContainerNumber(id.get<std::string>());
      checks.push_back({{"id", id}, {"valid", r.valid}, {"scheme", "iso6346"}});
    }
  }
  if (c.contains("awb") && c["awb"].is_string()) {
    const auto r = checkAirWaybill(c["awb"].get<std::string>());
    checks.push_back({{"id", c["awb"]}, {"valid", r.valid}, {"scheme", "iata_awb"}});
  }
  if (!checks.empty()) c["id_checks"] = checks;
  return c;
}

// A sortable UTC stamp for versioned file names: 20261127T153012.345Z.
std::string stamp(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>((ms % 1000 + 1000) % 1000));
  return buf;
}

std::optional<std::chrono::system_clock::time_point> parseStamp(const std::string& s) {
  std::tm tm{};
  int msec = 0;
  if (std::sscanf(s.c_str(), "%4d%2d%2dT%2d%2d%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &msec) != 7)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(::timegm(&tm)) + std::chrono::milliseconds(msec);
}

double median(std::vector<float> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

constexpr double kFullScale = 65535.0;

}  // namespace

/// Per-channel means of one calibration bundle, per energy.
struct XrayLane::Frames {
  std::string kind;                       // dark | air
  std::string scanId;
  std::vector<std::vector<float>> mean;   // [energy][channel]
};

namespace {

// Checks one calibration bundle's planes; fills `frames` and `checks`; returns the problem
// that makes it unusable, or "". `dark` (may be null) is the latest valid dark, for air.
std::string checkCalibration(const std::string& kind, const std::vector<cv::Mat>& planes,
                             const std::vector<std::vector<float>>* dark, std::vector<std::vector<float>>& means,
                             nlohmann::json& checks) {
  std::string problem;
  for (std::size_t e = 0; e < planes.size(); ++e) {
    const cv::Mat& p = planes[e];
    std::vector<float> mean(static_cast<std::size_t>(p.rows)), sd(mean.size());
    int saturated = 0;
    for (int y = 0; y < p.rows; ++y) {
      cv::Scalar m, s;
      cv::meanStdDev(p.row(y), m, s);
      mean[static_cast<std::size_t>(y)] = static_cast<float>(m[0]);
      sd[static_cast<std::size_t>(y)] = static_cast<float>(s[0]);
      // Saturated: more than 1 % of the channel's pulses at the top of the 16-bit range.
      if (cv::countNonZero(p.row(y) == kFullScale) * 100 > p.cols) ++saturated;
    }
    const std::string plane = planes.size() > 1 ? (e == 0 ? " (high energy)" : " (low energy)") : "";
    nlohmann::json c{{"channels", p.rows}, {"saturated", saturated}};
    const int tolerated = std::max(1, p.rows / 50);  // 2 % of the channels
    const double medianSd = median(sd);
    int noisy = 0;
    for (float v : sd) noisy += static_cast<double>(v) > 10.0 * std::max(medianSd, 1.0) ? 1 : 0;
    c["noisy"] = noisy;
    c["median_sd"] = medianSd;
    // A few bad (saturated, noisy, dead) channels are normal: pre-processing finds and
    // interpolates them. More than 2 % of the array means the calibration is unusable.
    if (saturated > tolerated && problem.empty())
      problem = std::to_string(saturated) + " channels saturated" + plane;
    if (noisy > tolerated && problem.empty())
      problem = std::to_string(noisy) + " channels far noisier than the rest" + plane;
    if (kind == "dark") {
      const double level = median(mean);
      c["median_level"] = level;
      if (level > 0.25 * kFullScale && problem.empty())
        problem = "dark level " + std::to_string(static_cast<int>(level)) +
                  " counts is a quarter of full scale or more" + plane + ": was the beam on?";
    } else {
      std::vector<float> signal(mean.size());
      for (std::size_t y = 0; y < mean.size(); ++y) {
        const float d = dark && e < dark->size() && (*dark)[e].size() == mean.size() ? (*dark)[e][y] : 0.0F;
        signal[y] = mean[y] - d;
      }
      const double open = median(signal);
      int dead = 0;
      for (float v : signal) dead += static_cast<double>(v) < 0.05 * open ? 1 : 0;
      c["median_signal"] = open;
      c["dead"] = dead;
      if (open < 1000 && problem.empty())
        problem = "open beam only " + std::to_string(static_cast<int>(open)) + " counts above dark" + plane +
                  ": was the beam off?";
      if (dead > tolerated && problem.empty()) problem = std::to_string(dead) + " dead channels" + plane;
      if (open > 0 && medianSd / open > 0.2 && problem.empty()) problem = "open beam too noisy" + plane;
    }
    checks.push_back(c);
    means.push_back(std::move(mean));
  }
  return problem;
}

}  // namespace

/// What a worker made of one bundle.
struct XrayLane::Result {
  std::string scanId;
  std::string error;         // unreadable or unanalysable: the bundle is rejected
  bool calibration = false;  // a dark/air calibration bundle, not a scan
  std::shared_ptr<Frames> frames;   // its per-channel means
  std::string calibrationProblem;   // why it cannot be used ("" = valid)
  std::string checksJson;           // what was checked
  bool raw = false;                 // a raw-signal scan
  bool alert = false;        // findings: an alert (else a clear scan)
  std::string verdict;
  std::string dataJson;      // the alert's data
  std::string image;         // the overlay JPEG
  std::string imageTopic;
  std::string conveyanceJson;
  double queuedMs = 0;
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
void XrayLane::primeWorkers() {
  const int n = std::max(1, options_.workers);
  auto arrived = std::make_shared<std::atomic<int>>(0);
  for (int i = 0; i < n; ++i) {
    asio::post(*pool_, [arrived, n] {
      // Hold until every worker has one of these (so that each thread primes its own heap),
      // but not for ever: a pool stopped meanwhile must still be able to join.
      arrived->fetch_add(1);
      const auto until = Clock::now() + std::chrono::milliseconds(500);
      while (arrived->load() < n && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      constexpr std::size_t kBlock = 8u << 20, kBlocks = 8;  // 64 MB in blocks under the mmap threshold
      std::vector<std::unique_ptr<char[]>> blocks;
      for (std::size_t b = 0; b < kBlocks; ++b) {
        blocks.emplace_back(new char[kBlock]);
        volatile char* page = blocks.back().get();  // volatile: the stores must happen
        for (std::size_t at = 0; at < kBlock; at += 4096) page[at] = 1;
      }
    });
  }
}

XrayLane::XrayLane(asio::io_context& io, XrayLaneOptions options, AlertSink& sink, Config identity)
    : io_(io), options_(std::move(options)), sink_(sink), identity_(std::move(identity)), inotify_(io),
      rescanTimer_(io) {}

XrayLane::~XrayLane() {
  *alive_ = false;
  stop();
}

std::string XrayLane::alertId(const Config& identity, const std::string& device, const std::string& scanId) {
  return "xray:" + identity.site + ":" + identity.lane + ":" + device + ":" + scanId;
}

std::string XrayLane::start() {
  std::error_code ec;
  const fs::path inbox(options_.inbox);
  if (!fs::is_directory(inbox, ec)) return options_.device + ": inbox " + options_.inbox + " is not a directory";
  for (const fs::path& d : {inbox / "rejected", fs::path(options_.stateDir) / "scans" / options_.device,
                            fs::path(options_.stateDir) / "calibration" / options_.device}) {
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
  loadLatestCalibration();
  pool_ = std::make_unique<asio::thread_pool>(static_cast<std::size_t>(std::max(1, options_.workers)));
  primeWorkers();
  stopped_ = false;
  readEvents();
  rescan();
  scheduleRescan();
  log::get("daemon")->info("{}: watching {} ({} worker(s))", options_.device, options_.inbox, options_.workers);
  return {};
}

void XrayLane::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ec;
  rescanTimer_.cancel();
  inotify_.close(ec);
  if (pool_) pool_->join();  // analyses in progress finish; their bundles stay in the inbox
}

void XrayLane::readEvents() {
  inotify_.async_read_some(asio::buffer(eventBuf_), [this, alive = alive_](const boost::system::error_code& ec,
                                                                          std::size_t n) {
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

void XrayLane::scheduleRescan() {
  rescanTimer_.expires_after(options_.rescanEvery);
  rescanTimer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || stopped_ || ec) return;
    rescan();
    prune();
    scheduleRescan();
  });
}

void XrayLane::rescan() {
  std::vector<std::pair<fs::file_time_type, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(options_.inbox, ec)) {
    const std::string name = e.path().filename().string();
    if (name.ends_with(".json") && e.is_regular_file(ec)) found.emplace_back(e.last_write_time(ec), name);
  }
  std::sort(found.begin(), found.end());  // oldest first
  for (const auto& [time, name] : found) consider(name);
}

void XrayLane::consider(const std::string& fileName) {
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

void XrayLane::pump() {
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
    const auto queuedAt = Clock::now();
    asio::post(*pool_, [this, scanId, queuedAt, alive = alive_, inbox = options_.inbox, device = options_.device,
                        identity = identity_, cal = calibration_, dark = dark_] {
      auto r = std::make_shared<Result>();
      r->scanId = scanId;
      r->queuedMs = std::chrono::duration<double, std::milli>(Clock::now() - queuedAt).count();
      const fs::path json = fs::path(inbox) / (scanId + ".json");
      const fs::path tiff = fs::path(inbox) / (scanId + ".tiff");
      std::string err;
      const std::string jsonBytes = readWhole(json, 1u << 20, err);
      nlohmann::json meta;
      if (err.empty()) {
        meta = nlohmann::json::parse(jsonBytes, nullptr, false);
        if (meta.is_discarded() || !meta.is_object()) err = json.string() + ": not a JSON object";
      }
      if (err.empty() && meta.contains("calibration")) {
        r->calibration = true;
        const std::string kind = meta["calibration"].is_string() ? meta["calibration"].get<std::string>() : "";
        auto bundle = vision::loadBundle(json.string());
        if (kind != "dark" && kind != "air") {
          err = json.string() + ": \"calibration\" must be \"dark\" or \"air\"";
        } else if (!bundle) {
          err = bundle.error();
        } else {
          r->frames = std::make_shared<Frames>();
          r->frames->kind = kind;
          r->frames->scanId = scanId;
          nlohmann::json checks = nlohmann::json::array();
          r->calibrationProblem =
              checkCalibration(kind, bundle->planes, dark ? &dark->mean : nullptr, r->frames->mean, checks);
          r->checksJson = checks.dump();
        }
      } else if (err.empty()) {
        // Stage times go into the record's timings_ms next to the analysis' own.
        auto lap = [last = Clock::now()]() mutable {
          const auto now = Clock::now();
          const double ms = std::chrono::duration<double, std::milli>(now - last).count();
          last = now;
          return ms;
        };
        const std::string tiffBytes = readWhole(tiff, kMaxTiffBytes, err);
        const double readMs = lap();
        // The TIFF's hash is needed only when the record is built: it is taken on another
        // thread while this one decodes and analyses (8 ms of a 13 MB scan off the latency).
        // Its own duration goes into timings_ms.
        auto hashing = std::async(std::launch::async | std::launch::deferred, [&tiffBytes, ok = err.empty()] {
          const auto t0 = Clock::now();
          std::string hex = ok ? sha256Hex(tiffBytes) : std::string();
          return std::make_pair(std::move(hex), std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        });
        const std::string jsonSha = sha256Hex(jsonBytes);
        lap();
        std::string tiffSha;
        double hashMs = 0;
        auto awaitHash = [&] {
          if (hashing.valid()) std::tie(tiffSha, hashMs) = hashing.get();
        };
        // Decoded from the bytes just hashed, so an uncompressed TIFF (what scanners write) is
        // read once and the analysis sees exactly what the hash covers.
        auto bundle = err.empty() ? vision::decodeBundle(jsonBytes, json.string(), tiffBytes, tiff.string())
                                  : tl::expected<vision::ScanBundle, std::string>(tl::unexpect, err);
        const double decodeMs = lap();
        auto stageTimes = [&](nlohmann::json& timings) {
          awaitHash();
          timings["queue"] = r->queuedMs;
          timings["read"] = readMs;
          timings["hash"] = hashMs;
          timings["decode"] = decodeMs;
        };
        if (!err.empty()) {
          // the TIFF cannot be read: err says why
        } else if (!bundle) {
          err = bundle.error();
        } else if (bundle->meta.scanId != scanId) {
          err = json.string() + ": scan_id '" + bundle->meta.scanId + "' does not match the file name";
        } else if (bundle->meta.signal == vision::Signal::kRaw && !cal) {
          r->raw = true;
          err = json.string() + ": a raw scan, and the scanner has no valid dark/air calibration yet "
                                "(lanegatectl calibrate xray dark, then air)";
        } else {
          r->raw = bundle->meta.signal == vision::Signal::kRaw;
          vision::AnalysisParams params;
          if (r->raw) params.calibration = cal.get();
          const vision::Findings f = vision::analyzeScan(*bundle, params);
          if (!f.error.empty()) {
            err = json.string() + ": " + f.error;
          } else {
            r->verdict = f.verdict;
            r->alert = !f.findings.empty();
            r->conveyanceJson = conveyanceWithChecks(meta).dump();
            if (!r->alert) {
              auto findings = nlohmann::json::parse(vision::toJson(f));
              nlohmann::json timings = findings.value("timings_ms", nlohmann::json::object());
              stageTimes(timings);
              r->dataJson = nlohmann::json{{"scan_id", scanId},
                                           {"verdict", f.verdict},
                                           {"conveyance", conveyanceWithChecks(meta)},
                                           {"evidence", {{"tiff_sha256", tiffSha}, {"json_sha256", jsonSha}}},
                                           {"timings_ms", timings}}
                                .dump();
            }
            if (r->alert) {
              lap();
              const auto jpeg = vision::renderOverlay(f);
              r->image.assign(jpeg.begin(), jpeg.end());
              const double overlayMs = lap();
              const std::string id = alertId(identity, device, scanId);
              r->imageTopic = laneTopic(identity, "alerts/" + id + "/image");
              auto findings = nlohmann::json::parse(vision::toJson(f));
              nlohmann::json timings = findings.value("timings_ms", nlohmann::json::object());
              stageTimes(timings);
              timings["overlay"] = overlayMs;
              const nlohmann::json data{
                  {"scan_id", scanId},
                  {"verdict", f.verdict},
                  {"findings", findings["findings"]},
                  {"conveyance", conveyanceWithChecks(meta)},
                  {"image",
                   {{"topic", r->imageTopic},
                    {"sha256", sha256Hex(r->image)},
                    {"bytes", r->image.size()},
                    {"content_type", "image/jpeg"}}},
                  {"evidence", {{"tiff_sha256", tiffSha}, {"json_sha256", jsonSha}}},
                  {"timings_ms", timings},
                  {"priority", "normal"}};
              r->dataJson = data.dump();
            }
          }
        }
      }
      r->error = err;
      asio::post(io_, [this, alive, r] {
        if (*alive) finished(r);
      });
    });
  }
}

void XrayLane::finished(std::shared_ptr<Result> r) {
  --analysing_;
  auto logger = log::get("daemon");
  if (stopped_) return;  // the bundle stays in the inbox for the next start
  ++analysed_;
  const std::string scanId = r->scanId;
  if (r->raw) sawRaw_ = true;
  if (!r->error.empty()) {
    reject(scanId, r->error);
  } else if (r->calibration) {
    storeCalibration(*r);
    known_.erase(scanId);
  } else if (!r->alert) {
    // A clear scan: telemetry (counted, evidence kept; evicted before any alert under
    // disk pressure), archived once it is durable.
    const std::string id = "xray-scan:" + identity_.site + ":" + identity_.lane + ":" + options_.device + ":" + scanId;
    RecordDraft d;
    d.id = id;
    d.kind = RecordKind::telemetry;
    d.topic = laneTopic(identity_, "telemetry");
    d.render = [identity = identity_, id, device = options_.device, data = r->dataJson](std::uint64_t seq) {
      return makeCloudEvent(identity, "org.lanegate.xray.scan", id, seq, device, std::chrono::system_clock::now(),
                            data);
    };
    logger->info("{}: scan {} clear", options_.device, scanId);
    sink_.accept(std::move(d), [this, alive = alive_, scanId, conveyance = r->conveyanceJson](
                                   const std::string& err, std::uint64_t) {
      if (!*alive) return;
      if (!err.empty()) {
        lastError_ = "telemetry of scan " + scanId + " not accepted: " + err;
        log::get("daemon")->error("{}: {}", options_.device, lastError_);
      } else {
        ++clear_;
        archive(scanId);
        if (onScan_) onScan_(scanId, conveyance, "");
      }
      known_.erase(scanId);
    });
  } else {
    const std::string id = alertId(identity_, options_.device, scanId);
    RecordDraft d;
    d.id = id;
    d.kind = RecordKind::alert;
    d.topic = laneTopic(identity_, "alerts");
    d.attachments.push_back({r->imageTopic, "image/jpeg", std::move(r->image)});
    d.render = [identity = identity_, id, device = options_.device, data = r->dataJson](std::uint64_t seq) {
      return makeCloudEvent(identity, "org.lanegate.xray.hit", id, seq, device, std::chrono::system_clock::now(),
                            data);
    };
    logger->warn("{}: scan {} {}: alert {}", options_.device, scanId, r->verdict, id);
    sink_.accept(std::move(d), [this, alive = alive_, scanId, id, conveyance = r->conveyanceJson](
                                   const std::string& err, std::uint64_t) {
      if (!*alive) return;
      if (!err.empty()) {
        // Not durable: the bundle stays in the inbox and the next rescan tries again.
        lastError_ = "alert " + id + " not accepted: " + err;
        log::get("daemon")->error("{}: {}", options_.device, lastError_);
      } else {
        ++alerts_;
        archive(scanId);
        if (onScan_) onScan_(scanId, conveyance, id);
      }
      known_.erase(scanId);
    });
  }
  pump();
}

void XrayLane::storeCalibration(const Result& r) {
  auto logger = log::get("daemon");
  const auto now = std::chrono::system_clock::now();
  const fs::path dir = fs::path(options_.stateDir) / "calibration" / options_.device;
  const std::string version = stamp(now);
  // The bundle itself, kept beside its check record under a versioned name.
  for (const char* ext : {".tiff", ".json"})
    moveReplacing(fs::path(options_.inbox) / (r.scanId + ext), dir / (version + "-" + r.scanId + ext));
  const bool valid = r.calibrationProblem.empty();
  nlohmann::json record{{"kind", r.frames->kind},     {"scan_id", r.scanId},
                        {"time", rfc3339(now)},       {"valid", valid},
                        {"problem", r.calibrationProblem}, {"checks", nlohmann::json::parse(r.checksJson)}};
  std::ofstream(dir / (r.frames->kind + "-" + version + ".json")) << record.dump(1) << "\n";
  if (!valid) {
    calibrationError_ = r.frames->kind + " calibration " + r.scanId + " rejected: " + r.calibrationProblem;
    logger->error("{}: {} (the previous calibration stays in use)", options_.device, calibrationError_);
    return;
  }
  (r.frames->kind == "dark" ? dark_ : air_) = r.frames;
  logger->info("{}: {} calibration {} accepted", options_.device, r.frames->kind, r.scanId);
  if (!dark_ || !air_) return;
  if (dark_->mean.size() != air_->mean.size()) {
    calibrationError_ = "dark and air calibrations have different numbers of energies; take both again";
    logger->error("{}: {}", options_.device, calibrationError_);
    return;
  }
  auto cal = std::make_shared<vision::Calibration>();
  for (std::size_t e = 0; e < dark_->mean.size(); ++e) {
    if (dark_->mean[e].size() != air_->mean[e].size()) {
      calibrationError_ = "dark and air calibrations have different numbers of channels; take both again";
      logger->error("{}: {}", options_.device, calibrationError_);
      return;
    }
    cal->energies.push_back({dark_->mean[e], air_->mean[e]});
  }
  const fs::path file = dir / ("calibration-" + version + ".json");
  std::ofstream(file) << vision::calibrationToJson(*cal);
  calibration_ = std::move(cal);
  calibratedAt_ = now;
  calibrationFile_ = file.string();
  calibrationError_.clear();
  logger->info("{}: new calibration {} (dark {}, air {}); raw scans use it", options_.device, file.string(),
               dark_->scanId, air_->scanId);
}

void XrayLane::loadLatestCalibration() {
  const fs::path dir = fs::path(options_.stateDir) / "calibration" / options_.device;
  std::string latest;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with("calibration-") && n.ends_with(".json") && n > latest) latest = n;
  }
  if (latest.empty()) return;
  auto cal = vision::loadCalibration((dir / latest).string());
  const auto when = parseStamp(latest.substr(12));
  if (!cal || !when) {
    calibrationError_ = (dir / latest).string() + ": " + (cal ? "no time in its name" : cal.error());
    log::get("daemon")->error("{}: {}", options_.device, calibrationError_);
    return;
  }
  calibration_ = std::make_shared<vision::Calibration>(std::move(*cal));
  calibratedAt_ = *when;
  calibrationFile_ = (dir / latest).string();
}

bool XrayLane::calibrationDue(double maxAgeHours, std::string& why) const {
  if (!calibration_) {
    if (!sawRaw_) return false;
    why = "no valid dark/air calibration: raw scans cannot be analysed (lanegatectl calibrate xray dark, then air)";
    return true;
  }
  const double ageH =
      std::chrono::duration<double, std::ratio<3600>>(std::chrono::system_clock::now() - calibratedAt_).count();
  if (ageH <= maxAgeHours) return false;
  why = "calibration is " + std::to_string(static_cast<int>(ageH)) + " h old (limit " +
        std::to_string(static_cast<int>(maxAgeHours)) + " h): lanegatectl calibrate xray dark, then air";
  return true;
}

void XrayLane::reject(const std::string& scanId, const std::string& why) {
  ++rejected_;
  lastError_ = why;
  log::get("daemon")->error("{}: rejected bundle {}: {}", options_.device, scanId, why);
  const fs::path dir = fs::path(options_.inbox) / "rejected";
  for (const char* ext : {".tiff", ".json"}) {
    std::error_code ec;
    const fs::path from = fs::path(options_.inbox) / (scanId + ext);
    if (fs::exists(from, ec)) moveReplacing(from, dir / (scanId + ext));
  }
  std::ofstream(dir / (scanId + ".error")) << rfc3339(std::chrono::system_clock::now()) << " " << why << "\n";
  known_.erase(scanId);
}

void XrayLane::archive(const std::string& scanId) {
  const fs::path dir = fs::path(options_.stateDir) / "scans" / options_.device;
  for (const char* ext : {".tiff", ".json"}) moveReplacing(fs::path(options_.inbox) / (scanId + ext), dir / (scanId + ext));
}

void XrayLane::prune() {
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

nlohmann::json XrayLane::status() const {
  nlohmann::json cal{{"file", calibrationFile_}, {"problem", calibrationError_}};
  if (calibration_)
    cal["age_h"] =
        std::chrono::duration<double, std::ratio<3600>>(std::chrono::system_clock::now() - calibratedAt_).count();
  return {{"inbox", options_.inbox},     {"queued", queue_.size()}, {"analysing", analysing_},
          {"analysed", analysed_},       {"alerts", alerts_},       {"clear", clear_},
          {"rejected", rejected_},       {"last_error", lastError_}, {"calibration", cal}};
}

}  // namespace lanegate
