// The real `lanegate-sim ims` binary read by the real `ims` driver over loopback:
// scenario order, both profiles, commands, injected faults, clean exit on signals.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <csignal>
#include <regex>

#include "drivers/registry.h"
#include "tests/support/harness.h"

namespace lanegate::test {
namespace {

using Json = nlohmann::json;
const std::string kSim = LANEGATE_SIM_BIN;
const std::string kSource = LANEGATE_SOURCE_DIR;
const std::string kAcme = kSource + "/config/profiles/ims-acme-t2.yaml";
const std::string kGeneric = kSource + "/config/profiles/ims-generic-v1.yaml";

// A simulator process and the port it printed.
struct Sim {
  std::unique_ptr<Process> process;
  int port = 0;
  Sim(const TempDir& dir, std::vector<std::string> args, const std::string& name = "sim") {
    args.insert(args.begin(), {kSim, "ims", "--port", "0"});
    process = std::make_unique<Process>(args, dir.file(name));
    const std::regex listening(R"(listening on 127\.0\.0\.1:(\d+)\n)");
    std::smatch m;
    std::string out;
    EXPECT_TRUE(waitFor([&] {
      out = process->out();
      return std::regex_search(out, m, listening) || !process->running();
    }, 10s));
    if (std::regex_search(out, m, listening)) port = std::stoi(m[1]);
    EXPECT_NE(port, 0) << process->err();
  }
};

std::unique_ptr<Driver> driver(int port, const std::string& profile = kGeneric,
                               const std::string& extra = "") {
  DeviceSpec spec;
  spec.name = "ims-it";
  spec.type = "ims";
  spec.file = "it.yaml";
  spec.settings = YAML::Load("{name: ims-it, type: ims, host: 127.0.0.1, port: " + std::to_string(port) +
                             ", profile: '" + profile + "', poll_interval_ms: 10" +
                             (extra.empty() ? "" : ", " + extra) + "}");
  return findDriverType("ims")->create(spec);
}

// The alarm substances of each sample ("" for a clear one), in arrival order.
std::vector<std::string> readScenario(Driver& d, std::size_t count, std::vector<Json>* all = nullptr) {
  std::vector<std::string> seen;
  waitFor([&] {
    for (const auto& s : d.poll().samples) {
      const Json j = Json::parse(s.json);
      if (all != nullptr) all->push_back(j);
      seen.push_back(j["alarms"].empty() ? "" : j["alarms"][0]["substance"].get<std::string>());
    }
    return seen.size() >= count;
  }, 20s);
  return seen;
}

TEST(ImsSim, ServesTheScenarioInOrderAndExitsOnSigterm) {
  TempDir dir;
  Sim sim(dir, {"--every-ms", "250", "--once", "--sequence", "clear,cocaine:800,clear,fentanyl:400"});
  auto d = driver(sim.port);
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  std::vector<Json> samples;
  const auto seen = readScenario(*d, 4, &samples);
  EXPECT_EQ(seen, (std::vector<std::string>{"", "cocaine", "", "fentanyl"}));
  ASSERT_EQ(samples.size(), 4u);
  EXPECT_EQ(samples[1]["alarms"][0]["amplitude"], 800);
  EXPECT_EQ(samples[3]["alarms"][0]["code"], 6);
  // --once: no fifth sample; the last one stays served.
  EXPECT_FALSE(waitFor([&] { return !d->poll().samples.empty(); }, 600ms));
  EXPECT_EQ(d->poll().action, DriverAction::ok);
  sim.process->signal(SIGTERM);
  EXPECT_EQ(sim.process->wait(5s), 0);
  EXPECT_NE(sim.process->out().find("stopping"), std::string::npos);
}

TEST(ImsSim, ReadsAScenarioFileAndServesAnotherProfile) {
  TempDir dir;
  writeFile(dir.file("scenario.yaml"),
            "every_ms: 100\nsequence: [clear, 'heroin:900', 'TNT:700']\nonce: true\npoints: 1500\n");
  Sim sim(dir, {"--profile", kAcme, "--scenario", dir.file("scenario.yaml")});
  auto d = driver(sim.port, kAcme);
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  std::vector<Json> samples;
  EXPECT_EQ(readScenario(*d, 3, &samples), (std::vector<std::string>{"", "heroin", "TNT"}));
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0]["points"].size(), 1500u);
  EXPECT_EQ(samples[1]["alarms"][0]["code"], 102);
  EXPECT_EQ(samples[2]["mode"], "negative");
  sim.process->signal(SIGINT);
  EXPECT_EQ(sim.process->wait(5s), 0);
}

TEST(ImsSim, ObeysTheCommandRegister) {
  TempDir dir;
  Sim sim(dir, {"--command-ms", "100"});
  auto d = driver(sim.port, kGeneric, "command_timeout_ms: 5000");
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  const CommandResult r = d->command({"calibrate"});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_TRUE(waitFor([&] { return sim.process->out().find("command calibrate ok") != std::string::npos; }, 2s));
}

TEST(ImsSim, InjectsGarbageAfterNSamples) {
  TempDir dir;
  Sim sim(dir, {"--every-ms", "50", "--fault", "garbage", "--fault-after", "2"});
  auto d = driver(sim.port);
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  std::uint64_t faults = 0;
  int samples = 0;
  bool reopenFailed = false;
  EXPECT_TRUE(waitFor([&] {
    if (d->open(err) != DriverAction::ok) {
      reopenFailed = true;  // the version read met garbage too
      return faults >= 1;
    }
    const PollResult r = d->poll();
    samples += static_cast<int>(r.samples.size());
    faults = r.health.faults;
    if (r.action != DriverAction::ok) d->close();
    return false;
  }, 10s)) << "faults " << faults;
  EXPECT_EQ(faults, 1u) << "one garbage reply, then the driver asks to reconnect";
  EXPECT_TRUE(reopenFailed);
  EXPECT_NE(err.find("Invalid data"), std::string::npos) << err;
  EXPECT_LE(samples, 2);
}

TEST(ImsSim, StallsAndDisconnectsOnRequest) {
  TempDir dir;
  Sim stalled(dir, {"--fault", "stall"}, "stalled");
  Sim dropping(dir, {"--fault", "disconnect"}, "dropping");
  std::string err;
  auto a = driver(stalled.port, kGeneric, "response_timeout_ms: 200");
  EXPECT_EQ(a->open(err), DriverAction::retry);
  EXPECT_NE(err.find("timed out"), std::string::npos) << err;
  auto b = driver(dropping.port);
  EXPECT_EQ(b->open(err), DriverAction::retry);
  EXPECT_FALSE(err.empty());
}

TEST(ImsSim, BadUsageAndBadScenarios) {
  EXPECT_EQ(run({kSim, "ims", "--bogus"}).code, 2);
  EXPECT_EQ(run({kSim}).code, 2);
  EXPECT_EQ(run({kSim, "xray"}).code, 2);
  const RunResult unknown = run({kSim, "ims", "--port", "0", "--sequence", "clear,unobtainium:5"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("no substance 'unobtainium'"), std::string::npos) << unknown.err;
  TempDir dir;
  writeFile(dir.file("s.yaml"), "every_ms: 100\ncolour: red\n");
  const RunResult badFile = run({kSim, "ims", "--scenario", dir.file("s.yaml")});
  EXPECT_EQ(badFile.code, 2);
  EXPECT_NE(badFile.err.find("s.yaml:2: unknown key 'colour'"), std::string::npos) << badFile.err;
}

}  // namespace
}  // namespace lanegate::test
