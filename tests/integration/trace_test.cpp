// An IMS detector (the real lanegate-sim over Modbus TCP) through the daemon to the
// control room: a cocaine sample becomes an org.lanegate.trace.hit alert that validates.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <thread>
#include <sstream>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

std::string imsDevice(int port, const std::string& extra = "") {
  return kImsLibrary + "devices:\n" + imsEntry("ims-1", port) + extra;
}

TEST(TraceIT, SimulatedCocaineSampleArrivesAsAValidTraceHit) {
  TempDir dir;
  Broker broker(dir);
  SimProcess sim({"ims", "--every-ms", "300", "--sequence", "clear,cocaine:900", "--library",
                  LANEGATE_SOURCE_DIR "/config/ims/substances.yaml"},
                 dir.file("sim"));
  const int port = sim.port;
  ASSERT_NE(port, 0);
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1", "--json",
                 "--count", "1"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s)) << watch.err();
  Daemon d(dir, configText(dir, broker.uri(), imsDevice(port)));
  ASSERT_EQ(watch.wait(30s), 0) << d.process().err();
  const auto alert = nlohmann::json::parse(watch.out().substr(0, watch.out().find('\n')));
  EXPECT_EQ(alert["type"], "org.lanegate.trace.hit");
  EXPECT_EQ(alert["source"], "lanegate://it/lane-1/ims-1");
  EXPECT_EQ(alert["data"]["verdict"], "hit");
  EXPECT_NE(alert["data"]["substances"].dump().find("cocaine"), std::string::npos) << alert["data"]["substances"];
  expectValid(dir, "alert", alert.dump());
  // The device's health reaches its retained status topic.
  EXPECT_TRUE(deviceStatusShows(broker, "ims-1", "\"ok\""));
}

// Acceptance 2 of issue 4: the scenario's hits reach the broker, and nothing else: clear
// samples raise no alert and every hit arrives once as its own alert.
TEST(TraceIT, ScenarioDeliversItsHitsAndNothingElse) {
  TempDir dir;
  Broker broker(dir);
  // The scenario starts when the daemon first reads the detector, however late it starts.
  SimProcess sim({"ims", "--every-ms", "400", "--once", "--wait-for-client", "--sequence",
                  "clear,cocaine:900,clear,clear,fentanyl:700,clear"},
                 dir.file("sim"));
  const int port = sim.port;
  ASSERT_NE(port, 0);
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1", "--json"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s)) << watch.err();
  Daemon d(dir, configText(dir, broker.uri(), imsDevice(port)));
  // The daemon has judged all six samples: four clear ones (logged) and the two hits.
  ASSERT_TRUE(waitFor([&] {
    const std::string log = d.process().err();
    return countOf(log, "trace sample clear") >= 4 && countOf(log, "trace hit ") >= 2;
  }, 30s)) << d.process().err() << sim.out();
  ASSERT_TRUE(waitFor([&] { return countOf(watch.out(), "\"type\":") >= 2; }, 15s)) << watch.out();
  std::this_thread::sleep_for(1500ms);  // room for an alert that should not exist to show up
  std::map<std::string, std::string> byId;   // QoS 1 may repeat an alert; ids must not
  std::istringstream lines(watch.out());
  for (std::string line; std::getline(lines, line);) {
    const auto alert = nlohmann::json::parse(line);
    ASSERT_EQ(alert["type"], "org.lanegate.trace.hit") << line;
    byId[alert["id"]] = alert["data"]["substances"].dump();
  }
  ASSERT_EQ(byId.size(), 2u) << watch.out();
  std::string all;
  for (const auto& [id, substances] : byId) all += substances;
  EXPECT_NE(all.find("cocaine"), std::string::npos) << all;
  EXPECT_NE(all.find("fentanyl"), std::string::npos) << all;
  for (const char* other : {"methamphetamine", "heroin", "carfentanil", "TNT", "RDX", "PETN"})
    EXPECT_EQ(all.find(other), std::string::npos) << other << " in " << all;
  EXPECT_EQ(countOf(sim.out(), "sample "), 6u) << sim.out();
}

