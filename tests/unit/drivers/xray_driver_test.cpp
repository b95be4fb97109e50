// The X-ray driver against hand-driven libmodbus servers and the in-process simulator
// (real Modbus on loopback, real files in a temporary inbox): PLC state and samples,
// health, commands, faults, profile checks, settings, and the bundles the simulator writes.
#include "drivers/xray_driver.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>  // the simulator's calibration bundles

#include <csignal>
#include <filesystem>
#include <numeric>
#include <opencv2/core.hpp>
#include <thread>

#include "drivers/sim/xray_sim.h"
#include "drivers/xray_profile.h"
#include "modbus_fixture.h"
#include "vision/decode.h"
#include "vision/phantom.h"

namespace lanegate::test {
namespace {

using std::chrono::milliseconds;
using Json = nlohmann::json;
namespace fs = std::filesystem;

const std::string kXrayProfile = sourcePath("config/profiles/xray-generic-v1.yaml");

sim::XraySimOptions simOptions(const std::string& inbox, int count) {
  sim::XraySimOptions o;
  o.inbox = inbox;
  o.count = count;
  o.every = milliseconds(300);
  o.pixelMm = 20.0;  // 225 detector rows: quick to render in a debug build
  o.idPrefix = "t";
  o.commandTime = milliseconds(50);
  return o;
}

/// An `xray` driver through the registry, as the daemon would create it from YAML.
std::unique_ptr<Driver> xrayDriver(int port, const std::string& extra = "") {
  return registryDriver(
      "name: xray-1, type: xray, host: 127.0.0.1, port: " + std::to_string(port) + ", profile: '" +
          kXrayProfile +
          "', inbox: /nonexistent/inbox, poll_interval_ms: 10, response_timeout_ms: 1000",
      extra);
}

TEST(XrayDriver, IsRegistered) {
  const DriverType* t = findDriverType("xray");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, "xray");
}

TEST(XrayDriver, ReadsThePlcAndEmitsASampleOnEachChange) {
  ServedServer s;
  setPlc(*s.server, 0b000101, 7, 0);  // ready, radiation on
  int reads = 0;
  s.server->setHook([&](const sim::ServerRequest& r) {
    if (r.function == 3 && r.address == 1) {
      ++reads;
      EXPECT_EQ(r.count, 3) << "status, scan_seq and lane_occupied in one request";
    }
  });
  auto d = opened(xrayDriver(s.port()));
  std::string err;

  PollResult r = d->poll();
  ASSERT_EQ(r.action, DriverAction::ok) << r.error;
  auto samples = plcSamples(r);
  ASSERT_EQ(samples.size(), 1u) << "the first poll announces the state";
  EXPECT_EQ(samples[0].scanSeq, 7);
  EXPECT_EQ(samples[0].laneOccupied, false);
  EXPECT_EQ(samples[0].status, 5);
  EXPECT_TRUE(samples[0].ready);
  EXPECT_TRUE(samples[0].radiationOn);
  EXPECT_FALSE(samples[0].scanning);
  EXPECT_EQ(r.health.state, "ok") << r.health.detail;
  EXPECT_EQ(r.health.readings.at("scan_seq"), 7.0);
  EXPECT_EQ(r.health.readings.at("radiation_on"), 1.0);
  EXPECT_EQ(r.health.readings.at("scanning"), 0.0);
  EXPECT_EQ(r.health.readings.at("lane_occupied"), 0.0);

  EXPECT_TRUE(d->poll().samples.empty()) << "nothing changed";
  setPlc(*s.server, 0b000111, 7, 1);  // a conveyance enters, scanning
  samples = plcSamples(d->poll());
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].laneOccupied, true);
  EXPECT_EQ(samples[0].scanSeq, 7);
  EXPECT_TRUE(d->poll().samples.empty());
  setPlc(*s.server, 0b000001, 8, 1);  // its bundle is complete
  samples = plcSamples(d->poll());
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].scanSeq, 8);
  setPlc(*s.server, 0b000001, 8, 0);  // it leaves
  samples = plcSamples(d->poll());
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].laneOccupied, false);
  setPlc(*s.server, 0b000001, 0, 0);  // scan_seq wrapped (or the PLC restarted)
  samples = plcSamples(d->poll());
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].scanSeq, 0);

  d->close();
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  EXPECT_EQ(plcSamples(d->poll()).size(), 1u) << "a new connection announces the state again";
  auto lock = s.server->lock();
  EXPECT_GE(reads, 8);
}

