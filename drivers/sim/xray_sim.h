#pragma once
// `lanegate-sim xray`: a cargo X-ray scanner. Its PLC serves a register profile
// (Contract 4 by default) over Modbus; its "export workstation" writes Contract 1 bundles
// made by the phantom generator (vision/phantom.h) into an inbox, and answers dark/air
// commands with calibration bundles. The class runs in-process for tests; runXraySim()
// is the command line.
//
// One scan: lane_occupied = 1 and the scanning and radiation_on bits set; the phantom is
// generated; `<scan_id>.truth.json` goes to the truth directory (if any, never the inbox);
// the bundle is written with vision::writeBundle (TIFF, then JSON by rename); only then
// scan_seq is incremented and scanning/radiation_on cleared; lane_occupied drops back to 0
// when the conveyance has moved on (--dwell-ms; by default half the scan period, at most
// 500 ms).
//
// A dark or air command: command_result = running, the scanning bit (and radiation_on for
// air) set; a calibration bundle `cal-dark-N` / `cal-air-N` is written into the inbox
// (signal raw, one column per pulse, rows = the detector channels of the scans, plus the
// field "calibration": "dark" | "air"); after --command-ms, command_result = ok (or failed,
// with --fail-commands, and then no bundle). calibration_due clears once a dark and an air
// have both succeeded since it was set. clear_fault clears the device fault.
//
// Generation and file writing run on a worker thread of the simulator, so the PLC keeps
// answering while a large scan is rendered; scans and commands take turns on it. Rendering
// a 3600×900 dual-energy scan takes seconds; for benchmarks at several scans a second,
// --pregenerate N renders N scans before the first and then writes them in turn (each
// with its own scan id and time).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <tl/expected.hpp>

#include "drivers/sim/modbus_server.h"
#include "drivers/sim/sim_device.h"
#include "drivers/xray_profile.h"
#include "vision/phantom.h"

namespace lanegate::sim {

/// What kind of load a scan holds, as the mix asks for them.
enum class ScanKind {
  clear,         ///< declared goods (or a declared load), no concealment
  concealment,   ///< a stash somewhere (in the load, floor, front wall or a tyre)
  empty,         ///< declared empty and really empty
  emptyContent,  ///< declared empty but holding goods or a stash
};

/// "clear", "concealment", "empty", "empty_content".
const char* scanKindName(ScanKind kind);

/// Weights of each kind; all zero = the generator's own mix ("natural").
struct ScanMix {
  double clear = 70, concealment = 20, empty = 5, emptyContent = 5;  ///< relative weights
  /// True when the generator's own mix is used.
  [[nodiscard]] bool natural() const { return clear + concealment + empty + emptyContent <= 0; }
};

/// Parses "natural" or "KIND:WEIGHT[,KIND:WEIGHT...]" (kinds not named weigh 0).
tl::expected<ScanMix, std::string> parseScanMix(const std::string& text);

/// What the simulator does (server, profile, seed, commands and faults: DeviceSimOptions).
struct XraySimOptions : DeviceSimOptions {
  XraySimOptions();
  std::string inbox;                            ///< (required) where bundles are written
  std::string truthDir;                         ///< where `<scan_id>.truth.json` go; "" = nowhere
  std::chrono::milliseconds every{5000};        ///< time between scan starts
  std::optional<std::chrono::milliseconds> dwell;  ///< lane occupied after a scan; default
                                                   ///< half the scan period, at most 500 ms
  int count = -1;                                  ///< scans to make; -1 = no end, 0 = none
  ScanMix mix;                                  ///< kinds of load
  double pixelMm = 10.0;                        ///< pitch, both directions
  bool raw = false;                             ///< detector counts instead of transmission
  bool single = false;                          ///< single energy instead of dual
  int pregenerate = 0;                          ///< render this many scans first, then cycle them
  std::string idPrefix;                         ///< scan ids are PREFIX-NNNN; "" = xr-<UTC time>
  std::string scanner = "xray-sim";             ///< the bundles' `scanner`
};

/// Reads `lanegate-sim xray` flags into options; the message of a usage error ("" for
/// --help, printed on stdout).
tl::expected<XraySimOptions, std::string> parseXraySimArgs(std::span<const std::string> args);

/// One scan as produced (for tests and the printed line).
struct ProducedScan {
  int number = 0;                   ///< 1-based
  std::string scanId;               ///< the bundle's scan_id
  ScanKind kind = ScanKind::clear;  ///< what the truth turned out to be
  std::string summary;              ///< the rest of the printed line
  bool written = false;             ///< the bundle is in the inbox (else an error was logged)
};

/// The simulated scanner.
class XraySimulator {
 public:
  /// Loads the profile, checks the directories and starts serving (scans start with the
  /// first step()).
  static tl::expected<std::unique_ptr<XraySimulator>, std::string> create(XraySimOptions options);
  /// Stops the worker (after the file it is writing) and the server.
  ~XraySimulator();
  XraySimulator(const XraySimulator&) = delete;
  XraySimulator& operator=(const XraySimulator&) = delete;

