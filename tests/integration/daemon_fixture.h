#pragma once
// A lanegated under test: its config in a temp dir, the real binary, lanegatectl calls.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/harness.h"

namespace lanegate::test {

inline const std::string kStatusTopic = "lanegate/v1/it/lane-1/status";
inline const std::string kAlertsTopic = "lanegate/v1/it/lane-1/alerts";

inline std::string configText(const TempDir& dir, const std::string& brokerUri,
                              const std::string& devices = "devices: []\n") {
  return "site: it\nlane: lane-1\nlog_level: debug\n"
         "state_dir: " +
         dir.file("state") +
         "\n"
         "control_socket: " +
         dir.file("control.sock") +
         "\n"
         "broker:\n  uri: " +
         brokerUri +
         "\n  keepalive_s: 5\n"
         "  reconnect_min_s: 0.1\n  reconnect_max_s: 0.5\n" +
         devices;
}

// A daemon under test, with its config in `dir`.
class Daemon {
 public:
  Daemon(const TempDir& dir, const std::string& config) : dir_(dir) {
    writeFile(configPath(), config);
    start();
  }
  /// Starts (again) the daemon on the same config and state.
  void start() {
    process_.reset();
    process_ =
        std::make_unique<Process>(std::vector<std::string>{LANEGATED_BIN, "-c", configPath()},
                                  dir_.file("lanegated-" + std::to_string(++starts_)));
  }
  /// True once the control socket answers.
  bool up() const { return status().is_object(); }
  std::string configPath() const { return dir_.file("lanegate.yaml"); }
  Process& process() { return *process_; }
  /// The socket a lanegatectl command uses: control.sock for status, devices and outbox,
  /// admin.sock (beside it) for the others.
  std::string socketFor(const std::string& command) const {
    const bool readOnly = command == "status" || command == "devices" || command == "outbox";
    return dir_.file(readOnly ? "control.sock" : "admin.sock");
  }
  RunResult ctl(std::vector<std::string> args) const {
    std::vector<std::string> argv{LANEGATECTL_BIN, "-s",
                                  socketFor(args.empty() ? std::string() : args.front())};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  nlohmann::json status() const {
    auto r = ctl({"status", "--json"});
    if (r.code != 0 && r.code != 4) return {};  // 4: answered, not fully healthy
    return nlohmann::json::parse(r.out, nullptr, false);
  }
  nlohmann::json outbox() const {
    auto r = ctl({"outbox", "--json"});
    if (r.code != 0) return nlohmann::json::object();
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_object() ? j : nlohmann::json::object();
  }
  /// For a failure message: whether the daemon still runs, what `lanegatectl outbox` said,
  /// and the end of the daemon's log.
  std::string postMortem(std::size_t tail = 6000) {
    const auto code = process_->wait(std::chrono::milliseconds(0));
    const auto r = ctl({"outbox", "--json"});
    auto log = process_->err();
    if (log.size() > tail) log = log.substr(log.size() - tail);
    return (code ? "lanegated exited with " + std::to_string(*code) : "lanegated runs") +
           "; outbox exit " + std::to_string(r.code) + ": " + r.out + r.err +
           "\n--- end of its log ---\n" + log;
  }
  bool brokerConnected() const {
    auto s = status();
    return s.is_object() && s["broker"]["connected"] == true;
  }

 private:
  const TempDir& dir_;
  int starts_ = 0;
  std::unique_ptr<Process> process_;
};

/// The alert ids (UUIDs, one a line) that `lanegatectl test-alert` printed.
inline std::vector<std::string> printedIds(const std::string& out) {
  static const std::regex kUuid("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  std::vector<std::string> ids;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (std::regex_match(line, kUuid)) ids.push_back(line);
  return ids;
}

/// How often `what` occurs in `text`.
inline std::size_t countOf(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size()))
    ++n;
  return n;
}

/// The IMS substance library line of a config with trace detectors.
inline const std::string kImsLibrary =
    "ims_library: " LANEGATE_SOURCE_DIR "/config/ims/substances.yaml\n";

/// One `ims` entry of a `devices:` list: a detector at 127.0.0.1:port, polled every 100 ms.
inline std::string imsEntry(const std::string& name, int port,
                            const std::string& profile = LANEGATE_SOURCE_DIR
                            "/config/profiles/ims-generic-v1.yaml") {
  return "  - name: " + name +
         "\n    type: ims\n    host: 127.0.0.1\n    port: " + std::to_string(port) +
         "\n    poll_interval_ms: 100\n    profile: " + profile + "\n";
}

/// One `xray` entry of a `devices:` list: xray-1, its PLC at 127.0.0.1:port, its inbox.
inline std::string xrayEntry(const std::string& inbox, int port) {
  return "  - name: xray-1\n    type: xray\n    host: 127.0.0.1\n    port: " +
         std::to_string(port) + "\n    poll_interval_ms: 50\n    inbox: " + inbox +
         "\n    profile: " LANEGATE_SOURCE_DIR "/config/profiles/xray-generic-v1.yaml\n";
}

/// A `lanegate-sim` process (its arguments after the binary) on a free port.
class SimProcess : public Process {
 public:
  SimProcess(std::vector<std::string> args, const std::string& logPrefix)
      : Process(withBinary(std::move(args)), logPrefix), port(simPort(*this)) {
    EXPECT_NE(port, 0) << err();
  }
  const int port;  ///< where it serves (0 when it did not start)