TEST(XrayDriver, HealthFollowsTheStatusBits) {
  ServedServer s;
  auto d = xrayDriver(s.port());
  std::string err;
  setPlc(*s.server, 1, 0, 0);
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  struct Case {
    std::uint16_t status;
    const char* state;
  };
  for (const Case c : {Case{0b000001, "ok"}, Case{0b010001, "fault"}, Case{0b011001, "fault"},
                       Case{0b001001, "interlock_open"}, Case{0b101001, "interlock_open"},
                       Case{0b100001, "calibration_due"}, Case{0b000000, "not_ready"}}) {
    setPlc(*s.server, c.status, 0, 0);
    const PollResult r = d->poll();
    EXPECT_EQ(r.health.state, c.state) << "status " << c.status;
    EXPECT_EQ(r.action, DriverAction::ok);
    if (std::string(c.state) != "ok") {
      EXPECT_FALSE(r.health.detail.empty());
    }
    EXPECT_EQ(r.health.readings.at("interlock_open"), (c.status >> 3) & 1);
    EXPECT_EQ(r.health.readings.at("calibration_due"), (c.status >> 5) & 1);
    EXPECT_EQ(r.health.faults, 0u) << "a fault bit is the device's state, not a bad reply";
  }
}

// A dark or air command makes the scanner write a calibration bundle into the inbox; a
// failed one writes none. (What every Modbus device does with commands:
// modbus_device_test.cpp.)
TEST(XrayDriver, CalibrationCommandsWriteBundlesOnlyWhenTheyWork) {
  TempDir dir;
  for (const bool fail : {false, true}) {
    auto o = simOptions(dir.file(fail ? "failing" : "working"), 0);
    o.failCommands = fail;
    ServedXray x(o);
    auto d = opened(xrayDriver(x.port()));
    EXPECT_EQ(d->command({"dark"}).ok, !fail);
    EXPECT_EQ(d->command({"air"}).ok, !fail);
    const std::vector<std::string> written =
        fail ? std::vector<std::string>() : std::vector<std::string>{"cal-dark-1", "cal-air-1"};
    EXPECT_EQ(x.sim->calibrations(), written);
    EXPECT_EQ(fs::exists(dir.file(fail ? "failing/cal-dark-1.json" : "working/cal-dark-1.json")),
              !fail);
  }
}

TEST(XrayDriver, ClearFaultClearsTheDeviceFault) {
  TempDir dir;
  auto o = simOptions(dir.file("inbox"), 0);
  o.fault = "device";
  ServedXray x(o);
  auto d = opened(xrayDriver(x.port()));
  EXPECT_EQ(d->poll().health.state, "fault");
  ASSERT_TRUE(d->command({"clear_fault"}).ok);
  EXPECT_EQ(d->poll().health.state, "ok");
}

TEST(XrayDriver, ValidationReportsConfigAndProfileErrors) {
  expectEach(
      validationErrors("name: xray-1\ntype: xray\nhost: 192.0.2.1\nprofile: /nonexistent/x.yaml\n"
                       "workers: 9\nqueue: zero\nretention_days: -1\ncalibration_max_age_h: 0\n"
                       "shutter: open\n"),
      {"lanegate.yaml:1: device 'xray-1': missing required key 'inbox'",
       "lanegate.yaml:5: device 'xray-1': 'workers' must be between 1 and 8, got 9",
       "lanegate.yaml:6: device 'xray-1': 'queue' must be an integer, got 'zero'",
       "lanegate.yaml:7: device 'xray-1': 'retention_days' must be between 0 and 3650",
       "lanegate.yaml:8: device 'xray-1': 'calibration_max_age_h' must be between 0.1 and 8760",
       "/nonexistent/x.yaml:0: cannot read the profile file",
       "lanegate.yaml:4: device 'xray-1': profile '/nonexistent/x.yaml' is not usable",
       "lanegate.yaml:9: device 'xray-1': unknown key 'shutter'"});
}

TEST(XrayDriver, EmptyInboxIsRejectedWithItsLine) {
  expectEach(validationErrors("name: x\ntype: xray\nhost: 192.0.2.1\ninbox: ''\n"),
             {"lanegate.yaml:4: device 'x': 'inbox' must be a directory path"});
}

