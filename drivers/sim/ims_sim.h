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
#include "drivers/sim/sim_device.h"
#include "trace/library.h"

namespace lanegate::sim {

/// What the simulator does (server, profile, seed, commands and faults: DeviceSimOptions).
struct ImsSimOptions : DeviceSimOptions {
  ImsSimOptions();
  std::string libraryPath;                      ///< substance library (K0s, thresholds)
  std::chrono::milliseconds every{2000};        ///< time between samples
  std::vector<std::string> sequence{"clear"};   ///< samples: "clear" or "name:amp[+name:amp]"
  bool once = false;                            ///< stop producing after the sequence
  std::size_t points = 2000;                    ///< spectrum length
  bool waitForClient = false;                   ///< the scenario starts at the first request
};

/// Reads `lanegate-sim ims` flags and a --scenario file (which the flags override) into
/// options; the message of a usage error ("" for --help, printed on stdout).
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
  std::span<std::uint16_t> table() { return registers_->table(); }  // the profile's table

  ImsSimOptions options_;
  ImsProfile profile_;
  trace::SubstanceLibrary library_;
  std::vector<std::vector<Ion>> items_;
  std::unique_ptr<ModbusServer> server_;
  std::unique_ptr<ProfileRegisters> registers_;
  std::chrono::steady_clock::time_point start_, next_;
  int produced_ = 0;
  std::uint16_t seq_ = 0;
  bool writing_ = false;     // seq is odd until the next step
  bool clientSeen_ = false;  // some client has sent a request
  std::optional<std::pair<std::string, std::chrono::steady_clock::time_point>> command_;
  std::function<void(std::uint16_t)> producedHook_;
};

/// `lanegate-sim ims ARGS...`: serves until SIGTERM/SIGINT; the exit code.
int runImsSim(std::span<const std::string> args);

}  // namespace lanegate::sim
