// Soak (issue 14): the demo lane at a high rate — a simulated X-ray scanner writing scan
// bundles and two trace detectors, the real lanegated, a real mosquitto and a control room
// (lanegatectl watch, acking) — while the daemon's RSS, open descriptors, threads and
// outbox are sampled. After the warm-up, RSS must grow by less than 2 MB and descriptors
// and threads not at all (each compared as the lowest of three readings 200 ms apart, so
// that a file open for the scan being analysed at that moment does not count).
//   soak [--seconds 180] [--warmup 60] [--every-s 5] [--acked-retention-s S]
// Prints one line per sample and a verdict; exits 1 on a leak, or when the lane did no work.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/harness.h"

using namespace lanegate::test;
using namespace std::chrono_literals;

namespace {

struct Sample {
  double t = 0;           // seconds since the start
  long rssKb = 0;         // VmRSS
  long fds = 0;           // entries in /proc/PID/fd
  long threads = 0;       // Threads
  nlohmann::json outbox;  // lanegatectl outbox --json
  nlohmann::json status;  // lanegatectl status --json
};

long statusField(pid_t pid, const char* key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::strlen(key));
  return -1;
}

long fdCount(pid_t pid) {
  DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return -1;
  long n = 0;
  while (const dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n;
}

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "soak: %s\n", why.c_str());
  std::exit(1);
}

