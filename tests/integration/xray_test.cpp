// X-ray scans through the daemon to the control room (issue 6, acceptance 1 and 2):
// bundles in the scanner's inbox become org.lanegate.xray.hit alerts at a real broker,
// with an overlay whose SHA-256 the subscriber checks; a bundle written while the daemon
// was stopped is analysed after it starts; a garbage TIFF goes to rejected/ with its
// reason while the next bundle is analysed; a daemon killed during an analysis gives
// that scan exactly one alert id after restart.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <set>
#include <sstream>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

namespace fs = std::filesystem;

std::string xrayDevice(const std::string& inbox, int port) {
  return "devices:\n" + xrayEntry(inbox, port);
}

TEST(XrayIT, InboxBundlesBecomeAlertsWithVerifiedImagesAcrossRestartsAndGarbage) {
  TempDir dir;
  const std::string gen = phantoms(dir, 24, 606);
  const std::string inbox = dir.file("inbox"), images = dir.file("images");
  fs::create_directories(inbox);
  const auto ids = flaggedScans(gen, 3);
  ASSERT_EQ(ids.size(), 3u) << "the vision module flags fewer than 3 of 24 generated scans";

  Broker broker(dir);
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1", "--json",
                 "--save-images", images},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s)) << watch.err();

  // 1. Written while the daemon is stopped: analysed once it starts.
  copyBundle(gen, ids[0], inbox);
  Daemon d(dir, configText(dir, broker.uri(), xrayDevice(inbox, freeLoopbackPort())));
  const std::string id0 = "xray:it:lane-1:xray-1:" + ids[0];
  ASSERT_TRUE(waitFor([&] { return watch.out().find(id0) != std::string::npos; }, 60s))
      << d.process().err() << watch.err();
  EXPECT_TRUE(waitFor([&] { return fs::exists(images + "/" + id0 + ".jpg"); }, 10s)) << watch.err();
  // The watcher reports after it has renamed the image into place.
  EXPECT_TRUE(waitFor([&] { return watch.err().find("SHA-256 verified") != std::string::npos; }, 10s)) << watch.err();
  EXPECT_EQ(watch.err().find("MISMATCH"), std::string::npos) << watch.err();
  EXPECT_TRUE(fs::exists(dir.file("state") + "/scans/xray-1/" + ids[0] + ".tiff"));

  // 2. A garbage TIFF is rejected with its reason; the next bundle is analysed normally.
  writeFile(inbox + "/garbage-1.tiff", "II*\0 not really a TIFF");
  std::string meta = readFile(gen + "/" + ids[1] + ".json");
  meta.replace(meta.find(ids[1]), ids[1].size(), "garbage-1");
  writeFile(inbox + "/garbage-1.json", meta);
  ASSERT_TRUE(waitFor([&] { return fs::exists(dir.file("state") + "/rejected/xray-1/garbage-1.error"); }, 30s)) << d.process().err();
  EXPECT_NE(readFile(dir.file("state") + "/rejected/xray-1/garbage-1.error").find("garbage-1.tiff"), std::string::npos);
  copyBundle(gen, ids[1], inbox);
  const std::string id1 = "xray:it:lane-1:xray-1:" + ids[1];
  ASSERT_TRUE(waitFor([&] { return watch.out().find(id1) != std::string::npos; }, 60s)) << d.process().err();

  // 3. Killed during an analysis: after restart that scan has exactly one alert id.
  copyBundle(gen, ids[2], inbox);
  ASSERT_TRUE(waitFor([&] { return d.process().err().find("analysing " + ids[2]) != std::string::npos; }, 30s))
      << d.process().err();
  d.process().signal(SIGKILL);
  d.process().wait(10s);
  const bool beforeAccept = !fs::exists(dir.file("state") + "/scans/xray-1/" + ids[2] + ".json");
  d.start();
  const std::string id2 = "xray:it:lane-1:xray-1:" + ids[2];
  ASSERT_TRUE(waitFor([&] { return watch.out().find(id2) != std::string::npos; }, 60s)) << d.process().err();
  if (beforeAccept) {
    EXPECT_NE(d.process().err().find("analysing " + ids[2]), std::string::npos);
  }
  std::set<std::string> alertIds;
  std::istringstream lines(watch.out());
  std::string line, all;
  while (std::getline(lines, line)) {
    const auto a = nlohmann::json::parse(line);
    EXPECT_EQ(a["type"], "org.lanegate.xray.hit");
    alertIds.insert(a["id"]);
    all += line + "\n";
  }
  EXPECT_EQ(alertIds, (std::set<std::string>{id0, id1, id2})) << "one id per scan, nothing else";
  EXPECT_TRUE(waitFor([&] { return fs::exists(images + "/" + id2 + ".jpg"); }, 10s)) << watch.err();

  // Every alert validates against its schema (data: xray-hit-data.schema.json).
  expectValid(dir, "alert", all);
}