 private:
  static std::vector<std::string> withBinary(std::vector<std::string> args) {
    args.insert(args.begin(), LANEGATE_SIM_BIN);
    args.insert(args.begin() + 2, {"--port", "0"});
    return args;
  }
};

/// True once a device's retained status (lanegate/v1/it/lane-1/devices/DEVICE/status)
/// holds `text`, within `limit`.
inline bool deviceStatusShows(const Broker& broker, const std::string& device,
                              const std::string& text, std::chrono::milliseconds limit = 20s) {
  return waitFor(
      [&] {
        return retained(broker, "lanegate/v1/it/lane-1/devices/" + device + "/status", 1s)
                   .find(text) != std::string::npos;
      },
      limit);
}

/// Generated bundles the vision module flags (findings), by scan id.
inline std::vector<std::string> flaggedScans(const std::string& dir, std::size_t want) {
  std::vector<std::string> ids;
  std::vector<std::filesystem::path> jsons;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.ends_with(".json") && !n.ends_with(".truth.json")) jsons.push_back(e.path());
  }
  std::sort(jsons.begin(), jsons.end());
  for (const auto& j : jsons) {
    const auto r = run({LANEGATECTL_BIN, "analyze", j.string(), "--json"}, 60s);
    if (r.code != 0) continue;
    const auto f = nlohmann::json::parse(r.out, nullptr, false);
    if (f.is_object() && f["verdict"] != "clear") ids.push_back(f["scan_id"]);
    if (ids.size() == want) break;
  }
  return ids;
}

/// `count` generated bundles in DIR/gen (lanegatectl phantoms, 20 mm pixels); DIR/gen.
inline std::string phantoms(const TempDir& dir, int count, int seed) {
  const std::string gen = dir.file("gen");
  const auto made = run({LANEGATECTL_BIN, "phantoms", "--out", gen, "--count",
                         std::to_string(count), "--seed", std::to_string(seed), "--pixel-mm", "20"},
                        120s);
  EXPECT_EQ(made.code, 0) << made.out << made.err;
  return gen;
}

inline void copyBundle(const std::string& from, const std::string& id, const std::string& inbox) {
  std::filesystem::copy_file(from + "/" + id + ".tiff", inbox + "/" + id + ".tiff",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(from + "/" + id + ".json", inbox + "/." + id + ".json.part",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::rename(inbox + "/." + id + ".json.part",
                          inbox + "/" + id + ".json");  // the JSON last, by rename
}

/// Validates `text` (a JSON document, or JSON lines) against config/schemas/<schema>.json
/// with tests/support/validate_json.py; its exit code and what it said.
inline RunResult validated(const TempDir& dir, const std::string& schema, const std::string& text) {
  const bool lines = std::count(text.begin(), text.end(), '\n') > 1;
  writeFile(dir.file("validate.json"), text);
  std::vector<std::string> argv{LANEGATE_SYSTEM_PYTHON,
                                LANEGATE_SOURCE_DIR "/tests/support/validate_json.py", "--schemas",
                                LANEGATE_SOURCE_DIR "/config/schemas", schema};
  if (lines) argv.push_back("--jsonl");
  argv.push_back(dir.file("validate.json"));
  return run(argv);
}

/// Expects `text` to validate against config/schemas/<schema>.json.
inline void expectValid(const TempDir& dir, const std::string& schema, const std::string& text) {
  const auto v = validated(dir, schema, text);
  EXPECT_EQ(v.code, 0) << schema << ": " << v.out << v.err;
}

inline bool statusIs(const Broker& b, const std::string& state) {
  const auto r = retained(b, kStatusTopic, 1s);
  return r.find("\"state\":\"" + state + "\"") != std::string::npos;
}

}  // namespace lanegate::test
