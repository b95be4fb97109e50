// lanegated end to end with real parts: a real mosquitto on a loopback port chosen at
// run time, the real daemon binary, and subscribers that are independent peers
// (mosquitto_sub) or the control room's own tool (lanegatectl watch).
#include <gtest/gtest.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {


TEST(DaemonIT, RetainedOnlineStatusAfterStart) {
  TempDir dir;
  Broker broker(dir);
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return statusIs(broker, "online"); }, 15s)) << d.process().err();
  const auto s = nlohmann::json::parse(retained(broker, kStatusTopic));
  EXPECT_EQ(s["site"], "it");
  EXPECT_EQ(s["lane"], "lane-1");
}

TEST(DaemonIT, SigkillMakesTheBrokerPublishOffline) {
  TempDir dir;
  Broker broker(dir);
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return statusIs(broker, "online"); }, 15s)) << d.process().err();
  d.process().signal(SIGKILL);
  ASSERT_TRUE(d.process().wait(5s));
  EXPECT_TRUE(waitFor([&] { return statusIs(broker, "offline"); }, 15s))
      << "the will did not set offline: " << retained(broker, kStatusTopic);
}

TEST(DaemonIT, TestAlertsReachAnIndependentSubscriberWithDistinctIds) {
  TempDir dir;
  Broker broker(dir);
  // A persistent session (clean session off) registered before the daemon starts, so
  // that nothing depends on the subscriber being connected at the right moment.
  const std::string port = std::to_string(broker.port());
  auto reg = run({MOSQUITTO_SUB_BIN, "-h", "127.0.0.1", "-p", port, "-c", "-i", "it-control-room",
                  "-q", "1", "-t", kAlertsTopic, "-E"});
  ASSERT_EQ(reg.code, 0) << reg.err;
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();

  const auto r = d.ctl({"test-alert", "--count", "5"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream printed(r.out);
  std::set<std::string> accepted;
  for (std::string line; std::getline(printed, line);) accepted.insert(line);
  EXPECT_EQ(accepted.size(), 5u) << r.out;

  auto sub = run({MOSQUITTO_SUB_BIN, "-h", "127.0.0.1", "-p", port, "-c", "-i", "it-control-room",
                  "-q", "1", "-t", kAlertsTopic, "-C", "5", "-W", "10"});
  ASSERT_EQ(sub.code, 0) << sub.err;
  std::istringstream got(sub.out);
  std::set<std::string> ids;
  for (std::string line; std::getline(got, line);) {
    const auto e = nlohmann::json::parse(line);
    EXPECT_EQ(e["type"], "org.lanegate.test");
    EXPECT_EQ(e["source"], "lanegate://it/lane-1/lanegated");
    ids.insert(e["id"].get<std::string>());
  }
  EXPECT_EQ(ids, accepted);
}

TEST(DaemonIT, WatchPrintsAlertsAsTheControlRoomSeesThem) {
  TempDir dir;
  Broker broker(dir);
  Daemon d(dir, configText(dir, broker.uri()));
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1",
                 "--json", "--count", "3"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s))
      << watch.err();
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  ASSERT_EQ(d.ctl({"test-alert", "--count", "3"}).code, 0);
  ASSERT_EQ(watch.wait(15s), 0) << watch.err();
  std::istringstream got(watch.out());
  int n = 0;
  for (std::string line; std::getline(got, line); ++n)
    EXPECT_EQ(nlohmann::json::parse(line)["type"], "org.lanegate.test");
  EXPECT_EQ(n, 3);
}

TEST(DaemonIT, ReconnectsAfterTheBrokerRestarts) {
  TempDir dir;
  Broker broker(dir);
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return statusIs(broker, "online"); }, 15s)) << d.process().err();
  broker.stop();
  ASSERT_TRUE(waitFor([&] { return !d.brokerConnected(); }, 15s));
  EXPECT_TRUE(d.process().running()) << "the daemon must keep running while the broker is away";
  // Without persistence the restarted broker has no retained status: `online` can only
  // come back from the daemon publishing it again.
  broker.start();
  EXPECT_TRUE(waitFor([&] { return statusIs(broker, "online"); }, 15s)) << d.process().err();
  EXPECT_TRUE(d.brokerConnected());
}