nlohmann::json ctlJson(const std::string& sock, const char* cmd) {
  const auto r = run({LANEGATECTL_BIN, "-s", sock, cmd, "--json"}, 10s);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_object() ? j : nlohmann::json::object();
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 180, warmup = 60, every = 5;
  std::optional<long> ackedRetentionS;  // the shipped outbox setting unless given
  CLI::App app{"Soak: the demo lane at a high rate while the daemon's resources are sampled"};
  app.add_option("--seconds", seconds, "how long to sample after the warm-up")
      ->capture_default_str();
  app.add_option("--warmup", warmup, "seconds before the reference sample")->capture_default_str();
  app.add_option("--every-s", every, "seconds between samples")->capture_default_str();
  app.add_option("--acked-retention-s", ackedRetentionS, "outbox.acked_retention_s of the daemon");
  CLI11_PARSE(app, argc, argv);
  const std::string outboxYaml =
      ackedRetentionS ? "outbox:\n  acked_retention_s: " + std::to_string(*ackedRetentionS) + "\n"
                      : "";
  if (seconds < 3 * every || warmup < 0 || every < 1) fail("need --seconds >= 3 * --every-s >= 3");

  TempDir dir;
  Broker broker(dir);
  const std::string inbox = dir.file("inbox");
  std::filesystem::create_directories(inbox);
  const std::string lib = LANEGATE_SOURCE_DIR "/config/ims/substances.yaml";
  // A scan every 1.5 s (half of them with a concealment) and a swab every 300 ms on each
  // detector (one in two a hit): about ten times a busy lane.
  Process xray({LANEGATE_SIM_BIN, "xray", "--port", "0", "--inbox", inbox, "--every-ms", "1500",
                "--pixel-mm", "10", "--mix", "clear:50,concealment:50", "--seed", "7",
                "--id-prefix", "soak"},
               dir.file("xray-sim"));
  Process ims1({LANEGATE_SIM_BIN, "ims", "--port", "0", "--every-ms", "300", "--sequence",
                "clear,cocaine:900,clear,methamphetamine:700", "--library", lib, "--seed", "1"},
               dir.file("ims-1"));
  Process ims2({LANEGATE_SIM_BIN, "ims", "--port", "0", "--every-ms", "300", "--sequence",
                "fentanyl:500,clear", "--library", lib, "--seed", "2"},
               dir.file("ims-2"));
  const int xrayPort = simPort(xray), ims1Port = simPort(ims1), ims2Port = simPort(ims2);
  if (!xrayPort || !ims1Port || !ims2Port) fail("a simulator did not start");

  auto ims = [&](const std::string& name, int port) {
    return "  - name: " + name +
           "\n    type: ims\n    host: 127.0.0.1\n    port: " + std::to_string(port) +
           "\n    poll_interval_ms: 100\n    profile: " LANEGATE_SOURCE_DIR
           "/config/profiles/ims-generic-v1.yaml\n";
  };
  const std::string sock = dir.file("control.sock");
  writeFile(dir.file("lanegate.yaml"),
            "site: soak\nlane: lane-1\nlog_level: warn\nstate_dir: " + dir.file("state") +
                "\ncontrol_socket: " + sock + "\nims_library: " + lib + "\n" + outboxYaml +
                "broker:\n  uri: " + broker.uri() +
                "\ndevices:\n  - name: xray-1\n    type: xray\n    host: 127.0.0.1\n    port: " +
                std::to_string(xrayPort) + "\n    poll_interval_ms: 50\n    inbox: " + inbox +
                "\n    profile: " LANEGATE_SOURCE_DIR "/config/profiles/xray-generic-v1.yaml\n" +
                ims("ims-1", ims1Port) + ims("ims-2", ims2Port));
  Process daemon({LANEGATED_BIN, "-c", dir.file("lanegate.yaml")}, dir.file("lanegated"));
  if (!waitFor([&] { return !ctlJson(sock, "status").empty(); }, 20s))
    fail("the daemon did not come up: " + daemon.err());
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "soak", "--lane", "lane-1",
                 "--json"},
                dir.file("watch"));

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  auto lowest = [&](long (*read)(pid_t, const char*), const char* key) {
    long v = read(daemon.pid(), key);
    for (int i = 0; i < 2; ++i) {
      std::this_thread::sleep_for(200ms);
      v = std::min(v, read(daemon.pid(), key));
    }
    return v;
  };
  std::vector<Sample> samples;
  std::printf("%7s %9s %5s %7s %9s %9s %9s %s\n", "t_s", "rss_kb", "fds", "threads", "pending",
              "published", "acked", "alerts_seen");
  const double total = warmup + seconds;
  while (elapsed() < total + 0.5) {
    if (!daemon.running()) fail("the daemon exited: " + daemon.err());
    Sample s;
    s.t = elapsed();
    s.rssKb = lowest([](pid_t p, const char* k) { return statusField(p, k); }, "VmRSS:");
    s.fds = lowest([](pid_t p, const char*) { return fdCount(p); }, "");
    s.threads = statusField(daemon.pid(), "Threads:");
    s.outbox = ctlJson(sock, "outbox");
    s.status = ctlJson(sock, "status");
    const std::string watchedSoFar = watch.out();
    const auto seen = std::count(watchedSoFar.begin(), watchedSoFar.end(), '\n');
    std::printf("%7.1f %9ld %5ld %7ld %9s %9s %9s %ld\n", s.t, s.rssKb, s.fds, s.threads,
                s.outbox.value("pending", nlohmann::json()).dump().c_str(),
                s.outbox.value("published", nlohmann::json()).dump().c_str(),
                s.outbox.value("acked", nlohmann::json()).dump().c_str(), static_cast<long>(seen));
    std::fflush(stdout);
    samples.push_back(std::move(s));
    const double next = static_cast<double>(samples.size()) * every;
    while (elapsed() < next) std::this_thread::sleep_for(50ms);
  }

  // The first sample at or after the warm-up is the reference.
  const auto ref =
      std::find_if(samples.begin(), samples.end(), [&](const Sample& s) { return s.t >= warmup; });
  if (ref == samples.end() || ref + 1 == samples.end()) fail("too few samples after the warm-up");
  const Sample& last = samples.back();
  long maxRss = 0;
  bool fdsSteady = true, threadsSteady = true;
  for (auto it = ref; it != samples.end(); ++it) {
    maxRss = std::max(maxRss, it->rssKb);
    fdsSteady = fdsSteady && it->fds == ref->fds;
    threadsSteady = threadsSteady && it->threads == ref->threads;
  }
  const std::string watched = watch.out();
  const long alerts = static_cast<long>(std::count(watched.begin(), watched.end(), '\n'));
  const long growth = last.rssKb - ref->rssKb;
  std::printf(
      "after %.0f s warm-up, over %.0f s: RSS %ld -> %ld kB (%+ld kB, peak %ld), fds %ld -> %ld, "
      "threads "
      "%ld -> %ld; %ld alerts reached the control room\n",
      warmup, last.t - ref->t, ref->rssKb, last.rssKb, growth, maxRss, ref->fds, last.fds,
      ref->threads, last.threads, alerts);
  bool ok = true;
  if (growth >= 2048) ok = false, std::printf("FAIL: RSS grew by %ld kB (limit 2048)\n", growth);
  if (!fdsSteady) ok = false, std::printf("FAIL: open descriptors changed after the warm-up\n");
  if (!threadsSteady) ok = false, std::printf("FAIL: threads changed after the warm-up\n");
  if (alerts < 10) ok = false, std::printf("FAIL: the lane raised only %ld alerts\n", alerts);
  std::printf("soak: %s\n", ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}
