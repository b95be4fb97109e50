#include "daemon/xray_lane.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

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

}  // namespace

/// What a worker made of one bundle.
struct XrayLane::Result {
  std::string scanId;
  std::string error;         // unreadable or unanalysable: the bundle is rejected
  bool calibration = false;  // a dark/air calibration bundle, not a scan
  bool alert = false;        // findings: an alert (else a clear scan)
  std::string verdict;
  std::string dataJson;      // the alert's data
  std::string image;         // the overlay JPEG
  std::string imageTopic;
  double queuedMs = 0;
};

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
  pool_ = std::make_unique<asio::thread_pool>(static_cast<std::size_t>(std::max(1, options_.workers)));
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
  known_.insert(scanId);
  queue_.push_back(scanId);
  pump();
}

void XrayLane::pump() {
  while (!stopped_ && analysing_ < std::max(1, options_.workers) && !queue_.empty()) {
    const std::string scanId = queue_.front();
    queue_.pop_front();
    ++analysing_;
    const auto queuedAt = Clock::now();
    asio::post(*pool_, [this, scanId, queuedAt, alive = alive_, inbox = options_.inbox, device = options_.device,
                        identity = identity_] {
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
      } else if (err.empty()) {
        const std::string tiffBytes = readWhole(tiff, kMaxTiffBytes, err);
        auto bundle = vision::loadBundle(json.string());
        if (!err.empty()) {
          // the TIFF cannot be read: err says why
        } else if (!bundle) {
          err = bundle.error();
        } else if (bundle->meta.scanId != scanId) {
          err = json.string() + ": scan_id '" + bundle->meta.scanId + "' does not match the file name";
        } else {
          const vision::Findings f = vision::analyzeScan(*bundle, vision::AnalysisParams{});
          if (!f.error.empty()) {
            err = json.string() + ": " + f.error;
          } else {
            r->verdict = f.verdict;
            r->alert = !f.findings.empty();
            if (r->alert) {
              const auto jpeg = vision::renderOverlay(f);
              r->image.assign(jpeg.begin(), jpeg.end());
              const std::string id = alertId(identity, device, scanId);
              r->imageTopic = laneTopic(identity, "alerts/" + id + "/image");
              auto findings = nlohmann::json::parse(vision::toJson(f));
              nlohmann::json timings = findings.value("timings_ms", nlohmann::json::object());
              timings["queue"] = r->queuedMs;
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
                  {"evidence", {{"tiff_sha256", sha256Hex(tiffBytes)}, {"json_sha256", sha256Hex(jsonBytes)}}},
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
  if (!r->error.empty()) {
    reject(scanId, r->error);
  } else if (r->calibration) {
    // Calibration bundles are kept for the calibration step (issue 6); they are not scans.
    const fs::path dir = fs::path(options_.stateDir) / "calibration" / options_.device;
    for (const char* ext : {".tiff", ".json"})
      moveReplacing(fs::path(options_.inbox) / (scanId + ext), dir / (scanId + ext));
    logger->info("{}: calibration bundle {} kept in {}", options_.device, scanId, dir.string());
    known_.erase(scanId);
  } else if (!r->alert) {
    ++clear_;
    logger->info("{}: scan {} clear", options_.device, scanId);
    archive(scanId);
    known_.erase(scanId);
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
    sink_.accept(std::move(d), [this, alive = alive_, scanId, id](const std::string& err, std::uint64_t) {
      if (!*alive) return;
      if (!err.empty()) {
        // Not durable: the bundle stays in the inbox and the next rescan tries again.
        lastError_ = "alert " + id + " not accepted: " + err;
        log::get("daemon")->error("{}: {}", options_.device, lastError_);
      } else {
        ++alerts_;
        archive(scanId);
      }
      known_.erase(scanId);
    });
  }
  pump();
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
    if (time >= cutoff && total <= options_.retentionBytes) break;
    fs::remove(path, ec);
    total -= size;
  }
}

nlohmann::json XrayLane::status() const {
  return {{"inbox", options_.inbox},     {"queued", queue_.size()}, {"analysing", analysing_},
          {"analysed", analysed_},       {"alerts", alerts_},       {"clear", clear_},
          {"rejected", rejected_},       {"last_error", lastError_}};
}

}  // namespace lanegate