TEST(XrayDriver, LaneSettingsHaveDefaultsAndResolveTheInbox) {
  // The shipped config's directory holds profiles/xray-generic-v1.yaml: the default profile.
  const std::string config = sourcePath("config/lanegate.yaml");
  const std::string entry = "{name: x, type: xray, host: 127.0.0.1, inbox: spool/in}";
  EXPECT_EQ(validationErrors(entry, config), "");

  const YAML::Node n = YAML::Load(entry);
  DeviceSpec spec{"x", "xray", n, config, 1};
  const XrayLaneSettings l = readXrayLaneSettings(spec);
  EXPECT_EQ(l.inbox, sourcePath("config/spool/in")) << "relative to the config file";
  EXPECT_EQ(l.workers, 1);
  EXPECT_EQ(l.queue, 4);
  EXPECT_DOUBLE_EQ(l.retentionDays, 30.0);
  EXPECT_EQ(l.retentionMb, 2048);
  EXPECT_DOUBLE_EQ(l.calibrationMaxAgeHours, 24.0);

  DeviceSpec custom{"x", "xray",
                    YAML::Load("{name: x, type: xray, host: h, inbox: /srv/inbox, workers: 3,"
                               " queue: 16, retention_days: 7.5, retention_mb: 0,"
                               " calibration_max_age_h: 12}"),
                    config, 1};
  const XrayLaneSettings c = readXrayLaneSettings(custom);
  EXPECT_EQ(c.inbox, "/srv/inbox");
  EXPECT_EQ(c.workers, 3);
  EXPECT_EQ(c.queue, 16);
  EXPECT_DOUBLE_EQ(c.retentionDays, 7.5);
  EXPECT_EQ(c.retentionMb, 0);
  EXPECT_DOUBLE_EQ(c.calibrationMaxAgeHours, 12.0);
}

TEST(XrayProfile, RejectsBadMaps) {
  auto ok = loadProfile(kXrayProfile, parseXrayProfile);
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(ok->blockFirst(), 1);
  EXPECT_EQ(ok->blockCount(), 3);
  EXPECT_EQ(ok->commands.codes.at("air"), 2);
  EXPECT_EQ(ok->commands.nameOf(3), "clear_fault");

  const std::string base =
      "profile: p\n"
      "registers: {status: 1, scan_seq: 2, lane_occupied: 300}\n"
      "status_bits: {ready: 0, fault: 16}\n"
      "commands:\n"
      "  register: 40\n"
      "  result_register: 41\n"
      "  codes: {dark: 1, air: 1, clear_fault: 3}\n"
      "  results: {idle: 0, running: 1, ok: 2, failed: 3}\n";
  auto bad = parseXrayProfile(base, "p.yaml");
  ASSERT_FALSE(bad);
  EXPECT_NE(
      bad.error().str().find("p.yaml:3: profile status_bits: 'fault' must be between 0 and 15"),
      std::string::npos)
      << bad.error().str();
  std::string spread = base;
  spread.replace(spread.find("fault: 16"), 9, "fault: 4");
  bad = parseXrayProfile(spread, "p.yaml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("span 300 registers"), std::string::npos) << bad.error().str();
  EXPECT_NE(bad.error().str().find("commands air and dark share code 1"), std::string::npos)
      << bad.error().str();
}

// ---- the simulator ----------------------------------------------------------------------

TEST(XraySim, ParsesItsCommandLine) {
  const std::vector<std::string> good{
      "--port", "0",     "--inbox",  "/tmp/i",  "--mix", "empty:1,clear:2", "--pixel-mm",
      "5",      "--raw", "--single", "--count", "3",     "--fault",         "garbage"};
  auto o = sim::parseXraySimArgs(good);
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->inbox, "/tmp/i");
  EXPECT_DOUBLE_EQ(o->mix.empty, 1.0);
  EXPECT_DOUBLE_EQ(o->mix.clear, 2.0);
  EXPECT_DOUBLE_EQ(o->mix.concealment, 0.0);
  EXPECT_DOUBLE_EQ(o->pixelMm, 5.0);
  EXPECT_TRUE(o->raw);
  EXPECT_TRUE(o->single);
  EXPECT_EQ(o->count, 3);

  EXPECT_FALSE(sim::parseXraySimArgs(std::vector<std::string>{"--port", "0"}));  // no inbox
  auto mix = sim::parseXraySimArgs(std::vector<std::string>{"--inbox", "i", "--mix", "bombs:1"});
  ASSERT_FALSE(mix);
  EXPECT_NE(mix.error().find("unknown kind 'bombs'"), std::string::npos) << mix.error();
  EXPECT_FALSE(sim::parseXraySimArgs(std::vector<std::string>{"--inbox", "i", "--fault", "fire"}));
  EXPECT_TRUE(sim::parseScanMix("natural")->natural());
}

