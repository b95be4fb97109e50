// The real `lanegate-sim ims` binary read by the real `ims` driver over loopback:
// scenario order, both profiles, commands, injected faults, clean exit on signals.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <csignal>
#include <filesystem>
#include <map>
#include <regex>
#include <variant>

#include "drivers/registry.h"
#include "tests/support/harness.h"

namespace lanegate::test {
namespace {

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
    EXPECT_TRUE(waitFor(
        [&] {
          out = process->out();
          return std::regex_search(out, m, listening) || !process->running();
        },
        10s));
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
  spec.settings = YAML::Load(
      "{name: ims-it, type: ims, host: 127.0.0.1, port: " + std::to_string(port) + ", profile: '" +
      profile + "', poll_interval_ms: 10" + (extra.empty() ? "" : ", " + extra) + "}");
  return findDriverType("ims")->create(spec);
}

// A driver opened (a test failure when it does not open).
std::unique_ptr<Driver> opened(std::unique_ptr<Driver> d) {
  std::string err;
  EXPECT_EQ(d->open(err), DriverAction::ok) << err;
  return d;
}

// The alarm substances of each sample ("" for a clear one), in arrival order.
std::vector<std::string> readScenario(Driver& d, std::size_t count,
                                      std::vector<TraceSample>* all = nullptr) {
  std::vector<std::string> seen;
  waitFor(
      [&] {
        for (const auto& s : d.poll().samples) {
          const TraceSample& t = std::get<TraceSample>(s.event);
          if (all != nullptr) all->push_back(t);
          seen.push_back(t.alarms.empty() ? "" : t.alarms[0].substance.value_or("?"));
        }
        return seen.size() >= count;
      },
      20s);
  return seen;
}

TEST(ImsSim, ServesTheScenarioInOrderAndExitsOnSigterm) {
  TempDir dir;
  Sim sim(dir,
          {"--every-ms", "400", "--once", "--sequence", "clear,cocaine:800,clear,fentanyl:400"});
  auto d = opened(driver(sim.port));
  std::vector<TraceSample> samples;
  const auto seen = readScenario(*d, 4, &samples);
  EXPECT_EQ(seen, (std::vector<std::string>{"", "cocaine", "", "fentanyl"}));
  ASSERT_EQ(samples.size(), 4u);
  EXPECT_EQ(samples[1].alarms[0].amplitude, 800);
  EXPECT_EQ(samples[3].alarms[0].code, 6);
  // --once: no fifth sample; the last one stays served.
  EXPECT_FALSE(waitFor([&] { return !d->poll().samples.empty(); }, 600ms));
  EXPECT_EQ(d->poll().action, DriverAction::ok);
  sim.process->signal(SIGTERM);
  EXPECT_EQ(sim.process->wait(5s), 0);
  EXPECT_NE(sim.process->out().find("stopping"), std::string::npos);
}

TEST(ImsSim, ReadsAScenarioFileAndServesAnotherProfile) {
  TempDir dir;
  writeFile(
      dir.file("scenario.yaml"),
      "every_ms: 300\nsequence: [clear, 'heroin:900', 'TNT:700']\nonce: true\npoints: 1500\n");
  Sim sim(dir, {"--profile", kAcme, "--scenario", dir.file("scenario.yaml")});
  auto d = opened(driver(sim.port, kAcme));
  std::vector<TraceSample> samples;
  EXPECT_EQ(readScenario(*d, 3, &samples), (std::vector<std::string>{"", "heroin", "TNT"}));
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].points.size(), 1500u);
  EXPECT_EQ(samples[1].alarms[0].code, 102);
  EXPECT_EQ(samples[2].mode, IonPolarity::negative);
  sim.process->signal(SIGINT);
  EXPECT_EQ(sim.process->wait(5s), 0);
}

TEST(ImsSim, ObeysTheCommandRegister) {
  TempDir dir;
  Sim sim(dir, {"--command-ms", "100"});
  auto d = opened(driver(sim.port, kGeneric, "command_timeout_ms: 5000"));
  const CommandResult r = d->command({"calibrate"});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_TRUE(waitFor(
      [&] { return sim.process->out().find("command calibrate ok") != std::string::npos; }, 2s));
}

TEST(ImsSim, InjectsGarbageAfterNSamples) {
  TempDir dir;
  Sim sim(dir, {"--every-ms", "50", "--fault", "garbage", "--fault-after", "2"});
  auto d = driver(sim.port);
  std::string err;  // the garbage may have begun before the first open(): no assertion
  int samples = 0;
  std::uint64_t pollFaults = 0;
  // Garbage shows in poll() (a fault, then retry) or, once it started, in open().
  EXPECT_TRUE(waitFor(
      [&] {
        if (d->open(err) != DriverAction::ok) return err.find("Invalid data") != std::string::npos;
        const PollResult r = d->poll();
        samples += static_cast<int>(r.samples.size());
        pollFaults = std::max(pollFaults, r.health.faults);
        if (r.action != DriverAction::ok) d->close();
        return false;
      },
      10s))
      << err;
  EXPECT_LE(pollFaults, 1u) << "one garbage reply, then the driver asks to reconnect";
  EXPECT_LE(samples, 2) << "no sample after the fault began";
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

// Interop with Modbus implementations not written here (Debian python3-pymodbus, mbpoll).
const std::string kPython = "/usr/bin/python3";
const std::string kMbpoll = "/usr/bin/mbpoll";

// A Contract 3 detector in pymodbus: one negative-mode sample with two alarms.
constexpr const char* kPymodbusServer = R"(import sys
from pymodbus.server import StartTcpServer
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusSlaveContext, ModbusServerContext
regs = [0] * 4200
regs[0] = 1
regs[1] = 0b1000001
regs[2] = 10
t = 1795000000
regs[3], regs[4] = t >> 16, t & 0xFFFF
regs[5], regs[6], regs[7] = 3832, 10100, 2400
n = 1000
regs[8], regs[9], regs[10] = n, 12500, 4
regs[11] = 2
regs[12], regs[13], regs[14], regs[15] = 21, 321, 99, 5
for i in range(n):
    regs[100 + i] = (i * 7) % 65536
store = ModbusSlaveContext(hr=ModbusSequentialDataBlock(0, regs), zero_mode=True)
StartTcpServer(context=ModbusServerContext(slaves=store, single=True),
               address=("127.0.0.1", int(sys.argv[1])))
)";

