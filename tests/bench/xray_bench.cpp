// X-ray lane bench (issue 6, acceptance 5): from a bundle's JSON appearing in the inbox
// (renamed in, as scanners do) to its org.lanegate.xray.hit alert at a subscriber, through
// the real inbox and X-ray pipeline (inotify, vision on the worker pool, overlay), the durable
// outbox, the publisher and a real mosquitto on loopback. 3600×900 dual-energy scans. Run:
// build/release/tests/bench/xray_bench [STATE_DIR] [WORKERS]   (STATE_DIR on a real disk)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "daemon/config.h"
#include "daemon/delivery.h"
#include "daemon/events.h"
#include "daemon/log.h"
#include "daemon/mqtt_publisher.h"
#include "daemon/outbox.h"
#include "daemon/xray_inbox.h"
#include "tests/support/harness.h"
#include "vision/analysis.h"
#include "vision/decode.h"
#include "vision/phantom.h"

using namespace lanegate;
using Clock = std::chrono::steady_clock;
using SysClock = std::chrono::system_clock;
namespace fs = std::filesystem;

namespace {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

// Generated scans the vision module flags, stretched to 3600×900 (both planes).
std::vector<vision::ScanBundle> flaggedTemplates(std::size_t want) {
  std::vector<vision::ScanBundle> out;
  vision::PhantomOptions o;
  o.pixelMm = 5;
  for (int i = 0; out.size() < want && i < 200; ++i) {
    auto p = vision::generatePhantom(9001, i, o);
    if (p.truth.concealments.empty()) continue;
    auto b = p.bundle;
    const double sx = 3600.0 / b.planes[0].cols, sy = 900.0 / b.planes[0].rows;
    for (auto& plane : b.planes) cv::resize(plane, plane, cv::Size(3600, 900), 0, 0, cv::INTER_LINEAR);
    b.meta.pixelAlongMm /= sx;
    b.meta.pixelVerticalMm /= sy;
    if (vision::analyzeScan(b, vision::AnalysisParams{}).findings.empty()) continue;
    out.push_back(std::move(b));
  }
  return out;
}

void run(const std::string& dir, double rate, std::size_t count, int workers,
         const std::vector<vision::ScanBundle>& templates) {
  test::TempDir tmp;
  test::Broker broker(tmp, "max_queued_messages 100000\n");
  const std::string inbox = tmp.file("inbox"), staging = tmp.file("staging"), state = dir + "/xray-bench-state";
  fs::remove_all(state);
  fs::create_directories(inbox);
  fs::create_directories(staging);
  fs::create_directories(state);
  Config c;
  c.site = "bench";
  c.lane = "l1";
  c.broker.uri = broker.uri();
  c.broker.clientId = "lanegate-xray-bench";

  // Every scan's TIFF is in the inbox beforehand; its JSON waits in staging.
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < count; ++i) {
    auto b = templates[i % templates.size()];
    b.meta.scanId = "bench-" + std::to_string(i);
    if (auto w = vision::writeBundle(b, staging); !w) {
      std::fprintf(stderr, "%s\n", w.error().c_str());
      std::exit(1);
    }
    fs::rename(staging + "/" + b.meta.scanId + ".tiff", inbox + "/" + b.meta.scanId + ".tiff");
    ids.push_back(b.meta.scanId);
  }

