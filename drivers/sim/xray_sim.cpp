#include "drivers/sim/xray_sim.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "drivers/config_dir.h"
#include "vision/decode.h"
#include "vision/phantom.h"

namespace lanegate::sim {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Calibration frames: pulses recorded with the beam off (dark) or on with the lane empty (air).
constexpr int kCalibrationColumns = 200;
// The phantom generator's raw scale: open beam sits near 52,000 counts over the dark offset.
constexpr double kRawOpenBeamCounts = 52000.0;

tl::expected<double, std::string> toNumber(const std::string& flag, const std::string& v,
                                           double min, double max) {
  try {
    std::size_t used = 0;
    const double n = std::stod(v, &used);
    if (used == v.size() && n >= min && n <= max) return n;
  } catch (const std::exception&) {
  }
  std::ostringstream msg;
  msg << flag << ": expected a number " << min << ".." << max << ", got '" << v << "'";
  return tl::make_unexpected(msg.str());
}

ScanKind kindOf(const vision::PhantomTruth& t) {
  if (t.declaredEmpty) return t.hasContent ? ScanKind::emptyContent : ScanKind::empty;
  return t.concealments.empty() ? ScanKind::clear : ScanKind::concealment;
}

// RFC 3339 UTC ("2026-11-27T15:42:00Z"), or compact for ids ("20261127T154200").
std::string utcNow(bool compact) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[40];
  if (compact)
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
  else
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string summarize(const vision::Phantom& p, ScanKind kind) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  const auto& t = p.truth;
  out << "kind=" << scanKindName(kind) << " vehicle=" << t.vehicle << " load=" << t.load
      << " declared_empty=" << (t.declaredEmpty ? "true" : "false") << " concealments=";
  if (t.concealments.empty()) out << "none";
  for (std::size_t i = 0; i < t.concealments.size(); ++i)
    out << (i ? "+" : "") << t.concealments[i].kind << ":" << t.concealments[i].massKg << "kg";
  const auto& planes = p.bundle.planes;
  out << " size=" << (planes.empty() ? 0 : planes[0].cols) << "x"
      << (planes.empty() ? 0 : planes[0].rows) << " energies=" << planes.size()
      << " signal=" << (p.bundle.meta.signal == vision::Signal::kRaw ? "raw" : "transmission");
  return out.str();
}

}  // namespace

const char* scanKindName(ScanKind kind) {
  // In the order of the enum.
  static constexpr const char* kNames[] = {"clear", "concealment", "empty", "empty_content"};
  const auto i = static_cast<std::size_t>(kind);
  return i < std::size(kNames) ? kNames[i] : "clear";
}

tl::expected<ScanMix, std::string> parseScanMix(const std::string& text) {
  if (text == "natural") return ScanMix{0, 0, 0, 0};
  ScanMix m{0, 0, 0, 0};
  std::istringstream in(text);
  std::string item;
  bool any = false;
  while (std::getline(in, item, ',')) {
    const auto colon = item.find(':');
    const std::string name = item.substr(0, colon);
    double w = 1.0;
    if (colon != std::string::npos) {
      auto n = toNumber("--mix " + name, item.substr(colon + 1), 0.0, 1e6);
      if (!n) return tl::make_unexpected(n.error());
      w = *n;
    }
    if (name == "clear")
      m.clear = w;
    else if (name == "concealment")
      m.concealment = w;
    else if (name == "empty")
      m.empty = w;
    else if (name == "empty_content")
      m.emptyContent = w;
    else
      return tl::make_unexpected("--mix: unknown kind '" + name +
                                 "' (clear, concealment, empty, empty_content, or 'natural')");
    any = any || w > 0;
  }
  if (!any) return tl::make_unexpected(std::string("--mix: no kind has a weight above 0"));
  return m;
}

XraySimOptions::XraySimOptions() {
  profilePath = defaultConfigDir() + "/profiles/xray-generic-v1.yaml";
  commandTime = milliseconds(2000);
}

