// Issue 15, health: `lanegatectl status` shows what the daemon reports with a verdict line
// and exits 4 when the daemon runs but is not fully healthy (Contract 6); `devices`.
#include <gtest/gtest.h>

#include <sstream>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

TEST(HealthIT, StatusShowsEverythingWithAVerdictAndExitsFourWhenNotHealthy) {
  TempDir dir;
  Broker broker(dir);
  Daemon d(dir, configText(dir, broker.uri(),
                           "devices:\n  - name: m1\n    type: mock\n    poll_interval_ms: 50\n"
                           "  - name: m2\n    type: mock\n    poll_interval_ms: 50\n"));
  ASSERT_TRUE(waitFor([&] { return d.ctl({"status"}).code == 0; }, 15s))
      << d.ctl({"status"}).out << d.process().err();
  ASSERT_EQ(d.ctl({"test-alert"}).code, 0);
  auto r = d.ctl({"status"});
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char* part :
       {"verdict  HEALTHY", "outbox   pending", "acks     ", "rejected", "org.lanegate.test 1",
        "org.lanegate.xray.hit 0", "org.lanegate.trace.hit 0", "faults   none", "session",
        "temperature_k=373.0"})
    EXPECT_NE(r.out.find(part), std::string::npos) << "status shows '" << part << "':\n" << r.out;
  auto j = d.status();
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["verdict"]["healthy"], true) << j;
  EXPECT_EQ(j["alerts"]["org.lanegate.test"], 1) << j;
  EXPECT_EQ(j["alerts_accepted"], 1) << j;

  // The broker goes: the daemon runs on, status says so and exits 4, also with --json.
  broker.stop();
  ASSERT_TRUE(waitFor([&] { return d.ctl({"status"}).code == 4; }, 15s)) << d.ctl({"status"}).out;
  r = d.ctl({"status"});
  EXPECT_NE(r.out.find("verdict  NOT HEALTHY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("broker " + broker.uri() + " not connected"), std::string::npos) << r.out;
  const auto js = d.ctl({"status", "--json"});
  EXPECT_EQ(js.code, 4);
  j = nlohmann::json::parse(js.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << js.out;
  EXPECT_EQ(j["verdict"]["healthy"], false);
  broker.start();
  ASSERT_TRUE(waitFor([&] { return d.ctl({"status"}).code == 0; }, 15s)) << d.ctl({"status"}).out;

  // A device that fails: named in the verdict; `devices` shows it with its faults.
  writeFile(d.configPath(),
            configText(dir, broker.uri(),
                       "devices:\n  - name: m1\n    type: mock\n    poll_interval_ms: 50\n"
                       "  - name: m2\n    type: mock\n    poll_interval_ms: 50\n    fail: poll\n"));
  ASSERT_EQ(d.ctl({"reload"}).code, 0);
  ASSERT_TRUE(waitFor([&] { return d.ctl({"status"}).code == 4; }, 15s)) << d.ctl({"status"}).out;
  EXPECT_TRUE(
      waitFor([&] { return d.ctl({"status"}).out.find("  m2 fault") != std::string::npos; }, 5s))
      << d.ctl({"status"}).out;
  const auto dev = d.ctl({"devices"});
  EXPECT_EQ(dev.code, 0) << dev.err;
  EXPECT_NE(dev.out.find("m2  mock  fault  faults "), std::string::npos) << dev.out;
  EXPECT_NE(dev.out.find("m1  mock  ok  faults 0"), std::string::npos) << dev.out;
  const auto devJson = nlohmann::json::parse(d.ctl({"devices", "--json"}).out, nullptr, false);
  ASSERT_TRUE(devJson.is_object());
  EXPECT_EQ(devJson["devices"].size(), 2u);
}

TEST(HealthIT, EveryCommandOfTheDaemonTakesJson) {
  TempDir dir;
  Broker broker(dir);
  SimProcess sim({"ims"}, dir.file("ims"));
  Daemon d(dir,
           kImsLibrary + configText(dir, broker.uri(), "devices:\n" + imsEntry("ims-1", sim.port)));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  ASSERT_TRUE(deviceStatusShows(broker, "ims-1", "\"ok\"")) << d.process().err();
  for (std::vector<std::string> args : {std::vector<std::string>{"status"},
                                        {"devices"},
                                        {"outbox"},
                                        {"reload"},
                                        {"test-alert", "--count", "2"},
                                        {"calibrate", "ims", "ims-1", "verify"}}) {
    args.push_back("--json");
    const auto r = d.ctl(args);
    EXPECT_TRUE(r.code == 0 || r.code == 4) << args[0] << ": " << r.code << r.err;
    std::istringstream lines(r.out);
    int n = 0;
    for (std::string line; std::getline(lines, line); ++n)
      EXPECT_TRUE(nlohmann::json::parse(line, nullptr, false).is_object())
          << args[0] << " printed a line that is not a JSON object: " << line;
    EXPECT_GT(n, 0) << args[0];
  }
}

}  // namespace
}  // namespace lanegate::test