// Issue 6, acceptance 1: the real simulator → daemon → mosquitto → subscriber. Every scan
// the vision module flags arrives as an alert whose image's SHA-256 matches, each alert
// validates, and no scan it does not flag raises one.
TEST(XrayIT, SimulatorScansArriveAsAlertsWithMatchingImages) {
  TempDir dir;
  const std::string inbox = dir.file("inbox"), images = dir.file("images");
  fs::create_directories(inbox);
  Broker broker(dir);
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1", "--json",
                 "--save-images", images},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s)) << watch.err();
  SimProcess sim(
      {"xray", "--inbox", inbox, "--every-ms", "300", "--count", "8", "--pixel-mm", "20", "--seed",
       "77", "--mix", "clear:30,concealment:50,empty_content:20", "--truth-dir", dir.file("truth")},
      dir.file("sim"));
  const int port = sim.port;
  ASSERT_NE(port, 0);
  Daemon d(dir, configText(dir, broker.uri(), xrayDevice(inbox, port)));
  // All eight scans written by the simulator and taken out of the inbox by the daemon.
  const std::string archive = dir.file("state") + "/scans/xray-1";
  std::vector<std::string> scans;
  ASSERT_TRUE(waitFor([&] {
    scans.clear();
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(archive, ec))
      if (e.path().extension() == ".json") scans.push_back(e.path().stem().string());
    return scans.size() == 8;
  }, 120s)) << sim.out() << d.process().err();
  std::set<std::string> expected;
  for (const auto& id : scans) {
    const auto r = run({LANEGATECTL_BIN, "analyze", archive + "/" + id + ".json", "--json"}, 60s);
    ASSERT_EQ(r.code, 0) << r.err;
    if (nlohmann::json::parse(r.out)["verdict"] != "clear") expected.insert("xray:it:lane-1:xray-1:" + id);
  }
  ASSERT_FALSE(expected.empty()) << "the simulator's mix should give the vision module something to flag";
  ASSERT_TRUE(waitFor([&] {
    for (const auto& id : expected)
      if (!fs::exists(images + "/" + id + ".jpg")) return false;
    return true;
  }, 30s)) << watch.out() << watch.err();
  std::set<std::string> got;
  std::istringstream lines(watch.out());
  std::string all;
  for (std::string line; std::getline(lines, line);) {
    got.insert(nlohmann::json::parse(line)["id"].get<std::string>());
    all += line + "\n";
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(watch.err().find("MISMATCH"), std::string::npos) << watch.err();
  EXPECT_TRUE(
      waitFor([&] { return countOf(watch.err(), "SHA-256 verified") >= expected.size(); }, 10s))
      << watch.err();
  EXPECT_EQ(countOf(watch.err(), "SHA-256 verified"), expected.size()) << watch.err();
  expectValid(dir, "alert", all);
}