  // The control room is another process, as in the field: mosquitto_sub stamps each alert
  // (realtime, ns) as it arrives. An in-process Paho subscriber would share Paho's receive
  // thread with the lane's publisher and add that thread's idle pauses to the figure.
  test::Process sub({"/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(broker.port()), "-q", "1",
                     "-i", "bench-subscriber", "-t", laneTopic(c, "alerts"), "-F", "%U %p"},
                    tmp.file("sub"));
  const bool subscribed = test::waitFor(
      [&] {
        test::run({"/usr/bin/mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(broker.port()), "-q", "1", "-t",
                   laneTopic(c, "alerts"), "-m", "probe"});
        return sub.out().find(" probe\n") != std::string::npos;
      },
      std::chrono::seconds(10));
  if (!subscribed) {
    std::fprintf(stderr, "mosquitto_sub did not subscribe: %s\n", sub.err().c_str());
    std::exit(1);
  }
  // Alerts received so far: scan id -> arrival (realtime), and the stage times they carry.
  std::map<std::string, SysClock::time_point> received;
  std::map<std::string, std::vector<double>> stages;
  std::size_t parsedUpTo = 0;
  auto collect = [&] {
    const std::string out = sub.out();
    std::size_t end = 0;
    while ((end = out.find('\n', parsedUpTo)) != std::string::npos) {
      const std::string line = out.substr(parsedUpTo, end - parsedUpTo);
      parsedUpTo = end + 1;
      const auto space = line.find(' ');
      if (space == std::string::npos || line.compare(space + 1, std::string::npos, "probe") == 0) continue;
      const double at = std::stod(line.substr(0, space));
      const auto e = nlohmann::json::parse(line.substr(space + 1), nullptr, false);
      if (e.is_discarded() || !e.contains("data")) continue;
      received.emplace(e["data"]["scan_id"].get<std::string>(),
                       SysClock::time_point(std::chrono::duration_cast<SysClock::duration>(std::chrono::duration<double>(at))));
      for (const auto& [stage, v] : e["data"]["timings_ms"].items())
        if (v.is_number()) stages[stage].push_back(v.get<double>());
    }
  };

  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  OutboxOptions oo;
  oo.path = state + "/outbox.db";
  oo.minFreeBytes = 0;
  Outbox ob(io, oo);
  MqttPublisher pub(io, c, 1, [] { return std::string("{\"state\":\"online\"}"); });
  Delivery delivery(ob, pub);
  XrayInboxOptions lo;
  lo.device = "xray-1";
  lo.inbox = inbox;
  lo.stateDir = state;
  lo.workers = workers;
  XrayInbox lane(io, lo, ob, identityOf(c));
  pub.start();
  std::string err;
  asio::post(io, [&] { err = lane.start(); });
  std::thread loop([&] { io.run(); });
  while (!pub.connected()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!err.empty()) std::fprintf(stderr, "%s\n", err.c_str());

  std::map<std::string, SysClock::time_point> sent;
  const auto period = std::chrono::duration<double>(1.0 / rate);
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < count; ++i) {
    std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i)));
    sent[ids[i]] = SysClock::now();
    fs::rename(staging + "/" + ids[i] + ".json", inbox + "/" + ids[i] + ".json");
  }
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    collect();
    if (received.size() >= count) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::vector<double> ms;
  for (const auto& id : ids)
    if (auto it = received.find(id); it != received.end())
      ms.push_back(std::chrono::duration<double, std::milli>(it->second - sent[id]).count());
  if (std::getenv("XRAY_BENCH_EACH") != nullptr) {  // every scan's latency, in order
    for (const double v : ms) std::fprintf(stderr, "%.0f ", v);
    std::fprintf(stderr, "\n");
  }
  asio::post(io, [&] {
    lane.stop();
    pub.stop();
    io.stop();
  });
  loop.join();
  std::string parts;
  for (const char* stage : {"queue", "read", "hash", "decode", "total", "overlay"})
    parts += std::string(parts.empty() ? "" : ", ") + (std::string(stage) == "total" ? "analysis" : stage) + " " +
             std::to_string(static_cast<int>(percentile(stages[stage], 0.5) + 0.5));
  std::printf("| %.0f scan/s, %d worker(s) | %zu (%zu alerts) | p50 %.0f ms | p99 %.0f ms | max %.0f ms | %s |\n",
              rate, workers, count, ms.size(), percentile(ms, 0.50), percentile(ms, 0.99), percentile(ms, 1.0),
              parts.c_str());
  fs::remove_all(state);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : ".";
  const int workers = argc > 2 ? std::atoi(argv[2]) : 2;
  log::init(std::getenv("XRAY_BENCH_LOG") != nullptr ? std::getenv("XRAY_BENCH_LOG") : "error");
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const auto templates = flaggedTemplates(4);
  if (templates.empty()) {
    std::fprintf(stderr, "no generated scan is flagged by the vision module\n");
    return 1;
  }
  std::printf("| rate | scans | p50 | p99 | max | stage medians (ms) |\n|---|---|---|---|---|---|\n");
  run(dir, 1, 30, workers, templates);
  run(dir, 10, 50, workers, templates);
  return 0;
}