// Follows the PLC with the driver while the simulator scans: every scan_seq the driver
// sees already has its bundle's JSON in the inbox, and the lane is seen occupied.
TEST(XraySim, WritesBundlesThatLoadAndCountsThemOnlyWhenComplete) {
  TempDir dir;
  auto o = simOptions(dir.file("inbox"), 3);
  o.truthDir = dir.file("truth");
  o.mix = sim::ScanMix{1, 1, 0, 0};
  ServedXray x(o);
  auto d = opened(xrayDriver(x.port(), "poll_interval_ms: 10"));
  int lastSeq = 0;
  bool sawOccupied = false, sawScanning = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (lastSeq < 3 && std::chrono::steady_clock::now() < deadline) {
    const PollResult r = d->poll();
    ASSERT_EQ(r.action, DriverAction::ok) << r.error;
    sawScanning = sawScanning || r.health.readings.at("scanning") == 1.0;
    for (const ScannerState& state : plcSamples(r)) {
      const int seq = state.scanSeq;
      sawOccupied = sawOccupied || state.laneOccupied;
      for (int n = lastSeq + 1; n <= seq; ++n) {
        char id[16];
        std::snprintf(id, sizeof id, "t-%04d", n);
        EXPECT_TRUE(fs::exists(dir.file(std::string("inbox/") + id + ".json")))
            << "scan_seq " << seq << " before " << id << ".json exists";
      }
      EXPECT_GE(seq, lastSeq);
      lastSeq = seq;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(lastSeq, 3);
  EXPECT_TRUE(sawOccupied);
  EXPECT_TRUE(sawScanning);
  ASSERT_TRUE(waitFor([&] { return x.sim->scans() == 3; }, 5s));

  const auto scans = x.sim->produced();
  ASSERT_EQ(scans.size(), 3u);
  for (const auto& s : scans) {
    EXPECT_TRUE(s.written);
    EXPECT_TRUE(s.kind == sim::ScanKind::clear || s.kind == sim::ScanKind::concealment)
        << sim::scanKindName(s.kind);
    auto b = vision::loadBundle(dir.file("inbox/" + s.scanId + ".json"));
    ASSERT_TRUE(b) << b.error();
    EXPECT_EQ(b->meta.scanId, s.scanId);
    EXPECT_EQ(b->meta.scanner, "xray-sim");
    EXPECT_EQ(b->meta.signal, vision::Signal::kTransmission);
    ASSERT_EQ(b->planes.size(), 2u);
    EXPECT_EQ(b->meta.energiesMev.size(), 2u);
    EXPECT_GT(b->meta.energiesMev[0], b->meta.energiesMev[1]) << "high energy first";
    EXPECT_EQ(b->planes[0].rows, 225) << "4.5 m detector tower at 20 mm";
    EXPECT_GT(b->planes[0].cols, 100);
    EXPECT_EQ(b->planes[1].size(), b->planes[0].size());
    EXPECT_DOUBLE_EQ(b->meta.pixelAlongMm, 20.0);
    EXPECT_FALSE(b->meta.conveyance.kind.empty());
    EXPECT_TRUE(b->meta.conveyance.declared.empty.has_value());
    if (b->meta.conveyance.kind == "container") {
      EXPECT_FALSE(b->meta.conveyance.ids.empty());
    }
    // Ground truth beside the inbox, never in it, and it agrees with the printed kind.
    EXPECT_FALSE(fs::exists(dir.file("inbox/" + s.scanId + ".truth.json")));
    auto truth =
        vision::parseTruth(readFile(dir.file("truth/" + s.scanId + ".truth.json")), s.scanId);
    ASSERT_TRUE(truth) << truth.error();
    EXPECT_EQ(truth->scanId, s.scanId);
    EXPECT_EQ(truth->concealments.empty(), s.kind == sim::ScanKind::clear);
  }
  // Nothing else (temporaries) is left in the inbox.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.file("inbox"))) {
    ++files;
    EXPECT_EQ(e.path().filename().string().rfind("t-", 0), 0u) << e.path();
  }
  EXPECT_EQ(files, 6);
  // The lane empties after the last scan.
  EXPECT_TRUE(waitFor([&] { return d->poll().health.readings.at("lane_occupied") == 0.0; }, 5s));
}

TEST(XraySim, MixChoosesTheKindOfLoad) {
  TempDir dir;
  auto o = simOptions(dir.file("inbox"), 3);
  o.mix = sim::ScanMix{0, 0, 0, 1};  // declared empty, but not
  o.every = milliseconds(10);
  ServedXray x(o);
  ASSERT_TRUE(waitFor([&] { return x.sim->scans() == 3; }, 60s));
  for (const auto& s : x.sim->produced()) {
    EXPECT_EQ(s.kind, sim::ScanKind::emptyContent) << s.summary;
    auto b = vision::loadBundle(dir.file("inbox/" + s.scanId + ".json"));
    ASSERT_TRUE(b) << b.error();
    EXPECT_EQ(b->meta.conveyance.declared.empty, true);
  }
}

TEST(XraySim, CalibrationBundlesMatchTheRawScansDetector) {
  TempDir dir;
  auto o = simOptions(dir.file("inbox"), 1);
  o.raw = true;
  o.seed = 11;
  o.calibrationDue = true;
  ServedXray x(o);
  auto d = opened(xrayDriver(x.port()));
  EXPECT_EQ(d->poll().health.state, "calibration_due");
  ASSERT_TRUE(d->command({"dark"}).ok);
  EXPECT_EQ(d->poll().health.readings.at("calibration_due"), 1.0) << "dark alone is not enough";
  ASSERT_TRUE(d->command({"air"}).ok);
  EXPECT_EQ(d->poll().health.readings.at("calibration_due"), 0.0);

  // The detector the raw scans of this seed and pitch are made with.
  vision::PhantomOptions po;
  po.pixelMm = 20.0;
  po.raw = true;
  const vision::Calibration truth = vision::generatePhantom(11, 0, po).calibration;
  ASSERT_EQ(truth.energies.size(), 2u);

  for (const std::string which : {"dark", "air"}) {
    const std::string json = dir.file("inbox/cal-" + which + "-1.json");
    auto meta = Json::parse(readFile(json));
    EXPECT_EQ(meta["calibration"], which);
    auto b = vision::loadBundle(json);
    ASSERT_TRUE(b) << b.error() << " (unknown fields must be accepted)";
    EXPECT_EQ(b->meta.signal, vision::Signal::kRaw);
    EXPECT_EQ(b->meta.scanId, "cal-" + which + "-1");
    ASSERT_EQ(b->planes.size(), 2u);
    for (std::size_t e = 0; e < 2; ++e) {
      const cv::Mat& p = b->planes[e];
      ASSERT_EQ(p.rows, 225);
      EXPECT_GE(p.cols, 100);
      const auto& want = which == "dark" ? truth.energies[e].dark : truth.energies[e].air;
      double worst = 0;
      for (int y = 0; y < p.rows; ++y) {
        const double mean = cv::mean(p.row(y))[0];
        worst = std::max(worst,
                         std::abs(mean - static_cast<double>(want[static_cast<std::size_t>(y)])));
      }
      // Dark: offset ± ADC noise; air: ± dose jitter (1 %) averaged over the pulses.
      EXPECT_LT(worst, which == "dark" ? 1.0 : 150.0) << which << " energy " << e;
      double lo = 0, hi = 0;
      cv::minMaxLoc(p, &lo, &hi);
      EXPECT_LT(hi, 65535.0) << "not saturated";
      if (which == "air") {
        EXPECT_GT(lo, 20000.0) << "no dead channel in the air frame";
      } else {
        EXPECT_LT(hi, 2000.0);
      }
    }
  }
  // And the raw scan is consistent with it: open-beam rows sit at the air counts.
  ASSERT_TRUE(waitFor([&] { return x.sim->scans() == 1; }, 30s));
  auto scan = vision::loadBundle(dir.file("inbox/t-0001.json"));
  ASSERT_TRUE(scan) << scan.error();
  EXPECT_EQ(scan->meta.signal, vision::Signal::kRaw);
  const cv::Mat& high = scan->planes[0];
  // Row 2 is above every vehicle: open beam, except where a bad channel was drawn.
  const double openBeam = cv::mean(high.row(2).colRange(0, 20))[0];
  EXPECT_NEAR(openBeam, static_cast<double>(truth.energies[0].air[2]), 0.05 * 52000.0);
}

TEST(XraySim, PlcFaultsStartAfterTheGivenScans) {
  TempDir dir;
  auto o = simOptions(dir.file("inbox"), 2);
  o.fault = "exception";
  o.faultAfter = 1;
  ServedXray x(o);
  auto d = opened(xrayDriver(x.port()));
  ASSERT_TRUE(waitFor([&] { return d->poll().health.state == "fault"; }, 30s));
  const PollResult r = d->poll();
  EXPECT_EQ(r.action, DriverAction::ok);
  EXPECT_GE(r.health.faults, 2u);
  EXPECT_GE(x.sim->scans(), 1);
}

// Modbus RTU without serial hardware: socat links two pseudo-terminals.
TEST(XrayDriver, WorksOverRtu) {
  if (!fs::exists("/usr/bin/socat")) GTEST_SKIP() << "socat is not installed (make deps)";
  TempDir dir;
  Process socat({"/usr/bin/socat", "pty,raw,echo=0,link=" + dir.file("A"),
                 "pty,raw,echo=0,link=" + dir.file("B")},
                dir.file("socat"));
  ASSERT_TRUE(waitFor([&] { return fs::exists(dir.file("A")) && fs::exists(dir.file("B")); }, 5s))
      << socat.err();
  auto o = simOptions(dir.file("inbox"), 1);
  o.server.transport = "rtu";
  o.server.device = dir.file("A");
  o.server.unitId = 3;
  ServedXray x(o);
  DeviceSpec spec{"xray-rtu", "xray",
                  YAML::Load("{name: xray-rtu, type: xray, transport: rtu, device: '" +
                             dir.file("B") + "', unit_id: 3, profile: '" + kXrayProfile +
                             "', inbox: '" + dir.file("inbox") + "', poll_interval_ms: 10}"),
                  "test.yaml", 1};
  auto d = findDriverType("xray")->create(spec);
  std::string err;
  ASSERT_TRUE(waitFor([&] { return d->open(err) == DriverAction::ok; }, 5s)) << err;
  ASSERT_TRUE(waitFor([&] { return d->poll().health.readings.count("scan_seq") == 1; }, 5s));
  EXPECT_TRUE(waitFor(
      [&] {
        const PollResult r = d->poll();
        return r.action == DriverAction::ok && r.health.readings.at("scan_seq") == 1.0;
      },
      60s));
  const CommandResult c = d->command({"dark"});
  EXPECT_TRUE(c.ok) << c.message;
  d->close();
}

// The command line as scripts use it: the lines on stdout, the port, commands, SIGTERM.
TEST(XraySim, CommandLinePrintsItsPortScansAndCommands) {
  TempDir dir;
  Process sim({LANEGATE_SIM_BIN, "xray", "--port", "0", "--inbox", dir.file("inbox"), "--count",
               "2", "--every-ms", "100", "--pixel-mm", "20", "--id-prefix", "p", "--command-ms",
               "50", "--truth-dir", dir.file("truth")},
              dir.file("sim"));
  ASSERT_TRUE(
      waitFor([&] { return sim.out().find("scan 2 p-0002 kind=") != std::string::npos; }, 60s))
      << sim.out() << sim.err();
  const std::string out = sim.out();
  const std::string listening = "listening on 127.0.0.1:";
  ASSERT_EQ(out.rfind(listening, 0), 0u) << "the first line: " << out;
  const int port = std::stoi(out.substr(listening.size()));
  EXPECT_NE(out.find("\nscan 1 p-0001 kind="), std::string::npos) << out;
  EXPECT_NE(out.find(" size="), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(dir.file("inbox/p-0002.json")));
  EXPECT_TRUE(fs::exists(dir.file("truth/p-0002.truth.json")));

  auto d = opened(xrayDriver(port));
  std::string err;
  ASSERT_TRUE(d->command({"air"}).ok);
  EXPECT_TRUE(waitFor(
      [&] { return sim.out().find("\ncommand air ok cal-air-1\n") != std::string::npos; }, 5s))
      << sim.out();
  EXPECT_TRUE(fs::exists(dir.file("inbox/cal-air-1.json")));
  sim.signal(SIGTERM);
  EXPECT_EQ(sim.wait(10s), 0);
  EXPECT_NE(sim.out().find("\nstopping\n"), std::string::npos);

  const RunResult usage = run({LANEGATE_SIM_BIN, "xray", "--port", "0"});
  EXPECT_EQ(usage.code, 2);
  EXPECT_NE(usage.err.find("--inbox is required"), std::string::npos) << usage.err;
}

}  // namespace
}  // namespace lanegate::test
