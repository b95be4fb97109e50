#include "drivers/sim/ims_sim.h"

#include <yaml-cpp/yaml.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numbers>
#include <random>
#include <sstream>

#include "trace/synth.h"

namespace lanegate::sim {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

volatile std::sig_atomic_t gStop = 0;
extern "C" void onStopSignal(int) { gStop = 1; }

constexpr const char* kUsage =
    "usage: lanegate-sim ims [--port N] [--host ADDR] [--unit-id N]\n"
    "                        [--rtu DEVICE [--baud N] [--parity none|even|odd]]\n"
    "                        [--profile FILE] [--library FILE] [--scenario FILE]\n"
    "                        [--every-ms N] [--sequence ITEM,ITEM,...] [--once]\n"
    "                        [--points N] [--seed N] [--command-ms N] [--fail-commands]\n"
    "                        [--calibration-due] [--wait-for-client]\n"
    "                        [--fault none|stall|disconnect|garbage|exception|device]\n"
    "                        [--fault-after N]\n"
    "  ITEM is 'clear' or SUBSTANCE:AMPLITUDE[+SUBSTANCE:AMPLITUDE...], e.g.\n"
    "  --every-ms 2000 --sequence clear,cocaine:800,clear,fentanyl:400\n"
    "  Prints 'listening on ADDR:PORT', then one line per sample, on stdout.\n";

std::vector<std::string> splitList(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

tl::expected<long long, std::string> toInt(const std::string& flag, const std::string& v,
                                           long long min, long long max) {
  try {
    std::size_t used = 0;
    const long long n = std::stoll(v, &used);
    if (used == v.size() && n >= min && n <= max) return n;
  } catch (const std::exception&) {
  }
  return tl::make_unexpected(flag + ": expected an integer " + std::to_string(min) + ".." +
                             std::to_string(max) + ", got '" + v + "'");
}

// A scenario file carries the same settings as the flags, as YAML keys.
tl::expected<void, std::string> loadScenario(const std::string& path, ImsSimOptions& o) {
  try {
    const YAML::Node n = YAML::LoadFile(path);
    if (!n.IsMap()) return tl::make_unexpected(path + ": expected a map");
    for (const auto& kv : n) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      const std::string at = path + ":" + std::to_string(v.Mark().line + 1) + ": ";
      if (key == "every_ms")
        o.every = milliseconds(v.as<long long>());
      else if (key == "sequence" && v.IsSequence())
        o.sequence = v.as<std::vector<std::string>>();
      else if (key == "sequence")
        o.sequence = splitList(v.as<std::string>(), ',');
      else if (key == "once")
        o.once = v.as<bool>();
      else if (key == "points")
        o.points = v.as<std::size_t>();
      else if (key == "seed")
        o.seed = v.as<std::uint64_t>();
      else if (key == "command_ms")
        o.commandTime = milliseconds(v.as<long long>());
      else if (key == "fail_commands")
        o.failCommands = v.as<bool>();
      else if (key == "calibration_due")
        o.calibrationDue = v.as<bool>();
      else if (key == "fault")
        o.fault = v.as<std::string>();
      else if (key == "fault_after")
        o.faultAfter = v.as<int>();
      else
        return tl::make_unexpected(at + "unknown key '" + key + "'");
    }
  } catch (const YAML::Exception& e) {
    return tl::make_unexpected(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return {};
}

}  // namespace

tl::expected<ImsSimOptions, std::string> parseImsSimArgs(std::span<const std::string> args) {
  ImsSimOptions o;
  o.profilePath = std::string(LANEGATE_SOURCE_DIR) + "/config/profiles/ims-generic-v1.yaml";
  o.libraryPath = std::string(LANEGATE_SOURCE_DIR) + "/config/ims/substances.yaml";
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool hasValue = i + 1 < args.size();
    auto value = [&]() -> const std::string& { return args[++i]; };
    auto integer = [&](long long min, long long max) { return toInt(a, value(), min, max); };
    if (a == "--once") {
      o.once = true;
      continue;
    }
    if (a == "--fail-commands") {
      o.failCommands = true;
      continue;
    }
    if (a == "--calibration-due") {
      o.calibrationDue = true;
      continue;
    }
    if (a == "--wait-for-client") {
      o.waitForClient = true;
      continue;
    }
    if (a == "-h" || a == "--help") return tl::make_unexpected(std::string());
    if (!hasValue) return tl::make_unexpected(a + ": unknown flag or missing value");
    if (a == "--port") {
      auto n = integer(0, 65535);
      if (!n) return tl::make_unexpected(n.error());
      o.server.port = static_cast<int>(*n);
    } else if (a == "--host") {
      o.server.host = value();
    } else if (a == "--unit-id") {
      auto n = integer(1, 247);
      if (!n) return tl::make_unexpected(n.error());
      o.server.unitId = static_cast<int>(*n);
    } else if (a == "--rtu") {
      o.server.transport = "rtu";
      o.server.device = value();
    } else if (a == "--baud") {
      auto n = integer(300, 4'000'000);
      if (!n) return tl::make_unexpected(n.error());
      o.server.baud = static_cast<int>(*n);
    } else if (a == "--parity") {
      const std::string& p = value();
      if (p != "none" && p != "even" && p != "odd")
        return tl::make_unexpected("--parity: none, even or odd");
      o.server.parity = p == "none" ? 'N' : p == "even" ? 'E' : 'O';
    } else if (a == "--profile") {
      o.profilePath = value();
    } else if (a == "--library") {
      o.libraryPath = value();
    } else if (a == "--scenario") {
      if (auto r = loadScenario(value(), o); !r) return tl::make_unexpected(r.error());
    } else if (a == "--every-ms") {
      auto n = integer(10, 86'400'000);
      if (!n) return tl::make_unexpected(n.error());
      o.every = milliseconds(*n);
    } else if (a == "--sequence") {
      o.sequence = splitList(value(), ',');
    } else if (a == "--points") {
      auto n = integer(1, 4000);
      if (!n) return tl::make_unexpected(n.error());
      o.points = static_cast<std::size_t>(*n);
    } else if (a == "--seed") {
      auto n = integer(0, 1LL << 62);
      if (!n) return tl::make_unexpected(n.error());
      o.seed = static_cast<std::uint64_t>(*n);
    } else if (a == "--command-ms") {
      auto n = integer(0, 3'600'000);
      if (!n) return tl::make_unexpected(n.error());
      o.commandTime = milliseconds(*n);
    } else if (a == "--fault") {
      o.fault = value();
    } else if (a == "--fault-after") {
      auto n = integer(0, 1'000'000);
      if (!n) return tl::make_unexpected(n.error());
      o.faultAfter = static_cast<int>(*n);
    } else {
      return tl::make_unexpected(a + ": unknown flag");
    }
  }
  if (o.fault != "device" && !parseServerFault(o.fault))
    return tl::make_unexpected("--fault: none, stall, disconnect, garbage, exception or device");
  if (o.sequence.empty()) return tl::make_unexpected(std::string("--sequence: no samples"));
  if (o.every < milliseconds(10)) return tl::make_unexpected(std::string("every_ms: at least 10"));
  return o;
}

tl::expected<std::unique_ptr<ImsSimulator>, std::string> ImsSimulator::create(
    ImsSimOptions options) {
  std::unique_ptr<ImsSimulator> sim(new ImsSimulator(std::move(options)));
  auto profile = loadImsProfile(sim->options_.profilePath);
  if (!profile) return tl::make_unexpected(profile.error().str());
  sim->profile_ = std::move(*profile);
  if (sim->options_.points > static_cast<std::size_t>(sim->profile_.maxPoints))
    return tl::make_unexpected("--points: the profile allows at most " +
                               std::to_string(sim->profile_.maxPoints));
  std::ifstream in(sim->options_.libraryPath);
  if (!in) return tl::make_unexpected(sim->options_.libraryPath + ": cannot read the library");
  std::ostringstream text;
  text << in.rdbuf();
  auto library = trace::SubstanceLibrary::parse(text.str(), sim->options_.libraryPath);
  if (!library) return tl::make_unexpected(library.error());
  sim->library_ = std::move(*library);

  for (const auto& item : sim->options_.sequence) {
    std::vector<Ion> ions;
    if (item != "clear") {
      for (const auto& part : splitList(item, '+')) {
        const auto colon = part.find(':');
        Ion ion{part.substr(0, colon), 1000.0};
        if (colon != std::string::npos) {
          auto amp = toInt("--sequence " + part, part.substr(colon + 1), 1, 65535);
          if (!amp) return tl::make_unexpected(amp.error());
          ion.amplitude = static_cast<double>(*amp);
        }
        if (sim->library_.find(ion.name) == nullptr)
          return tl::make_unexpected("--sequence: no substance '" + ion.name + "' in " +
                                     sim->options_.libraryPath);
        ions.push_back(ion);
      }
    }
    sim->items_.push_back(std::move(ions));
  }

  auto server = ModbusServer::start(sim->options_.server);
  if (!server) return tl::make_unexpected(server.error());
  sim->server_ = std::move(*server);
  {
    auto lock = sim->server_->lock();
    const ImsProfile& p = sim->profile_;
    if (p.versionAddress)
      sim->table()[static_cast<std::size_t>(*p.versionAddress)] =
          static_cast<std::uint16_t>(p.expectedVersion);
    sim->setStatusBit(p.bits.ready, true);
    sim->setStatusBit(p.bits.calibrationDue, sim->options_.calibrationDue);
    sim->table()[static_cast<std::size_t>(p.driftTempK.address)] = p.driftTempK.encode(383.15);
    sim->table()[static_cast<std::size_t>(p.pressureHpa.address)] = p.pressureHpa.encode(1013.25);
    sim->table()[static_cast<std::size_t>(p.desorberTempC.address)] = p.desorberTempC.encode(250.0);
  }
  ImsSimulator* self = sim.get();
  sim->server_->setAfterHook([self](const ServerRequest& r) { self->afterRequest(r); });
  sim->start_ = sim->next_ = Clock::now();
  if (sim->options_.faultAfter == 0) sim->applyFault();
  return sim;
}

std::span<std::uint16_t> ImsSimulator::table() {
  return profile_.table == RegisterTable::input ? server_->input() : server_->holding();
}

void ImsSimulator::setStatusBit(const std::optional<int>& bit, bool on) {
  if (!bit) return;
  auto& status = table()[static_cast<std::size_t>(profile_.status)];
  const auto mask = static_cast<std::uint16_t>(1U << static_cast<unsigned>(*bit));
  status =
      on ? static_cast<std::uint16_t>(status | mask) : static_cast<std::uint16_t>(status & ~mask);
}

void ImsSimulator::applyFault() {
  if (options_.fault == "device") {
    auto lock = server_->lock();
    deviceFault_ = true;
    setStatusBit(profile_.bits.fault, true);
    return;
  }
  server_->setFault(parseServerFault(options_.fault).value_or(ServerFault::none));
}

void ImsSimulator::step(milliseconds slice) {
  server_->serveOnce(slice);
  const auto now = Clock::now();
  bool fault = false;
  {
    auto lock = server_->lock();
    if (writing_) {
      // The sample was visible with an odd sequence for one serving round; complete it.
      ++seq_;
      table()[static_cast<std::size_t>(profile_.sampleSeq)] = seq_;
      writing_ = false;
      setStatusBit(profile_.bits.analysing, false);
      fault = produced_ == options_.faultAfter && options_.faultAfter > 0;
      if (producedHook_) producedHook_(seq_);
    } else if (now >= next_ && (clientSeen_ || !options_.waitForClient) &&
               !(options_.once && static_cast<std::size_t>(produced_) >= items_.size())) {
      produce(now);
      next_ += options_.every;
      if (next_ < now) next_ = now + options_.every;  // after a stall, don't burst
    }
    if (command_ && now >= command_->second) {
      const auto& p = profile_;
      auto& result = (p.commandResultTable == RegisterTable::input
                          ? server_->input()
                          : server_->holding())[static_cast<std::size_t>(p.commandResult)];
      result = static_cast<std::uint16_t>(options_.failCommands ? p.resultFailed : p.resultOk);
      if (!options_.failCommands) {
        if (command_->first == "calibrate") setStatusBit(p.bits.calibrationDue, false);
        if (command_->first == "verify") setStatusBit(p.bits.verificationFailed, false);
        if (command_->first == "clear_fault") {
          deviceFault_ = false;
          setStatusBit(p.bits.fault, false);
        }
      }
      if (options_.printEvents)
        std::cout << "command " << command_->first << " "
                  << (options_.failCommands ? "failed" : "ok") << std::endl;
      command_.reset();
    }
  }
  if (fault) applyFault();
}

void ImsSimulator::produce(Clock::time_point now) {
  const auto& items = items_[static_cast<std::size_t>(produced_) % items_.size()];
  const double t = std::chrono::duration<double>(now - start_).count();
  trace::IonMode mode = trace::IonMode::kPositive;
  if (!items.empty()) mode = library_.find(items.front().name)->mode;
  auto params = trace::synthDefaults(library_, mode);
  if (!params) params = trace::SynthParams{};  // a library without this mode: defaults
  std::mt19937_64 rng(options_.seed * std::uint64_t{1000003} +
                      static_cast<std::uint64_t>(produced_));
  params->seed = rng();
  params->points = options_.points;
  // Slow drifts that move every drift time together; the calibrant corrects them.
  params->driftTempK = 383.15 + 2.5 * std::sin(2.0 * std::numbers::pi * t / 97.0);
  params->pressureHpa = 1013.25 + 6.0 * std::sin(2.0 * std::numbers::pi * t / 331.0);
  params->resolvingPower = std::uniform_real_distribution<double>(30.0, 60.0)(rng);
  std::vector<std::pair<int, double>> alarms;
  for (const auto& ion : items) {
    trace::SynthIon s;
    const trace::Substance* sub = library_.find(ion.name, mode);
    if (sub == nullptr) continue;  // other polarity: not in this spectrum
    s.k0 = sub->k0;
    s.amplitude = ion.amplitude;
    params->ions.push_back(s);
    // The device's own verdict: a target at or above its alarm threshold.
    const auto code = profile_.alarmCodeOf(ion.name);
    if (sub->role == trace::SubstanceRole::kTarget && ion.amplitude >= sub->minAmplitude && code &&
        static_cast<int>(alarms.size()) < profile_.maxAlarms)
      alarms.emplace_back(*code, ion.amplitude);
  }
  const trace::Spectrum spectrum = trace::synthesize(*params);

  const ImsProfile& p = profile_;
  auto regs = table();
  auto put = [&](int address, double v) {
    regs[static_cast<std::size_t>(address)] =
        static_cast<std::uint16_t>(std::clamp(std::round(v), 0.0, 65535.0));
  };
  ++seq_;  // odd: writing
  regs[static_cast<std::size_t>(p.sampleSeq)] = seq_;
  writing_ = true;
  setStatusBit(p.bits.analysing, true);
  const auto unix = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  p.putU32(regs, p.sampleTime, static_cast<std::uint32_t>(unix));
  regs[static_cast<std::size_t>(p.driftTempK.address)] = p.driftTempK.encode(params->driftTempK);
  regs[static_cast<std::size_t>(p.pressureHpa.address)] = p.pressureHpa.encode(params->pressureHpa);
  regs[static_cast<std::size_t>(p.desorberTempC.address)] =
      p.desorberTempC.encode(250.0 + std::sin(t));
  put(p.points, static_cast<double>(spectrum.points.size()));
  put(p.periodNs, spectrum.periodNs);
  put(p.segments, 16);
  put(p.alarmCount, static_cast<double>(alarms.size()));
  for (int i = 0; i < p.maxAlarms; ++i) {
    const bool used = static_cast<std::size_t>(i) < alarms.size();
    put(p.alarms + 2 * i, used ? alarms[static_cast<std::size_t>(i)].first : 0);
    put(p.alarms + 2 * i + 1, used ? alarms[static_cast<std::size_t>(i)].second : 0);
  }
  std::copy(spectrum.points.begin(), spectrum.points.end(),
            regs.begin() + static_cast<std::ptrdiff_t>(p.spectrum));
  setStatusBit(p.bits.alarm, !alarms.empty());
  setStatusBit(p.bits.negativeMode, mode == trace::IonMode::kNegative);
  setStatusBit(p.bits.fault, deviceFault_);
  ++produced_;
  const std::string& what =
      options_.sequence[static_cast<std::size_t>(produced_ - 1) % items_.size()];
  if (options_.printEvents)
    std::cout << "sample " << produced_ << " seq=" << static_cast<int>(seq_ + 1) << " " << what
              << std::endl;
}

void ImsSimulator::afterRequest(const ServerRequest& req) {
  const ImsProfile& p = profile_;
  if (!clientSeen_) {
    clientSeen_ = true;
    if (options_.waitForClient) next_ = Clock::now();  // the scenario starts now
  }
  if (req.function != 6 && req.function != 16) return;
  if (req.address > p.commandRegister || req.address + req.count <= p.commandRegister) return;
  auto& reg = server_->holding()[static_cast<std::size_t>(p.commandRegister)];
  const int code = reg;
  reg = 0;
  auto& result = (p.commandResultTable == RegisterTable::input
                      ? server_->input()
                      : server_->holding())[static_cast<std::size_t>(p.commandResult)];
  for (const auto& [name, c] : p.commandCodes) {
    if (c != code) continue;
    result = static_cast<std::uint16_t>(p.resultRunning);
    command_ = std::make_pair(name, Clock::now() + options_.commandTime);
    return;
  }
  result = static_cast<std::uint16_t>(p.resultFailed);  // an unknown command code
}

int runImsSim(std::span<const std::string> args) {
  auto options = parseImsSimArgs(args);
  if (!options) {
    if (!options.error().empty()) std::cerr << "lanegate-sim ims: " << options.error() << "\n";
    std::cerr << kUsage;
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = onStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  options->printEvents = true;
  auto sim = ImsSimulator::create(std::move(*options));
  if (!sim) {
    std::cerr << "lanegate-sim ims: " << sim.error() << "\n";
    return 1;
  }
  std::cout << "listening on " << (*sim)->server().where() << std::endl;
  while (gStop == 0) (*sim)->step(milliseconds(20));
  std::cout << "stopping" << std::endl;
  return 0;
}

}  // namespace lanegate::sim
