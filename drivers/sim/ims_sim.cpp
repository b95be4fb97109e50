#include "drivers/sim/ims_sim.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numbers>
#include <random>
#include <sstream>

#include <CLI/CLI.hpp>

#include "drivers/config_dir.h"
#include "trace/synth.h"

namespace lanegate::sim {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::vector<std::string> splitList(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

// A sequence item's amplitude, 1..65535.
tl::expected<double, std::string> amplitudeOf(const std::string& part, const std::string& text) {
  try {
    std::size_t used = 0;
    const long long n = std::stoll(text, &used);
    if (used == text.size() && n >= 1 && n <= 65535) return static_cast<double>(n);
  } catch (const std::exception&) {
  }
  return tl::make_unexpected("--sequence " + part + ": expected an integer 1..65535, got '" + text +
                             "'");
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

void addImsSimOptions(CLI::App& app, ImsSimOptions& o, std::string& scenario) {
  addDeviceSimOptions(app, o);
  app.add_option("--library", o.libraryPath, "substance library (K0s, alarm thresholds)")
      ->capture_default_str();
  app.add_option("--scenario", scenario,
                 "YAML file with the keys every_ms, sequence, once, points, seed, command_ms, "
                 "fail_commands, calibration_due, fault, fault_after (flags override it)");
  app.add_option_function<long long>(
         "--every-ms", [&o](long long ms) { o.every = milliseconds(ms); }, "time between samples")
      ->check(CLI::Range(10LL, 86'400'000LL));
  app.add_option_function<std::string>(
         "--sequence", [&o](const std::string& text) { o.sequence = splitList(text, ','); },
         "samples in turn: clear or SUBSTANCE:AMPLITUDE[+SUBSTANCE:AMPLITUDE...], comma-separated, "
         "e.g. "
         "clear,cocaine:800")
      ->type_name("ITEM,...");
  app.add_flag("--once", o.once, "stop producing after the sequence");
  app.add_option("--points", o.points, "spectrum length")->check(CLI::Range(1, 4000));
  app.add_flag("--wait-for-client", o.waitForClient, "start the sequence at the first request");
}

}  // namespace

ImsSimOptions::ImsSimOptions() {
  profilePath = defaultConfigDir() + "/profiles/ims-generic-v1.yaml";
  libraryPath = defaultConfigDir() + "/ims/substances.yaml";
}

tl::expected<ImsSimOptions, std::string> parseImsSimArgs(std::span<const std::string> args) {
  ImsSimOptions o;
  std::string scenario;
  CLI::App app(
      "A simulated IMS trace detector: a register profile served over Modbus TCP or RTU.\n"
      "Prints 'listening on ADDR:PORT', then one line per sample and command, on stdout.",
      "lanegate-sim ims");
  addImsSimOptions(app, o, scenario);
  if (auto error = parseSimArgs(app, args)) return tl::make_unexpected(*error);
  if (!scenario.empty()) {
    // The scenario file sets what the command line leaves: read it, then the flags again.
    ImsSimOptions fromFile;
    if (auto r = loadScenario(scenario, fromFile); !r) return tl::make_unexpected(r.error());
    CLI::App again("", "lanegate-sim ims");
    addImsSimOptions(again, fromFile, scenario);
    if (auto error = parseSimArgs(again, args)) return tl::make_unexpected(*error);
    o = std::move(fromFile);
  }
  if (o.sequence.empty()) return tl::make_unexpected(std::string("--sequence: no samples"));
  if (std::find(faultNames().begin(), faultNames().end(), o.fault) == faultNames().end())
    return tl::make_unexpected(
        "fault: none, stall, disconnect, garbage, exception or device, not '" + o.fault + "'");
  if (o.every < milliseconds(10)) return tl::make_unexpected(std::string("every_ms: at least 10"));
  return o;
}

tl::expected<std::unique_ptr<ImsSimulator>, std::string> ImsSimulator::create(
    ImsSimOptions options) {
  std::unique_ptr<ImsSimulator> sim(new ImsSimulator(std::move(options)));
  auto profile = loadProfile(sim->options_.profilePath, parseImsProfile);
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
          auto amp = amplitudeOf(part, part.substr(colon + 1));
          if (!amp) return tl::make_unexpected(amp.error());
          ion.amplitude = *amp;
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
  sim->registers_ = std::make_unique<ProfileRegisters>(*sim->server_, sim->profile_);
  {
    auto lock = sim->server_->lock();
    const ImsProfile& p = sim->profile_;
    sim->registers_->initialise(p.bits.ready, p.bits.calibrationDue, sim->options_.calibrationDue);
    sim->table()[static_cast<std::size_t>(p.driftTempK.address)] = p.driftTempK.encode(383.15);
    sim->table()[static_cast<std::size_t>(p.pressureHpa.address)] = p.pressureHpa.encode(1013.25);
    sim->table()[static_cast<std::size_t>(p.desorberTempC.address)] = p.desorberTempC.encode(250.0);
  }
  ImsSimulator* self = sim.get();
  sim->server_->setAfterHook([self](const ServerRequest& r) { self->afterRequest(r); });
  sim->start_ = sim->next_ = Clock::now();
  if (sim->options_.faultAfter == 0)
    applyFault(*sim->server_, *sim->registers_, sim->profile_.bits.fault, sim->options_.fault);
  return sim;
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
      registers_->setStatusBit(profile_.bits.analysing, false);
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
      registers_->result() =
          static_cast<std::uint16_t>(options_.failCommands ? p.commands.failed : p.commands.ok);
      if (!options_.failCommands) {
        if (command_->first == "calibrate") registers_->setStatusBit(p.bits.calibrationDue, false);
        if (command_->first == "verify") registers_->setStatusBit(p.bits.verificationFailed, false);
        if (command_->first == "clear_fault") registers_->setStatusBit(p.bits.fault, false);
      }
      if (options_.printEvents)
        std::cout << "command " << command_->first << " "
                  << (options_.failCommands ? "failed" : "ok") << std::endl;
      command_.reset();
    }
  }
  if (fault) applyFault(*server_, *registers_, profile_.bits.fault, options_.fault);
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
  registers_->setStatusBit(p.bits.analysing, true);
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
  registers_->setStatusBit(p.bits.alarm, !alarms.empty());
  registers_->setStatusBit(p.bits.negativeMode, mode == trace::IonMode::kNegative);
  ++produced_;
  const std::string& what =
      options_.sequence[static_cast<std::size_t>(produced_ - 1) % items_.size()];
  if (options_.printEvents)
    std::cout << "sample " << produced_ << " seq=" << static_cast<int>(seq_ + 1) << " " << what
              << std::endl;
}

void ImsSimulator::afterRequest(const ServerRequest& req) {
  if (!clientSeen_) {
    clientSeen_ = true;
    if (options_.waitForClient) next_ = Clock::now();  // the scenario starts now
  }
  const auto command = registers_->takeCommand(req);
  if (!command) return;
  if (command->empty()) {
    registers_->result() =
        static_cast<std::uint16_t>(profile_.commands.failed);  // an unknown command code
    return;
  }
  registers_->result() = static_cast<std::uint16_t>(profile_.commands.running);
  command_ = std::make_pair(*command, Clock::now() + options_.commandTime);
}

int runImsSim(std::span<const std::string> args) {
  return runSimulator<ImsSimulator>("lanegate-sim ims", parseImsSimArgs(args));
}

}  // namespace lanegate::sim
