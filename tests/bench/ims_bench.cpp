// IMS bench (issue 4, acceptance 4 and 5): registers read per second from the simulator
// over loopback Modbus TCP, and the sample latency of three detectors with a fourth that
// is healthy, stalled, speaking garbage or dropping its connection.
// Run: build/release/tests/bench/ims_bench [SECONDS_PER_CASE]   (default 5)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "drivers/modbus_link.h"
#include "drivers/sim/ims_sim.h"
#include "tests/support/ims_latency_probe.h"

using namespace lanegate;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kProfile = LANEGATE_SOURCE_DIR "/config/profiles/ims-generic-v1.yaml";
const std::string kLibrary = LANEGATE_SOURCE_DIR "/config/ims/substances.yaml";

// Reads a whole 2000-point spectrum (16 requests of <= 125 registers) again and again.
void registersPerSecond(double seconds) {
  sim::ImsSimOptions o;
  o.profilePath = kProfile;
  o.libraryPath = kLibrary;
  o.points = 2000;
  o.every = std::chrono::milliseconds(60'000);
  auto s = sim::ImsSimulator::create(o);
  if (!s) {
    std::fprintf(stderr, "simulator: %s\n", s.error().c_str());
    std::exit(1);
  }
  auto& simulator = **s;
  std::atomic<bool> stop{false};
  std::thread server([&] {
    while (!stop) simulator.step(std::chrono::milliseconds(5));
  });
  LinkConfig c;
  c.port = simulator.server().port();
  ModbusLink link(c);
  if (auto r = link.connect(); !r) {
    std::fprintf(stderr, "connect: %s\n", r.error().message.c_str());
    std::exit(1);
  }
  const int first = simulator.profile().spectrum;
  std::size_t registers = 0, requests = 0, failures = 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    auto r = link.read(1, simulator.profile().table, first, 2000, kMaxRegistersPerRead);
    if (r) {
      registers += r->size();
      requests += (2000 + kMaxRegistersPerRead - 1) / kMaxRegistersPerRead;
    } else {
      ++failures;
    }
  }
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  server.join();
  link.close();
  std::printf("registers from the simulator: %.0f registers/s (%.0f requests/s of <= 125, "
              "%.0f spectra/s of 2000 points, %zu failures) over %.1f s\n",
              static_cast<double>(registers) / took, static_cast<double>(requests) / took,
              static_cast<double>(registers) / 2000.0 / took, failures, took);
}

void latencyCase(const std::string& fault, double seconds, double& p50Normal) {
  test::LatencyProbeOptions o;
  o.profile = kProfile;
  o.library = kLibrary;
  o.duration = std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  std::string error;
  const auto r = test::measureImsLatency({"none", "none", "none", fault}, o, error);
  if (!error.empty()) {
    std::fprintf(stderr, "%s\n", error.c_str());
    std::exit(1);
  }
  std::vector<double> all;
  for (std::size_t i = 0; i < 3; ++i) all.insert(all.end(), r[i].latencyMs.begin(), r[i].latencyMs.end());
  const double p50 = test::quantile(all, 0.5), p99 = test::quantile(all, 0.99), max = test::quantile(all, 1.0);
  if (fault == "none") p50Normal = p50;
  std::printf("| 4th detector %-10s | %4zu samples | p50 %6.2f ms | p99 %6.2f ms | max %6.2f ms | p50 %+5.1f %% |"
              " 4th: %zu samples, %zu errors |\n",
              fault.c_str(), all.size(), p50, p99, max, p50Normal > 0 ? 100.0 * (p50 / p50Normal - 1) : 0.0,
              r[3].seqs.size(), r[3].errors.size());
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  if (seconds <= 0) {
    std::fprintf(stderr, "usage: ims_bench [SECONDS_PER_CASE]\n");
    return 2;
  }
  registersPerSecond(seconds);
  std::printf("\nsample latency of detectors 1-3 (2000 points, one sample per 100 ms each, poll every 10 ms),\n"
              "from the simulator making a sample readable to the driver returning it:\n");
  double p50Normal = 0;
  for (const char* fault : {"none", "stall", "garbage", "disconnect"}) latencyCase(fault, seconds, p50Normal);
  return 0;
}