TEST(DaemonIT, RunsWithoutABrokerAndConnectsWhenOneAppears) {
  TempDir dir;
  const int port = freeLoopbackPort();
  Daemon d(dir, configText(dir, "tcp://127.0.0.1:" + std::to_string(port)));
  ASSERT_TRUE(waitFor([&] { return d.status().is_object(); }, 15s)) << d.process().err();
  EXPECT_FALSE(d.brokerConnected());
  const auto r = d.ctl({"test-alert"});
  EXPECT_EQ(r.code, 0) << "the outbox accepts while the broker is away: " << r.err;
  writeFile(dir.file("mq.conf"), "listener " + std::to_string(port) + " 127.0.0.1\nallow_anonymous true\nuser root\n");
  Process mq({MOSQUITTO_BIN, "-c", dir.file("mq.conf")}, dir.file("mq"));
  EXPECT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  EXPECT_TRUE(waitFor([&] { return d.outbox().value("pending", -1) == 0; }, 15s))
      << "the alert accepted during the outage is delivered once the broker is there";
}

TEST(DaemonIT, SighupWithABrokenConfigKeepsTheOldOne) {
  TempDir dir;
  Broker broker(dir);
  Daemon d(dir, configText(dir, broker.uri(), "devices:\n  - name: m1\n    type: mock\n"));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  writeFile(d.configPath(), "site: it\nlane: [broken\n");
  d.process().signal(SIGHUP);
  ASSERT_TRUE(waitFor([&] { return d.process().err().find("configuration not changed") != std::string::npos; }, 10s))
      << d.process().err();
  EXPECT_NE(d.process().err().find(d.configPath() + ":"), std::string::npos)
      << "the reload error must name file:line";
  EXPECT_TRUE(d.process().running());
  const auto s = d.status();
  ASSERT_TRUE(s.is_object());
  EXPECT_TRUE(s["devices"].contains("m1"));
  EXPECT_EQ(d.ctl({"test-alert"}).code, 0) << "still delivering on the old config";
}

TEST(DaemonIT, SighupWithAValidConfigAppliesIt) {
  TempDir dir;
  Broker broker(dir);
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  writeFile(d.configPath(), configText(dir, broker.uri(), "devices:\n  - name: added\n    type: mock\n"));
  d.process().signal(SIGHUP);
  EXPECT_TRUE(waitFor([&] {
    const auto s = d.status();
    return s.is_object() && s["devices"].contains("added") && s["devices"]["added"]["state"] == "ok";
  }, 10s)) << d.process().err();
  EXPECT_TRUE(deviceStatusShows(broker, "added", "\"ok\""));
}

TEST(DaemonIT, SigtermExitsZeroWithinTwoSeconds) {
  TempDir dir;
  Broker broker(dir);
  Daemon d(dir, configText(dir, broker.uri(), "devices:\n  - name: m1\n    type: mock\n"));
  ASSERT_TRUE(waitFor([&] { return statusIs(broker, "online"); }, 15s)) << d.process().err();
  d.process().signal(SIGTERM);
  const auto code = d.process().wait(2s);
  ASSERT_TRUE(code.has_value()) << "still running 2 s after SIGTERM";
  EXPECT_EQ(*code, 0) << d.process().err();
  EXPECT_TRUE(statusIs(broker, "offline")) << "a clean stop says offline itself (no will)";
}

TEST(DaemonIT, CheckConfig) {
  TempDir dir;
  writeFile(dir.file("good.yaml"), configText(dir, "tcp://127.0.0.1:1883"));
  auto ok = run({LANEGATED_BIN, "-c", dir.file("good.yaml"), "--check-config"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  writeFile(dir.file("bad.yaml"), "site: it\nlane: l\nbroker:\n  uri: udp://x:1\n");
  auto bad = run({LANEGATED_BIN, "-c", dir.file("bad.yaml"), "--check-config"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(bad.err, dir.file("bad.yaml") + ":4: broker: bad uri 'udp://x:1': expected tcp://host:port or ssl://host:port\n");
}

TEST(CtlIT, UnreachableDaemonExitsThree) {
  TempDir dir;
  auto r = run({LANEGATECTL_BIN, "-s", dir.file("none.sock"), "status"});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("cannot reach lanegated at " + dir.file("none.sock")), std::string::npos) << r.err;
  EXPECT_EQ(run({LANEGATECTL_BIN, "frobnicate"}).code, 2);
}

}  // namespace
}  // namespace lanegate::test
