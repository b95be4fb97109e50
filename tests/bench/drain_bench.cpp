// Drain after an outage (issue 14): how fast a backlog of accepted alerts reaches a
// subscriber once the broker returns, beside how fast mosquitto_pub delivers the same number
// of QoS 1 messages of the same size to the same kind of subscriber, in the same run.
// Real lanegated, real mosquitto (persistence on, queue unbounded), loopback.
//   build/release/tests/bench/drain_bench [N=10000]
// Prints both rates and their ratio; exits 1 when the daemon's drain is below half of
// mosquitto_pub's rate, or when an alert is missing.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/harness.h"

using namespace lanegate::test;
using namespace std::chrono_literals;

namespace {

const std::string kAlertsTopic = "lanegate/v1/bench/lane-1/alerts";

std::string configText(const TempDir& dir, const std::string& brokerUri) {
  return "site: bench\nlane: lane-1\nlog_level: warn\nstate_dir: " + dir.file("state") +
         "\ncontrol_socket: " + dir.file("control.sock") + "\nbroker:\n  uri: " + brokerUri +
         "\n  reconnect_min_s: 0.1\n  reconnect_max_s: 0.5\ndevices: []\n";
}

bool daemonUp(const TempDir& dir) {
  return run({LANEGATECTL_BIN, "-s", dir.file("control.sock"), "status", "--json"}).code == 0;
}

// What a subscriber printed with -F '%U %p': arrival time (s) and payload per message.
struct Arrivals {
  std::vector<double> times;
  std::vector<std::string> payloads;
  [[nodiscard]] double spanS() const {
    return times.size() < 2 ? 0.0 : times.back() - times.front();
  }
};

Arrivals parseArrivals(const std::string& out) {
  Arrivals a;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    const auto space = line.find(' ');
    if (space == std::string::npos) continue;
    a.times.push_back(std::strtod(line.substr(0, space).c_str(), nullptr));
    a.payloads.push_back(line.substr(space + 1));
  }
  return a;
}

std::vector<std::string> subscriber(const Broker& b, const std::string& id,
                                    const std::string& topic, std::size_t count) {
  return {MOSQUITTO_SUB_BIN,
          "-h",
          "127.0.0.1",
          "-p",
          std::to_string(b.port()),
          "-c",
          "-i",
          id,
          "-q",
          "1",
          "-t",
          topic,
          "-C",
          std::to_string(count),
          "-F",
          "%U %p"};
}

// Registers a persistent session for `id` on `topic` (so the broker queues for it).
bool registerSession(const Broker& b, const std::string& id, const std::string& topic) {
  return run({MOSQUITTO_SUB_BIN, "-h", "127.0.0.1", "-p", std::to_string(b.port()), "-c", "-i", id,
              "-q", "1", "-t", topic, "-E"})
             .code == 0;
}

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "drain_bench: %s\n", why.c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10000;
  if (n < 2 || n > 100000) fail("N must be 2..100000");
  TempDir dir;
  // Unbounded queues: the subscriber's session must hold the whole backlog, as a control
  // room's would be configured to.
  Broker broker(dir, "persistence true\npersistence_location " + dir.path() +
                         "/\nmax_queued_messages 0\nmax_inflight_messages 0\n");
  const std::string baselineTopic = "bench/drain/baseline";
  if (!registerSession(broker, "drain-sub", kAlertsTopic) ||
      !registerSession(broker, "baseline-sub", baselineTopic))
    fail("could not register the subscribers' sessions");
  broker.stop();

  // 1. The backlog: N test alerts accepted (durable) while the broker is down.
  writeFile(dir.file("lanegate.yaml"), configText(dir, broker.uri()));
  Process daemon({LANEGATED_BIN, "-c", dir.file("lanegate.yaml")}, dir.file("lanegated"));
  if (!waitFor([&] { return daemonUp(dir); }, 20s))
    fail("the daemon did not come up: " + daemon.err());
  const auto t0 = std::chrono::steady_clock::now();
  const auto accepted = run(
      {LANEGATECTL_BIN, "-s", dir.file("admin.sock"), "test-alert", "--count", std::to_string(n)},
      600s);
  const double acceptS =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (accepted.code != 0) fail("test-alert failed: " + accepted.err);
  std::set<std::string> ids;
  {
    std::istringstream in(accepted.out);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) ids.insert(line);
  }
  if (ids.size() != n) fail("accepted " + std::to_string(ids.size()) + " of " + std::to_string(n));

  // 2. The broker returns; the subscriber takes the backlog.
  broker.start();
  const auto up = std::chrono::system_clock::now();
  Process sub(subscriber(broker, "drain-sub", kAlertsTopic, n), dir.file("drain-sub"));
  if (!sub.wait(600s)) fail("the backlog did not arrive within 600 s");
  const Arrivals drained = parseArrivals(sub.out());
  std::size_t mine = 0;
  std::size_t bytes = 0;
  for (const auto& p : drained.payloads) {
    const auto j = nlohmann::json::parse(p, nullptr, false);
    if (j.is_object() && j.contains("id") && ids.count(j["id"].get<std::string>()) != 0) ++mine;
    bytes += p.size();
  }
  if (mine != n)
    fail("the subscriber got " + std::to_string(mine) + " of the " + std::to_string(n) + " alerts");
  const double firstAfterS =
      drained.times.front() - std::chrono::duration<double>(up.time_since_epoch()).count();

  // 3. The floor, same run, same broker: mosquitto_pub sends N QoS 1 messages of the alerts'
  // mean size, one a line, to a persistent subscriber already connected.
  const std::size_t size = std::max<std::size_t>(1, bytes / n);
  std::string lines;
  for (std::size_t i = 0; i < n; ++i) lines += std::string(size, 'x') + "\n";
  writeFile(dir.file("lines"), lines);
  Process baseSub(subscriber(broker, "baseline-sub", baselineTopic, n), dir.file("baseline-sub"));
  std::this_thread::sleep_for(500ms);  // connected and subscribed
  const auto pub =
      run({"/bin/sh", "-c",
           std::string(MOSQUITTO_PUB_BIN) + " -h 127.0.0.1 -p " + std::to_string(broker.port()) +
               " -q 1 -t " + baselineTopic + " -l < " + dir.file("lines")},
          600s);
  if (pub.code != 0) fail("mosquitto_pub failed: " + pub.err);
  if (!baseSub.wait(600s)) fail("mosquitto_pub's messages did not all arrive");
  const Arrivals baseline = parseArrivals(baseSub.out());
  if (baseline.times.size() != n)
    fail("the baseline subscriber got " + std::to_string(baseline.times.size()));

  const double drainRate = static_cast<double>(n - 1) / std::max(1e-9, drained.spanS());
  const double pubRate = static_cast<double>(n - 1) / std::max(1e-9, baseline.spanS());
  std::printf("alerts accepted while the broker was down: %zu in %.1f s (%.0f/s, each durable)\n",
              n, acceptS, static_cast<double>(n) / acceptS);
  std::printf("first alert at the subscriber %.2f s after the broker returned\n", firstAfterS);
  std::printf("drain:          %zu alerts (%zu B mean) in %.2f s = %.0f/s\n", n, size,
              drained.spanS(), drainRate);
  std::printf("mosquitto_pub:  %zu messages (%zu B) in %.2f s = %.0f/s\n", n, size,
              baseline.spanS(), pubRate);
  std::printf("ratio %.2f (floor 0.5): %s\n", drainRate / pubRate,
              drainRate >= 0.5 * pubRate ? "PASS" : "FAIL");
  return drainRate >= 0.5 * pubRate ? 0 : 1;
}