tl::expected<XraySimOptions, std::string> parseXraySimArgs(std::span<const std::string> args) {
  XraySimOptions o;
  CLI::App app(
      "A simulated cargo X-ray scanner: its PLC serves a register profile over Modbus TCP or RTU, "
      "and\n"
      "generated Contract 1 scan bundles are written to the inbox. Scan ids are PREFIX-NNNN,\n"
      "calibration bundles cal-dark-N / cal-air-N. Prints 'listening on ADDR:PORT', then one line "
      "per\n"
      "scan ('scan N SCAN_ID kind=... vehicle=... ...') and per command ('command NAME ok "
      "[BUNDLE_ID]'\n"
      "or 'command NAME failed'), on stdout.",
      "lanegate-sim xray");
  addDeviceSimOptions(app, o);
  app.add_option("--inbox", o.inbox, "where bundles are written")->required();
  app.add_option("--truth-dir", o.truthDir, "where <scan_id>.truth.json go (never the inbox)");
  app.add_option_function<long long>(
         "--every-ms", [&o](long long ms) { o.every = milliseconds(ms); },
         "time between scan starts")
      ->check(CLI::Range(10LL, 86'400'000LL));
  app.add_option_function<long long>(
         "--dwell-ms", [&o](long long ms) { o.dwell = milliseconds(ms); },
         "how long a conveyance stays in the lane (lane_occupied) after its scan; default half the "
         "scan period, "
         "at most 500 ms")
      ->check(CLI::Range(0LL, 86'400'000LL));
  app.add_option("--count", o.count,
                 "scans to make (default: no end; 0 = none, the PLC and commands only)")
      ->check(CLI::Range(0, 100'000'000));
  app.add_option_function<std::string>(
         "--mix",
         [&o](const std::string& text) {
           auto m = parseScanMix(text);
           if (!m) throw CLI::ValidationError("--mix", m.error());
           o.mix = *m;
         },
         "natural, or KIND:WEIGHT,... with KIND clear, concealment, empty or empty_content; "
         "default "
         "clear:70,concealment:20,empty:5,empty_content:5")
      ->type_name("MIX");
  app.add_option("--pixel-mm", o.pixelMm, "pitch, both directions")->check(CLI::Range(2.0, 50.0));
  app.add_flag("--raw", o.raw, "detector counts (signal raw) instead of transmission");
  app.add_flag("--single", o.single, "single energy instead of dual");
  app.add_option("--pregenerate", o.pregenerate, "render N scans first, then write them in turn")
      ->check(CLI::Range(0, 1000));
  app.add_option("--id-prefix", o.idPrefix,
                 "scan ids are PREFIX-NNNN (default xr-<UTC start time>)");
  app.add_option("--scanner", o.scanner, "the bundles' scanner name")->capture_default_str();
  if (auto error = parseSimArgs(app, args)) return tl::make_unexpected(*error);
  return o;
}

tl::expected<std::unique_ptr<XraySimulator>, std::string> XraySimulator::create(
    XraySimOptions options) {
  std::unique_ptr<XraySimulator> sim(new XraySimulator(std::move(options)));
  const XraySimOptions& o = sim->options_;
  auto profile = loadProfile(o.profilePath, parseXrayProfile);
  if (!profile) return tl::make_unexpected(profile.error().str());
  sim->profile_ = std::move(*profile);
  for (const std::string& dir : {o.inbox, o.truthDir}) {
    if (dir.empty()) continue;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir))
      return tl::make_unexpected(dir + ": cannot create the directory (" + ec.message() + ")");
  }
  if (!o.truthDir.empty() && fs::equivalent(o.truthDir, o.inbox))
    return tl::make_unexpected(std::string("--truth-dir must not be the inbox"));
  sim->prefix_ = o.idPrefix.empty() ? "xr-" + utcNow(true) : o.idPrefix;
  const std::string probe = sim->prefix_ + "-0000";
  for (const char c : probe) {
    const bool ok =
        std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
    if (!ok || probe.size() > 64)
      return tl::make_unexpected("--id-prefix: scan ids must match [A-Za-z0-9._-]{1,64}");
  }

  auto server = ModbusServer::start(o.server);
  if (!server) return tl::make_unexpected(server.error());
  sim->server_ = std::move(*server);
  sim->registers_ = std::make_unique<ProfileRegisters>(*sim->server_, sim->profile_);
  {
    auto lock = sim->server_->lock();
    sim->registers_->initialise(sim->profile_.bits.ready, sim->profile_.bits.calibrationDue,
                                o.calibrationDue);
  }
  XraySimulator* self = sim.get();
  sim->server_->setAfterHook([self](const ServerRequest& r) { self->afterRequest(r); });
  if (o.faultAfter == 0)
    applyFault(*sim->server_, *sim->registers_, sim->profile_.bits.fault, o.fault);
  sim->worker_ = std::thread([self] { self->run(); });
  return sim;
}

