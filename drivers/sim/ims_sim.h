#pragma once
// `lanegate-sim ims`: an IMS trace detector serving a register profile (Contract 3 by
// default) over Modbus, with spectra from trace::synthesize (reactant ion, calibrant,
// substance peaks at resolving power 30–60, noise, baseline drift, temperature and
// pressure drift that moves every drift time together), a scenario of samples, the
// command register, its own alarm list, and injectable faults. The class runs
// in-process for tests; runImsSim() is the command line.

#include <chrono>
#include <functional>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "drivers/ims_profile.h"
#include "drivers/sim/modbus_server.h"
#include "trace/library.h"

namespace lanegate::sim {

/// What the simulator does.
struct ImsSimOptions {
  ServerOptions server;                         ///< where to serve
  std::string profilePath;                      ///< register map (default: Contract 3)
  std::string libraryPath;                      ///< substance library (K0s, thresholds)
  std::chrono::milliseconds every{2000};        ///< time between samples
  std::vector<std::string> sequence{"clear"};   ///< samples: "clear" or "name:amp[+name:amp]"
  bool once = false;                            ///< stop producing after the sequence
  std::size_t points = 2000;                    ///< spectrum length
  std::uint64_t seed = 1;                       ///< spectra are reproducible per seed
  std::chrono::milliseconds commandTime{1000};  ///< how long a command runs
  bool failCommands = false;                    ///< commands end in "failed"
  bool calibrationDue = false;                  ///< starts with calibration_due set
  bool waitForClient = false;                   ///< the scenario starts at the first request
  std::string fault = "none";                   ///< none|stall|disconnect|garbage|exception|device
  int faultAfter = 0;                           ///< samples produced before the fault starts
  bool printEvents = false;                     ///< one stdout line per sample and command
};

/// Reads `lanegate-sim ims` flags (and a --scenario file) into options; an error
/// message for bad usage.
tl::expected<ImsSimOptions, std::string> parseImsSimArgs(std::span<const std::string> args);

/// The simulated detector.
class ImsSimulator {
 public:
  /// Loads the profile and library, validates the scenario and starts serving.
  static tl::expected<std::unique_ptr<ImsSimulator>, std::string> create(ImsSimOptions options);
  /// Serves requests for up to `slice` and advances the scenario.
  void step(std::chrono::milliseconds slice);
  /// The server (port, fault injection, hooks).
  [[nodiscard]] ModbusServer& server() { return *server_; }
  /// Samples produced so far.
  [[nodiscard]] int samples() const { return produced_; }
  /// The profile served.
  [[nodiscard]] const ImsProfile& profile() const { return profile_; }
  /// Called on the serving thread when a sample becomes readable (its even sequence is
  /// written), e.g. to measure the latency of a reader. Set before serving starts.
  void setProducedHook(std::function<void(std::uint16_t seq)> hook) { producedHook_ = std::move(hook); }

 private:
  struct Ion {
    std::string name;
    double amplitude = 0;
  };
  explicit ImsSimulator(ImsSimOptions options) : options_(std::move(options)) {}
  void produce(std::chrono::steady_clock::time_point now);  // write the next sample
  void afterRequest(const ServerRequest& req);              // command register
  void applyFault();
  std::span<std::uint16_t> table();  // the profile's table
  void setStatusBit(const std::optional<int>& bit, bool on);

  ImsSimOptions options_;
  ImsProfile profile_;
  trace::SubstanceLibrary library_;
  std::vector<std::vector<Ion>> items_;
  std::unique_ptr<ModbusServer> server_;
  std::chrono::steady_clock::time_point start_, next_;
  int produced_ = 0;
  std::uint16_t seq_ = 0;
  bool writing_ = false;  // seq is odd until the next step
  bool deviceFault_ = false;
  bool clientSeen_ = false;  // some client has sent a request
  std::optional<std::pair<std::string, std::chrono::steady_clock::time_point>> command_;
  std::function<void(std::uint16_t)> producedHook_;
};

/// `lanegate-sim ims ARGS...`: serves until SIGTERM/SIGINT; the exit code.
int runImsSim(std::span<const std::string> args);

}  // namespace lanegate::sim