// `lanegatectl calibrate ims` reaches the detector through the daemon's device thread,
// waits for the device's result, and the retained status shows the calibration done.
TEST(TraceIT, CalibrateThroughTheControlSocket) {
  TempDir dir;
  Broker broker(dir);
  SimProcess sim({"ims", "--every-ms", "60000", "--calibration-due", "--command-ms", "500"},
                 dir.file("sim"));
  const int port = sim.port;
  ASSERT_NE(port, 0);
  Daemon d(dir, configText(dir, broker.uri(), imsDevice(port)));
  const std::string topic = "lanegate/v1/it/lane-1/devices/ims-1/status";
  ASSERT_TRUE(waitFor([&] { return retained(broker, topic, 1s).find("\"calibration_due\"") != std::string::npos; },
                      20s))
      << retained(broker, topic, 1s) << d.process().err();

  const auto cal = d.ctl({"calibrate", "ims", "ims-1"});
  EXPECT_EQ(cal.code, 0) << cal.out << cal.err;
  EXPECT_NE(cal.out.find("waiting for the device"), std::string::npos) << cal.out;
  EXPECT_NE(cal.out.find("calibrate ok"), std::string::npos) << cal.out;
  EXPECT_NE(sim.out().find("command calibrate ok"), std::string::npos) << sim.out();
  EXPECT_TRUE(waitFor([&] { return retained(broker, topic, 1s).find("\"state\":\"ok\"") != std::string::npos; },
                      15s))
      << retained(broker, topic, 1s);

  const auto verify = d.ctl({"calibrate", "ims", "ims-1", "verify"});
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
  EXPECT_NE(sim.out().find("command verify ok"), std::string::npos) << sim.out();

  // Clear errors for what cannot be done.
  const auto unknown = d.ctl({"calibrate", "ims", "ims-9"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("no device named 'ims-9'"), std::string::npos) << unknown.err;
  EXPECT_NE(unknown.err.find("ims-1"), std::string::npos) << unknown.err;
  const auto badAction = d.ctl({"calibrate", "ims", "ims-1", "reboot"});
  EXPECT_EQ(badAction.code, 2);
  EXPECT_NE(badAction.err.find("unknown action 'reboot'"), std::string::npos) << badAction.err;
}

TEST(TraceIT, FailedCalibrationIsReportedAndAnOfflineDeviceRefusesAtOnce) {
  TempDir dir;
  const int deadPort = freeLoopbackPort();  // ims-2: nothing listens there
  SimProcess sim({"ims", "--every-ms", "60000", "--fail-commands", "--command-ms", "200"},
                 dir.file("sim"));
  Broker broker(dir);
  const int port = sim.port;
  Daemon d(dir, configText(dir, broker.uri(), imsDevice(port, imsEntry("ims-2", deadPort))));
  ASSERT_TRUE(waitFor([&] { return d.up(); }, 15s)) << d.process().err();
  const auto failed = d.ctl({"calibrate", "ims", "ims-1"});
  EXPECT_EQ(failed.code, 1) << failed.out << failed.err;
  EXPECT_NE(failed.err.find("ims-1: calibrate failed: the device reported failure"), std::string::npos)
      << failed.err;
  const auto offline = d.ctl({"calibrate", "ims", "ims-2"});
  EXPECT_EQ(offline.code, 1) << offline.out << offline.err;
  EXPECT_NE(offline.err.find("not connected"), std::string::npos) << offline.err;
}

// Issue 12: a detector that reports another register layout than its profile is out of
// service (its own state, not "offline"), is not opened again on its own, and comes back
// when a reload names the right profile.
TEST(TraceIT, ADetectorOfAnotherLayoutIsOutOfServiceUntilAReload) {
  TempDir dir;
  Broker broker(dir);
  SimProcess sim({"ims", "--every-ms", "60000"}, dir.file("sim"));
  const int port = sim.port;
  ASSERT_NE(port, 0);
  std::string profile = readFile(LANEGATE_SOURCE_DIR "/config/profiles/ims-generic-v1.yaml");
  profile.replace(profile.find("expect: 1"), 9, "expect: 2");
  writeFile(dir.file("ims-v2.yaml"), profile);
  Daemon d(dir, configText(
                    dir, broker.uri(),
                    kImsLibrary + "devices:\n" + imsEntry("ims-1", port, dir.file("ims-v2.yaml"))));
  const std::string topic = "lanegate/v1/it/lane-1/devices/ims-1/status";
  ASSERT_TRUE(waitFor(
      [&] { return retained(broker, topic, 1s).find("\"out_of_service\"") != std::string::npos; },
      20s))
      << retained(broker, topic, 1s) << d.process().err();
  const auto status = d.status();
  EXPECT_EQ(status["devices"]["ims-1"]["state"], "out_of_service");
  EXPECT_NE(status["devices"]["ims-1"]["detail"].get<std::string>().find("profile_version 1"),
            std::string::npos)
      << status.dump();
  EXPECT_EQ(countOf(d.process().err(), "out of service until a reload or restart"), 1u)
      << "not retried";
  const auto cal = d.ctl({"calibrate", "ims", "ims-1"});
  EXPECT_EQ(cal.code, 1);
  EXPECT_NE(cal.err.find("out of service"), std::string::npos) << cal.err;

  writeFile(d.configPath(), configText(dir, broker.uri(), imsDevice(port)));
  ASSERT_EQ(d.ctl({"reload"}).code, 0);
  EXPECT_TRUE(waitFor(
      [&] { return retained(broker, topic, 1s).find("\"state\":\"ok\"") != std::string::npos; },
      20s))
      << retained(broker, topic, 1s) << d.process().err();
}

// Two detectors on one serial bus (socat links two pseudo-terminals): one thread takes
// turns; the unit that never answers does not keep the other's hits or commands back.
TEST(TraceIT, TwoDetectorsOnOneSerialBus) {
  if (!std::filesystem::exists("/usr/bin/socat")) GTEST_SKIP() << "socat is not installed (make deps)";
  TempDir dir;
  Broker broker(dir);
  Process socat({"/usr/bin/socat", "pty,raw,echo=0,link=" + dir.file("A"), "pty,raw,echo=0,link=" + dir.file("B")},
                dir.file("socat"));
  ASSERT_TRUE(waitFor([&] { return std::filesystem::exists(dir.file("A")) && std::filesystem::exists(dir.file("B")); },
                      5s));
  Process sim({LANEGATE_SIM_BIN, "ims", "--rtu", dir.file("A"), "--unit-id", "1", "--every-ms", "700", "--points",
               "600", "--sequence", "clear,heroin:800", "--command-ms", "200"},
              dir.file("sim"));
  ASSERT_TRUE(waitFor([&] { return sim.out().find("listening") != std::string::npos || !sim.running(); }, 10s));
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1", "--json",
                 "--count", "1"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s)) << watch.err();
  std::string devices = "ims_library: " LANEGATE_SOURCE_DIR "/config/ims/substances.yaml\ndevices:\n";
  for (int unit : {1, 2})
    devices += "  - name: ims-" + std::to_string(unit) + "\n    type: ims\n    transport: rtu\n    device: " +
               dir.file("B") + "\n    baud: 19200\n    unit_id: " + std::to_string(unit) +
               "\n    poll_interval_ms: 100\n    response_timeout_ms: 300\n    profile: " LANEGATE_SOURCE_DIR
               "/config/profiles/ims-generic-v1.yaml\n";
  Daemon d(dir, configText(dir, broker.uri(), devices));
  ASSERT_EQ(watch.wait(40s), 0) << d.process().err() << sim.out();
  EXPECT_NE(watch.out().find("heroin"), std::string::npos) << watch.out();
  EXPECT_NE(d.process().err().find("serial bus " + dir.file("B") + ": 2 devices share one thread"), std::string::npos)
      << d.process().err();
  EXPECT_TRUE(deviceStatusShows(broker, "ims-2", "\"offline\""));
  const auto cal = d.ctl({"calibrate", "ims", "ims-1", "verify"});
  EXPECT_EQ(cal.code, 0) << cal.out << cal.err;
  EXPECT_NE(sim.out().find("command verify ok"), std::string::npos) << sim.out();
}

}  // namespace
}  // namespace lanegate::test