TEST(Interop, DriverReadsAPymodbusServer) {
  if (run({kPython, "-c", "import pymodbus.server"}).code != 0)
    GTEST_SKIP() << "python3-pymodbus is not installed (make deps)";
  TempDir dir;
  writeFile(dir.file("server.py"), kPymodbusServer);
  const int port = freeLoopbackPort();
  Process server({kPython, dir.file("server.py"), std::to_string(port)}, dir.file("pymodbus"));
  ASSERT_TRUE(waitFor([&] { return portOpen(port); }, 20s)) << server.err();
  auto d = opened(driver(port));
  std::string err;
  const PollResult r = d->poll();
  ASSERT_EQ(r.samples.size(), 1u) << r.error;
  const TraceSample& t = std::get<TraceSample>(r.samples[0].event);
  EXPECT_EQ(t.sampleSeq, 10);
  EXPECT_EQ(t.sampleTime, 1795000000u);
  EXPECT_EQ(t.status, 65);
  EXPECT_EQ(t.mode, IonPolarity::negative);
  EXPECT_DOUBLE_EQ(t.driftTempK, 383.2);
  EXPECT_DOUBLE_EQ(t.pressureHpa, 1010.0);
  EXPECT_DOUBLE_EQ(t.desorberTempC, 240.0);
  EXPECT_EQ(t.periodNs, 12500);
  EXPECT_EQ(t.segments, 4);
  ASSERT_EQ(t.alarms.size(), 2u);
  EXPECT_EQ(t.alarms[0].code, 21);
  EXPECT_EQ(t.alarms[0].substance, "RDX");
  EXPECT_EQ(t.alarms[0].amplitude, 321);
  EXPECT_EQ(t.alarms[1].code, 99);
  EXPECT_EQ(t.alarms[1].substance, std::nullopt);
  EXPECT_EQ(t.alarms[1].amplitude, 5);
  ASSERT_EQ(t.points.size(), 1000u);
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(t.points[static_cast<std::size_t>(i)], (i * 7) % 65536) << i;
  EXPECT_TRUE(d->poll().samples.empty()) << "the same sample is not delivered twice";
}

// mbpoll's "[ref]: value" lines.
std::map<int, int> mbpoll(int port, int first, int count) {
  const RunResult r =
      run({kMbpoll, "-m", "tcp", "-p", std::to_string(port), "-a", "1", "-t", "4", "-0", "-r",
           std::to_string(first), "-c", std::to_string(count), "-1", "127.0.0.1"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  std::map<int, int> out;
  const std::regex line(R"(\[(\d+)\]:\s+(\d+))");
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), line), end; it != end; ++it)
    out[std::stoi((*it)[1])] = std::stoi((*it)[2]);
  return out;
}

TEST(Interop, MbpollReadsTheSimulator) {
  if (!std::filesystem::exists(kMbpoll)) GTEST_SKIP() << "mbpoll is not installed (make deps)";
  TempDir dir;
  Sim sim(dir, {"--every-ms", "600000", "--sequence", "cocaine:900"});
  auto d = opened(driver(sim.port));
  std::vector<TraceSample> samples;
  readScenario(*d, 1, &samples);
  ASSERT_EQ(samples.size(), 1u);
  const TraceSample& t = samples[0];

  const auto header = mbpoll(sim.port, 0, 16);
  ASSERT_EQ(header.size(), 16u);
  EXPECT_EQ(header.at(0), 1) << "profile_version";
  EXPECT_EQ(header.at(2), t.sampleSeq);
  EXPECT_EQ((static_cast<std::int64_t>(header.at(3)) << 16) | header.at(4), t.sampleTime);
  EXPECT_EQ(header.at(8), 2000);
  EXPECT_EQ(header.at(9), 12500);
  EXPECT_EQ(header.at(11), 1);
  EXPECT_EQ(header.at(12), 1) << "cocaine's code";
  EXPECT_EQ(header.at(13), 900);
  const auto tail = mbpoll(sim.port, 100 + 1900, 100);
  ASSERT_EQ(tail.size(), 100u);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(tail.at(2000 + i), t.points[static_cast<std::size_t>(1900 + i)]);
}

}  // namespace
}  // namespace lanegate::test
