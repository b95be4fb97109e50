#pragma once
// A lanegated under test: its config in a temp dir, the real binary, lanegatectl calls.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <thread>
#include <string>
#include <vector>

#include "tests/support/harness.h"

namespace lanegate::test {

inline const std::string kStatusTopic = "lanegate/v1/it/lane-1/status";
inline const std::string kAlertsTopic = "lanegate/v1/it/lane-1/alerts";

inline std::string configText(const TempDir& dir, const std::string& brokerUri,
                       const std::string& devices = "devices: []\n") {
  return "site: it\nlane: lane-1\nlog_level: debug\n"
         "state_dir: " + dir.file("state") + "\n"
         "control_socket: " + dir.file("control.sock") + "\n"
         "broker:\n  uri: " + brokerUri + "\n  keepalive_s: 5\n"
         "  reconnect_min_s: 0.1\n  reconnect_max_s: 0.5\n" + devices;
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
    process_ = std::make_unique<Process>(
        std::vector<std::string>{LANEGATED_BIN, "-c", configPath()}, dir_.file("lanegated-" + std::to_string(++starts_)));
  }
  /// True once the control socket answers.
  bool up() const { return status().is_object(); }
  std::string configPath() const { return dir_.file("lanegate.yaml"); }
  Process& process() { return *process_; }
  RunResult ctl(std::vector<std::string> args) const {
    std::vector<std::string> argv{LANEGATECTL_BIN, "-s", dir_.file("control.sock")};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  nlohmann::json status() const {
    auto r = ctl({"status", "--json"});
    if (r.code != 0) return {};
    return nlohmann::json::parse(r.out, nullptr, false);
  }
  nlohmann::json outbox() const {
    auto r = ctl({"outbox", "--json"});
    if (r.code != 0) return nlohmann::json::object();
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_object() ? j : nlohmann::json::object();
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


inline bool statusIs(const Broker& b, const std::string& state) {
  const auto r = retained(b, kStatusTopic, 1s);
  return r.find("\"state\":\"" + state + "\"") != std::string::npos;
}

}  // namespace lanegate::test