  /// Serves requests for up to `slice`; the first call starts producing scans.
  void step(std::chrono::milliseconds slice);
  /// The server (port, fault injection, hooks).
  [[nodiscard]] ModbusServer& server() { return *server_; }
  /// The profile served.
  [[nodiscard]] const XrayProfile& profile() const { return profile_; }
  /// Scans made so far (written, or failed with an error on stderr).
  [[nodiscard]] int scans() const { return produced_.load(); }
  /// The scans completed so far.
  [[nodiscard]] std::vector<ProducedScan> produced() const;
  /// Calibration bundles written so far (scan ids).
  [[nodiscard]] std::vector<std::string> calibrations() const;

 private:
  explicit XraySimulator(XraySimOptions options) : options_(std::move(options)) {}
  void run();                                      // the worker
  void scanOnce(std::unique_lock<std::mutex>& l);  // one scan, l held on entry and exit
  void runCommand(const std::string& name, std::unique_lock<std::mutex>& l);
  void afterRequest(const ServerRequest& req);  // command register (server lock held)
  void setStatusBit(const std::optional<int>& bit, bool on) {
    registers_->setStatusBit(bit, on);
  }                                                                 // server lock held
  std::span<std::uint16_t> table() { return registers_->table(); }  // server lock held
  ScanKind pickKind(int number);
  int findIndex(ScanKind kind);        // next phantom index of that kind
  vision::Phantom render(int number);  // the phantom of scan `number`
  tl::expected<std::string, std::string> writeCalibration(const std::string& which);
  const vision::Calibration& detectorCalibration();
  void print(const std::string& line);
  [[nodiscard]] bool stopping() const;

  XraySimOptions options_;
  XrayProfile profile_;
  std::unique_ptr<ModbusServer> server_;
  std::unique_ptr<ProfileRegisters> registers_;
  std::string prefix_;

  // Worker state, guarded by mutex_ (taken after the server lock, never before it).
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool started_ = false, stop_ = false;
  std::deque<std::string> commands_;
  std::vector<ProducedScan> scans_;
  std::vector<std::string> calibrations_;
  int darkCount_ = 0, airCount_ = 0;
  bool darkOk_ = false, airOk_ = false;  // since calibration_due was last set
  bool busy_ = false;                    // a command is queued or running

  // Worker-only.
  int cursor_ = 0;  // next phantom index to consider
  std::optional<vision::Calibration> detector_;
  std::vector<vision::Phantom> cache_;  // --pregenerate

  std::atomic<int> produced_{0};
  std::thread worker_;
};

/// `lanegate-sim xray ARGS...`: serves until SIGTERM/SIGINT (after --count scans the PLC
/// keeps answering, and commands still run); the exit code.
int runXraySim(std::span<const std::string> args);

}  // namespace lanegate::sim