XraySimulator::~XraySimulator() {
  {
    std::lock_guard l(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::vector<ProducedScan> XraySimulator::produced() const {
  std::lock_guard l(mutex_);
  return scans_;
}

std::vector<std::string> XraySimulator::calibrations() const {
  std::lock_guard l(mutex_);
  return calibrations_;
}

void XraySimulator::print(const std::string& line) {
  if (options_.printEvents) std::cout << line << std::endl;  // flushed: tests read it
}

void XraySimulator::step(milliseconds slice) {
  {
    std::lock_guard l(mutex_);
    if (!started_) {
      started_ = true;
      wake_.notify_all();
    }
  }
  server_->serveOnce(slice);
}

void XraySimulator::afterRequest(const ServerRequest& req) {
  const auto command = registers_->takeCommand(req);
  if (!command) return;
  std::lock_guard l(mutex_);
  if (busy_) return;  // one command at a time; the driver checks command_result first
  if (command->empty()) {
    registers_->result() = static_cast<std::uint16_t>(profile_.commands.failed);  // an unknown code
    return;
  }
  registers_->result() = static_cast<std::uint16_t>(profile_.commands.running);
  busy_ = true;
  commands_.push_back(*command);
  wake_.notify_all();
}

void XraySimulator::run() {
  std::unique_lock l(mutex_);
  wake_.wait(l, [&] { return started_ || stop_; });
  if (options_.pregenerate > 0) {
    l.unlock();
    for (int i = 1; i <= options_.pregenerate && !stopping(); ++i) cache_.push_back(render(i));
    l.lock();
  }
  auto next = Clock::now();
  while (!stop_) {
    if (!commands_.empty()) {
      const std::string name = commands_.front();
      commands_.pop_front();
      runCommand(name, l);
      continue;
    }
    const bool more = options_.count < 0 || produced_.load() < options_.count;
    const auto now = Clock::now();
    if (more && now >= next) {
      scanOnce(l);
      next += options_.every;
      if (next < Clock::now()) next = Clock::now();  // after a slow scan, don't burst
      continue;
    }
    auto ready = [&] { return stop_ || !commands_.empty(); };
    if (more)
      wake_.wait_until(l, next, ready);
    else
      wake_.wait(l, ready);
  }
}

ScanKind XraySimulator::pickKind(int number) {
  const ScanMix& m = options_.mix;
  std::mt19937_64 rng(options_.seed * std::uint64_t{0x9e3779b97f4a7c15} +
                      static_cast<std::uint64_t>(number));
  const double total = m.clear + m.concealment + m.empty + m.emptyContent;
  double u = std::uniform_real_distribution<double>(0.0, total)(rng);
  if ((u -= m.clear) < 0) return ScanKind::clear;
  if ((u -= m.concealment) < 0) return ScanKind::concealment;
  if ((u -= m.empty) < 0) return ScanKind::empty;
  return m.emptyContent > 0  ? ScanKind::emptyContent
         : m.concealment > 0 ? ScanKind::concealment
                             : ScanKind::clear;
}

int XraySimulator::findIndex(ScanKind kind) {
  if (options_.mix.natural()) return cursor_++;
  // The generator draws its scene in millimetres before it renders, so a coarse render of
  // the same index holds the same truth at a fraction of the cost.
  vision::PhantomOptions coarse;
  coarse.pixelMm = 50.0;
  coarse.dualEnergy = false;
  for (int tries = 0; tries < 500; ++tries) {
    const int index = cursor_++;
    if (kindOf(vision::generatePhantom(options_.seed, index, coarse).truth) == kind) return index;
  }
  return cursor_++;  // a kind this seed never makes: take what comes
}

vision::Phantom XraySimulator::render(int number) {
  const ScanKind wanted = options_.mix.natural() ? ScanKind::clear : pickKind(number);
  const int index = findIndex(wanted);
  vision::PhantomOptions po;
  po.pixelMm = options_.pixelMm;
  po.dualEnergy = !options_.single;
  po.raw = options_.raw;
  return vision::generatePhantom(options_.seed, index, po);
}

bool XraySimulator::stopping() const {
  std::lock_guard l(mutex_);
  return stop_;
}

void XraySimulator::scanOnce(std::unique_lock<std::mutex>& l) {
  const int number = produced_.load() + 1;
  l.unlock();
  {
    auto lock = server_->lock();
    table()[static_cast<std::size_t>(profile_.laneOccupied)] = 1;
    setStatusBit(profile_.bits.scanning, true);
    setStatusBit(profile_.bits.radiationOn, true);
  }
  vision::Phantom ph = cache_.empty()
                           ? render(number)
                           : cache_[static_cast<std::size_t>(number - 1) % cache_.size()];
  char id[80];
  std::snprintf(id, sizeof id, "%s-%04d", prefix_.c_str(), number);
  ph.truth.scanId = id;
  ph.bundle.meta.scanId = id;
  ph.bundle.meta.scanner = options_.scanner;
  ph.bundle.meta.time = utcNow(false);
  if (options_.raw && !detector_) detector_ = ph.calibration;
  const ScanKind kind = kindOf(ph.truth);
  std::string error;
  if (!options_.truthDir.empty()) {
    if (auto r = vision::writeFileAtomic(
            (fs::path(options_.truthDir) / (std::string(id) + ".truth.json")).string(),
            vision::truthToJson(ph.truth));
        !r)
      error = r.error();
  }
  if (error.empty())
    if (auto r = vision::writeBundle(ph.bundle, options_.inbox); !r) error = r.error();
  ProducedScan scan{number, id, kind, summarize(ph, kind), error.empty()};
  {
    auto lock = server_->lock();
    // Only now is the bundle complete in the inbox (its JSON renamed into place).
    if (error.empty()) {
      auto& seq = table()[static_cast<std::size_t>(profile_.scanSeq)];
      seq = static_cast<std::uint16_t>(seq + 1);
    }
    setStatusBit(profile_.bits.scanning, false);
    setStatusBit(profile_.bits.radiationOn, false);
  }
  if (error.empty())
    print("scan " + std::to_string(number) + " " + scan.scanId + " " + scan.summary);
  else
    std::cerr << "lanegate-sim xray: scan " << number << ": " << error << std::endl;
  l.lock();
  scans_.push_back(scan);
  ++produced_;
  const bool fault = produced_.load() == options_.faultAfter && options_.faultAfter > 0;
  // The conveyance leaves the lane a little after its scan.
  const auto leave = options_.dwell.value_or(std::min(options_.every / 2, milliseconds(500)));
  wake_.wait_for(l, leave, [&] { return stop_; });
  l.unlock();
  {
    auto lock = server_->lock();
    table()[static_cast<std::size_t>(profile_.laneOccupied)] = 0;
  }
  if (fault) applyFault(*server_, *registers_, profile_.bits.fault, options_.fault);
  l.lock();
}

const vision::Calibration& XraySimulator::detectorCalibration() {
  if (!detector_) {
    // The detector of this seed: its per-channel dark offsets and gains, exactly those the
    // raw scans of the same seed and pitch are made with.
    vision::PhantomOptions po;
    po.pixelMm = options_.pixelMm;
    po.dualEnergy = !options_.single;
    po.raw = true;
    detector_ = vision::generatePhantom(options_.seed, 0, po).calibration;
  }
  return *detector_;
}

tl::expected<std::string, std::string> XraySimulator::writeCalibration(const std::string& which) {
  const vision::Calibration& cal = detectorCalibration();
  const vision::PhantomOptions model;  // the generator's detector model (quanta, noise, jitter)
  const bool air = which == "air";
  const int n = air ? ++airCount_ : ++darkCount_;
  vision::ScanBundle b;
  b.meta.scanId = "cal-" + which + "-" + std::to_string(n);
  b.meta.time = utcNow(false);
  b.meta.scanner = options_.scanner;
  b.meta.signal = vision::Signal::kRaw;
  b.meta.energiesMev = options_.single ? std::vector<double>{6.0} : std::vector<double>{6.0, 4.0};
  b.meta.pixelAlongMm = options_.pixelMm;
  b.meta.pixelVerticalMm = options_.pixelMm;
  b.meta.conveyance.kind = "vehicle";  // Contract 1 needs one; nothing is in the lane
  b.meta.conveyance.declared.empty = true;
  b.meta.conveyance.declared.description = which + " calibration: no conveyance";
  std::mt19937_64 rng(options_.seed * std::uint64_t{0x2545f4914f6cdd1d} +
                      static_cast<std::uint64_t>(n) * 2 + (air ? 1U : 0U));
  std::normal_distribution<double> normal(0.0, 1.0);
  for (std::size_t e = 0; e < b.meta.energiesMev.size() && e < cal.energies.size(); ++e) {
    const auto& c = cal.energies[e];
    const int rows = static_cast<int>(c.dark.size());
    const double n0 = model.openBeamQuanta * (e == 0 ? 1.0 : 0.6);
    std::vector<double> dose(kCalibrationColumns);
    for (double& d : dose) d = 1.0 + model.doseJitter * normal(rng);
    cv::Mat plane(rows, kCalibrationColumns, CV_16UC1);
    for (int y = 0; y < rows; ++y) {
      const auto k = static_cast<std::size_t>(y);
      const double dark = static_cast<double>(c.dark[k]);
      const double gain = (static_cast<double>(c.air[k]) - dark) / kRawOpenBeamCounts;
      const double scale = kRawOpenBeamCounts / n0 * gain;
      auto* row = plane.ptr<std::uint16_t>(y);
      for (int x = 0; x < kCalibrationColumns; ++x) {
        // Quanta as the generator detects them: Poisson (as a Gaussian) plus electronic
        // noise, the pulse's dose jitter when the beam is on; then gain, offset and one
        // count of ADC noise.
        const double quanta = air ? n0 * dose[static_cast<std::size_t>(x)] : 0.0;
        const double sigma = std::sqrt(quanta + model.electronicNoise * model.electronicNoise);
        const double counts = (quanta + sigma * normal(rng)) * scale + dark + normal(rng);
        row[x] = static_cast<std::uint16_t>(std::clamp(std::round(counts), 0.0, 65535.0));
      }
    }
    b.planes.push_back(plane);
  }
  // TIFF first (temporary name, rename), then the JSON by rename: its arrival is the signal.
  const fs::path base = fs::path(options_.inbox) / b.meta.scanId;
  const std::string tiff = base.string() + ".tiff";
  const std::string tmp =
      (fs::path(options_.inbox) / (".part-" + b.meta.scanId + ".tiff")).string();
  try {
    if (!vision::writeTiff(tmp, b.planes))
      return tl::make_unexpected(tiff + ": the TIFF encoder refused");
  } catch (const cv::Exception& e) {
    return tl::make_unexpected(tiff + ": " + e.what());
  }
  std::error_code ec;
  fs::rename(tmp, tiff, ec);
  if (ec) return tl::make_unexpected(tiff + ": rename failed (" + ec.message() + ")");
  nlohmann::json meta = nlohmann::json::parse(vision::metaToJson(b.meta));
  meta["calibration"] = which;
  if (auto r = vision::writeFileAtomic(base.string() + ".json", meta.dump(2) + "\n"); !r)
    return tl::make_unexpected(r.error());
  return b.meta.scanId;
}

void XraySimulator::runCommand(const std::string& name, std::unique_lock<std::mutex>& l) {
  const auto start = Clock::now();
  const bool calibration = name == "dark" || name == "air";
  const bool fail = options_.failCommands;
  l.unlock();
  std::string bundle, error;
  if (calibration) {
    {
      auto lock = server_->lock();
      setStatusBit(profile_.bits.scanning, true);
      setStatusBit(profile_.bits.radiationOn, name == "air");
    }
    if (!fail) {
      auto r = writeCalibration(name);
      if (r)
        bundle = *r;
      else
        error = r.error();
    }
  }
  l.lock();
  wake_.wait_until(l, start + options_.commandTime, [&] { return stop_; });
  const bool ok = !fail && error.empty();
  if (ok && name == "dark") darkOk_ = true;
  if (ok && name == "air") airOk_ = true;
  if (ok && !bundle.empty()) calibrations_.push_back(bundle);
  const bool calibrated = darkOk_ && airOk_;
  l.unlock();
  {
    auto lock = server_->lock();
    registers_->result() =
        static_cast<std::uint16_t>(ok ? profile_.commands.ok : profile_.commands.failed);
    if (calibration) {
      setStatusBit(profile_.bits.scanning, false);
      setStatusBit(profile_.bits.radiationOn, false);
    }
    if (ok && calibrated) setStatusBit(profile_.bits.calibrationDue, false);
    if (ok && name == "clear_fault") setStatusBit(profile_.bits.fault, false);
  }
  if (!error.empty()) std::cerr << "lanegate-sim xray: " << name << ": " << error << std::endl;
  print("command " + name + (ok ? " ok" : " failed") + (bundle.empty() ? "" : " " + bundle));
  l.lock();
  if (ok && calibrated) darkOk_ = airOk_ = false;
  busy_ = false;
}

int runXraySim(std::span<const std::string> args) {
  return runSimulator<XraySimulator>("lanegate-sim xray", parseXraySimArgs(args));
}

}  // namespace lanegate::sim