// Issue 6, acceptance 4: a trace hit while a flagged conveyance is in the lane carries
// its container id, names the X-ray alert and is raised to high priority.
TEST(XrayIT, ATraceHitOnAFlaggedConveyanceNamesTheXrayAlert) {
  TempDir dir;
  const std::string gen = phantoms(dir, 8, 4242);
  const std::string inbox = dir.file("inbox");
  fs::create_directories(inbox);
  const auto ids = flaggedScans(gen, 1);
  ASSERT_EQ(ids.size(), 1u);
  auto meta = nlohmann::json::parse(readFile(gen + "/" + ids[0] + ".json"));
  meta["conveyance"]["kind"] = "container";
  meta["conveyance"]["ids"] = {"CSQU3054383"};
  writeFile(gen + "/" + ids[0] + ".json", meta.dump());

  Broker broker(dir);
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1", "--json"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s)) << watch.err();
  const std::string library = kImsLibrary;
  const std::string xrayDevices = xrayDevice(inbox, freeLoopbackPort());
  Daemon d(dir, configText(dir, broker.uri(), library + xrayDevices));
  copyBundle(gen, ids[0], inbox);
  const std::string xrayId = "xray:it:lane-1:xray-1:" + ids[0];
  ASSERT_TRUE(waitFor([&] { return watch.out().find(xrayId) != std::string::npos; }, 60s)) << d.process().err();

  // The container is in the lane; now a detector swabs it and finds cocaine.
  SimProcess sim({"ims", "--every-ms", "300", "--sequence", "cocaine:900"}, dir.file("sim"));
  const int port = sim.port;
  ASSERT_NE(port, 0);
  writeFile(d.configPath(),
            configText(dir, broker.uri(), library + xrayDevices + imsEntry("ims-1", port)));
  ASSERT_EQ(d.ctl({"reload"}).code, 0);
  ASSERT_TRUE(waitFor([&] { return watch.out().find("org.lanegate.trace.hit") != std::string::npos; }, 30s))
      << d.process().err();
  nlohmann::json trace;
  std::istringstream lines(watch.out());
  for (std::string line; std::getline(lines, line);) {
    const auto a = nlohmann::json::parse(line);
    if (a["type"] == "org.lanegate.trace.hit") trace = a;
  }
  const auto& data = trace["data"];
  EXPECT_EQ(data["priority"], "high") << data.dump();
  EXPECT_EQ(data["correlated_alerts"], nlohmann::json::array({xrayId}));
  EXPECT_EQ(data["conveyance"]["ids"], nlohmann::json::array({"CSQU3054383"}));
  EXPECT_EQ(data["conveyance"]["id_checks"][0]["valid"], true);
  expectValid(dir, "alert", trace.dump());
}

// `lanegatectl calibrate xray dark|air` through the daemon to the scanner's PLC (the real
// lanegate-sim), whose calibration bundles the lane checks and stores; the device status
// reports calibration_due until both are done, and the status shows the stored calibration.
TEST(XrayIT, CalibrateThroughTheScanner) {
  TempDir dir;
  const std::string inbox = dir.file("inbox");
  fs::create_directories(inbox);
  Broker broker(dir);
  SimProcess sim({"xray", "--inbox", inbox, "--count", "0", "--raw", "--pixel-mm", "20",
                  "--command-ms", "200", "--calibration-due"},
                 dir.file("sim"));
  const int port = sim.port;
  ASSERT_NE(port, 0);
  Daemon d(dir, configText(dir, broker.uri(), xrayDevice(inbox, port)));
  const std::string topic = "lanegate/v1/it/lane-1/devices/xray-1/status";
  ASSERT_TRUE(waitFor([&] { return retained(broker, topic, 1s).find("calibration_due") != std::string::npos; }, 20s))
      << retained(broker, topic, 1s) << d.process().err();

  for (const char* which : {"dark", "air"}) {
    const auto r = d.ctl({"calibrate", "xray", which});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find(std::string(which) + " ok"), std::string::npos) << r.out;
  }
  ASSERT_TRUE(waitFor([&] {
    const auto s = d.status();
    return s.is_object() && s["scans"]["xray-1"]["calibration"].value("file", "") != "";
  }, 30s)) << d.status().dump() << d.process().err();
  EXPECT_EQ(d.status()["scans"]["xray-1"]["calibration"]["problem"], "") << d.status().dump();
  EXPECT_TRUE(waitFor([&] { return retained(broker, topic, 1s).find("\"state\":\"ok\"") != std::string::npos; }, 20s))
      << retained(broker, topic, 1s);

  const auto bad = d.ctl({"calibrate", "xray", "bright"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("unknown action 'bright'"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace lanegate::test
